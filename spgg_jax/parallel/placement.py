"""Where a trained state lives on a device mesh (and nothing changes without one).

A :class:`StatePlacement` places learner states: leaves already sharded on the mesh (full
fine-tuning copies of the base weights) keep their layout, everything else (small policy nets,
LoRA adapters, their optimizer states, counters) is replicated. Optimizer moments are created
directly on their parameters' layout, and jitted updates can be pinned to return the state in the
layout it came in (otherwise XLA may choose another layout for some outputs, and every step would
reshard and recompile).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import optax

from spgg_jax.parallel.rules import mesh_context, replicated_sharding, shard_pytree


@dataclasses.dataclass(frozen=True)
class StatePlacement:
    """``mesh`` (None: one device) and the logical-axis ``rules`` active during updates."""

    mesh: Any = None
    rules: Any = None

    def context(self):
        """The mesh and rules as the active sharding context (a no-op without a mesh)."""
        return mesh_context(self.mesh, self.rules)

    def replicate(self, tree: Any) -> Any:
        """``tree`` replicated over the mesh (as is without one)."""
        return tree if self.mesh is None else shard_pytree(tree, replicated_sharding(self.mesh))

    def place(self, tree: Any) -> Any:
        """Leaves already on the mesh keep their sharding; the rest are replicated."""
        if self.mesh is None:
            return tree
        rep = replicated_sharding(self.mesh)
        on_mesh = lambda x: isinstance(getattr(x, "sharding", None), jax.sharding.NamedSharding) and \
            x.sharding.mesh == self.mesh  # noqa: E731
        return shard_pytree(tree, jax.tree_util.tree_map(lambda x: x.sharding if on_mesh(x) else rep, tree))

    def opt_init(self, opt: optax.GradientTransformation, params: Any) -> Any:
        """``opt.init(params)``; on a mesh the moments take their parameters' shardings (the rest replicated)."""
        if self.mesh is None:
            return opt.init(params)
        rep = replicated_sharding(self.mesh)
        layout = optax.tree_map_params(opt, lambda _, s: s, jax.eval_shape(opt.init, params),
                                       jax.tree_util.tree_map(lambda x: x.sharding, params),
                                       transform_non_params=lambda _: rep)
        return jax.jit(opt.init, out_shardings=layout)(params)

    def jit_keeping_layout(self, fn: Callable, *layout_of: Any, compiler_options: dict | None = None) -> Callable:
        """``jax.jit(fn)``; on a mesh its outputs are pinned to the layouts of ``layout_of`` (one tree
        per output; ``None`` means replicated). ``compiler_options``: XLA options of this program."""
        if self.mesh is None:
            return jax.jit(fn, compiler_options=compiler_options)
        rep = replicated_sharding(self.mesh)
        out = tuple(rep if t is None else jax.tree_util.tree_map(lambda x: x.sharding, t) for t in layout_of)
        return jax.jit(fn, out_shardings=out, compiler_options=compiler_options)
