"""The MAC-SPGG trainer: Python outer loop, jitted rollout / update steps, orbax checkpoints.

One iteration (``Trainer.train_step``):
    problems (deterministic in (seed, step))  ->  run_episodes (sequential agents, jitted sampler)
    -> score_episodes (q_i, S)  ->  episode_rewards (the registered game reward, R[B, n])
    -> update: PPO on the generation-parameter policies (``method=gen_params``) or
       GRPO/PPO over generated tokens with per-agent LoRA adapters (``method=token``)
    -> metrics (JSONL + TensorBoard), checkpoint every K steps / on SIGTERM / at the end.

Everything a step consumes is a function of the restored state and the step index (RNG keys are
``fold_in(key(seed), step)``, batches are drawn from ``(seed, step)``), so ``N + resume + N`` steps
equal ``2N`` uninterrupted steps exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from spgg_jax.checkpoint import Checkpointer, StopSignal
from spgg_jax.game.rewards import THRESHOLD_TOL
from spgg_jax.parallel import (ParallelConfig, any_process, broadcast_from_main, is_main_process, mesh_context,
                               replicated_sharding, shard_pytree, sync_global_devices, to_host)
from spgg_jax.rl import gen_policy as gp
from spgg_jax.rl.advantages import group_advantages, normalize
from spgg_jax.rl.config import TrainConfig, config_differences
from spgg_jax.rl.lora import init_lora, merge_lora
from spgg_jax.rl.losses import LOSSES, ppo_loss, value_loss
from spgg_jax.rl.metrics import MetricsWriter, plot_run


class RunDirError(ValueError):
    pass


# ------------------------------------------------------------------------------------------------
# Pure, jitted pieces
# ------------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("hidden", "n_agents", "agent"))
def _policy_act(policy, pooled, key, hidden, n_agents, agent):
    params = jax.tree_util.tree_map(lambda x: x[agent], policy)  # every agent's policy is stacked
    feats = gp.policy_features(pooled, agent, n_agents)
    u, logp, v = gp.act(params, feats, key, hidden)
    return feats, u, logp, v


@functools.partial(jax.jit, static_argnames=("hidden", "n_agents", "agent"))
def _policy_mode(policy, pooled, hidden, n_agents, agent):
    params = jax.tree_util.tree_map(lambda x: x[agent], policy)
    return gp.mode(params, gp.policy_features(pooled, agent, n_agents), hidden)


def _make_optimizer(lr: float, grad_clip: float):
    return optax.chain(optax.clip_by_global_norm(grad_clip), optax.adam(lr))


def _gen_params_update(params, opt_state, batch, key, cfg_static):
    """PPO epochs on every agent's policy at once (vmapped over the leading agent axis).

    ``batch``: feats [n,B,F], u [n,B,6], logp_old [n,B], v_old [n,B], ret [n,B], adv [n,B].
    Stops updating (target-KL early stop) once the mean approximate KL of an epoch exceeds
    1.5 * target_kl. Returns (params, opt_state, metrics).
    """
    hidden, epochs, minibatch, clip, vcoef, ecoef, lr, gclip, target_kl = cfg_static
    opt = _make_optimizer(lr, gclip)
    b = batch["u"].shape[1]
    mb = min(minibatch, b)
    n_mb = b // mb

    def agent_loss(p, d):
        logp, ent, v = gp.evaluate(p, d["feats"], d["u"], hidden)
        pl, m = ppo_loss(logp, d["logp_old"], d["adv"], jnp.ones_like(logp, bool), clip)
        vl = value_loss(v, d["ret"], d["v_old"], clip)
        ent = jnp.mean(ent)
        return pl + vcoef * vl - ecoef * ent, {**m, "policy_loss": pl, "value_loss": vl, "entropy": ent}

    grad_fn = jax.vmap(jax.grad(agent_loss, has_aux=True))

    def epoch(carry, ekey):
        params, opt_state, stopped = carry
        perm = jax.random.permutation(ekey, b)[: n_mb * mb].reshape(n_mb, mb)

        def minibatch_step(c, idx):
            params, opt_state = c
            d = jax.tree_util.tree_map(lambda x: x[:, idx], batch)
            grads, _ = grad_fn(params, d)
            updates, new_opt = jax.vmap(opt.update)(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            keep = lambda new, old: jax.tree_util.tree_map(lambda a, o: jnp.where(stopped, o, a), new, old)  # noqa: E731
            return (keep(new_params, params), keep(new_opt, opt_state)), None

        (params, opt_state), _ = jax.lax.scan(minibatch_step, (params, opt_state), perm)
        _, m = jax.vmap(agent_loss)(params, batch)
        kl = jnp.mean(m["approx_kl"])
        ran = ~stopped
        return (params, opt_state, stopped | (kl > 1.5 * target_kl)), (m, ran)

    (params, opt_state, _), (ms, ran) = jax.lax.scan(epoch, (params, opt_state, jnp.array(False)),
                                                     jax.random.split(key, epochs))
    last = jax.tree_util.tree_map(lambda x: x[-1].mean(), ms)
    return params, opt_state, {**last, "ppo_epochs_run": jnp.sum(ran)}


GEN_PARAMS_STATIC = ("cfg_static",)
gen_params_update = jax.jit(_gen_params_update, static_argnames=GEN_PARAMS_STATIC)


def _token_loss(trainable, base, lora_spec, cfg, loss_name, clip, kl_coef, temperature, d):
    from spgg_jax.sampling import continuation_logprobs

    params = merge_lora(base, trainable, *lora_spec) if lora_spec is not None else trainable
    lp = continuation_logprobs(params, cfg, d["prompt_ids"], d["prompt_mask"], d["tokens"], d["mask"], temperature)
    loss, m = LOSSES.get(loss_name)(lp, d["logp_old"], d["adv"][:, None], d["mask"], clip, d["ref_lp"], kl_coef)
    m["logprob_mismatch"] = jnp.max(jnp.abs(jnp.where(d["mask"], lp - d["logp_old"], 0.0)))
    return loss, m


def _token_update(trainable, opt_state, base, d, cfg, lora_spec, loss_name, clip, kl_coef, temperature, lr, gclip):
    """One gradient step of the token-level loss for one agent (LoRA adapters or full weights)."""
    opt = _make_optimizer(lr, gclip)
    (loss, m), grads = jax.value_and_grad(_token_loss, has_aux=True)(
        trainable, base, lora_spec, cfg, loss_name, clip, kl_coef, temperature, d)
    updates, opt_state = opt.update(grads, opt_state, trainable)
    return optax.apply_updates(trainable, updates), opt_state, {**m, "loss": loss}


TOKEN_STATIC = ("cfg", "lora_spec", "loss_name", "clip", "kl_coef", "temperature", "lr", "gclip")
token_update = jax.jit(_token_update, static_argnames=TOKEN_STATIC)


@functools.partial(jax.jit, static_argnames=("cfg", "temperature"))
def _reference_logprobs(base, cfg, prompt_ids, prompt_mask, tokens, mask, temperature):
    from spgg_jax.sampling import continuation_logprobs

    return continuation_logprobs(base, cfg, prompt_ids, prompt_mask, tokens, mask, temperature)


# ------------------------------------------------------------------------------------------------
# The trainer (Python edge)
# ------------------------------------------------------------------------------------------------


class Trainer:
    """Builds everything from a :class:`TrainConfig`; ``run()`` trains, checkpoints and evaluates."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, overwrite: bool = False,
                 resume_from: str | None = None, bundles: dict | None = None, log=print):
        from spgg_jax.rollout.episode import load_bundles
        from spgg_jax.rollout.team import load_team
        from spgg_jax.tasks import load_task

        self.cfg = cfg
        self.log = log if is_main_process() else (lambda *a, **k: None)
        self.run_dir = Path(cfg.run_dir)
        # One program on every process; the mesh spans all global devices (docs/scaling.md).
        self.mesh, self.rules = None, None
        if cfg.mesh:
            pc = ParallelConfig.from_strings(cfg.mesh, cfg.rules)
            self.mesh, self.rules = pc.make_mesh(), pc.rules()
        self._prepare_run_dir(resume, overwrite)
        if cfg.team == "default":
            team = load_team(f"default:{cfg.n_agents}", model=cfg.model, observation=cfg.observation)
        else:  # a team file names each agent's model (heterogeneous teams); cfg.model is not applied
            team = load_team(cfg.team)
        agents = tuple(dataclasses.replace(a, max_new_tokens=cfg.max_new_tokens) for a in team.agents)
        if cfg.method == "token":
            agents = tuple(dataclasses.replace(a, temperature=cfg.temperature, top_p=1.0, top_k=0,
                                               repetition_penalty=1.0, presence_penalty=0.0) for a in agents)
        self.team = dataclasses.replace(team, agents=agents, reward=cfg.reward, cost=cfg.cost,
                                        reward_params={**dict(team.reward_params), **dict(cfg.reward_params)})
        self.game_params = self.team.game_params()
        self.bundles = bundles if bundles is not None else load_bundles(self.team, dtype=cfg.dtype, mesh=self.mesh,
                                                                        rules=self.rules)
        # the policy picks max_new_tokens in [min(8, max/2), max]
        self.ranges = gp.GenParamRanges(max_new_tokens=(min(8.0, cfg.max_new_tokens / 2), float(cfg.max_new_tokens)))
        for bundle in self.bundles.values():  # one generation bucket, whatever max_new_tokens the policy picks
            bundle.sampler.min_gen_bucket = cfg.max_new_tokens
        self.n = self.team.n
        models = set(self.team.models())
        if cfg.method == "token" and len(models) != 1:
            raise ValueError(f"token-level training needs agents sharing one base model, got {sorted(models)}")
        opts = dict(cfg.task_options)
        self.train_problems = load_task(cfg.task, split="train", size=cfg.train_size, seed=cfg.seed, **opts) \
            if _takes_size(cfg.task) else load_task(cfg.task, split="train", **opts)
        self.eval_problems = []
        if cfg.eval_size > 0:
            self.eval_problems = (load_task(cfg.task, split="test", size=cfg.eval_size, seed=cfg.seed, **opts)
                                  if _takes_size(cfg.task) else load_task(cfg.task, split="test", **opts)[: cfg.eval_size])
        if not self.train_problems:
            raise ValueError(f"task {cfg.task!r} gave no training problems")
        self.judge = None
        if cfg.judge:
            from spgg_jax.tasks.judge import LLMJudge

            self.judge = LLMJudge.load(cfg.judge, dtype=cfg.dtype, mesh=self.mesh, rules=self.rules)
        self.key = jax.random.key(cfg.seed)
        self.state = self._init_state()
        self._pin_update_layouts()
        # one process: saves overlap the next steps; several: saves are synchronous, so no background
        # thread runs orbax's barriers while the main thread is inside the step's collectives
        self.ckpt = Checkpointer(self.run_dir / "checkpoints", keep=cfg.keep, async_save=jax.process_count() == 1)
        self.start_step = 0
        if resume:
            self._restore(resume_from)
        self.metrics = MetricsWriter(self.run_dir, resume_step=self.start_step if resume else None)

    # ---------------------------------------------------------------------------- set-up
    def _prepare_run_dir(self, resume: bool, overwrite: bool) -> None:
        """Check (every process), then clear / create / write config.json (process 0 only)."""
        cfg_path = self.run_dir / "config.json"
        clear = False
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            if overwrite:
                clear = True
            elif not resume:
                raise RunDirError(
                    f"run directory {self.run_dir} already exists; pass --resume to continue it or --overwrite to start over"
                )
            elif cfg_path.exists():
                diffs = config_differences(json.loads(cfg_path.read_text()), self.cfg)
                if diffs:
                    shown = "; ".join(f"{k}: saved {a!r} vs now {b!r}" for k, b_a in sorted(diffs.items()) for a, b in [b_a])
                    raise RunDirError(f"cannot resume {self.run_dir}: the config differs from the saved run ({shown})")
        sync_global_devices("run-dir-checked")  # nobody sees process 0's writes as "already exists"
        if is_main_process():
            if clear:
                shutil.rmtree(self.run_dir)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            cfg_path.write_text(json.dumps(self.cfg.to_dict(), indent=2))
        sync_global_devices("run-dir-ready")

    def _base(self):
        return self.bundles[self.team.agents[0].model]

    def _init_state(self) -> dict:
        cfg = self.cfg
        k_init = jax.random.fold_in(self.key, -1 & 0x7FFFFFFF)
        if cfg.method == "gen_params":
            d = self.bundles[self.team.agents[0].model].cfg.d_model
            feat_dim = d + self.n + 1
            keys = jax.random.split(k_init, self.n)
            # start every agent's policy at its configured generation parameters (Beta modes)
            init_u = jnp.stack([gp.to_unit({**a.sampling_kwargs(), "top_k": a.top_k or self.ranges.top_k[1]},
                                           self.ranges) for a in self.team.agents])
            params = jax.vmap(lambda k, u: gp.init_policy(k, feat_dim, cfg.policy_hidden, u))(keys, init_u)
            opt_state = jax.vmap(_make_optimizer(cfg.lr, cfg.grad_clip).init)(params)
            return self._place_state({"policy": params, "opt": opt_state, "step": jnp.int32(0)})
        base = self._base().params
        keys = jax.random.split(k_init, self.n)
        if cfg.full_finetune:
            trainable = [jax.tree_util.tree_map(jnp.array, base) for _ in range(self.n)]
        else:
            trainable = [init_lora(k, base, cfg.lora_rank, cfg.lora_targets) for k in keys]
        trainable = self._place_state(trainable)  # placed first: the optimizer moments follow its layout
        opt = _make_optimizer(cfg.token_lr, cfg.grad_clip)
        return {"policy": trainable, "opt": [self._opt_init(opt, t) for t in trainable],
                "step": self._replicate(jnp.int32(0))}

    def _opt_init(self, opt, params):
        """``opt.init(params)``; on a mesh the moments take their parameters' shardings (the rest replicated)."""
        if self.mesh is None:
            return opt.init(params)
        rep = replicated_sharding(self.mesh)
        layout = optax.tree_map_params(opt, lambda _, s: s, jax.eval_shape(opt.init, params),
                                       jax.tree_util.tree_map(lambda x: x.sharding, params),
                                       transform_non_params=lambda _: rep)
        return jax.jit(opt.init, out_shardings=layout)(params)

    def _place_state(self, state: Any) -> Any:
        """On a mesh: leaves already sharded on it (full fine-tuning copies of the base weights) keep their
        layout; the rest (policy nets, LoRA adapters and their optimizer states: small) are replicated."""
        if self.mesh is None:
            return state
        rep = replicated_sharding(self.mesh)
        on_mesh = lambda x: isinstance(getattr(x, "sharding", None), jax.sharding.NamedSharding) and \
            x.sharding.mesh == self.mesh  # noqa: E731
        return shard_pytree(state, jax.tree_util.tree_map(lambda x: x.sharding if on_mesh(x) else rep, state))

    def _pin_update_layouts(self) -> None:
        """On a mesh, the updates return the state in the layout it came in (else XLA may pick another
        one for some outputs, and every step would reshard and recompile)."""
        self._gen_params_update, self._token_update = gen_params_update, token_update
        if self.mesh is None:
            return
        layout = lambda tree: jax.tree_util.tree_map(lambda x: x.sharding, tree)  # noqa: E731
        rep = replicated_sharding(self.mesh)
        if self.cfg.method == "gen_params":
            out = (layout(self.state["policy"]), layout(self.state["opt"]), rep)
            self._gen_params_update = jax.jit(_gen_params_update, static_argnames=GEN_PARAMS_STATIC, out_shardings=out)
        else:  # every agent's adapters share one layout
            out = (layout(self.state["policy"][0]), layout(self.state["opt"][0]), rep)
            self._token_update = jax.jit(_token_update, static_argnames=TOKEN_STATIC, out_shardings=out)

    def _replicate(self, tree):
        """``tree`` replicated over the mesh (as is without one)."""
        return tree if self.mesh is None else shard_pytree(tree, replicated_sharding(self.mesh))

    def _context(self):
        """The mesh and rules as the active sharding context of the jitted updates (no-op without a mesh)."""
        return mesh_context(self.mesh, self.rules)

    def _restore(self, resume_from: str | None) -> None:
        from spgg_jax.checkpoint import resolve_resume

        found = resolve_resume(self.run_dir / "checkpoints", resume_from)
        if found is None:
            self.log(f"no checkpoint in {self.run_dir}; starting from step 0")
            return
        directory, step = found
        ck = self.ckpt if directory == self.run_dir / "checkpoints" else Checkpointer(directory)
        state, meta, step = ck.restore(self.state, step)
        saved_cfg = meta.get("config", {})
        diffs = config_differences(saved_cfg, self.cfg) if saved_cfg else {}
        if diffs:
            raise RunDirError(f"checkpoint at {directory} comes from another config: {sorted(diffs)} differ")
        self.state = state
        self.start_step = int(meta["data_position"])
        self.log(f"resumed from {directory} at step {self.start_step}")

    # ---------------------------------------------------------------------------- one step
    def batch_problems(self, step: int) -> list:
        rng = np.random.default_rng([self.cfg.seed, step])
        idx = rng.choice(len(self.train_problems), size=self.cfg.batch, replace=len(self.train_problems) < self.cfg.batch)
        probs = [self.train_problems[i] for i in idx]
        if self.cfg.method == "token":
            probs = [p for p in probs for _ in range(self.cfg.group_size)]
        return probs

    def agent_params(self, state=None) -> list | None:
        if self.cfg.method != "token":
            return None
        state = self.state if state is None else state
        base = self._base().params
        if self.cfg.full_finetune:
            return list(state["policy"])
        spec = (self.cfg.lora_alpha, self.cfg.lora_rank)
        return [merge_lora(base, l, *spec) for l in state["policy"]]

    def _sampling_fn(self, record: dict, policy, deterministic: bool = False):
        hidden = self.cfg.policy_hidden
        ranges = self.ranges

        def to_params(u):  # host math on host values: no eager op touches a multi-host array
            return jax.tree_util.tree_map(np.asarray, gp.to_sampling_params(u, ranges))

        def fn(agent, pooled, key):
            # one jitted call, then one all-gather: every process gets the whole batch's choices
            with self._context():
                if deterministic:
                    return to_params(to_host(_policy_mode(policy, pooled, hidden, self.n, agent))), {}
                out = _policy_act(policy, pooled, key, hidden, self.n, agent)
            feats, u, logp, v = to_host(out)
            record[agent] = {"feats": feats, "u": u, "logp_old": logp, "v_old": v}
            return to_params(u), {"u": u}

        return fn

    def rollout(self, problems, key, state=None, deterministic=False):
        """Play the team on ``problems`` with ``state``'s policies (default: the current state)."""
        from spgg_jax.rollout.episode import run_episodes

        state = self.state if state is None else state
        record: dict = {}
        sampling_fn = None
        if self.cfg.method == "gen_params":
            sampling_fn = self._sampling_fn(record, state["policy"], deterministic)
        batch = run_episodes(self.team, self.bundles, problems, key, sampling_fn=sampling_fn,
                             agent_params=self.agent_params(state), need_features=sampling_fn is not None)
        return batch, record

    def train_step(self, step: int) -> dict:
        from spgg_jax.rollout.scoring import episode_rewards, score_episodes

        cfg = self.cfg
        key = jax.random.fold_in(self.key, step)
        t0 = time.perf_counter()
        problems = self.batch_problems(step)
        batch, record = self.rollout(problems, jax.random.fold_in(key, 0))
        t1 = time.perf_counter()
        scores = score_episodes(batch, self.team, judge=self.judge)
        # process 0's rewards everywhere: a sandbox timeout must not make the hosts' updates diverge
        rewards = broadcast_from_main(np.asarray(episode_rewards(scores, self.team, self.game_params)))
        t2 = time.perf_counter()
        with self._context():
            if cfg.method == "gen_params":
                upd = self._update_gen_params(record, rewards, jax.random.fold_in(key, 1))
            else:
                upd = self._update_token(batch, rewards)
        t3 = time.perf_counter()
        self.state["step"] = self._replicate(jnp.int32(step + 1))
        return self._step_metrics(batch, scores, rewards, record, upd, (t0, t1, t2, t3))

    def _update_gen_params(self, record: dict, rewards: np.ndarray, key) -> dict:
        cfg = self.cfg
        agents = range(self.n)
        stack = lambda k: np.stack([record[a][k] for a in agents])  # noqa: E731  (host arrays)
        ret = rewards.T  # one-step episodes: the return is the reward (GAE reduces to R - V)
        v_old = stack("v_old")
        adv = np.asarray(jax.vmap(normalize)(jnp.asarray(ret - v_old)))
        batch = {"feats": stack("feats"), "u": stack("u"), "logp_old": stack("logp_old"), "v_old": v_old,
                 "ret": ret, "adv": adv}
        batch = self._replicate(batch)  # the policy nets are small and replicated; so is their PPO batch
        static = (cfg.policy_hidden, cfg.ppo_epochs, cfg.minibatch, cfg.clip_eps, cfg.value_coef,
                  cfg.entropy_coef, cfg.lr, cfg.grad_clip, cfg.target_kl)
        params, opt, m = self._gen_params_update(self.state["policy"], self.state["opt"], batch, key, static)
        self.state["policy"], self.state["opt"] = params, opt
        return {k: float(v) for k, v in m.items()}

    def _update_token(self, batch, rewards: np.ndarray) -> dict:
        cfg = self.cfg
        base = self._base().params
        mcfg = self._base().cfg
        lora_spec = None if cfg.full_finetune else (cfg.lora_alpha, cfg.lora_rank)
        rows = self._base().sampler.place_rows  # batch split over the mesh's data axes when it divides
        out: dict[str, list] = {}
        for turn in batch.agent_turns:
            a = turn.agent
            d = {"prompt_ids": turn.prompt_ids, "prompt_mask": turn.prompt_mask, "tokens": turn.tokens,
                 "mask": turn.mask, "logp_old": turn.logprobs,
                 "adv": np.asarray(group_advantages(jnp.asarray(rewards[:, a]), cfg.group_size))}
            d = {k: rows(v) for k, v in d.items()}
            d["ref_lp"] = _reference_logprobs(base, mcfg, d["prompt_ids"], d["prompt_mask"], d["tokens"], d["mask"],
                                              cfg.temperature)
            for _ in range(cfg.ppo_epochs if cfg.loss != "reinforce" else 1):
                t, o, m = self._token_update(self.state["policy"][a], self.state["opt"][a], base, d, mcfg, lora_spec,
                                       cfg.loss, cfg.clip_eps, cfg.kl_coef, cfg.temperature, cfg.token_lr, cfg.grad_clip)
                self.state["policy"][a], self.state["opt"][a] = t, o
                for k, v in m.items():
                    out.setdefault(k, []).append(float(v))
        return {k: (max(v) if k == "logprob_mismatch" else float(np.mean(v))) for k, v in out.items()}

    def _step_metrics(self, batch, scores, rewards, record, upd, times) -> dict:
        t0, t1, t2, t3 = times
        c_min = self.team.c_min
        q = np.asarray(scores.q)
        s = np.asarray(scores.S)
        tokens = np.asarray(batch.tokens_generated)[:, : self.n]
        m: dict[str, Any] = {
            "accuracy": float(np.mean(np.asarray(scores.correct_final))),
            "final_score": float(np.mean(s)),
            "threshold_met": float(np.mean(s >= float(self.game_params.B) - THRESHOLD_TOL)),
            "free_riding": float(np.mean(np.isclose(q, c_min))),
            "reward/mean": float(np.mean(rewards)),
            "rollout_s": t1 - t0, "score_s": t2 - t1, "update_s": t3 - t2, "step_s": t3 - t0,
            "tokens_per_s": float(tokens.sum() / max(t1 - t0, 1e-9)),
        }
        for a in range(self.n):
            m[f"reward/agent{a + 1}"] = float(np.mean(rewards[:, a]))
            m[f"q/agent{a + 1}"] = float(np.mean(q[:, a]))
            m[f"correct/agent{a + 1}"] = float(np.mean(np.asarray(scores.per_agent_correct)[:, a]))
            m[f"free_riding/agent{a + 1}"] = float(np.mean(np.isclose(q[:, a], c_min)))
            m[f"tokens/agent{a + 1}"] = float(np.mean(tokens[:, a]))
            sp = batch.agent_turns[a].sampling  # host values (config or policy choices)
            for name in gp.PARAM_NAMES:
                m[f"gen/{name}/agent{a + 1}"] = float(np.mean(np.asarray(getattr(sp, name))))
        m.update(upd)
        return m

    # ---------------------------------------------------------------------------- the loop
    def save(self, step: int, force: bool = False) -> None:
        meta = {"data_position": step, "config": json.loads(json.dumps(self.cfg.to_dict()))}
        self.ckpt.save(step, self.state, meta, force=force)

    def run(self, evaluate: bool = True) -> dict:
        from tqdm.auto import tqdm

        cfg = self.cfg
        stop = StopSignal()
        steps = range(self.start_step, cfg.steps)
        bar = tqdm(steps, total=cfg.steps, initial=self.start_step, desc="train",
                   disable=not (cfg.progress and is_main_process()), dynamic_ncols=True)
        last = self.start_step
        try:
            for step in bar:
                m = self.train_step(step)
                last = step + 1
                self.metrics.write(last, m)
                bar.set_postfix(reward=f"{m['reward/mean']:.3f}", acc=f"{m['accuracy']:.2f}",
                                tok_s=f"{m['tokens_per_s']:.0f}", step_s=f"{m['step_s']:.1f}")
                if not cfg.progress:
                    self.log(f"step {last}/{cfg.steps}  reward {m['reward/mean']:+.3f}  acc {m['accuracy']:.2f}  "
                             f"tok/s {m['tokens_per_s']:.0f}  step {m['step_s']:.1f}s")
                if last % cfg.checkpoint_every == 0:
                    self.save(last)
                # every process stops after the same step (a preemption signal may reach one host only)
                if any_process(stop.requested is not None):
                    stop.requested = stop.requested or "a stop signal on another process"
                    self.log(f"received {stop.requested}: saving step {last} and stopping")
                    break
        finally:
            bar.close()
            stop.restore()
            if last > 0 and self.ckpt.latest_step() != last:
                self.save(last, force=True)
            self.ckpt.wait()
            self.metrics.close()
        result: dict[str, Any] = {"steps": last, "run_dir": str(self.run_dir)}
        if last > 0 and is_main_process():
            result["plot"] = str(plot_run(self.run_dir))
        if evaluate and not stop.requested and last >= cfg.steps and self.eval_problems:
            result["eval"] = self.evaluate()
            if is_main_process():
                (self.run_dir / "eval.json").write_text(json.dumps(result["eval"], indent=2))
        return result

    # ---------------------------------------------------------------------------- evaluation
    def evaluate(self, problems=None) -> list[dict]:
        """Held-out comparison: single agent, the team before training, the team after training."""
        from spgg_jax.rollout.scoring import episode_rewards, score_episodes

        problems = self.eval_problems if problems is None else problems
        key = jax.random.fold_in(self.key, 10**6)
        rows = []
        single = dataclasses.replace(self.team, agents=self.team.agents[-1:], final="last")
        from spgg_jax.rollout.episode import run_episodes

        t0 = time.perf_counter()
        sb = run_episodes(single, self.bundles, problems, key)
        ss = score_episodes(sb, single, judge=self.judge)
        rows.append(self._eval_row("single agent (config params)", sb, ss, None, time.perf_counter() - t0))
        init = self._init_state()
        for label, state in (("team, untrained", init), ("team, trained", self.state)):
            t0 = time.perf_counter()
            batch, _ = self.rollout(problems, key, state=state, deterministic=True)
            scores = score_episodes(batch, self.team, judge=self.judge)
            r = np.asarray(episode_rewards(scores, self.team, self.game_params))
            rows.append(self._eval_row(label, batch, scores, r, time.perf_counter() - t0))
        return rows

    def _eval_row(self, label, batch, scores, rewards, seconds) -> dict:
        return {
            "method": label,
            "accuracy": float(np.mean(np.asarray(scores.correct_final))),
            "n": len(batch.problems),
            "mean_reward": None if rewards is None else float(np.mean(rewards)),
            "free_riding": float(np.mean(np.isclose(np.asarray(scores.q), self.team.c_min))) if rewards is not None else None,
            "tokens_generated": int(np.asarray(batch.tokens_generated).sum()),
            "llm_calls": int(batch.llm_calls),
            "seconds": seconds,
        }


def _takes_size(task: str) -> bool:
    return task in ("basic_arithmetic", "chain_sum", "gsm_symbolic")


def format_eval_table(rows: list[dict]) -> str:
    head = f"{'method':34s} {'accuracy':>9s} {'n':>4s} {'reward':>8s} {'free-ride':>9s} {'tokens':>8s} {'calls':>6s} {'time s':>7s}"
    lines = [head, "-" * len(head)]
    for r in rows:
        rew = "-" if r["mean_reward"] is None else f"{r['mean_reward']:+.3f}"
        fr = "-" if r["free_riding"] is None else f"{r['free_riding']:.2f}"
        lines.append(f"{r['method']:34s} {r['accuracy']:9.3f} {r['n']:4d} {rew:>8s} {fr:>9s} {r['tokens_generated']:8d} "
                     f"{r['llm_calls']:6d} {r['seconds']:7.1f}")
    return "\n".join(lines)
