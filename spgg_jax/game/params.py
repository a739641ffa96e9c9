"""``GameParams``: every reward parameter of the public-goods games, as one pytree.

All numeric fields are pytree leaves (scalars or arrays), so a stack of ``GameParams`` with a
leading batch axis is a parameter sweep that ``jax.vmap`` runs in one call. The number of agents and
the choice of cost / final-score / observation functions are static (they change shapes or code).

Construct with :func:`GameParams.create`, which fills derived defaults and validates every value
(plain ``GameParams(...)`` skips validation, as JAX does when it rebuilds a pytree).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np
from flax import struct

from spgg_jax.registry import did_you_mean, unknown_names

OBSERVATIONS = ("fo", "po")


@struct.dataclass
class GameParams:
    """Parameters of the classic PGG/SPGG and of MAC-SPGG (see docs/game.md for every symbol).

    Static (not traced): ``n`` agents, ``observation`` ("fo": agent i sees all predecessors,
    "po": only agent i-1), ``cost`` (name in ``COSTS``), ``score`` (name in ``SCORES``).
    """

    # static structure
    n: int = struct.field(pytree_node=False, default=3)
    observation: str = struct.field(pytree_node=False, default="fo")
    cost: str = struct.field(pytree_node=False, default="quadratic")
    score: str = struct.field(pytree_node=False, default="mean")
    # contribution range
    c_min: Any = 0.1
    c_max: Any = 1.0
    # classic public-goods game: R_i = w0 - q_i + (r / n) * sum_j q_j
    w0: Any = 1.0
    r: Any = 1.8
    # MAC-SPGG: R_i = -C(q_i) + gamma * q_i * m_i + (rho / n) * S - P * 1[S < B]
    kappa: Any = 1.0
    gamma: Any = 0.5
    rho: Any = 1.8
    P: Any = 1.5
    B: Any = 0.6
    m0: Any = 0.55  # predecessor quality seen by agent 1 (no predecessors)
    tau: Any = 0.05  # temperature of the smooth penalty sigmoid((B - S) / tau)
    cost_power: Any = 2.0  # exponent p of the power cost kappa * q^p / p (p > 1)
    cost_alpha: Any = 1.0  # rate a of the exponential cost kappa * (exp(a q) - 1) / a
    weights: Any = None  # final-score weights w_j, shape [n]; None means 1/n each

    @classmethod
    def create(cls, n: int = 3, **kwargs: Any) -> "GameParams":
        """Build validated parameters; ``m0`` defaults to the middle of [c_min, c_max]."""
        unknown = set(kwargs) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(unknown_names("game parameter(s)", unknown, field_names()))
        if "m0" not in kwargs:
            c_min = kwargs.get("c_min", 0.1)
            c_max = kwargs.get("c_max", 1.0)
            kwargs["m0"] = 0.5 * (np.asarray(c_min) + np.asarray(c_max))
        if kwargs.get("weights") is None:
            kwargs["weights"] = np.full((int(n),), 1.0 / int(n), dtype=np.float32)
        leaves = {
            k: jnp.asarray(v, dtype=jnp.float32)
            for k, v in kwargs.items()
            if k in numeric_field_names()
        }
        static = {k: v for k, v in kwargs.items() if k not in numeric_field_names()}
        params = cls(n=int(n), **static, **leaves)
        validate(params)
        return params

    def updated(self, **updates: Any) -> "GameParams":
        """A validated copy with fields replaced (``replace`` is flax's unvalidated one).

        Changing ``n`` without new ``weights`` resets them to 1/n.
        """
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if "n" in updates and "weights" not in updates:
            fields["weights"] = None
        fields.update(updates)
        n = fields.pop("n")
        return GameParams.create(n=n, **fields)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (numbers as Python floats or lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in numeric_field_names():
                arr = np.asarray(v)
                v = arr.item() if arr.ndim == 0 else arr.tolist()
            out[f.name] = v
        return out


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(GameParams)]


def numeric_field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(GameParams) if f.metadata.get("pytree_node", True)]


def _check(cond: np.ndarray, message: str) -> None:
    if not bool(np.all(cond)):
        raise ValueError(message)


def validate(p: GameParams) -> None:
    """Raise ``ValueError`` naming the bad value; arrays (stacked sweeps) are checked elementwise."""
    from spgg_jax.game.costs import COSTS
    from spgg_jax.game.scores import SCORES

    if not isinstance(p.n, int) or p.n < 2:
        raise ValueError(f"n (number of agents) must be an integer >= 2, got {p.n!r}")
    if p.observation not in OBSERVATIONS:
        raise ValueError(f"observation must be one of {OBSERVATIONS}, got {p.observation!r}")
    if p.cost not in COSTS:
        raise ValueError(f"unknown cost {p.cost!r}; registered: {', '.join(COSTS.names())}")
    if p.score not in SCORES:
        raise ValueError(f"unknown score {p.score!r}; registered: {', '.join(SCORES.names())}")
    vals = {k: np.asarray(getattr(p, k), dtype=np.float64) for k in numeric_field_names()}
    for k, v in vals.items():
        bad = ~np.isfinite(v)
        if bad.any():
            raise ValueError(f"game parameter {k} must be finite, got {v[bad].ravel()[:4].tolist()}")
    _check(vals["c_min"] > 0, f"c_min must be > 0, got {vals['c_min'].ravel()[:4].tolist()}")
    _check(
        vals["c_min"] < vals["c_max"],
        f"c_min must be < c_max, got c_min={vals['c_min'].ravel()[:4].tolist()} "
        f"c_max={vals['c_max'].ravel()[:4].tolist()}",
    )
    for k in ("kappa", "gamma", "rho", "P"):
        _check(vals[k] >= 0, f"{k} must be >= 0, got {vals[k].ravel()[:4].tolist()}")
    _check(vals["tau"] > 0, f"tau must be > 0, got {vals['tau'].ravel()[:4].tolist()}")
    _check(vals["cost_power"] > 1, f"cost_power must be > 1 (strictly convex), got {vals['cost_power'].ravel()[:4].tolist()}")
    _check(vals["cost_alpha"] > 0, f"cost_alpha must be > 0, got {vals['cost_alpha'].ravel()[:4].tolist()}")
    w = vals["weights"]
    if w.shape[-1:] != (p.n,):
        raise ValueError(f"weights must have shape [..., n={p.n}], got shape {w.shape}")
    _check(w >= 0, f"weights must be >= 0, got {w.ravel()[:8].tolist()}")
    _check(
        np.abs(w.sum(-1) - 1.0) < 1e-5,
        f"weights must sum to 1, got sum {w.sum(-1).ravel()[:4].tolist()}",
    )


def parse_overrides(items: list[str] | Mapping[str, Any]) -> dict[str, Any]:
    """Parse ``["gamma=0.5", "observation=po", "weights=0.2,0.3,0.5"]`` into typed values."""
    if isinstance(items, Mapping):
        return dict(items)
    out: dict[str, Any] = {}
    known = set(field_names())
    for item in items:
        if "=" not in item:
            raise ValueError(f"parameter override {item!r} must look like key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        if key not in known:
            raise ValueError(f"unknown game parameter {key!r}{did_you_mean(key, known)}; known: {sorted(known)}")
        if key in ("observation", "cost", "score"):
            out[key] = raw.strip()
        elif key == "n":
            try:
                out[key] = int(raw)
            except ValueError:
                raise ValueError(f"game parameter n must be an integer >= 2, got {raw!r}") from None
            if out[key] < 2:
                raise ValueError(f"game parameter n must be an integer >= 2, got {raw!r}")
        elif key == "weights":
            try:
                w = [float(x) for x in raw.split(",")]
            except ValueError:
                raise ValueError(f"game parameter weights must be comma-separated numbers, got {raw!r}") from None
            if not all(math.isfinite(x) for x in w):
                raise ValueError(f"game parameter weights must be finite, got {raw!r}")
            out[key] = w
        else:
            try:
                val = float(raw)
            except ValueError:
                raise ValueError(f"game parameter {key} must be a number, got {raw!r}") from None
            if math.isnan(val) or math.isinf(val):
                raise ValueError(f"game parameter {key} must be finite, got {raw!r}")
            out[key] = val
    return out
