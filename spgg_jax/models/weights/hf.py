"""Hugging Face checkpoints -> our params pytree (and back, for the benchmark and tests).

The one path into params: ``load_hf_dir(path)`` reads ``config.json`` and single or sharded
``*.safetensors`` (``model.safetensors.index.json``), and ``params_from_hf_state_dict(cfg, tensors)``
maps HF tensor names and layouts onto the params tree:

- ``nn.Linear`` weights are [out, in]: transposed, then split into heads ([D, H, Hd] etc.);
- GPT-2 ``Conv1D`` weights are already [in, out]; ``c_attn`` is split into q, k, v;
- tied embeddings: ``lm_head.weight`` is absent (ignored when present);
- per-layer tensors are stacked along the leading "layers" axis (the scanned layer).

Missing tensors, mis-shaped tensors (expected vs found) and unexpected extra tensors raise one
``ValueError`` that names every problem (extras only warn with ``strict=False``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import warnings
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from spgg_jax.models.config import ModelConfig

Params = Any

# Buffers some checkpoints carry that are not weights.
_IGNORABLE = (
    re.compile(r"(^|\.)attn\.(bias|masked_bias)$"),
    re.compile(r"rotary_emb\.inv_freq$"),
)


@dataclasses.dataclass(frozen=True)
class _Entry:
    target: tuple[str, ...]  # path in our params tree
    source: str  # HF name (may contain "{i}"), relative to the detected prefix
    hf_shape: tuple[int, ...]
    convert: Callable[[np.ndarray], np.ndarray]
    per_layer: bool = False
    prefixed: bool = True


def _ident(x: np.ndarray) -> np.ndarray:
    return x


def tensor_mapping(cfg: ModelConfig) -> tuple[list[_Entry], tuple[str, ...], str]:
    """(entries, candidate prefixes, probe name used to detect the prefix) for one family."""
    d, h, kh, hd, f, v = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.d_ff, cfg.vocab_size
    E: list[_Entry] = []

    def layer(target, source, shape, convert=_ident):
        E.append(_Entry(("layers",) + target, source, shape, convert, per_layer=True))

    if cfg.family == "gpt2":
        E.append(_Entry(("embed",), "wte.weight", (v, d), _ident))
        E.append(_Entry(("pos_embed",), "wpe.weight", (cfg.max_position_embeddings, d), _ident))
        for ours, theirs in (("attn_norm", "ln_1"), ("mlp_norm", "ln_2")):
            layer((ours, "scale"), f"h.{{i}}.{theirs}.weight", (d,))
            layer((ours, "bias"), f"h.{{i}}.{theirs}.bias", (d,))
        for j, name in enumerate("qkv"):
            sl = slice(j * d, (j + 1) * d)
            layer(("attn", f"{name}_proj_kernel"), "h.{i}.attn.c_attn.weight", (d, 3 * d),
                  lambda w, sl=sl: w[:, sl].reshape(d, h, hd))
            layer(("attn", f"{name}_proj_bias"), "h.{i}.attn.c_attn.bias", (3 * d,),
                  lambda b, sl=sl: b[sl].reshape(h, hd))
        layer(("attn", "o_proj_kernel"), "h.{i}.attn.c_proj.weight", (d, d), lambda w: w.reshape(h, hd, d))
        layer(("attn", "o_proj_bias"), "h.{i}.attn.c_proj.bias", (d,))
        layer(("mlp", "up_proj_kernel"), "h.{i}.mlp.c_fc.weight", (d, f))
        layer(("mlp", "up_proj_bias"), "h.{i}.mlp.c_fc.bias", (f,))
        layer(("mlp", "down_proj_kernel"), "h.{i}.mlp.c_proj.weight", (f, d))
        layer(("mlp", "down_proj_bias"), "h.{i}.mlp.c_proj.bias", (d,))
        E.append(_Entry(("final_norm", "scale"), "ln_f.weight", (d,), _ident))
        E.append(_Entry(("final_norm", "bias"), "ln_f.bias", (d,), _ident))
        if not cfg.tie_embeddings:
            E.append(_Entry(("lm_head",), "lm_head.weight", (v, d), lambda w: w.T, prefixed=False))
        return E, ("transformer.", ""), "wte.weight"

    # Llama-like: llama, qwen2, qwen3, gemma3.
    E.append(_Entry(("embed",), "embed_tokens.weight", (v, d), _ident))
    p = "layers.{i}."
    layer(("attn_norm", "scale"), p + "input_layernorm.weight", (d,))
    if cfg.family == "gemma3":
        layer(("post_attn_norm", "scale"), p + "post_attention_layernorm.weight", (d,))
        layer(("mlp_norm", "scale"), p + "pre_feedforward_layernorm.weight", (d,))
        layer(("post_mlp_norm", "scale"), p + "post_feedforward_layernorm.weight", (d,))
    else:
        layer(("mlp_norm", "scale"), p + "post_attention_layernorm.weight", (d,))
    for name, n in (("q", h), ("k", kh), ("v", kh)):
        layer(("attn", f"{name}_proj_kernel"), p + f"self_attn.{name}_proj.weight", (n * hd, d),
              lambda w, n=n: w.T.reshape(d, n, hd))
        if cfg.qkv_bias:
            layer(("attn", f"{name}_proj_bias"), p + f"self_attn.{name}_proj.bias", (n * hd,),
                  lambda b, n=n: b.reshape(n, hd))
    layer(("attn", "o_proj_kernel"), p + "self_attn.o_proj.weight", (d, h * hd), lambda w: w.T.reshape(h, hd, d))
    if cfg.o_bias:
        layer(("attn", "o_proj_bias"), p + "self_attn.o_proj.bias", (d,))
    if cfg.qk_norm:
        layer(("attn", "q_norm", "scale"), p + "self_attn.q_norm.weight", (hd,))
        layer(("attn", "k_norm", "scale"), p + "self_attn.k_norm.weight", (hd,))
    for name, shape in (("gate_proj", (f, d)), ("up_proj", (f, d)), ("down_proj", (d, f))):
        layer(("mlp", f"{name}_kernel"), p + f"mlp.{name}.weight", shape, lambda w: w.T)
        if cfg.mlp_bias:
            layer(("mlp", f"{name}_bias"), p + f"mlp.{name}.bias", shape[:1])
    E.append(_Entry(("final_norm", "scale"), "norm.weight", (d,), _ident))
    if not cfg.tie_embeddings:
        E.append(_Entry(("lm_head",), "lm_head.weight", (v, d), lambda w: w.T, prefixed=False))
    return E, ("model.", ""), "embed_tokens.weight"


def set_param(tree: dict, path: tuple[str, ...], value: Any) -> None:
    for k in path[:-1]:
        tree = tree.setdefault(k, {})
    tree[path[-1]] = value


def format_names(names: list[str], limit: int = 20) -> str:
    more = f" ... and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def check_tensor_names(cfg: ModelConfig, names: set, used: set, missing: list, misshaped: list,
                       strict: bool, source: str = "") -> None:
    """Raise one error naming every missing, mis-shaped and (when ``strict``) unexpected tensor.

    ``names``: tensors in the checkpoint; ``used``: those the mapping consumes. Buffers (rotary
    tables, attention masks) and a tied ``lm_head.weight`` are never unexpected; with
    ``strict=False`` unexpected tensors only warn.
    """
    extra = sorted(
        n for n in names - used
        if not any(p.search(n) for p in _IGNORABLE) and not (cfg.tie_embeddings and n == "lm_head.weight")
    )
    problems = []
    if missing:
        problems.append(f"missing tensors: {format_names(missing)}")
    if misshaped:
        problems.append(f"mis-shaped tensors: {format_names(misshaped)}")
    if extra and strict:
        problems.append(f"unexpected tensors: {format_names(extra)}")
    if problems:
        raise ValueError(f"cannot load {cfg.family} weights{source}: " + "; ".join(problems))
    if extra:
        warnings.warn(f"ignoring unexpected tensors: {format_names(extra)}", stacklevel=3)


def params_from_hf_state_dict(
    cfg: ModelConfig,
    tensors: Mapping[str, Any],
    *,
    strict: bool = True,
    device_put: bool = True,
) -> Params:
    """Map HF tensors (name -> array-like; numpy, torch via ``.numpy()``, or lazy mapping) to params.

    Params are stored in ``cfg.param_dtype``. ``strict``: unexpected extra tensors are an error
    (else a warning). ``device_put=False`` returns numpy arrays instead of JAX arrays.
    Raises ``ValueError`` naming every missing tensor, every mis-shaped tensor (expected vs found
    shape) and every unexpected tensor.
    """
    entries, prefixes, probe = tensor_mapping(cfg)
    names = set(tensors.keys())
    prefix = next((pre for pre in prefixes if pre + probe in names), prefixes[0])
    dtype = np.dtype(cfg.jnp_param_dtype)

    missing: list[str] = []
    misshaped: list[str] = []
    used: set[str] = set()
    out: dict = {}
    for e in entries:
        layer_ids = range(cfg.n_layers) if e.per_layer else [None]
        parts = []
        for i in layer_ids:
            name = (prefix if e.prefixed else "") + (e.source.format(i=i) if i is not None else e.source)
            if name not in names:
                missing.append(name)
                continue
            used.add(name)
            arr = tensor_to_numpy(tensors[name])
            if tuple(arr.shape) != e.hf_shape:
                misshaped.append(f"{name}: expected shape {e.hf_shape}, found {tuple(arr.shape)}")
                continue
            parts.append(e.convert(arr).astype(dtype))
        if len(parts) == len(layer_ids):
            set_param(out, e.target, np.stack(parts) if e.per_layer else parts[0])

    check_tensor_names(cfg, names, used, missing, misshaped, strict)
    if device_put:
        import jax

        out = jax.tree_util.tree_map(jax.numpy.asarray, out)
    return out


def tensor_to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):  # torch tensor
        t = x.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":
            return t.float().numpy().astype(np.dtype("bfloat16"))
        return t.numpy()
    return np.asarray(x)


class SafetensorsDir(Mapping[str, np.ndarray]):
    """Lazy name -> numpy mapping over the ``*.safetensors`` files of an HF model directory."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        index = os.path.join(self.path, "model.safetensors.index.json")
        if os.path.exists(index):
            with open(index, encoding="utf-8") as fh:
                weight_map = json.load(fh)["weight_map"]
            self._where = {k: os.path.join(self.path, v) for k, v in weight_map.items()}
            for f in sorted(set(self._where.values())):
                if not os.path.exists(f):
                    raise FileNotFoundError(f"{index} names shard {os.path.basename(f)}, which is missing")
        else:
            files = sorted(x for x in os.listdir(self.path) if x.endswith(".safetensors"))
            if not files:
                raise FileNotFoundError(f"no *.safetensors files (or model.safetensors.index.json) in {self.path}")
            from safetensors import safe_open

            self._where = {}
            for fn in files:
                full = os.path.join(self.path, fn)
                with safe_open(full, framework="np") as fh:
                    for k in fh.keys():
                        self._where[k] = full

    def __getitem__(self, name: str) -> np.ndarray:
        from safetensors import safe_open

        with safe_open(self._where[name], framework="np") as fh:
            return fh.get_tensor(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


def read_hf_config(path: str | os.PathLike) -> dict[str, Any]:
    """The ``config.json`` of an HF model directory as a dict (errors name the file)."""
    from spgg_jax.errors import read_json_object

    cfg_path = os.path.join(os.fspath(path), "config.json")
    if not os.path.exists(cfg_path):
        raise FileNotFoundError(f"{path} is not a Hugging Face model directory: no config.json")
    return read_json_object(cfg_path, "model config")


def hf_model_config(path: str | os.PathLike, **overrides: Any) -> ModelConfig:
    """``ModelConfig.from_hf_config`` of an HF model directory's ``config.json``; an unsupported model,
    a missing key or a bad value is a one-line ``ValueError`` naming the file and the key."""
    raw = read_hf_config(path)
    try:
        return ModelConfig.from_hf_config(raw, **overrides)
    except ValueError as err:
        raise ValueError(f"{os.path.join(os.fspath(path), 'config.json')}: {err}") from None


def load_hf_dir(
    path: str | os.PathLike,
    dtype: str = "float32",
    param_dtype: str | None = None,
    *,
    strict: bool = True,
) -> tuple[ModelConfig, Params]:
    """Load an HF model directory (``config.json`` + safetensors) -> (cfg, params).

    ``dtype`` is the compute dtype; ``param_dtype`` the storage dtype (defaults to ``dtype``).
    """
    cfg = hf_model_config(path, dtype=dtype, param_dtype=param_dtype or dtype)
    params = params_from_hf_state_dict(cfg, SafetensorsDir(path), strict=strict)
    return cfg, params


# --------------------------------------------------------------------------------------------
# params -> HF (used to build the PyTorch reference from our weights)


def hf_state_dict_from_params(cfg: ModelConfig, params: Params) -> dict[str, np.ndarray]:
    """Inverse of ``params_from_hf_state_dict``: HF tensor names -> float32 numpy arrays."""
    entries, prefixes, _ = tensor_mapping(cfg)
    prefix = prefixes[0]
    d, h, hd = cfg.d_model, cfg.n_heads, cfg.head_dim
    out: dict[str, np.ndarray] = {}

    def get(path):
        x = params
        for k in path:
            x = x[k]
        return np.asarray(x, dtype=np.float32)

    for e in entries:
        val = get(e.target)
        layer_vals = list(val) if e.per_layer else [val]
        for i, x in enumerate(layer_vals):
            name = (prefix if e.prefixed else "") + (e.source.format(i=i) if e.per_layer else e.source)
            if e.hf_shape == x.shape and e.convert is _ident:
                out[name] = x
                continue
            # Inverse layouts, keyed by the HF shape of the entry.
            if cfg.family == "gpt2" and "c_attn" in name:
                j = "qkv".index(e.target[-1][0])
                buf = out.setdefault(name, np.zeros(e.hf_shape, np.float32))
                if name.endswith("weight"):
                    buf[:, j * d:(j + 1) * d] = x.reshape(d, d)
                else:
                    buf[j * d:(j + 1) * d] = x.reshape(d)
            elif cfg.family == "gpt2":
                out[name] = x.reshape(e.hf_shape)
            elif e.target[-1] == "o_proj_kernel":
                out[name] = x.reshape(h * hd, d).T
            elif e.target[-1].endswith("_kernel") and x.ndim == 3:  # q/k/v [D, n, Hd]
                out[name] = x.reshape(d, -1).T
            elif e.target[-1].endswith("_bias"):
                out[name] = x.reshape(-1)
            else:  # 2-D transposed (mlp kernels, lm_head)
                out[name] = x.T
    return {k: np.ascontiguousarray(v) for k, v in out.items()}
