"""Logical-axis sharding rules (MaxText style) and the shardings they produce.

Model code names the dimensions of every parameter and activation with *logical* axis names (the
shared contract, see ``LOGICAL_AXES``); only this module maps them to *mesh* axes. A rule set is an
ordered sequence of ``(logical_name, mesh_axes)`` pairs where ``mesh_axes`` is a mesh axis name, a
tuple of them, or ``None`` (replicated). Resolution follows flax's ``logical_to_mesh_axes``
semantics exactly, so ``nn.with_logical_constraint`` inside a model and ``tree_shardings`` here
agree: rules are tried in order; a rule applies to a dimension with that name if the dimension is
still unassigned and none of the rule's mesh axes is already used by another dimension of the same
array; dimensions that no rule assigns are replicated.

On top of that, every function that knows the array's shape checks divisibility: a dimension whose
size is not divisible by the product of its mesh axis sizes is replicated instead (with one logged
warning per distinct case), e.g. 3 KV heads on ``tensor=2``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from typing import Any, Iterator, Mapping, Sequence, Union

import flax.linen as nn
import jax
import numpy as np
from flax.core import meta
from jax.sharding import NamedSharding, PartitionSpec

from spgg_jax.parallel.mesh import MESH_AXES, MeshConfig, make_mesh

logger = logging.getLogger(__name__)

MeshAxes = Union[str, tuple[str, ...], None]
Rules = tuple[tuple[str, MeshAxes], ...]
LogicalAxes = tuple[Union[str, None], ...]

#: The logical axis names of the model/parallel contract.
LOGICAL_AXES: tuple[str, ...] = (
    "batch", "length", "embed", "vocab", "heads", "kv_heads", "head_dim", "mlp", "layers",
    "cache_length",
)

#: Default rules: batch over data+fsdp, parameters' ``embed`` over fsdp (ZeRO-3 style), heads /
#: KV heads / MLP / vocab over tensor, the rest replicated. For activations ``("batch", "length",
#: "embed")`` the ``embed`` rule is skipped because ``fsdp`` is already used by ``batch``.
DEFAULT_RULES: Rules = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("mlp", "tensor"),
    ("vocab", "tensor"),
    ("layers", None),
    ("length", None),
    ("head_dim", None),
    ("cache_length", None),
)


def _normalize_mesh_axes(value: Any, *, where: str) -> MeshAxes:
    if value is None or value == "" or (isinstance(value, str) and value.lower() == "none"):
        return None
    if isinstance(value, str):
        names: tuple[str, ...] = tuple(v for v in value.split("+") if v)
    elif isinstance(value, (list, tuple)):
        names = tuple(value)
    else:
        raise TypeError(f"{where}: mesh axes must be a str, a tuple of str or None, got {value!r}")
    for n in names:
        if not isinstance(n, str) or not n:
            raise TypeError(f"{where}: bad mesh axis name {n!r} in {value!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: mesh axis repeated in {value!r}")
    if not names:
        return None
    return names[0] if len(names) == 1 else names


def validate_rules(rules: Sequence[tuple[str, Any]], mesh_axes: Sequence[str] = MESH_AXES) -> Rules:
    """Return ``rules`` as a normalized tuple; raise on malformed entries or unknown mesh axes.

    Mesh-axis values may be written ``"data+fsdp"`` for ``("data", "fsdp")`` and ``"none"`` for
    ``None`` (handy on command lines).
    """
    out = []
    for i, entry in enumerate(rules):
        if not isinstance(entry, (tuple, list)) or len(entry) != 2:
            raise ValueError(f"rule #{i} {entry!r} is not a (logical_name, mesh_axes) pair")
        name, axes = entry
        if not isinstance(name, str) or not name:
            raise ValueError(f"rule #{i}: logical name must be a non-empty str, got {name!r}")
        axes = _normalize_mesh_axes(axes, where=f"rule {name!r}")
        for a in (axes,) if isinstance(axes, str) else (axes or ()):
            if a not in mesh_axes:
                raise ValueError(
                    f"rule {name!r} -> {axes!r}: unknown mesh axis {a!r}; mesh axes are {tuple(mesh_axes)}"
                )
        out.append((name, axes))
    return tuple(out)


def override_rules(
    base: Sequence[tuple[str, Any]] = DEFAULT_RULES,
    overrides: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
) -> Rules:
    """``base`` with every rule for an overridden logical name replaced by the override.

    ``overrides`` is a mapping (or sequence of pairs) ``logical_name -> mesh_axes``; overridden
    names are placed first (highest priority), in the order given, and all base rules for those
    names are dropped. Example: ``override_rules(overrides={"kv_heads": None, "embed": "tensor"})``.
    """
    if not overrides:
        return validate_rules(base)
    pairs = list(overrides.items()) if isinstance(overrides, Mapping) else list(overrides)
    new = validate_rules(pairs)
    names = {n for n, _ in new}
    return new + tuple(r for r in validate_rules(base) if r[0] not in names)


def parse_rules_overrides(text: str) -> dict[str, MeshAxes]:
    """Parse ``"kv_heads=none,embed=tensor,batch=data+fsdp"`` into an ``override_rules`` mapping."""
    out: dict[str, MeshAxes] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"bad rule override {part!r} in {text!r}: expected NAME=MESH_AXES")
        out[key.strip()] = _normalize_mesh_axes(value.strip(), where=f"override {key.strip()!r}")
    return out


def _as_tuple(axes: MeshAxes) -> tuple[str, ...]:
    if axes is None:
        return ()
    return (axes,) if isinstance(axes, str) else tuple(axes)


def _check_logical_axes(logical_axes: Any) -> LogicalAxes:
    if isinstance(logical_axes, PartitionSpec):
        logical_axes = tuple(logical_axes)
    if not isinstance(logical_axes, (tuple, list)):
        raise TypeError(f"logical axes must be a tuple of names/None, got {logical_axes!r}")
    for n in logical_axes:
        if n is not None and not isinstance(n, str):
            raise TypeError(f"logical axes {logical_axes!r}: entries must be str or None, got {n!r}")
    names = [n for n in logical_axes if n is not None]
    if len(set(names)) != len(names):
        raise ValueError(f"logical axes {tuple(logical_axes)!r}: a name occurs more than once")
    return tuple(logical_axes)


_warned: set[tuple] = set()


def _warn_once(key: tuple, msg: str) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning(msg)


def logical_to_spec(
    logical_axes: Sequence[str | None] | PartitionSpec,
    rules: Sequence[tuple[str, Any]] | None = None,
    *,
    shape: Sequence[int] | None = None,
    mesh: jax.sharding.Mesh | jax.sharding.AbstractMesh | None = None,
) -> PartitionSpec:
    """Map one array's logical axis names to a mesh ``PartitionSpec``.

    Args:
      logical_axes: one name (or ``None``) per array dimension.
      rules: the rule set (default ``DEFAULT_RULES``).
      shape, mesh: when both are given, a dimension not divisible by the product of its mesh axis
        sizes is replicated instead (logged once as a warning), and mesh axes of size 1 are
        dropped; mesh axes the rules name but the mesh lacks raise a ``ValueError``.
    """
    axes = _check_logical_axes(logical_axes)
    rules_t = validate_rules(DEFAULT_RULES if rules is None else rules)
    if shape is not None and len(shape) != len(axes):
        raise ValueError(
            f"logical axes {axes!r} have {len(axes)} names but the array has shape {tuple(shape)}"
        )
    result: list[MeshAxes | bool] = [False] * len(axes)  # False: not yet assigned
    used: set[str] = set()
    for name, mesh_axes in rules_t:
        if name not in axes:
            continue
        pos = axes.index(name)
        wanted = set(_as_tuple(mesh_axes))
        if result[pos] is False and not (wanted & used):
            result[pos] = mesh_axes
            used |= wanted
    spec = [None if r is False else r for r in result]
    if shape is not None and mesh is not None:
        sizes = dict(zip(mesh.axis_names, mesh.axis_sizes))
        for i, mesh_axes in enumerate(spec):
            names = _as_tuple(mesh_axes)  # type: ignore[arg-type]
            missing = [a for a in names if a not in sizes]
            if missing:
                raise ValueError(
                    f"rules map {axes[i]!r} to mesh axes {missing} that the mesh "
                    f"{tuple(mesh.axis_names)} does not have"
                )
            names = tuple(a for a in names if sizes[a] > 1)
            n = math.prod(sizes[a] for a in names)
            if names and shape[i] % n:
                _warn_once(
                    (axes, tuple(shape), i, names),
                    f"dim {i} ({axes[i]!r}, size {shape[i]}) of an array with logical axes {axes} "
                    f"is not divisible by mesh axes {names} (size {n}); replicating it instead",
                )
                names = ()
            spec[i] = None if not names else (names[0] if len(names) == 1 else names)
    return PartitionSpec(*spec)


def _is_logical_leaf(x: Any) -> bool:
    if isinstance(x, meta.AxisMetadata) or isinstance(x, PartitionSpec):
        return True
    return isinstance(x, tuple) and all(n is None or isinstance(n, str) for n in x) and not (
        hasattr(x, "_fields")
    )


def _shape_of(x: Any) -> tuple[int, ...] | None:
    shape = getattr(x, "shape", None)
    return None if shape is None else tuple(shape)


def tree_shardings(
    logical_axes_tree: Any,
    mesh: jax.sharding.Mesh,
    rules: Sequence[tuple[str, Any]] | None = None,
    shapes: Any = None,
) -> Any:
    """A pytree of ``NamedSharding`` for a tree of logical axes.

    ``logical_axes_tree`` may be:

    - a flax tree with boxed leaves (``nn.LogicallyPartitioned``, e.g. from
      ``jax.eval_shape(model.init, ...)``): each box becomes a ``NamedSharding`` (so the result has
      the structure of ``nn.unbox(tree)``); shapes come from the boxed values. A plain
      ``nn.Partitioned`` box names mesh axes directly. Unboxed array leaves are replicated.
    - the output of ``nn.get_partition_spec`` (leaves are ``PartitionSpec`` of logical names);
    - a plain pytree whose leaves are tuples of logical names / ``None`` (``None`` leaves mean
      replicated).

    ``shapes``: optional pytree with the same structure whose leaves have ``.shape`` (arrays or
    ``jax.ShapeDtypeStruct``), enabling the divisibility fallback for trees without boxed values.
    """
    rules_t = validate_rules(DEFAULT_RULES if rules is None else rules, mesh.axis_names)
    replicated = NamedSharding(mesh, PartitionSpec())

    def one(leaf: Any, shape: tuple[int, ...] | None) -> NamedSharding:
        if leaf is None:
            return replicated
        if isinstance(leaf, nn.LogicallyPartitioned):
            lr = validate_rules(leaf.rules, mesh.axis_names) if leaf.rules else rules_t
            spec = logical_to_spec(leaf.names, lr, shape=_shape_of(leaf.value) or shape, mesh=mesh)
        elif isinstance(leaf, meta.Partitioned):
            # Physical (mesh-axis) names: reuse the divisibility logic with identity rules.
            ident = tuple((a, a) for a in leaf.names if a is not None)
            spec = logical_to_spec(leaf.names, ident, shape=_shape_of(leaf.value) or shape, mesh=mesh)
        elif isinstance(leaf, meta.AxisMetadata):
            return replicated
        elif _is_logical_leaf(leaf):
            spec = logical_to_spec(leaf, rules_t, shape=shape, mesh=mesh if shape else None)
        elif hasattr(leaf, "shape"):  # an unannotated array: replicate
            return replicated
        else:
            raise TypeError(f"tree_shardings: unsupported leaf {leaf!r}")
        return NamedSharding(mesh, spec)

    is_leaf = lambda x: x is None or _is_logical_leaf(x)  # noqa: E731
    if shapes is None:
        return jax.tree_util.tree_map(lambda l: one(l, None), logical_axes_tree, is_leaf=is_leaf)
    return jax.tree_util.tree_map(
        lambda l, s: one(l, _shape_of(s)), logical_axes_tree, shapes, is_leaf=is_leaf
    )


def _is_fully_addressable(sharding: jax.sharding.Sharding) -> bool:
    return bool(sharding.is_fully_addressable)


def _put_one(x: Any, sharding: jax.sharding.Sharding) -> jax.Array:
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        # Already a global array: reshard (collective) with an identity under jit.
        return jax.jit(lambda a: a, out_shardings=sharding)(x)
    if _is_fully_addressable(sharding):
        return jax.device_put(x, sharding)
    # Multi-host: every process holds the same full value; each builds its own shards.
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])


def shard_pytree(tree: Any, shardings: Any) -> Any:
    """Place every leaf of ``tree`` on its sharding (boxed flax trees are unboxed first).

    ``shardings`` is a matching pytree of ``jax.sharding.Sharding`` (or one sharding for all
    leaves). Works on one host (``jax.device_put``) and on many hosts, where host values must be
    identical on every process (e.g. the same seed) and already-global arrays are resharded.
    """
    tree = meta.unbox(tree)
    if isinstance(shardings, jax.sharding.Sharding):
        return jax.tree_util.tree_map(lambda x: _put_one(x, shardings), tree)
    return jax.tree_util.tree_map(_put_one, tree, shardings)


def batch_spec(rules: Sequence[tuple[str, Any]] | None = None) -> PartitionSpec:
    """``PartitionSpec`` of a batch-leading array: its first dim on the ``batch`` rule's axes."""
    return logical_to_spec(("batch",), rules)


def batch_sharding(
    mesh: jax.sharding.Mesh, rules: Sequence[tuple[str, Any]] | None = None
) -> NamedSharding:
    """``NamedSharding`` splitting dim 0 (the batch) over the ``batch`` rule's mesh axes.

    Valid for arrays of any rank >= 1; the batch size must be divisible by the product of those
    axis sizes (``data * fsdp`` with the default rules).
    """
    return NamedSharding(mesh, batch_spec(rules))


def replicated_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
    """A fully replicated ``NamedSharding`` on ``mesh``."""
    return NamedSharding(mesh, PartitionSpec())


@contextlib.contextmanager
def sharding_context(
    mesh: jax.sharding.Mesh, rules: Sequence[tuple[str, Any]] | None = None
) -> Iterator[jax.sharding.Mesh]:
    """Activate ``mesh`` (``jax.set_mesh``) and ``rules`` (``nn.logical_axis_rules``).

    Inside, ``nn.with_logical_constraint`` and ``with_logical_constraint`` below constrain
    activations; outside (no mesh), both are no-ops. Use it around both tracing (``jax.jit`` call)
    and ``model.init``. Must be entered outside of ``jax.jit``.
    """
    rules_t = validate_rules(DEFAULT_RULES if rules is None else rules, mesh.axis_names)
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules_t):
        yield mesh


def mesh_context(mesh: jax.sharding.Mesh | None, rules: Sequence[tuple[str, Any]] | None = None):
    """``sharding_context(mesh, rules)``, or a no-op context when ``mesh`` is None (single device)."""
    return contextlib.nullcontext() if mesh is None else sharding_context(mesh, rules)


def active_rules() -> Rules | None:
    """The rules activated by ``sharding_context`` / ``nn.logical_axis_rules`` (None if none)."""
    rules = nn.get_logical_axis_rules()
    return tuple(rules) if rules else None


def with_logical_constraint(x: jax.Array, logical_axes: Sequence[str | None]) -> jax.Array:
    """Constrain ``x`` to the sharding of its logical axes under the active mesh and rules.

    Like ``nn.with_logical_constraint`` but with the divisibility fallback (a non-divisible dim is
    left replicated instead of failing). A no-op when no mesh or no rules are active.
    """
    mesh = jax.sharding.get_abstract_mesh()
    rules = active_rules()
    if mesh.empty or not rules:
        return x
    spec = logical_to_spec(logical_axes, rules, shape=x.shape, mesh=mesh)
    return jax.lax.with_sharding_constraint(x, spec)


@dataclasses.dataclass(frozen=True)
class ParallelConfig:
    """The parallelism section of a run config: mesh sizes plus logical-rule overrides.

    ``rules_overrides`` is a tuple of ``(logical_name, mesh_axes)`` pairs applied on top of
    ``DEFAULT_RULES`` with ``override_rules`` (e.g. ``(("kv_heads", None),)``).
    """

    mesh: MeshConfig = dataclasses.field(default_factory=MeshConfig)
    rules_overrides: tuple[tuple[str, MeshAxes], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.mesh, MeshConfig):
            raise TypeError(f"ParallelConfig.mesh must be a MeshConfig, got {self.mesh!r}")
        validate_rules(self.rules_overrides)

    def rules(self) -> Rules:
        """``DEFAULT_RULES`` with this config's overrides applied."""
        return override_rules(DEFAULT_RULES, self.rules_overrides)

    def make_mesh(self, devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
        """The mesh over ``devices`` (default: all global devices)."""
        return make_mesh(self.mesh, devices)

    @classmethod
    def from_strings(cls, mesh: str = "", rules: str = "") -> "ParallelConfig":
        """From command-line strings: ``mesh="fsdp=-1,tensor=2"``, ``rules="kv_heads=none"``."""
        return cls(MeshConfig.from_string(mesh), tuple(parse_rules_overrides(rules).items()))


def describe_shardings(tree: Any) -> dict[str, str]:
    """``{"path/to/leaf": "PartitionSpec(...)"}`` for logging a sharding tree."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {jax.tree_util.keystr(p): str(getattr(s, "spec", s)) for p, s in flat}
