"""Sweeps of the game-level learners (host side; used by ``spgg game learn``): every (parameter
point, seed) pair of :mod:`spgg_jax.rl.game_learners` trained in one jitted, vmapped call."""

from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

from spgg_jax.game.params import GameParams
from spgg_jax.game.rewards import validate_for
from spgg_jax.game.sweep import stack_params
from spgg_jax.rl.game_learners import GameRLConfig, make_train, seed_keys


def learn_points(cfg: GameRLConfig, base: GameParams, points: Sequence[dict], seeds: Sequence[int]):
    """Train every (parameter point, seed) pair in ONE jitted vmapped call.

    Returns ``(runs, metrics)``: ``runs`` a list of dicts (point values and ``seed``) in run order,
    ``metrics`` a dict of numpy arrays with leading axes [runs, steps].
    """
    points = [dict(p) for p in points] or [{}]
    runs = [dict(p, seed=int(s)) for p in points for s in seeds]
    stacked = stack_params(base, [{k: v for k, v in r.items() if k != "seed"} for r in runs])
    validate_for(cfg.reward, stacked)
    keys = seed_keys([r["seed"] for r in runs])
    _, metrics = jax.jit(jax.vmap(make_train(cfg)))(keys, stacked)
    return runs, {k: np.asarray(v) for k, v in jax.device_get(metrics).items()}
