"""Device mesh: a ``("data", "fsdp", "tensor")`` grid over all devices.

``MeshConfig`` states the size of each axis; one of them may be ``-1`` ("the rest of the devices").
``make_mesh`` resolves the sizes against the device count and builds a ``jax.sharding.Mesh`` with a
topology-aware device order (``jax.make_mesh``, which uses ``mesh_utils`` on TPU/GPU), so that the
innermost axis (``tensor``) maps to the fastest interconnect.

All axes are ``AxisType.Auto``: the compiler propagates shardings from the parameter/batch
placements and the logical constraints in the model code (the MaxText style, as opposed to JAX's
"explicit sharding" mode where every op must name its output sharding).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import jax
import numpy as np

#: Mesh axis names, outermost (slowest interconnect) to innermost (fastest).
MESH_AXES: tuple[str, str, str] = ("data", "fsdp", "tensor")


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Sizes of the ``data``, ``fsdp`` and ``tensor`` mesh axes.

    Exactly one size may be ``-1``, meaning "all remaining devices"; every other size must be a
    positive integer. The product of the resolved sizes must equal the number of devices.

    - ``data``: pure data parallelism (parameters replicated, batch split).
    - ``fsdp``: fully-sharded data parallelism (batch split, parameters' ``embed`` dim split).
    - ``tensor``: tensor (model) parallelism over heads / MLP / vocab.
    """

    data: int = -1
    fsdp: int = 1
    tensor: int = 1

    def __post_init__(self) -> None:
        sizes = self.sizes()
        for name, size in zip(MESH_AXES, sizes):
            if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
                raise TypeError(f"MeshConfig.{name} must be an int, got {size!r}")
            if size == 0 or size < -1:
                raise ValueError(
                    f"MeshConfig.{name}={size} is invalid: use a positive size or -1 for 'the rest'"
                )
        if sum(1 for s in sizes if s == -1) > 1:
            raise ValueError(
                f"MeshConfig{dict(zip(MESH_AXES, sizes))}: at most one axis may be -1"
            )

    def sizes(self) -> tuple[int, int, int]:
        """The configured sizes in ``MESH_AXES`` order (``-1`` left unresolved)."""
        return (self.data, self.fsdp, self.tensor)

    def resolve(self, num_devices: int) -> tuple[int, int, int]:
        """Sizes with ``-1`` filled in for ``num_devices``; raises if they cannot multiply to it."""
        if num_devices < 1:
            raise ValueError(f"num_devices must be >= 1, got {num_devices}")
        sizes = list(self.sizes())
        known = math.prod(s for s in sizes if s != -1)
        desc = ", ".join(f"{n}={s}" for n, s in zip(MESH_AXES, sizes))
        if -1 in sizes:
            if num_devices % known:
                raise ValueError(
                    f"mesh ({desc}): {num_devices} devices are not divisible by the product "
                    f"{known} of the fixed axis sizes, so -1 cannot be resolved"
                )
            sizes[sizes.index(-1)] = num_devices // known
        elif known != num_devices:
            raise ValueError(
                f"mesh ({desc}) has {known} devices but {num_devices} are available; "
                "set one axis to -1 to use the rest"
            )
        return (sizes[0], sizes[1], sizes[2])

    @classmethod
    def from_string(cls, spec: str) -> "MeshConfig":
        """Parse ``"data=2,fsdp=-1,tensor=2"``.

        Missing axes are 1, except ``data``, which is -1 when no given axis is -1 (so
        ``"tensor=2"`` means "tensor 2, data the rest" and ``"fsdp=-1"`` means "all on fsdp").
        """
        kwargs: dict[str, int] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in MESH_AXES:
                raise ValueError(
                    f"bad mesh spec entry {part!r} in {spec!r}: expected AXIS=SIZE with AXIS in "
                    f"{MESH_AXES}"
                )
            try:
                kwargs[key] = int(value)
            except ValueError:
                raise ValueError(f"bad size {value!r} for mesh axis {key!r} in {spec!r}") from None
        if -1 not in kwargs.values():
            kwargs.setdefault("data", -1)
        return cls(**{name: kwargs.get(name, 1) for name in MESH_AXES})


def make_mesh(
    cfg: MeshConfig | None = None, devices: Sequence[jax.Device] | None = None
) -> jax.sharding.Mesh:
    """Build a ``Mesh`` with axes ``("data", "fsdp", "tensor")`` over ``devices``.

    Args:
      cfg: the axis sizes; default ``MeshConfig()`` (all devices on ``data``).
      devices: the devices to use, default all global devices ``jax.devices()`` (across every
        process on a multi-host run).

    Raises:
      ValueError: the sizes do not multiply to the number of devices.
    """
    cfg = MeshConfig() if cfg is None else cfg
    devs = list(jax.devices() if devices is None else devices)
    if not devs:
        raise ValueError("make_mesh: no devices given")
    shape = cfg.resolve(len(devs))
    auto = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
    try:
        return jax.make_mesh(shape, MESH_AXES, axis_types=auto, devices=devs)
    except (ValueError, NotImplementedError, AssertionError):
        # ``mesh_utils`` cannot always find a physical-topology layout (e.g. a device subset); fall
        # back to the given order, which is still a valid (if less interconnect-aware) mesh.
        return jax.sharding.Mesh(np.asarray(devs, dtype=object).reshape(shape), MESH_AXES,
                                 axis_types=auto)


def mesh_shape(mesh: jax.sharding.Mesh) -> dict[str, int]:
    """``{axis_name: size}`` of a mesh (works for concrete and abstract meshes)."""
    return dict(zip(mesh.axis_names, mesh.axis_sizes))
