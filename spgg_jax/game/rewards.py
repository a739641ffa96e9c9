"""Reward variants: registered pure functions ``reward(q: f32[..., n], params) -> f32[..., n]``.

Every variant works under ``jit``, ``vmap`` (over batches of contributions and over stacked
``GameParams``) and ``grad`` where it is smooth. Two ways to add one:

1. ``@register_reward("name")`` on a full reward ``fn(q, params) -> R``. The exact SPNE solver
   (backward induction over every history, n <= 4) handles it.
2. ``@register_per_agent_reward("name")`` on a per-agent form
   ``fn(i, q_i, m_i, total, S, params) -> R_i`` (i is the 1-based position, m_i the predecessor
   quality agent i observes, total = sum_j q_j, S the final score). The full reward is derived from
   it, and the scalable solver (state = running sum and last contribution) solves it for large n.

See docs/game.md for the formulas and the reasons behind each default.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from spgg_jax.game.costs import COSTS
from spgg_jax.game.params import GameParams
from spgg_jax.game.scores import final_score, predecessor_quality
from spgg_jax.registry import Registry

RewardFn = Callable[[jax.Array, GameParams], jax.Array]

# S counts as meeting the threshold B when S >= B - THRESHOLD_TOL. On a contribution grid S often
# lands exactly on B, where float32 rounding of a mean would otherwise decide the penalty at random
# (and differently in different solvers). 1e-6 is about 10 float32 ulps at S ~ 1.
THRESHOLD_TOL = 1e-6


def below_threshold(s, p):
    """1[S < B] with the tolerance THRESHOLD_TOL (as a float array)."""
    return (s < p.B - THRESHOLD_TOL).astype(jnp.float32)
PerAgentFn = Callable[..., jax.Array]


@dataclasses.dataclass(frozen=True)
class RewardSpec:
    """A registered reward variant.

    ``timing`` is "sequential" (solved by backward induction: SPNE) or "simultaneous" (pure Nash
    equilibria by enumeration). ``per_agent`` enables the scalable solver. ``validate`` adds checks
    specific to the variant (beyond :func:`spgg_jax.game.params.validate`). ``has_threshold``
    says whether the threshold B is part of the variant (reports of ``S >= B`` are only meaningful
    then).
    """

    name: str
    fn: RewardFn
    timing: str = "sequential"
    smooth: bool = False
    has_threshold: bool = False
    per_agent: Optional[PerAgentFn] = None
    validate: Optional[Callable[[GameParams], None]] = None
    doc: str = ""

    def __call__(self, q, params):
        return self.fn(q, params)


REWARDS: Registry[RewardSpec] = Registry("reward")


def register_reward(
    name: str,
    *,
    timing: str = "sequential",
    smooth: bool = False,
    has_threshold: bool = False,
    validate: Optional[Callable[[GameParams], None]] = None,
    overwrite: bool = False,
):
    """Decorator registering a full reward ``fn(q, params) -> f32[..., n]`` under ``name``."""
    if timing not in ("sequential", "simultaneous"):
        raise ValueError(f"timing must be 'sequential' or 'simultaneous', got {timing!r}")

    def deco(fn: RewardFn) -> RewardFn:
        spec = RewardSpec(name, fn, timing, smooth, has_threshold, None, validate, (fn.__doc__ or "").strip())
        REWARDS.register(name, overwrite=overwrite)(spec)
        return fn

    return deco


def _apply_per_agent(per_agent: PerAgentFn, q, s, params):
    """Evaluate a per-agent form for every agent of ``q`` f32[..., n] given the final score ``s`` f32[...]."""
    m = predecessor_quality(q, params)
    total = jnp.sum(q, axis=-1, keepdims=True)
    i = jnp.arange(1, q.shape[-1] + 1, dtype=jnp.int32)
    return per_agent(i, q, m, total, s[..., None], params)


def full_reward_from_per_agent(per_agent: PerAgentFn) -> RewardFn:
    """Lift ``per_agent(i, q_i, m_i, total, S, params)`` to the full vectorised reward (S from q)."""

    def fn(q, params):
        q = jnp.asarray(q, jnp.float32)
        return _apply_per_agent(per_agent, q, final_score(q, params), params)

    fn.__doc__ = per_agent.__doc__
    fn.__name__ = getattr(per_agent, "__name__", "reward")
    return fn


def register_per_agent_reward(
    name: str,
    *,
    timing: str = "sequential",
    smooth: bool = False,
    has_threshold: bool = False,
    validate: Optional[Callable[[GameParams], None]] = None,
    overwrite: bool = False,
):
    """Decorator registering a per-agent reward (see module doc); returns the per-agent fn."""

    def deco(per_agent: PerAgentFn) -> PerAgentFn:
        fn = full_reward_from_per_agent(per_agent)
        spec = RewardSpec(
            name, fn, timing, smooth, has_threshold, per_agent, validate, (per_agent.__doc__ or "").strip()
        )
        REWARDS.register(name, overwrite=overwrite)(spec)
        return per_agent

    return deco


def get_reward(name: str) -> RewardSpec:
    return REWARDS.get(name)


def make_params(reward: str, n: int = 3, **kwargs) -> GameParams:
    """Validated ``GameParams`` for a variant (runs the variant's own checks too)."""
    spec = get_reward(reward)
    params = GameParams.create(n=n, **kwargs)
    if spec.validate is not None:
        spec.validate(params)
    return params


def validate_for(reward: str, params: GameParams) -> None:
    """Run the variant-specific checks on already-built (possibly stacked) params."""
    spec = get_reward(reward)
    if spec.validate is not None:
        spec.validate(params)


# ----------------------------------------------------------------------------------------------
# Classic public-goods games
# ----------------------------------------------------------------------------------------------


def _validate_classic(p: GameParams) -> None:
    r = np.asarray(p.r, dtype=np.float64)
    if not np.all((r > 1) & (r < p.n)):
        raise ValueError(
            f"the classic public-goods multiplier r must lie in (1, n={p.n}) (a social dilemma), "
            f"got r={r.ravel()[:4].tolist()}"
        )


def _classic(i, q_i, m_i, total, s, p):
    del i, m_i, s
    return p.w0 - q_i + (p.r / p.n) * total


@register_per_agent_reward("pgg", timing="simultaneous", smooth=True, validate=_validate_classic)
def pgg(i, q_i, m_i, total, s, p):
    """Simultaneous public-goods game: R_i = w0 - q_i + (r / n) * sum_j q_j, 1 < r < n."""
    return _classic(i, q_i, m_i, total, s, p)


@register_per_agent_reward("spgg", timing="sequential", smooth=True, validate=_validate_classic)
def spgg(i, q_i, m_i, total, s, p):
    """Sequential public-goods game: the PGG payoff, agents move in order 1..n (SPNE)."""
    return _classic(i, q_i, m_i, total, s, p)


# ----------------------------------------------------------------------------------------------
# MAC-SPGG
# ----------------------------------------------------------------------------------------------


def mac_spgg_terms(i, q_i, m_i, total, s, p):
    """The four MAC-SPGG terms (cost, synergy, share, penalty-base), each f32[..., n].

    Returned separately so that variants can recombine them and metrics can log them.
    """
    del i, total
    n = p.n
    cost = COSTS.get(p.cost)(q_i, p)
    synergy = p.gamma * q_i * m_i
    share = (p.rho / n) * s * jnp.ones_like(q_i)
    return cost, synergy, share


@register_per_agent_reward("mac_spgg", has_threshold=True)
def mac_spgg(i, q_i, m_i, total, s, p):
    """MAC-SPGG: R_i = -C(q_i) + gamma q_i m_i + (rho / n) S - P 1[S < B]."""
    cost, synergy, share = mac_spgg_terms(i, q_i, m_i, total, s, p)
    penalty = p.P * below_threshold(s, p).astype(q_i.dtype)
    return -cost + synergy + share - penalty


@register_per_agent_reward("mac_spgg_smooth", smooth=True, has_threshold=True)
def mac_spgg_smooth(i, q_i, m_i, total, s, p):
    """MAC-SPGG with a smooth penalty: P * sigmoid((B - S) / tau) replaces P * 1[S < B]."""
    cost, synergy, share = mac_spgg_terms(i, q_i, m_i, total, s, p)
    penalty = p.P * jax.nn.sigmoid((p.B - s) / p.tau)
    return -cost + synergy + share - penalty


def rewards_given_score(name: str, q, score, params: GameParams, effort=None):
    """Per-agent rewards when the final score S is measured, not derived from q (LLM episodes).

    ``q`` f32[..., n] contribution qualities in [c_min, c_max], ``score`` f32[...] the final task
    score S (e.g. correctness of the team's answer). Needs a per-agent reward. With ``effort``
    f32[..., n] (e.g. generated tokens mapped into [c_min, c_max]) the effort cost C(effort) replaces
    the quality cost C(q) (variants whose per-agent form contains -C(q_i)).
    """
    spec = get_reward(name)
    if spec.per_agent is None:
        raise ValueError(f"reward {name!r} has no per-agent form, so it cannot take a measured final score")
    q = jnp.asarray(q, jnp.float32)
    r = _apply_per_agent(spec.per_agent, q, jnp.asarray(score, jnp.float32), params)
    if effort is not None:
        if not spec.name.startswith("mac_spgg"):
            raise ValueError(f"effort-based cost is defined for the mac_spgg variants, not {name!r}")
        cost = COSTS.get(params.cost)
        r = r + cost(q, params) - cost(jnp.asarray(effort, jnp.float32), params)
    return r


def rewards(name: str, q, params: GameParams):
    """Evaluate the registered reward ``name`` on contributions ``q`` (f32[..., n])."""
    q = jnp.asarray(q, jnp.float32)
    if q.shape[-1] != params.n:
        raise ValueError(f"contributions have {q.shape[-1]} agents on the last axis, params.n={params.n}")
    return get_reward(name).fn(q, params)
