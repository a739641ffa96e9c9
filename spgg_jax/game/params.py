"""Game parameters as pytrees: the shared ``GameParams`` and each reward variant's own parameters.

A game's parameters are one ``GameParams`` pytree. Its own fields are SHARED by every variant: the
structure (``n``, ``observation``, ``cost``, ``score``: static), the contribution range, the cost
function's parameters, the final-score weights, the predecessor quality m0 of agent 1 and the
task threshold B. Everything else belongs to the reward variant: each registered variant declares a
:class:`VariantParams` subclass (a ``flax.struct`` dataclass whose fields are declared with
:func:`param`: a default, an optional range and a one-line description), and ``GameParams.variant``
holds an instance of it. Inside a reward function both are read the same way, ``p.gamma`` (or
explicitly ``p.variant.gamma``).

All numeric fields, shared and variant, are pytree leaves (scalars or arrays), so a stack of
``GameParams`` with a leading batch axis is a parameter sweep that ``jax.vmap`` runs in one call.

Construct with :func:`spgg_jax.game.make_params` (``reward``, ``n``, any shared or variant key) or
:meth:`GameParams.create` (shared keys and a ready ``variant``): both fill derived defaults and
validate every value, naming the variant and the key. Plain ``GameParams(...)`` skips validation, as
JAX does when it rebuilds a pytree.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional

import jax.numpy as jnp
import numpy as np
from flax import struct

from spgg_jax.registry import did_you_mean

OBSERVATIONS = ("fo", "po")


def param(default: float, *, ge: Optional[float] = None, gt: Optional[float] = None, le: Optional[float] = None,
          lt: Optional[float] = None, doc: str = "") -> Any:
    """Declare a numeric variant parameter (a pytree leaf): its default, its range and what it means.

    ``ge``/``gt``/``le``/``lt`` bound it (checked elementwise, so stacked sweeps are checked too);
    NaN and inf are always refused.
    """
    bounds = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    return struct.field(pytree_node=True, default=default, metadata={"bounds": bounds, "doc": doc})


_VARIANT_CLASSES: list[type] = []  # every VariantParams subclass defined (for parse_overrides' default)
_BOUND_TEXT = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
_BOUND_OK = {"ge": np.greater_equal, "gt": np.greater, "le": np.less_equal, "lt": np.less}


def _head(v: np.ndarray, k: int = 4) -> list:
    return np.asarray(v).ravel()[:k].tolist()


@struct.dataclass
class VariantParams:
    """Base of a reward variant's own parameters (no fields: a variant without parameters of its own).

    Subclass it with ``@flax.struct.dataclass`` and declare fields with :func:`param`::

        @struct.dataclass
        class RelativeParams(VariantParams):
            alpha: Any = param(0.3, ge=0.0, doc="weight of the bonus for beating the team mean")
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _VARIANT_CLASSES.append(cls)

    @classmethod
    def fields(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if f.metadata.get("pytree_node", True)]

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in cls.fields()]

    @classmethod
    def describe(cls) -> list[dict[str, Any]]:
        """One dict per parameter: name, default, range (e.g. ``">= 0"``) and doc (for listings)."""
        out = []
        for f in cls.fields():
            bounds = f.metadata.get("bounds", {})
            out.append({"name": f.name, "default": f.default,
                        "range": ", ".join(f"{_BOUND_TEXT[k]} {v:g}" for k, v in bounds.items()),
                        "doc": f.metadata.get("doc", "")})
        return out

    @classmethod
    def create(cls, variant: str = "", **values: Any) -> "VariantParams":
        """Validated parameters; unset fields take their defaults. ``variant`` names the reward in errors."""
        label = variant or cls.__name__
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            raise ValueError(f"reward {label!r} has no parameter(s) {unknown}; its parameters: "
                             f"{', '.join(cls.names()) or '(none)'}")
        leaves = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in values.items()}
        out = cls(**leaves)
        out.validate(label)
        return out

    def validate(self, variant: str = "") -> None:
        """Every field finite and inside its declared range (elementwise); errors name variant and key."""
        label = variant or type(self).__name__
        for f in self.fields():
            v = np.asarray(getattr(self, f.name), dtype=np.float64)
            bad = ~np.isfinite(v)
            if bad.any():
                raise ValueError(f"{label} parameter {f.name} must be finite, got {v[bad].ravel()[:4].tolist()}")
            for kind, bound in f.metadata.get("bounds", {}).items():
                if not np.all(_BOUND_OK[kind](v, bound)):
                    raise ValueError(f"{label} parameter {f.name} must be {_BOUND_TEXT[kind]} {bound:g}, "
                                     f"got {_head(v)}")

    def to_dict(self) -> dict[str, Any]:
        return {name: _plain(getattr(self, name)) for name in self.names()}


def _plain(v: Any) -> Any:
    arr = np.asarray(v)
    return arr.item() if arr.ndim == 0 else arr.tolist()


@struct.dataclass
class GameParams:
    """Shared parameters of every game (see docs/game.md for every symbol), plus ``variant``: the
    reward variant's own parameters (a :class:`VariantParams`), readable as ``p.NAME``.

    Static (not traced): ``n`` agents, ``observation`` ("fo": agent i sees all predecessors,
    "po": only agent i-1), ``cost`` (name in ``COSTS``), ``score`` (name in ``SCORES``) and
    ``reward`` (the variant the parameters were built for; "" when built without one).
    """

    # static structure
    n: int = struct.field(pytree_node=False, default=3)
    observation: str = struct.field(pytree_node=False, default="fo")
    cost: str = struct.field(pytree_node=False, default="quadratic")
    score: str = struct.field(pytree_node=False, default="mean")
    reward: str = struct.field(pytree_node=False, default="")
    # contribution range
    c_min: Any = 0.1
    c_max: Any = 1.0
    # the cost C(q): quadratic kappa q^2/2, power kappa q^p/p, exponential kappa (exp(a q) - 1)/a
    kappa: Any = 1.0
    cost_power: Any = 2.0  # exponent p of the power cost (p > 1)
    cost_alpha: Any = 1.0  # rate a of the exponential cost
    # the task threshold: reported (S >= B) for every variant, penalised by the threshold variants
    B: Any = 0.6
    m0: Any = 0.55  # predecessor quality seen by agent 1 (no predecessors)
    weights: Any = None  # final-score weights w_j, shape [n]; None means 1/n each
    # the reward variant's own parameters
    variant: Any = struct.field(pytree_node=True, default_factory=VariantParams)

    def __getattr__(self, name: str) -> Any:
        # only called when ``name`` is not a shared field: look in the variant's parameters
        if name.startswith("__") or name == "variant":
            raise AttributeError(name)
        variant = self.__dict__.get("variant")
        if isinstance(variant, VariantParams) and name in type(variant).names():
            return getattr(variant, name)
        own = ", ".join(type(variant).names()) if isinstance(variant, VariantParams) else ""
        raise AttributeError(
            f"GameParams has no parameter {name!r} (reward {self.__dict__.get('reward') or '(none)'!r}; its "
            f"parameters: {own or '(none)'}; shared: {', '.join(shared_field_names())})")

    @classmethod
    def create(cls, n: int = 3, *, variant: Optional[VariantParams] = None, reward: str = "",
               **kwargs: Any) -> "GameParams":
        """Validated parameters from shared keys and a ready ``variant`` (default: no parameters of
        its own); ``m0`` defaults to the middle of [c_min, c_max]. Use ``make_params(reward, n, **kw)``
        to set a variant's keys by name."""
        unknown = set(kwargs) - set(shared_field_names())
        if unknown:
            raise ValueError(
                f"unknown game parameter(s) {sorted(unknown)}{did_you_mean(unknown, shared_field_names())}; "
                f"shared: {sorted(shared_field_names())} "
                "(a reward variant's own parameters are set with make_params(reward, n, **params))")
        if "m0" not in kwargs:
            c_min = kwargs.get("c_min", 0.1)
            c_max = kwargs.get("c_max", 1.0)
            kwargs["m0"] = 0.5 * (np.asarray(c_min) + np.asarray(c_max))
        if kwargs.get("weights") is None:
            kwargs["weights"] = np.full((int(n),), 1.0 / int(n), dtype=np.float32)
        numeric = shared_numeric_names()
        leaves = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in kwargs.items() if k in numeric}
        static = {k: v for k, v in kwargs.items() if k not in numeric}
        variant = VariantParams() if variant is None else variant
        if not isinstance(variant, VariantParams):
            raise ValueError(f"variant must be a VariantParams, got {type(variant).__name__}")
        params = cls(n=int(n), reward=reward, variant=variant, **static, **leaves)
        validate(params)
        return params

    def param_names(self) -> list[str]:
        """Every numeric parameter: the shared ones, then the variant's own."""
        return shared_numeric_names() + type(self.variant).names()

    def updated(self, **updates: Any) -> "GameParams":
        """A validated copy with shared or variant fields replaced (``replace`` does not validate).

        Changing ``n`` without new ``weights`` resets them to 1/n.
        """
        shared = {k: getattr(self, k) for k in shared_field_names() if k != "reward"}
        own = {k: getattr(self.variant, k) for k in type(self.variant).names()}
        if "n" in updates and "weights" not in updates:
            shared["weights"] = None
        for k, v in updates.items():
            if k in shared:
                shared[k] = v
            elif k in own:
                own[k] = v
            else:
                raise ValueError(f"unknown game parameter {k!r} for reward {self.reward or '(none)'!r}; "
                                 f"known: {', '.join(list(shared) + list(own))}")
        variant = type(self.variant).create(self.reward, **own)
        n = shared.pop("n")
        return GameParams.create(n=n, variant=variant, reward=self.reward, **shared)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict: the shared fields, then the variant's (numbers as floats or lists)."""
        out: dict[str, Any] = {}
        for k in shared_field_names():
            v = getattr(self, k)
            out[k] = _plain(v) if k in shared_numeric_names() else v
        out.update(self.variant.to_dict())
        return out


def _replace(self: GameParams, **updates: Any) -> GameParams:
    """flax's unvalidated ``replace``, also for the variant's fields (``p.replace(gamma=g)`` under a trace)."""
    own = {k: updates.pop(k) for k in list(updates) if k not in _FIELD_NAMES and k in type(self.variant).names()}
    out = dataclasses.replace(self, **updates)
    return dataclasses.replace(out, variant=dataclasses.replace(out.variant, **own)) if own else out


GameParams.replace = _replace  # type: ignore[method-assign]
_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(GameParams))


#: Declared ranges of the shared numeric parameters (checked elementwise by :func:`validate`; NaN and
#: inf are always refused). c_max > c_min and the weights (>= 0, summing to 1) are checked apart.
SHARED_BOUNDS: dict[str, dict[str, float]] = {
    "c_min": {"gt": 0.0},
    "kappa": {"ge": 0.0},
    "cost_power": {"gt": 1.0},
    "cost_alpha": {"gt": 0.0},
    "B": {"ge": 0.0},
    "m0": {"ge": 0.0},
}
SHARED_NOTES = {"cost_power": " (strictly convex)", "B": " (the task threshold on the final score S)",
                "m0": " (agent 1's predecessor quality)"}


def shared_ranges() -> dict[str, str]:
    """``{name: "> 0"}`` for every shared parameter with a declared range (for listings)."""
    out = {k: ", ".join(f"{_BOUND_TEXT[kind]} {b:g}" for kind, b in bounds.items()) for k, bounds in SHARED_BOUNDS.items()}
    out["c_max"] = "> c_min"
    return out


def shared_field_names() -> list[str]:
    """The shared fields (static and numeric), without ``variant``."""
    return [f.name for f in dataclasses.fields(GameParams) if f.name != "variant"]


def shared_numeric_names() -> list[str]:
    return [f.name for f in dataclasses.fields(GameParams)
            if f.metadata.get("pytree_node", True) and f.name != "variant"]


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
    vals = {k: np.asarray(getattr(p, k), dtype=np.float64) for k in shared_numeric_names()}
    for k, v in vals.items():
        bad = ~np.isfinite(v)
        if bad.any():
            raise ValueError(f"game parameter {k} must be finite, got {v[bad].ravel()[:4].tolist()}")
    for k, bounds in SHARED_BOUNDS.items():
        for kind, bound in bounds.items():
            _check(_BOUND_OK[kind](vals[k], bound),
                   f"{k} must be {_BOUND_TEXT[kind]} {bound:g}{SHARED_NOTES.get(k, '')}, got {_head(vals[k])}")
    _check(
        vals["c_min"] < vals["c_max"],
        f"c_min must be < c_max, got c_min={_head(vals['c_min'])} c_max={_head(vals['c_max'])}",
    )
    w = vals["weights"]
    if w.shape[-1:] != (p.n,):
        raise ValueError(f"weights must have shape [..., n={p.n}], got shape {w.shape}")
    _check(w >= 0, f"weights must be >= 0, got {w.ravel()[:8].tolist()}")
    _check(
        np.abs(w.sum(-1) - 1.0) < 1e-5,
        f"weights must sum to 1, got sum {w.sum(-1).ravel()[:4].tolist()}",
    )
    p.variant.validate(p.reward)


def parse_overrides(items: list[str] | Mapping[str, Any], known_variant: Optional[list[str]] = None,
                    reward: str = "") -> dict[str, Any]:
    """Parse ``["gamma=0.5", "observation=po", "weights=0.2,0.3,0.5"]`` into typed values.

    Keys must be shared fields or in ``known_variant`` (the reward's own parameters; ``None``: any
    variant's). ``reward`` names the variant in the error for an unknown key.
    """
    if isinstance(items, Mapping):
        return dict(items)
    if known_variant is None:
        known_variant = sorted({k for c in _VARIANT_CLASSES if dataclasses.is_dataclass(c) for k in c.names()})
    known = [k for k in shared_field_names() if k != "reward"] + [k for k in known_variant]
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"parameter override {item!r} must look like key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        if key not in known:
            where = f" of reward {reward!r}" if reward else ""
            raise ValueError(f"unknown game parameter {key!r}{where}{did_you_mean(key, known)}; known: {sorted(known)}")
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
