"""From a :class:`~spgg_jax.train.config.TrainConfig` to everything a run uses.

``build_setup(cfg)`` is shared by ``spgg train`` and ``spgg eval --run-dir``: the device mesh, the
team and its game parameters, the training, validation and test problems (disjoint by problem text:
``spgg_jax.tasks.splits``), the models (each distinct model loaded once, placed on the mesh), the
judge, and the learner of the configured method. It touches no run directory, so a bad
configuration fails before any file is written.

``check_run(cfg)`` is the same resolution without loading weights or building anything: what
``spgg train --dry-run`` and the sweep planner (``spgg_jax.train.sweeps``) run.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any, Mapping, Optional

from spgg_jax.parallel.placement import StatePlacement
from spgg_jax.parallel.rules import ParallelConfig
from spgg_jax.rl.learners import Learner, make_learner
from spgg_jax.rollout.episode import ModelBundle, load_bundles
from spgg_jax.rollout.team import TeamConfig
from spgg_jax.tasks import get_task, load_problems
from spgg_jax.tasks.judge import LLMJudge
from spgg_jax.tasks.splits import load_splits
from spgg_jax.train.config import TrainConfig


@dataclasses.dataclass
class Setup:
    """The resolved pieces of a run (see the module docstring)."""

    cfg: TrainConfig
    team: TeamConfig
    game_params: Any
    train_problems: list
    eval_problems: list
    bundles: Mapping[str, ModelBundle]
    judge: Any
    placement: StatePlacement
    learner: Learner
    val_problems: list = dataclasses.field(default_factory=list)  # where the evaluation picks its best baseline
    splits: dict = dataclasses.field(default_factory=dict)  # sizes and dropped candidates (tasks.splits)

    @property
    def mesh(self):
        return self.placement.mesh


def make_placement(cfg: TrainConfig) -> StatePlacement:
    """The mesh (over every global device) and rules of ``cfg``; one device when ``cfg.mesh`` is empty."""
    if not cfg.mesh:
        return StatePlacement()
    pc = ParallelConfig.from_strings(cfg.mesh, cfg.rules)
    return StatePlacement(pc.make_mesh(), pc.rules())


def build_setup(cfg: TrainConfig, bundles: Optional[Mapping[str, ModelBundle]] = None, *,
                train: bool = True, split: str = "test") -> Setup:
    """Resolve ``cfg``: ``bundles`` reuses loaded models (tests); ``train=False`` keeps no training pool
    (it is still drawn: the held-out splits leave out its texts). The validation split is drawn when
    the run evaluates (``eval_size > 0``) or ``split="val"`` (an evaluation on it)."""
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    get_task(cfg.task)  # an unknown task fails before any model is loaded
    placement = make_placement(cfg)
    team = cfg.team
    game_params = None if team.single else team.game_params()  # a single agent plays no game
    val_size = cfg.val_size if cfg.eval_size > 0 or split == "val" else 0
    splits = load_splits(cfg.task, train_size=cfg.train_size, val_size=val_size, test_size=cfg.eval_size,
                         seed=cfg.seed, options=cfg.task_options)
    if not splits.train:
        raise ValueError(f"task {cfg.task!r} gave no training problems")
    train_problems = splits.train if train else []
    if bundles is None:
        # one generation bucket, whatever max_new_tokens a policy picks
        bundles = load_bundles(team, dtype=cfg.dtype, mesh=placement.mesh, rules=placement.rules,
                               min_gen_bucket=max(a.max_new_tokens for a in team.agents))
    missing = [m for m in team.models() if m not in bundles]
    if missing:
        raise ValueError(f"no loaded model for {missing}; loaded: {sorted(bundles)}")
    judge = None
    if cfg.judge:
        judge = LLMJudge.load(cfg.judge, dtype=cfg.dtype, mesh=placement.mesh, rules=placement.rules)
    learner = make_learner(cfg.method, cfg.method_cfg, team, bundles, placement)
    return Setup(cfg, team, game_params, train_problems, splits.test, bundles, judge, placement, learner, splits.val,
                 splits.summary)


def task_problems(cfg: TrainConfig, split: str) -> list:
    """The run's problems of ``split``: ``"train"`` (the training pool: the whole split, or
    ``train_size`` generated) or ``"test"`` (``eval_size`` held-out problems), loaded with the run's
    ``task_options`` (which hold the task's training defaults, e.g. MBPP's hidden asserts)."""
    opts = dict(cfg.task_options)
    if split == "train":
        return load_problems(cfg.task, "train", seed=cfg.seed, generate=cfg.train_size, **opts)
    return load_problems(cfg.task, split, cfg.eval_size, seed=cfg.seed, generate=cfg.eval_size, **opts)


@functools.lru_cache(maxsize=64)
def _check_task(task: str, options_json: str, seed: int, files: bool) -> str:
    spec = get_task(task)
    if not files:
        return f"{task} (registered; its data is not read here)"
    problems = load_problems(task, "train", 1, seed=seed, generate=1, **json.loads(options_json))
    if not problems:
        raise ValueError(f"task {task!r} gave no training problems")
    return f"{task} ({'one problem generated' if spec.generated else 'data files read'}: ok)"


@functools.lru_cache(maxsize=64)
def _check_splits(task: str, options_json: str, seed: int, train_size: int, val_size: int, eval_size: int) -> str:
    from spgg_jax.tasks.splits import format_summary

    splits = load_splits(task, train_size=train_size, val_size=val_size, test_size=eval_size, seed=seed,
                         options=json.loads(options_json))
    return format_summary(splits.summary).removeprefix("splits: ")


@functools.lru_cache(maxsize=64)
def _check_model(ref: str, files: bool) -> str:
    from spgg_jax.models.weights.hub import MODELS, classify_model, is_fetched

    if not files and ref not in MODELS:
        return f"{ref} (not registered: a path on the machines that run the job, not checked here)"
    kind, path = classify_model(ref)
    if kind == "registered":
        state = f"fetched at {path}" if is_fetched(path) else "not fetched yet: fetched on first use"
        return f"{ref} (registered; {state})"
    return f"{ref} ({'HF directory' if kind == 'hf_dir' else 'GGUF file, converted on first use'})"


def check_run(cfg: TrainConfig, *, files: bool = True) -> list[tuple[str, str]]:
    """Check everything a run needs without loading weights or touching a run directory; returns
    ``(what, finding)`` lines, raises ``ValueError``/``KeyError``/``FileNotFoundError`` on the first
    problem. Checked: the reward and its parameters, the episode scorer (both also when ``cfg`` was
    built), the task and its options (one training problem is loaded; when the run evaluates, its
    training, validation and test splits are drawn: disjoint by text, ``tasks.splits``), every model and the judge
    (registered name, HF directory or ``.gguf`` file; nothing is fetched) and the mesh spec.
    ``files=False`` skips reading the task's data and checking model paths (they may exist only on
    the machines that will run the job); names are still checked."""
    from spgg_jax.rollout.scoring import check_team_reward

    team = cfg.team
    if team.single:
        out = [("reward", "the task score S (a single agent: no game, no own cost)")]
    else:
        params = team.game_params()
        own = ", ".join(f"{k}={v:g}" for k, v in params.variant.to_dict().items()) or "none"
        out = [("reward", f"{team.reward} (own parameters: {own}; shared: "
                          f"B={float(params.B):g} kappa={float(params.kappa):g} cost={params.cost} score={params.score})")]
        check_team_reward(team)
    out.append(("scorer", team.scorer))
    out.append(("team", f"{team.n} agents ({', '.join(a.name for a in team.agents)}), observation={team.observation}, "
                        f"final={team.final}, effort={team.effort}"))
    options_json = json.dumps(dict(cfg.task_options), sort_keys=True)
    out.append(("task", _check_task(cfg.task, options_json, cfg.seed, files)))
    if files and cfg.eval_size > 0:  # the held-out splits can be filled with texts unseen in training
        out.append(("splits", _check_splits(cfg.task, options_json, cfg.seed, cfg.train_size, cfg.val_size,
                                            cfg.eval_size)))
    for ref in team.models():
        out.append(("model", _check_model(ref, files)))
    if cfg.judge:
        out.append(("judge", _check_model(cfg.judge, files)))
    out.append(("method", f"{cfg.method} ({type(cfg.method_cfg).__name__})"))
    out.append(("mesh", cfg.mesh or "one device"))
    return out
