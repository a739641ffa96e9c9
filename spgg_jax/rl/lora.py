"""LoRA adapters on the decoder's stacked kernels, merged functionally: W + (alpha / r) A B.

The params tree of ``spgg_jax.models`` stores per-layer kernels stacked on a leading "layers" axis,
e.g. ``layers/attn/q_proj_kernel [L, D, H, Hd]``. An adapter treats each kernel as a matrix
[prod(in dims), prod(out dims)] per layer; ``TARGETS`` says how many dims (after the layer axis) are
input dims. B starts at zero, so a fresh adapter leaves the model unchanged.

``top_layers=K`` puts adapters on the last K layers only (their leading axis is K): the layers below
stay the base model's, so a training step can run them once, without a backward pass
(``spgg_jax.sampling.trunk_states``), and differentiate only the top K.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from spgg_jax.settings import int_error

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


def init_lora(key, params: Any, rank: int = 8, targets=DEFAULT_TARGETS, top_layers: int = 0) -> dict:
    """Adapters for every kernel named in ``targets`` under ``params['layers']``, on the last
    ``top_layers`` layers (0: every layer)."""
    if rank < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {rank}")
    err = int_error("LoRA top_layers", top_layers, ge=0, note="0: every layer")
    if err:
        raise ValueError(err)
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
        if top_layers > layers:
            raise ValueError(f"LoRA top_layers={top_layers} exceeds the model's {layers} layers")
        layers = top_layers or layers
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


def lora_layers(lora: Mapping) -> int:
    """How many (top) layers the adapters cover: their leading axis."""
    return int(jax.tree_util.tree_leaves(lora)[0].shape[0])


def adapted_kernels(params: Any, lora: Mapping) -> dict:
    """The kernels of ``params`` that ``lora`` adapts, in ``lora``'s tree structure (one array per adapter)."""
    def pick(p, l):
        if isinstance(l, Mapping) and set(l) == {"a", "b"}:
            return p
        return {k: pick(p[k], l[k]) for k in l}

    return {k: pick(params[k], lora[k]) for k in lora}


def merge_kernels(kernels: Mapping, lora: Mapping, alpha: float, rank: int) -> dict:
    """Each kernel of ``adapted_kernels(params, lora)`` as W + (alpha / rank) A B; adapters on the top
    K layers (``init_lora(top_layers=K)``) change the last K layers only. Differentiable in ``lora``."""
    scale = alpha / rank

    def merge(p, l):
        if isinstance(l, Mapping) and set(l) == {"a", "b"}:
            k = l["a"].shape[0]
            top = p[p.shape[0] - k:]
            delta = jnp.einsum("lir,lro->lio", l["a"], l["b"]).reshape(top.shape)
            top = (top.astype(jnp.float32) + scale * delta).astype(p.dtype)
            return top if k == p.shape[0] else jnp.concatenate([p[: p.shape[0] - k], top], axis=0)
        return {k: merge(p[k], l[k]) for k in l}

    return {k: merge(kernels[k], lora[k]) for k in lora}


def replace_kernels(params: Any, kernels: Mapping) -> Any:
    """``params`` with the arrays of ``kernels`` (a sub-tree of it) put in; every other leaf is shared."""
    if not isinstance(kernels, Mapping):
        return kernels
    return {k: (replace_kernels(params[k], kernels[k]) if k in kernels else params[k]) for k in params}


def merge_lora(params: Any, lora: Mapping, alpha: float, rank: int) -> Any:
    """params with every adapted kernel replaced by W + (alpha / rank) A B (differentiable in lora)."""
    return replace_kernels(params, merge_kernels(adapted_kernels(params, lora), lora, alpha, rank))
