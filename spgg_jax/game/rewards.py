"""Reward variants: registered pure functions ``reward(q: f32[..., n], params) -> f32[..., n]``.

Every variant works under ``jit``, ``vmap`` (over batches of contributions and over stacked
``GameParams``) and ``grad`` where it is smooth. Two ways to add one:

1. ``@register_reward("name")`` on a full reward ``fn(q, params) -> R``. The exact SPNE solver
   (backward induction over every history, n <= 4) handles it.
2. ``@register_per_agent_reward("name", own_cost=...)`` on the BENEFITS of a per-agent form
   ``benefit(i, q_i, m_i, total, S, params) -> f32`` (i is the 1-based position, m_i the predecessor
   quality agent i observes, total = sum_j q_j, S the final score), with its own-cost term declared
   beside it: R_i = benefit_i(q, S) - own_cost(x_i). In the game x_i = q_i. In LLM episodes
   (:func:`rewards_given_score` with ``effort``) q_i enters only the benefits and the own cost is
   charged on effort x_i = effort_i, so being right never costs more than being wrong. ``own_cost``
   is ``"linear"`` (x_i), ``"cost"`` (the registered cost function ``params.cost``, C(x_i)),
   ``"none"`` (the default: the function is the whole reward and has no separable own cost) or a
   callable ``(x, params) -> f32``. The full reward is derived from it, and the scalable solver
   (state = running sum and last contribution) solves it for large n.

Both decorators take ``params=``: the variant's own parameters, a :class:`VariantParams` subclass
(a ``flax.struct`` dataclass with defaults, ranges and docs, see :mod:`spgg_jax.game.params`). The
reward reads them from the one ``GameParams`` argument as ``p.NAME``; the shared parameters (range,
cost, score weights, m0, B) stay shared. ``make_params(reward, n, **kw)`` routes each key to its owner.

See docs/game.md for the formulas and the reasons behind each default.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from spgg_jax.game.costs import COSTS
from spgg_jax.game.params import GameParams, VariantParams, param, shared_field_names, shared_numeric_names
from spgg_jax.game.scores import final_score, predecessor_quality
from spgg_jax.registry import PLUGIN_HINT, Registry

RewardFn = Callable[[jax.Array, GameParams], jax.Array]

# S counts as meeting the threshold B when S >= B - THRESHOLD_TOL. On a contribution grid S often
# lands exactly on B, where float32 rounding of a mean would otherwise decide the penalty at random
# (and differently in different solvers). 1e-6 is about 10 float32 ulps at S ~ 1.
THRESHOLD_TOL = 1e-6


def below_threshold(s, p):
    """1[S < B] with the tolerance THRESHOLD_TOL (as a float array)."""
    return (s < p.B - THRESHOLD_TOL).astype(jnp.float32)
PerAgentFn = Callable[..., jax.Array]
OwnCostFn = Callable[[jax.Array, GameParams], jax.Array]


def own_cost_linear(x, p):
    """The classic games' own cost: x_i (R_i = w0 - q_i + ...)."""
    del p
    return jnp.asarray(x, jnp.float32)


def own_cost_registered(x, p):
    """C(x_i), the registered cost function ``params.cost`` (quadratic, power, exponential, ...)."""
    return COSTS.get(p.cost)(jnp.asarray(x, jnp.float32), p)


def own_cost_none(x, p):
    """No separable own cost (0)."""
    del p
    return jnp.zeros_like(jnp.asarray(x, jnp.float32))


#: Named own-cost terms for ``register_per_agent_reward(..., own_cost=NAME)``.
OWN_COSTS: dict[str, OwnCostFn] = {"linear": own_cost_linear, "cost": own_cost_registered, "none": own_cost_none}


@dataclasses.dataclass(frozen=True)
class RewardSpec:
    """A registered reward variant.

    ``timing`` is "sequential" (solved by backward induction: SPNE) or "simultaneous" (pure Nash
    equilibria by enumeration). ``per_agent`` enables the scalable solver. ``validate`` adds checks
    specific to the variant beyond :func:`spgg_jax.game.params.validate` (cross-field checks; single
    parameters' ranges are declared on ``params``, the variant's :class:`VariantParams` subclass).
    ``has_threshold``
    says whether the threshold B is part of the variant (reports of ``S >= B`` are only meaningful
    then). Per-agent variants also carry ``benefit`` (R_i without its own cost), ``own_cost``
    ``(x, params) -> f32`` and its name ``own_cost_name``; ``per_agent`` = benefit - own_cost(q_i).
    """

    name: str
    fn: RewardFn
    timing: str = "sequential"
    smooth: bool = False
    has_threshold: bool = False
    per_agent: Optional[PerAgentFn] = None
    validate: Optional[Callable[[GameParams], None]] = None
    doc: str = ""
    benefit: Optional[PerAgentFn] = None
    own_cost: Optional[OwnCostFn] = None
    own_cost_name: str = "none"
    params: type = VariantParams
    #: the per-agent reward is non-decreasing in the final outcome (``total`` and ``S``) for fixed
    #: (i, q_i, m_i); lets the scalable solver bound every tie-break's outcome (``path_unique``)
    outcome_monotone: bool = False

    def __call__(self, q, params):
        return self.fn(q, params)


REWARDS: Registry[RewardSpec] = Registry("reward", hint=PLUGIN_HINT)


def register_reward(
    name: str,
    *,
    timing: str = "sequential",
    smooth: bool = False,
    has_threshold: bool = False,
    validate: Optional[Callable[[GameParams], None]] = None,
    params: type = VariantParams,
    overwrite: bool = False,
):
    """Decorator registering a full reward ``fn(q, params) -> f32[..., n]`` under ``name``;
    ``params`` is the variant's own :class:`VariantParams` subclass (default: none of its own)."""
    if timing not in ("sequential", "simultaneous"):
        raise ValueError(f"timing must be 'sequential' or 'simultaneous', got {timing!r}")
    _check_params_class(name, params)

    def deco(fn: RewardFn) -> RewardFn:
        spec = RewardSpec(name, fn, timing, smooth, has_threshold, None, validate, (fn.__doc__ or "").strip(),
                          params=params)
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


def _resolve_own_cost(own_cost) -> tuple[OwnCostFn, str]:
    if callable(own_cost):
        return own_cost, getattr(own_cost, "__name__", "custom")
    if isinstance(own_cost, str) and own_cost in OWN_COSTS:
        return OWN_COSTS[own_cost], own_cost
    raise ValueError(f"own_cost must be one of {sorted(OWN_COSTS)} or a callable (x, params) -> f32, got {own_cost!r}")


def per_agent_from_benefit(benefit: PerAgentFn, own_cost: OwnCostFn) -> PerAgentFn:
    """The game's per-agent reward R_i = benefit_i(...) - own_cost(q_i) (x_i = q_i in the game)."""

    def per_agent(i, q_i, m_i, total, s, p):
        return benefit(i, q_i, m_i, total, s, p) - own_cost(q_i, p)

    per_agent.__doc__ = benefit.__doc__
    per_agent.__name__ = getattr(benefit, "__name__", "reward")
    return per_agent


def register_per_agent_reward(
    name: str,
    *,
    own_cost: Any = "none",
    timing: str = "sequential",
    smooth: bool = False,
    has_threshold: bool = False,
    validate: Optional[Callable[[GameParams], None]] = None,
    params: type = VariantParams,
    overwrite: bool = False,
    outcome_monotone: bool = False,
):
    """Decorator registering a per-agent reward by its benefits and own-cost term (see module doc).

    The decorated ``benefit(i, q_i, m_i, total, S, params)`` is everything in R_i except the agent's
    own cost; ``own_cost`` (``"linear"``, ``"cost"``, ``"none"`` or a callable ``(x, params)``)
    is that cost. The game's reward is R_i = benefit_i - own_cost(q_i). Default ``"none"``: the
    function is the whole reward (it must then not contain a cost of q_i, or LLM episodes would
    charge correctness; effort modes that charge an own cost refuse such a variant). For the
    incentive property of LLM episodes, benefit must be non-decreasing in q_i and in S. Returns the
    benefit function. ``params``: the variant's own :class:`VariantParams` subclass.
    ``outcome_monotone=True`` declares the benefit non-decreasing in ``total`` and in ``S`` (for
    fixed i, q_i, m_i); the scalable solver then bounds the outcome of every tie-break by its
    extremes, which makes its ``path_unique`` much less conservative. Declare it only when true.
    """
    cost_fn, cost_name = _resolve_own_cost(own_cost)
    _check_params_class(name, params)

    def deco(benefit: PerAgentFn) -> PerAgentFn:
        per_agent = per_agent_from_benefit(benefit, cost_fn)
        fn = full_reward_from_per_agent(per_agent)
        spec = RewardSpec(
            name, fn, timing, smooth, has_threshold, per_agent, validate, (benefit.__doc__ or "").strip(),
            benefit=benefit, own_cost=cost_fn, own_cost_name=cost_name, params=params,
            outcome_monotone=bool(outcome_monotone),
        )
        REWARDS.register(name, overwrite=overwrite)(spec)
        return benefit

    return deco


def _check_params_class(name: str, params: Any) -> None:
    if not (isinstance(params, type) and issubclass(params, VariantParams) and dataclasses.is_dataclass(params)):
        raise ValueError(f"reward {name!r}: params must be a VariantParams subclass decorated with "
                         f"@flax.struct.dataclass, got {params!r}")
    clash = sorted(set(params.names()) & set(shared_field_names()) | ({"variant"} & set(params.names())))
    if clash:
        raise ValueError(f"reward {name!r}: parameter(s) {clash} clash with the shared game parameters; rename them")


def get_reward(name: str) -> RewardSpec:
    return REWARDS.get(name)


def param_names(reward: str) -> list[str]:
    """The numeric parameters of ``reward``'s games: the shared ones, then the variant's own."""
    return shared_numeric_names() + get_reward(reward).params.names()


def accepted_keys(reward: str) -> list[str]:
    """Every key ``make_params(reward, ...)`` accepts: the shared fields (static ones too), then the
    variant's own parameters."""
    return [k for k in shared_field_names() if k != "reward"] + get_reward(reward).params.names()


def make_params(reward: str, n: int = 3, **kwargs) -> GameParams:
    """Validated ``GameParams`` for a variant: each key goes to its owner (shared or the variant's
    own parameters); an unknown key is an error naming the variant and the key. Runs the
    variant's own checks too."""
    spec = get_reward(reward)
    own_names = spec.params.names()
    unknown = sorted(set(kwargs) - set(accepted_keys(reward)))
    if unknown:
        shared = sorted(set(shared_field_names()) - {"n", "reward"})
        raise ValueError(
            f"unknown game parameter(s) {unknown} for reward {reward!r}; its own parameters: "
            f"{', '.join(own_names) or '(none)'}; shared: {', '.join(shared)}")
    own = {k: kwargs.pop(k) for k in list(kwargs) if k in own_names}
    params = GameParams.create(n=n, variant=spec.params.create(reward, **own), reward=reward, **kwargs)
    if spec.validate is not None:
        spec.validate(params)
    return params


def check_params(spec: RewardSpec, params: GameParams) -> None:
    """The parameters must carry ``spec``'s own parameters (built by ``make_params(spec.name, ...)``)."""
    if not isinstance(params, GameParams):
        raise ValueError(f"reward {spec.name!r} needs GameParams, got {type(params).__name__}")
    if not isinstance(params.variant, spec.params):
        raise ValueError(
            f"reward {spec.name!r} needs its own parameters ({spec.params.__name__}), but these parameters "
            f"were built for {params.reward or 'no variant'!r} ({type(params.variant).__name__}); "
            f"use make_params({spec.name!r}, n, ...)")


def validate_for(reward: str, params: GameParams) -> None:
    """Run the variant-specific checks on already-built (possibly stacked) params."""
    spec = get_reward(reward)
    check_params(spec, params)
    params.variant.validate(reward)
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


@struct.dataclass
class ClassicParams(VariantParams):
    """The classic public-goods games' own parameters."""

    w0: Any = param(1.0, doc="endowment: R_i = w0 - q_i + (r / n) sum_j q_j")
    r: Any = param(1.8, doc="public-good multiplier, 1 < r < n (a social dilemma)")


def _classic_benefit(i, q_i, m_i, total, s, p):
    del i, m_i, s
    return p.w0 + (p.r / p.n) * total * jnp.ones_like(q_i)


@register_per_agent_reward("pgg", own_cost="linear", timing="simultaneous", smooth=True, validate=_validate_classic,
                           params=ClassicParams, outcome_monotone=True)
def pgg(i, q_i, m_i, total, s, p):
    """Simultaneous public-goods game: R_i = w0 - q_i + (r / n) * sum_j q_j, 1 < r < n.

    Benefits w0 + (r / n) sum_j q_j; own cost q_i (linear)."""
    return _classic_benefit(i, q_i, m_i, total, s, p)


@register_per_agent_reward("spgg", own_cost="linear", timing="sequential", smooth=True, validate=_validate_classic,
                           params=ClassicParams, outcome_monotone=True)
def spgg(i, q_i, m_i, total, s, p):
    """Sequential public-goods game: the PGG payoff, agents move in order 1..n (SPNE).

    Benefits w0 + (r / n) sum_j q_j; own cost q_i (linear)."""
    return _classic_benefit(i, q_i, m_i, total, s, p)


# ----------------------------------------------------------------------------------------------
# MAC-SPGG
# ----------------------------------------------------------------------------------------------


@struct.dataclass
class MacSpggParams(VariantParams):
    """MAC-SPGG's own parameters (the threshold B is shared: every variant reports S >= B)."""

    gamma: Any = param(0.5, ge=0.0, doc="synergy weight: gamma q_i m_i")
    rho: Any = param(1.8, ge=0.0, doc="equal share of the final score: (rho / n) S")
    P: Any = param(1.5, ge=0.0, doc="penalty paid by everyone when S < B")


@struct.dataclass
class MacSpggSmoothParams(MacSpggParams):
    """MAC-SPGG's parameters plus the temperature of the smooth penalty."""

    tau: Any = param(0.05, gt=0.0, doc="temperature of the penalty sigmoid((B - S) / tau)")


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


@register_per_agent_reward("mac_spgg", own_cost="cost", has_threshold=True, params=MacSpggParams, outcome_monotone=True)
def mac_spgg(i, q_i, m_i, total, s, p):
    """MAC-SPGG: R_i = -C(q_i) + gamma q_i m_i + (rho / n) S - P 1[S < B].

    Benefits gamma q_i m_i + (rho / n) S - P 1[S < B]; own cost C(q_i) (registered ``params.cost``)."""
    _, synergy, share = mac_spgg_terms(i, q_i, m_i, total, s, p)
    penalty = p.P * below_threshold(s, p).astype(q_i.dtype)
    return synergy + share - penalty


@register_per_agent_reward("mac_spgg_smooth", own_cost="cost", smooth=True, has_threshold=True,
                           params=MacSpggSmoothParams, outcome_monotone=True)
def mac_spgg_smooth(i, q_i, m_i, total, s, p):
    """MAC-SPGG with a smooth penalty: P * sigmoid((B - S) / tau) replaces P * 1[S < B].

    Benefits gamma q_i m_i + (rho / n) S - P sigmoid((B - S) / tau); own cost C(q_i)."""
    _, synergy, share = mac_spgg_terms(i, q_i, m_i, total, s, p)
    penalty = p.P * jax.nn.sigmoid((p.B - s) / p.tau)
    return synergy + share - penalty


def reward_terms_given_score(name: str, q, score, params: GameParams, effort=None):
    """``(benefit, own_cost)`` f32[..., n] of a per-agent variant when the final score S is measured.

    ``q`` f32[..., n] contribution qualities in [c_min, c_max] (they enter only the benefits),
    ``score`` f32[...] the measured final score S. The own cost is evaluated on ``effort``
    f32[..., n] (in [c_min, c_max], e.g. generated tokens over a fixed budget) when given, else on
    ``q`` (the game's x_i = q_i).
    """
    spec = get_reward(name)
    check_params(spec, params)
    if spec.per_agent is None:
        raise ValueError(f"reward {name!r} has no per-agent form, so it cannot take a measured final score")
    q = jnp.asarray(q, jnp.float32)
    s = jnp.asarray(score, jnp.float32)
    if spec.benefit is None:  # a RewardSpec built by hand with only a per-agent form: no separable cost
        return _apply_per_agent(spec.per_agent, q, s, params), jnp.zeros_like(q)
    benefit = jnp.broadcast_to(_apply_per_agent(spec.benefit, q, s, params), q.shape)
    x = q if effort is None else jnp.asarray(effort, jnp.float32)
    if x.shape != q.shape:
        raise ValueError(f"effort must have the shape of q {q.shape}, got {x.shape}")
    return benefit, jnp.broadcast_to(spec.own_cost(x, params), q.shape)


def rewards_given_score(name: str, q, score, params: GameParams, effort=None, charge_own_cost: bool = True):
    """Per-agent rewards when the final score S is measured, not derived from q (LLM episodes).

    R_i = benefit_i(q, S) - own_cost(x_i) with x_i = ``effort`` f32[..., n] when given (any per-agent
    variant: pgg/spgg charge x_i, mac_spgg C(x_i)), else x_i = q_i (the game's reward with a
    measured S). ``charge_own_cost=False`` drops the own-cost term (benefits only). ``q`` f32[..., n]
    in [c_min, c_max], ``score`` f32[...]. Needs a per-agent reward.
    """
    benefit, cost = reward_terms_given_score(name, q, score, params, effort)
    return benefit - cost if charge_own_cost else benefit


def rewards(name: str, q, params: GameParams):
    """Evaluate the registered reward ``name`` on contributions ``q`` (f32[..., n])."""
    q = jnp.asarray(q, jnp.float32)
    if q.shape[-1] != params.n:
        raise ValueError(f"contributions have {q.shape[-1]} agents on the last axis, params.n={params.n}")
    spec = get_reward(name)
    check_params(spec, params)
    return spec.fn(q, params)
