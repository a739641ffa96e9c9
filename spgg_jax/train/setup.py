"""From a :class:`~spgg_jax.train.config.TrainConfig` to everything a run uses.

``build_setup(cfg)`` is shared by ``spgg train`` and ``spgg eval --run-dir``: the device mesh, the
team and its game parameters, the training and held-out problems, the models (each distinct model
loaded once, placed on the mesh), the judge, and the learner of the configured method. It touches
no run directory, so a bad configuration fails before any file is written.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

from spgg_jax.parallel.placement import StatePlacement
from spgg_jax.parallel.rules import ParallelConfig
from spgg_jax.rl.learners import Learner, make_learner
from spgg_jax.rollout.episode import ModelBundle, load_bundles
from spgg_jax.rollout.team import TeamConfig
from spgg_jax.tasks import get_task, load_problems
from spgg_jax.tasks.judge import LLMJudge
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
                train: bool = True) -> Setup:
    """Resolve ``cfg``: ``bundles`` reuses loaded models (tests); ``train=False`` skips the training pool."""
    get_task(cfg.task)  # an unknown task fails before any model is loaded
    placement = make_placement(cfg)
    team = cfg.team
    game_params = team.game_params()
    opts = dict(cfg.task_options)
    train_problems = load_problems(cfg.task, "train", seed=cfg.seed, generate=cfg.train_size, **opts) if train else []
    if train and not train_problems:
        raise ValueError(f"task {cfg.task!r} gave no training problems")
    eval_problems = (load_problems(cfg.task, "test", cfg.eval_size, seed=cfg.seed, generate=cfg.eval_size, **opts)
                     if cfg.eval_size > 0 else [])
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
    return Setup(cfg, team, game_params, train_problems, eval_problems, bundles, judge, placement, learner)
