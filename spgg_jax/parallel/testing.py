"""Reusable checks that a model computes the same thing on any mesh layout.

Used by ``tests/parallel`` with a toy block and meant for ``spgg_jax.models`` too: give an
``init_fn(rng) -> variables`` whose parameters carry logical axes (``nn.with_logical_partitioning``)
and a ``loss_fn(params, batch) -> (loss, aux)``; ``run_sharded_step`` runs one forward/backward and
optimizer update on a mesh (or on one device when ``mesh_cfg`` is None) and returns host values;
``assert_results_close`` compares two runs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from spgg_jax.parallel.mesh import MeshConfig, make_mesh
from spgg_jax.parallel.rules import (
    batch_sharding,
    replicated_sharding,
    shard_pytree,
    sharding_context,
    tree_shardings,
)

#: Named layouts for 8 devices: pure data parallel, pure FSDP, pure tensor parallel, and mixed.
LAYOUTS_8: Mapping[str, MeshConfig] = {
    "data": MeshConfig(data=8, fsdp=1, tensor=1),
    "fsdp": MeshConfig(data=1, fsdp=8, tensor=1),
    "tensor": MeshConfig(data=1, fsdp=1, tensor=8),
    "mixed": MeshConfig(data=2, fsdp=2, tensor=2),
}


@dataclasses.dataclass
class StepResult:
    """Host copies of one training step's results (plus the shardings used, for inspection)."""

    loss: np.ndarray
    aux: Any
    grads: Any
    new_params: Any
    init_params: Any = None
    param_shardings: Any = None


def run_sharded_step(
    init_fn: Callable[[jax.Array], Any],
    loss_fn: Callable[[Any, Any], tuple[jax.Array, Any]],
    batch: Any,
    *,
    mesh_cfg: MeshConfig | None,
    rules: Sequence[tuple[str, Any]] | None = None,
    optimizer: optax.GradientTransformation | None = None,
    seed: int = 0,
    devices: Sequence[jax.Device] | None = None,
) -> StepResult:
    """Initialize, place, and run one jitted ``value_and_grad`` + optimizer step.

    Parameters are initialized on the default device with ``jax.jit(init_fn)`` (identical values
    for every layout; compiled once per ``init_fn`` object), then placed with ``tree_shardings`` of their logical axes. ``mesh_cfg=None`` runs on one device
    without any mesh or rules (the reference).
    """
    optimizer = optimizer if optimizer is not None else optax.adam(1e-2)
    key = jax.random.PRNGKey(seed)
    boxed = jax.jit(init_fn)(key)
    params = nn.unbox(boxed)

    def step(params: Any, opt_state: Any, batch: Any):
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return loss, aux, grads, optax.apply_updates(params, updates), opt_state

    if mesh_cfg is None:
        params = jax.device_put(params, jax.devices()[0])
        loss, aux, grads, new_params, _ = jax.jit(step)(params, optimizer.init(params), batch)
        shardings = None
    else:
        mesh = make_mesh(mesh_cfg, devices)
        with sharding_context(mesh, rules):
            shardings = tree_shardings(boxed, mesh, rules)
            params = shard_pytree(params, shardings)
            opt_state = jax.jit(optimizer.init)(params)
            batch = shard_pytree(batch, batch_sharding(mesh, rules))
            rep = replicated_sharding(mesh)
            loss, aux, grads, new_params, _ = jax.jit(
                step, out_shardings=(rep, None, shardings, shardings, None)
            )(params, opt_state, batch)
    host = lambda t: jax.tree_util.tree_map(np.asarray, jax.device_get(t))  # noqa: E731
    return StepResult(host(loss), host(aux), host(grads), host(new_params),
                      host(nn.unbox(boxed)), shardings)


def assert_results_close(
    ref: StepResult, got: StepResult, *, atol: float = 1e-5, rtol: float = 1e-5, label: str = ""
) -> None:
    """Assert loss, aux outputs, gradients and updated parameters agree leaf by leaf."""
    for what in ("loss", "aux", "grads", "new_params"):
        a, b = getattr(ref, what), getattr(got, what)
        la, ta = jax.tree_util.tree_flatten_with_path(a)
        lb, tb = jax.tree_util.tree_flatten_with_path(b)
        if ta != tb:
            raise AssertionError(f"{label}: {what} tree structures differ: {ta} vs {tb}")
        for (path, x), (_, y) in zip(la, lb):
            np.testing.assert_allclose(
                y, x, atol=atol, rtol=rtol,
                err_msg=f"{label}: {what}{jax.tree_util.keystr(path)} differs from the reference",
            )


def random_tokens(key: jax.Array, batch: int, length: int, vocab: int) -> jnp.ndarray:
    """Random int32 token ids ``[batch, length]`` for toy language-model checks."""
    return jax.random.randint(key, (batch, length), 0, vocab, dtype=jnp.int32)
