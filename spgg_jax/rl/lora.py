"""LoRA adapters on the decoder's stacked kernels, merged functionally: W + (alpha / r) A B.

The params tree of ``spgg_jax.models`` stores per-layer kernels stacked on a leading "layers" axis,
e.g. ``layers/attn/q_proj_kernel [L, D, H, Hd]``. An adapter treats each kernel as a matrix
[prod(in dims), prod(out dims)] per layer; ``TARGETS`` says how many dims (after the layer axis) are
input dims. B starts at zero, so a fresh adapter leaves the model unchanged.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

# kernel name -> number of input dims after the layer axis
TARGETS: Mapping[str, int] = {
    "q_proj_kernel": 1, "k_proj_kernel": 1, "v_proj_kernel": 1, "o_proj_kernel": 2,
    "gate_proj_kernel": 1, "up_proj_kernel": 1, "down_proj_kernel": 1,
}
DEFAULT_TARGETS = ("q_proj_kernel", "k_proj_kernel", "v_proj_kernel", "o_proj_kernel")


def _walk(tree: Any, path=()):
    if isinstance(tree, Mapping):  # sorted: adapters must not depend on how the loader ordered the dict
        for k in sorted(tree):
            yield from _walk(tree[k], path + (k,))
    else:
        yield path, tree


def init_lora(key, params: Any, rank: int = 8, targets=DEFAULT_TARGETS) -> dict:
    """Adapters for every kernel named in ``targets`` under ``params['layers']``."""
    if rank < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {rank}")
    unknown = set(targets) - set(TARGETS)
    if unknown:
        raise ValueError(f"unknown LoRA targets {sorted(unknown)}; known: {sorted(TARGETS)}")
    lora: dict = {}
    found = 0
    for path, w in _walk(params.get("layers", {})):
        name = path[-1]
        if name not in targets:
            continue
        n_in = TARGETS[name]
        layers, dims = w.shape[0], w.shape[1:]
        d_in, d_out = int(np.prod(dims[:n_in])), int(np.prod(dims[n_in:]))
        key, sub = jax.random.split(key)
        a = jax.random.normal(sub, (layers, d_in, rank), jnp.float32) / np.sqrt(d_in)
        b = jnp.zeros((layers, rank, d_out), jnp.float32)
        node = lora.setdefault("layers", {})
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[name] = {"a": a, "b": b}
        found += 1
    if not found:
        raise ValueError(f"no LoRA target {list(targets)} found in the params tree")
    return lora


def merge_lora(params: Any, lora: Mapping, alpha: float, rank: int) -> Any:
    """params with every adapted kernel replaced by W + (alpha / rank) A B (differentiable in lora)."""
    scale = alpha / rank

    def merge(p, l):
        if isinstance(l, Mapping) and set(l) == {"a", "b"}:
            delta = jnp.einsum("lir,lro->lio", l["a"], l["b"]).reshape(p.shape)
            return (p.astype(jnp.float32) + scale * delta).astype(p.dtype)
        return {k: (merge(p[k], l[k]) if k in l else p[k]) for k in p}

    return {k: (merge(params[k], lora[k]) if k in lora else params[k]) for k in params}
