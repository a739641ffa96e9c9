"""An example plugin: a reward variant and an episode scorer that are not built into spgg_jax.

Load it with any ``spgg`` command::

    SPGG_PLUGINS=experiments/plugins/relative_reward.py spgg game solve --reward mac_spgg_relative
    spgg --plugin experiments/plugins/relative_reward.py game list

``mac_spgg_relative`` replaces MAC-SPGG's synergy term by a bonus for beating the team's mean
contribution:

    R_i = -C(q_i) + alpha (q_i - mean_j q_j) + (rho / n) S - P 1[S < B]

It brings its own parameters (``alpha``, ``rho``, ``P``, declared below with defaults and ranges);
the shared ones (c_min, c_max, kappa, cost, score, B, m0, ...) stay shared. It is registered in
per-agent form (benefits, plus the cost C declared as the own-cost term), so the scalable solver,
the game-level learners and LLM training all use it. Its benefits grow with q_i (alpha (1 - 1/n) >= 0)
and with S, the incentive property LLM episodes need (docs/episodes.md).

``mean_credit`` is an episode scorer: every agent's q is the task score of its own output (as in
the built-in ``task`` scorer), and the team's S is the share of agents whose output is correct,
instead of the score of one final answer. Select it with ``team.scorer=mean_credit``.
"""

from typing import Any

import numpy as np
from flax import struct

from spgg_jax.game import VariantParams, param, register_per_agent_reward
from spgg_jax.game.rewards import below_threshold
from spgg_jax.rollout.scoring import TextScores, register_episode_scorer, task_scorer


@struct.dataclass
class RelativeParams(VariantParams):
    """The parameters of ``mac_spgg_relative`` beyond the shared ones."""

    alpha: Any = param(0.6, ge=0.0, doc="weight of the bonus for beating the team mean: alpha (q_i - mean q)")
    rho: Any = param(1.8, ge=0.0, doc="equal share of the final score: (rho / n) S")
    P: Any = param(1.5, ge=0.0, doc="penalty paid by everyone when S < B")


@register_per_agent_reward("mac_spgg_relative", own_cost="cost", has_threshold=True, params=RelativeParams)
def mac_spgg_relative(i, q_i, m_i, total, s, p):
    """MAC-SPGG with a relative bonus: R_i = -C(q_i) + alpha (q_i - mean q) + (rho / n) S - P 1[S < B]."""
    del i, m_i
    relative = p.alpha * (q_i - total / p.n)
    share = (p.rho / p.n) * s
    return relative + share - p.P * below_threshold(s, p).astype(q_i.dtype)


@register_episode_scorer("mean_credit")
def mean_credit(problems, outputs, *, team, judge=None) -> TextScores:
    """q_i: the task score of agent i's own output; S: the share of agents whose output is correct."""
    own = task_scorer(problems, outputs, team=team, judge=judge)
    correct = np.asarray(own.agent_correct, bool)
    share = correct.mean(axis=1).astype(np.float32)
    return TextScores(own.agent_score, share, correct, share >= 0.5, own.final_turn)
