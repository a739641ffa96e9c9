"""The training loop: run directory, checkpoints, metrics, signals. Everything else is delegated.

One iteration (``Trainer.train_step``):
    problems (deterministic in (seed, step))  ->  learner.rollout_policy(state)  ->  run_episodes
    -> score_episodes (q_i, S)  ->  episode_reward_terms (the registered game reward: R[B, n] = benefit - own_cost)
    -> learner.update(state, episodes, rewards)  ->  metrics (JSONL + TensorBoard), checkpoints.

Everything a step consumes is a function of the restored state and the step index (RNG keys are
``fold_in(key(seed), step)``, batches are drawn from ``(seed, step)``), so ``N + resume + N`` steps
equal ``2N`` uninterrupted steps exactly.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from spgg_jax.checkpoint import (Checkpointer, CheckpointSaveError, StopSignal, remove_unfinished_saves, resolve_resume,
                                 set_aside, unfinished_saves)
from spgg_jax.errors import RunError, check_writable_dir, os_error_line, read_json_object
from spgg_jax.eval.trained import EVAL_KEY_SALT, episode_records, eval_json, evaluate_trained
from spgg_jax.game.rewards import THRESHOLD_TOL
from spgg_jax.parallel import any_process, broadcast_from_main, is_main_process, sync_global_devices
from spgg_jax.rl.metrics import MetricsWriter, last_metrics_step, plot_run
from spgg_jax.rollout.episode import run_episodes
from spgg_jax.rollout.scoring import (batch_contributes_nothing, episode_reward_terms, free_riding,
                                      score_episodes)
from spgg_jax.sampling.params import PARAM_NAMES
from spgg_jax.tasks.splits import format_summary
from spgg_jax.train.config import TrainConfig
from spgg_jax.train.resume import config_differences
from spgg_jax.train.setup import Setup, build_setup
from spgg_jax.train.timing import compile_seconds, phase_metrics, step_line

#: files and folders a run directory of this project holds (``--overwrite`` deletes nothing else)
RUN_FILES = ("config.json", "metrics.jsonl", "eval.json", "eval_episodes.jsonl", "eval_val.json",
             "eval_val_episodes.jsonl", "learning_curves.png", "checkpoints", "tensorboard")


class RunDirError(ValueError):
    pass


def draw_batch(pool: list, seed: int, step: int, batch: int, samples: int) -> list:
    """Step ``step``'s problems: ``batch`` drawn from ``pool`` by ``(seed, step)``, each repeated
    ``samples`` times (consecutive rows: a group of a group baseline)."""
    rng = np.random.default_rng([seed, step])
    idx = rng.choice(len(pool), size=batch, replace=len(pool) < batch)
    return [pool[i] for i in idx for _ in range(samples)]


def step_keys(seed: int, step: int) -> tuple[jax.Array, jax.Array]:
    """Step ``step``'s (rollout key, update key): ``fold_in(key(seed), step)`` folded with 0 and 1."""
    key = jax.random.fold_in(jax.random.key(seed), step)
    return jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)


def _looks_like_run(run_dir: Path) -> bool:
    names = {p.name for p in run_dir.iterdir()}
    return "config.json" in names and names <= set(RUN_FILES)


def check_run_dir(run_dir: Path, cfg: TrainConfig, resume: bool, overwrite: bool) -> bool:
    """Whether ``run_dir`` may be used as asked (``RunDirError`` if not); reads, never writes. Returns
    True when the existing run there is to be cleared (``--overwrite``)."""
    check_writable_dir(run_dir, "run directory")  # a file, too long a name, read-only: one line
    cfg_path = run_dir / "config.json"
    clear = False
    if run_dir.exists() and any(run_dir.iterdir()):
        started = any((run_dir / f).exists() for f in ("metrics.jsonl", "checkpoints"))
        if overwrite and not resume:
            if not _looks_like_run(run_dir):
                raise RunDirError(f"--overwrite refused: {run_dir} is not a spgg training run directory (it holds "
                                  f"files other than {', '.join(RUN_FILES)}); choose another run_dir")
            clear = True
        elif resume and cfg_path.exists():
            try:
                saved = read_json_object(cfg_path, "saved run config")
            except ValueError as err:
                raise RunDirError(f"cannot resume {run_dir}: {err}") from None
            diffs = config_differences(saved, cfg)
            if diffs:
                shown = "; ".join(f"{k}: saved {a!r} vs now {b!r}" for k, (a, b) in sorted(diffs.items()))
                raise RunDirError(f"cannot resume {run_dir}: the config differs from the saved run ({shown})")
        elif not resume and (started or not _looks_like_run(run_dir)):
            raise RunDirError(f"run directory {run_dir} already exists; pass --resume to continue it or --overwrite "
                              "to start over")
    return clear


def prepare_run_dir(run_dir: Path, cfg: TrainConfig, resume: bool, overwrite: bool) -> None:
    """Check (every process), then clear / create / write config.json (process 0 only).

    Called only once the whole configuration has been resolved (models and data loaded), so a bad
    configuration never touches an existing run. ``overwrite`` deletes only a directory that holds a
    run of this project; a run that never got to its first step (only ``config.json``) may be
    started again without ``--overwrite``.
    """
    clear = check_run_dir(run_dir, cfg, resume, overwrite)
    cfg_path = run_dir / "config.json"
    sync_global_devices("run-dir-checked")  # nobody sees process 0's writes as "already exists"
    if is_main_process():
        if clear:
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg_path.write_text(json.dumps(cfg.to_dict(), indent=2))
    sync_global_devices("run-dir-ready")


class Trainer:
    """``Trainer(cfg)`` resolves the run (:func:`build_setup`), prepares its directory and state;
    ``run()`` trains, checkpoints and evaluates."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, overwrite: bool = False,
                 resume_from: str | None = None, bundles: Mapping[str, Any] | None = None, log=print):
        self.cfg = cfg
        self.log = log if is_main_process() else (lambda *a, **k: None)
        check_writable_dir(cfg.run_dir, "run directory")  # before any model is loaded
        self.setup: Setup = build_setup(cfg, bundles)  # everything validated before the run dir is touched
        self.learner = self.setup.learner
        if self.setup.eval_problems:
            self.log(format_summary(self.setup.splits))
        self.run_dir = Path(cfg.run_dir)
        self.key = jax.random.key(cfg.seed)
        self.state = self.init_state()
        self.start_step = 0
        self.resumed_from: Path | None = None
        self.last_batch = None
        # every check (run dir, config, metrics rows, checkpoints: the restore itself) reads only; the
        # run directory changes (config.json, repairs, metrics) only once all of them have passed
        clear = check_run_dir(self.run_dir, cfg, resume, overwrite)
        repair = self._plan_resume(resume_from) if resume and not clear else None
        prepare_run_dir(self.run_dir, cfg, resume, overwrite)
        if repair is not None:
            self._repair(repair)
        # one process: saves overlap the next steps; several: saves are synchronous, so no background
        # thread runs orbax's barriers while the main thread is inside the step's collectives
        self.ckpt = Checkpointer(self.run_dir / "checkpoints", keep=cfg.keep, async_save=jax.process_count() == 1)
        self.metrics = MetricsWriter(self.run_dir, resume_step=self.start_step if resume else None)

    @property
    def team(self):
        return self.setup.team

    @property
    def n(self) -> int:
        return self.setup.team.n

    def init_state(self) -> dict:
        """The learner's initial state plus the step counter (what checkpoints hold)."""
        return {**self.learner.init(self.key), "step": self.setup.placement.replicate(jnp.int32(0))}

    def _plan_resume(self, resume_from: str | None) -> dict:
        """Restore the newest checkpoint this run's metrics rows reach (reads only; sets ``state`` and
        ``start_step``) and return what :meth:`_repair` must change so that the run directory is whole
        again: unreadable checkpoints and checkpoints beyond the last complete metrics row are set
        aside (training redoes those steps and saves them again), unfinished saves are removed, rows
        after the restored step are dropped (by :class:`MetricsWriter`)."""
        own = self.run_dir / "checkpoints"
        rows_to, dropped = last_metrics_step(self.run_dir)  # a garbage middle line: an error, nothing changed
        plan: dict[str, Any] = {"set_aside": [], "tmp": unfinished_saves(own), "notes": []}
        if dropped is not None:
            plan["notes"].append(f"{self.run_dir / 'metrics.jsonl'}: line {dropped[0]} is truncated ({dropped[1][:40]!r}...); "
                                 f"it is dropped and its step trained again")
        steps: list[int] = []
        if own.is_dir():
            ro = Checkpointer(own, read_only=True)
            steps = sorted(ro.all_steps(), reverse=True)
            beyond = [s for s in steps if s > rows_to]
            for s in beyond:
                plan["set_aside"].append(s)
                plan["notes"].append(f"checkpoint step {s} in {own} has no metrics row behind it (metrics.jsonl ends "
                                     f"at step {rows_to}): set aside, the step is trained again")
            candidates = [s for s in steps if s <= rows_to]
            if candidates:
                try:
                    state, meta, step, failures = ro.restore_first_intact(self.state, candidates)
                finally:
                    ro.close()
                for s, why in failures:
                    plan["set_aside"].append(s)
                    plan["notes"].append(f"checkpoint step {s} in {own} is unreadable ({why}): set aside, the step is "
                                         "trained again")
                self._take(state, meta, own)
                return plan
            ro.close()
            if steps:
                plan["notes"].append(f"no checkpoint of {own} is covered by metrics.jsonl (it ends at step {rows_to}): "
                                     "training starts again from step 0")
        # --resume-from is where a run without checkpoints of its own starts
        found = resolve_resume(None, resume_from) if resume_from is not None and not steps else None
        if found is None:
            if not steps:
                self.log(f"no checkpoint in {self.run_dir}; starting from step 0")
            return plan
        directory, step = found
        ck = Checkpointer(directory, read_only=True)
        try:
            state, meta, step = ck.restore(self.state, step)
        finally:
            ck.close()
        self._take(state, meta, directory)
        return plan

    def _take(self, state, meta: Mapping[str, Any], directory: Path) -> None:
        saved_cfg = meta.get("config", {})
        diffs = config_differences(saved_cfg, self.cfg) if saved_cfg else {}
        if diffs:
            raise RunDirError(f"checkpoint at {directory} comes from another config: {sorted(diffs)} differ")
        self.state = state
        self.start_step = int(meta["data_position"])
        self.resumed_from = directory

    def _repair(self, plan: Mapping[str, Any]) -> None:
        """Carry out :meth:`_plan_resume`'s repairs (process 0) and say what was done."""
        own = self.run_dir / "checkpoints"
        if is_main_process():
            for note in plan["notes"]:
                self.log(f"resume: {note}")
            for s in sorted(set(plan["set_aside"])):
                self.log(f"resume: moved checkpoint step {s} to {set_aside(own, s)}")
            for p in remove_unfinished_saves(own) if plan["tmp"] else []:
                self.log(f"resume: removed {p} (an unfinished save)")
        sync_global_devices("run-dir-repaired")
        if self.resumed_from is not None:
            self.log(f"resumed from {self.resumed_from} at step {self.start_step}")

    # ---------------------------------------------------------------------------- one step
    def batch_problems(self, step: int) -> list:
        """The step's problems (:func:`draw_batch`)."""
        return draw_batch(self.setup.train_problems, self.cfg.seed, step, self.cfg.batch,
                          self.learner.samples_per_problem)

    def train_step(self, step: int) -> dict:
        s = self.setup
        rollout_key, update_key = step_keys(self.cfg.seed, step)
        c0, t0 = compile_seconds(), time.perf_counter()
        problems = self.batch_problems(step)
        policy = self.learner.rollout_policy(self.state)
        batch = run_episodes(s.team, s.bundles, problems, rollout_key, **policy.episode_kwargs())
        t1 = time.perf_counter()
        scores = score_episodes(batch, s.team, judge=s.judge)
        # the reward's two terms, once: R = benefit - own_cost (``episode_rewards``); process 0's
        # everywhere: a sandbox timeout must not make the hosts' updates diverge
        benefit, own_cost = broadcast_from_main(np.stack(
            [np.asarray(x) for x in episode_reward_terms(scores, s.team, s.game_params)]))
        rewards = benefit - own_cost
        t2 = time.perf_counter()
        learner_state = {k: v for k, v in self.state.items() if k != "step"}
        learn_from = rewards
        if self.cfg.shuffle_rewards:  # the ablation: whole episodes' reward vectors, permuted
            learn_from = rewards[np.random.default_rng([self.cfg.seed, step, 1]).permutation(len(rewards))]
        new_state, upd = self.learner.update(learner_state, batch, learn_from, update_key)
        t3 = time.perf_counter()
        self.state = {**new_state, "step": s.placement.replicate(jnp.int32(step + 1))}
        self.last_batch = batch  # the step's episodes, for inspection (``spgg bench iteration``)
        phases = dict(batch.phase_seconds)
        phases["rollout_host"] = (t1 - t0) - sum(phases.values())  # prompts, tokenizing, texts
        phases.update(score=t2 - t1, update=t3 - t2)
        return self._step_metrics(batch, scores, rewards, own_cost, upd, phases, compile_seconds() - c0)

    def _step_metrics(self, batch, scores, rewards, own_cost, upd, phases, compile_s) -> dict:
        q = np.asarray(scores.q)
        s = np.asarray(scores.S)
        tokens = np.asarray(batch.tokens_generated)[:, : self.n]
        free = free_riding(scores, self.team)
        nothing = batch_contributes_nothing(batch)  # empty, no answer, or a bare copy of a predecessor's answer
        m: dict[str, Any] = {
            "accuracy": float(np.mean(np.asarray(scores.correct_final))),
            "final_score": float(np.mean(s)),
            "free_riding": float(np.mean(free)),
            "nothing": float(np.mean(nothing)),
            "reward/mean": float(np.mean(rewards)),
        }
        if self.setup.game_params is not None:  # a single agent plays no game: no threshold
            m["threshold_met"] = float(np.mean(s >= float(self.setup.game_params.B) - THRESHOLD_TOL))
        m.update(phase_metrics(phases, batch.prompt_tokens, int(np.sum(batch.tokens_generated)), compile_s))
        for a in range(self.n):
            m[f"reward/agent{a + 1}"] = float(np.mean(rewards[:, a]))
            m[f"q/agent{a + 1}"] = float(np.mean(q[:, a]))
            m[f"correct/agent{a + 1}"] = float(np.mean(np.asarray(scores.per_agent_correct)[:, a]))
            m[f"free_riding/agent{a + 1}"] = float(np.mean(free[:, a]))
            m[f"nothing/agent{a + 1}"] = float(np.mean(nothing[:, a]))
            m[f"tokens/agent{a + 1}"] = float(np.mean(tokens[:, a]))
            m[f"own_cost/agent{a + 1}"] = float(np.mean(own_cost[:, a]))
            sp = batch.agent_turns[a].sampling  # host values (config or policy choices)
            for name in PARAM_NAMES:
                m[f"gen/{name}/agent{a + 1}"] = float(np.mean(np.asarray(getattr(sp, name))))
        m.update(upd)
        return m

    # ---------------------------------------------------------------------------- the loop
    def save(self, step: int, force: bool = False) -> None:
        meta = {"data_position": step, "config": json.loads(json.dumps(self.cfg.to_dict()))}
        self.ckpt.save(step, self.state, meta, force=force)

    def run(self, evaluate: bool = True) -> dict:
        cfg = self.cfg
        stop = StopSignal()
        steps = range(self.start_step, cfg.steps)
        bar = tqdm(steps, total=cfg.steps, initial=self.start_step, desc="train",
                   disable=not (cfg.progress and is_main_process()), dynamic_ncols=True)
        last = self.start_step
        error: BaseException | None = None
        try:
            try:
                for step in bar:
                    m = self.train_step(step)
                    last = step + 1
                    self.metrics.write(last, m)
                    bar.set_postfix(reward=f"{m['reward/mean']:.3f}", acc=f"{m['accuracy']:.2f}",
                                    step_s=f"{m['time/step']:.1f}")
                    if not cfg.progress:
                        self.log(step_line(last, cfg.steps, m))
                    if last % cfg.checkpoint_every == 0:
                        self.save(last)
                    # every process stops after the same step (a preemption signal may reach one host only)
                    if any_process(stop.requested is not None):
                        if stop.requested is None:  # another host was signalled (a preemption: SIGTERM)
                            stop.requested, stop.signum = "a stop signal on another process", int(signal.SIGTERM)
                        self.log(f"received {stop.requested}: saving step {last} and stopping")
                        break
            except BaseException as err:
                error = err
                raise
            finally:
                bar.close()
                stop.restore()
                try:
                    # a save that failed is not tried again (a full disk stays full)
                    if last > 0 and not isinstance(error, CheckpointSaveError) and self.ckpt.latest_step() != last:
                        self.save(last, force=True)
                    self.ckpt.wait()
                except CheckpointSaveError as err:
                    if error is None:
                        error = err
                        raise
                finally:
                    self.metrics.close()
        except (CheckpointSaveError, OSError) as err:  # the disk, not the run: one line and how to go on
            reason = str(err) if isinstance(err, CheckpointSaveError) else os_error_line(err)
            raise RunError(f"{reason}; training stopped after step {last}. Once fixed, run the same command "
                           f"with --resume: it repairs {self.run_dir} and continues from its last complete "
                           "checkpoint") from err
        result: dict[str, Any] = {"steps": last, "run_dir": str(self.run_dir)}
        if stop.requested:  # stopped early (before the last step, or before the evaluation): not finished
            result["stopped"] = stop.requested
            result["signal"] = stop.signum
        if last > 0 and is_main_process():
            result["plot"] = str(plot_run(self.run_dir))
        if evaluate and not stop.requested and last >= cfg.steps and self.setup.eval_problems:
            full = self.evaluate()
            result["eval"] = eval_json(full)
            if is_main_process():
                write_eval(self.run_dir, full)
        return result

    def evaluate(self, problems=None, split: str = "test") -> dict:
        """The trained team against the untrained baselines on held-out problems, the best baseline
        chosen on the validation split (``spgg_jax.eval.trained.evaluate_trained``)."""
        trained = {k: v for k, v in self.state.items() if k != "step"}
        return evaluate_trained(self.setup, trained, jax.random.fold_in(self.key, EVAL_KEY_SALT), problems, split)


def write_eval(directory: Path, result: Mapping[str, Any], name: str = "eval") -> Path:
    """``NAME.json`` (rows, validation, headline, paired comparisons, splits) and ``NAME_episodes.jsonl``
    (every evaluated episode)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(eval_json(result), indent=2))
    with open(directory / f"{name}_episodes.jsonl", "w", encoding="utf-8") as f:
        for rec in episode_records(result):
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return path
