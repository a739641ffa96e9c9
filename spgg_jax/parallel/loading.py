"""Load Hugging Face weights straight onto their shardings.

``load_sharded(path_or_name, mesh)`` reads an HF model directory (or a registered embedded model
name, or a ``.gguf`` file; see ``spgg_jax.models.weights.hub.resolve_model``) parameter by parameter: the
HF tensors of one parameter are read from the safetensors files, converted to our layout (the same
name mapping as ``spgg_jax.models.load_hf_dir``), and handed to
``jax.make_array_from_callback`` with the parameter's ``NamedSharding`` (from
``param_logical_axes`` + ``tree_shardings``), so every device receives only its own slice. No
device ever holds a full replicated copy of a sharded parameter, and the host holds one converted
parameter at a time (the largest stacked ``[layers, ...]`` kernel), not the whole model.

On several hosts every process calls ``load_sharded`` with the same arguments; each reads the
files (a shared or copied checkpoint) and fills only the shards of its own devices.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import jax
import numpy as np

from spgg_jax.models import ModelConfig, param_logical_axes, param_shapes
from spgg_jax.models.tokenizer import load_tokenizer
from spgg_jax.models.weights.hf import (
    SafetensorsDir,
    format_names,
    tensor_mapping,
    check_tensor_names,
    set_param,
    tensor_to_numpy,
    hf_model_config,
)
from spgg_jax.models.weights.hub import load_model as load_model_local
from spgg_jax.models.weights.hub import resolve_model
from spgg_jax.parallel.rules import tree_shardings, validate_rules

Params = Any


def _leaf_at(tree: Any, path: tuple[str, ...]) -> Any:
    for k in path:
        if not isinstance(tree, dict) or k not in tree:
            raise KeyError(path)
        tree = tree[k]
    return tree


def load_sharded(
    path_or_name: str | os.PathLike,
    mesh: jax.sharding.Mesh,
    rules: Sequence[tuple[str, Any]] | None = None,
    dtype: str = "float32",
    param_dtype: str | None = None,
    *,
    strict: bool = True,
) -> tuple[Any, Params]:
    """Read an HF checkpoint and place every parameter on its sharding: returns ``(cfg, params)``.

    Args:
      path_or_name: an HF directory (``config.json`` + safetensors), a registered embedded model
        name, or a ``.gguf`` file (``resolve_model``).
      mesh: the device mesh (``spgg_jax.parallel.make_mesh``).
      rules: logical-axis rules (default ``DEFAULT_RULES``); dimensions not divisible by their mesh
        axes are replicated (the usual fallback).
      dtype, param_dtype: compute and storage dtypes of the returned ``ModelConfig`` (storage
        defaults to ``dtype``); parameters are stored in ``param_dtype``.
      strict: unexpected extra tensors in the checkpoint are an error (else a warning).

    Returns the same ``(cfg, params)`` as ``load_hf_dir`` (values bit-identical), with each leaf a
    global ``jax.Array`` on ``tree_shardings(param_logical_axes(cfg), mesh, rules)``.

    Raises ``ValueError`` naming every missing, mis-shaped or (with ``strict``) unexpected tensor,
    before any parameter is placed when names are the problem.
    """

    if not isinstance(mesh, jax.sharding.Mesh):
        raise TypeError(f"load_sharded: mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    if rules is not None:
        rules = validate_rules(rules, mesh.axis_names)
    path = resolve_model(path_or_name)
    cfg = hf_model_config(path, dtype=dtype, param_dtype=param_dtype or dtype)
    shapes = param_shapes(cfg)
    shardings = tree_shardings(param_logical_axes(cfg), mesh, rules, shapes=shapes)
    tensors = SafetensorsDir(path)

    entries, prefixes, probe = tensor_mapping(cfg)
    names = set(tensors.keys())
    prefix = next((pre for pre in prefixes if pre + probe in names), prefixes[0])

    def sources(e) -> list[str]:
        layer_ids = range(cfg.n_layers) if e.per_layer else [None]
        return [(prefix if e.prefixed else "") + (e.source.format(i=i) if i is not None else e.source)
                for i in layer_ids]

    # Names first (cheap, nothing read): missing and unexpected tensors fail before any placement.
    wanted = [n for e in entries for n in sources(e)]
    missing = [n for n in wanted if n not in names]
    check_tensor_names(cfg, names, set(wanted), missing, [], strict, f" from {path}")

    store = np.dtype(cfg.jnp_param_dtype)
    out: dict = {}
    misshaped: list[str] = []
    for e in entries:
        parts = []
        for name in sources(e):
            arr = tensor_to_numpy(tensors[name])
            if tuple(arr.shape) != e.hf_shape:
                misshaped.append(f"{name}: expected shape {e.hf_shape}, found {tuple(arr.shape)}")
                continue
            parts.append(e.convert(arr).astype(store))
        if misshaped:  # keep reading to report every bad tensor, but place nothing more
            continue
        host = np.ascontiguousarray(np.stack(parts) if e.per_layer else parts[0])
        want = _leaf_at(shapes, e.target)
        if host.shape != tuple(want.shape):  # a mapping bug, not a checkpoint problem
            raise AssertionError(f"{'/'.join(e.target)}: converted shape {host.shape} != {tuple(want.shape)}")
        sharding = _leaf_at(shardings, e.target)
        # Each device's callback slices its own shard out of the host array.
        set_param(out, e.target, jax.make_array_from_callback(host.shape, sharding, lambda idx, h=host: h[idx]))
        del host, parts
    if misshaped:
        raise ValueError(f"cannot load {cfg.family} weights from {path}: mis-shaped tensors: {format_names(misshaped)}")
    if jax.tree_util.tree_structure(out) != jax.tree_util.tree_structure(shapes):
        raise AssertionError("load_sharded: loaded tree does not match the model's parameter tree")
    return cfg, out


def load_model(name_or_path: str | os.PathLike, dtype: str = "float32", param_dtype: str | None = None,
               mesh: Any = None, rules: Sequence[tuple[str, Any]] | None = None):
    """``(cfg, params, tokenizer)``: on the default device without a ``mesh``
    (``spgg_jax.models.weights.hub.load_model``), else every parameter straight onto its sharding by the
    logical-axis ``rules`` (:func:`load_sharded`)."""
    if mesh is None:
        return load_model_local(name_or_path, dtype=dtype, param_dtype=param_dtype)
    cfg, params = load_sharded(name_or_path, mesh, rules, dtype=dtype, param_dtype=param_dtype)
    return cfg, params, load_tokenizer(resolve_model(name_or_path))
