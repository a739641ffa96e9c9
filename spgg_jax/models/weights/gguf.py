"""GGUF (llama.cpp) checkpoints -> Hugging Face-format directories, without torch.

A GGUF file holds the weights (often quantized), the model hyper-parameters and the tokenizer. We
convert it once into an ordinary HF directory (``config.json``, ``model.safetensors`` with HF tensor
names and ``[out, in]`` layouts, tokenizer files with the chat template), so every downstream path
loads through :func:`spgg_jax.models.weights.hf.load_hf_dir` and never sees GGUF again.

What the conversion undoes (checked bit-exact against transformers' own GGUF loader):

* quantization: every tensor is dequantized with ``gguf.quants.dequantize`` to float32;
* names: ``blk.N.attn_q.weight`` -> ``model.layers.N.self_attn.q_proj.weight`` etc.;
* ``llama``: llama.cpp permutes the rows of the q and k projections (it pairs rotary halves
  differently); :func:`unpermute_qk` restores HF's order. NOT done for ``gemma3``;
* ``gemma3``: every RMSNorm weight is stored as ``w + 1`` (llama.cpp folds HF's ``x * (1 + w)``
  into the weight); we subtract 1. The local RoPE base (1e4) and the sliding/global layer pattern
  (every 6th layer global) are not stored in the file and come from Gemma 3's defaults.

Only NumPy, ``gguf`` and ``safetensors`` are needed (tokenizer files come from
:mod:`spgg_jax.models.weights.gguf_tokenizer`, which needs ``tokenizers``/``transformers`` but not
torch).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from spgg_jax.models.weights.gguf_reader import GGUFConversionError, open_reader

# Architectures (GGUF ``general.architecture``) this converter understands.
SUPPORTED_ARCHITECTURES: tuple[str, ...] = ("llama", "gemma3")

# Bumped whenever the converter's output changes, so cached conversions can be told apart.
CONVERTER_VERSION = 1

_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}

# Per-layer GGUF suffix -> HF suffix (under ``model.layers.N.``), per architecture.
_COMMON_LAYER_NAMES = {
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
    "attn_norm.weight": "input_layernorm.weight",
}
_LAYER_NAMES: dict[str, dict[str, str]] = {
    "llama": {**_COMMON_LAYER_NAMES, "ffn_norm.weight": "post_attention_layernorm.weight"},
    "gemma3": {
        **_COMMON_LAYER_NAMES,
        "attn_q_norm.weight": "self_attn.q_norm.weight",
        "attn_k_norm.weight": "self_attn.k_norm.weight",
        "post_attention_norm.weight": "post_attention_layernorm.weight",
        "ffn_norm.weight": "pre_feedforward_layernorm.weight",
        "post_ffw_norm.weight": "post_feedforward_layernorm.weight",
    },
}

_LAYER_RE = re.compile(r"^blk\.(\d+)\.(.+)$")

# Gemma 3 facts that GGUF files do not carry (transformers' Gemma3TextConfig defaults, which match
# the released checkpoints).
_GEMMA3_LOCAL_ROPE_BASE = 10_000.0
_GEMMA3_SLIDING_PATTERN = 6


# --------------------------------------------------------------------------------------------
# Reading metadata
# --------------------------------------------------------------------------------------------


def read_metadata(reader_or_path: Any, *, skip_arrays: Iterable[str] = ()) -> dict[str, Any]:
    """All key/value metadata of a GGUF file as plain Python values.

    Args:
        reader_or_path: a ``gguf.GGUFReader`` or the path of a ``.gguf`` file.
        skip_arrays: keys to leave out (e.g. the large ``tokenizer.ggml.tokens`` array).
    """
    reader = open_reader(reader_or_path) if isinstance(reader_or_path, (str, os.PathLike)) else reader_or_path
    skip = set(skip_arrays)
    out: dict[str, Any] = {}
    for key, field in reader.fields.items():
        if key in skip or key.startswith("GGUF."):
            continue
        value = field.contents()
        if isinstance(value, (np.generic,)):
            value = value.item()
        out[key] = value
    return out


def _arch_of(meta: Mapping[str, Any]) -> str:
    arch = meta.get("general.architecture")
    if arch is None:
        raise GGUFConversionError("GGUF file has no 'general.architecture' metadata")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise GGUFConversionError(
            f"unsupported GGUF architecture {arch!r}; supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    return arch


def _required(meta: Mapping[str, Any], arch: str, key: str) -> Any:
    full = f"{arch}.{key}"
    if full not in meta:
        raise GGUFConversionError(f"GGUF metadata is missing {full!r} (needed for the {arch} config)")
    return meta[full]


def hf_config_from_metadata(meta: Mapping[str, Any], tensor_names: Iterable[str]) -> dict[str, Any]:
    """The HF ``config.json`` dict (transformers field names) for a GGUF file's metadata.

    ``tensor_names`` are the GGUF tensor names: the head is tied when ``output.weight`` is absent,
    and the vocabulary size falls back to the tokenizer's length.
    """
    arch = _arch_of(meta)
    names = set(tensor_names)
    n_layers = int(_required(meta, arch, "block_count"))
    hidden = int(_required(meta, arch, "embedding_length"))
    n_heads = int(_required(meta, arch, "attention.head_count"))
    n_kv = int(meta.get(f"{arch}.attention.head_count_kv", n_heads))
    eps = float(_required(meta, arch, "attention.layer_norm_rms_epsilon"))
    vocab = meta.get(f"{arch}.vocab_size")
    if vocab is None:
        tokens = meta.get("tokenizer.ggml.tokens")
        if tokens is None:
            raise GGUFConversionError(f"GGUF metadata has neither '{arch}.vocab_size' nor tokenizer tokens")
        vocab = len(tokens)
    head_dim = meta.get(f"{arch}.attention.key_length")
    if head_dim is None:
        head_dim = meta.get(f"{arch}.rope.dimension_count", hidden // n_heads)
    cfg: dict[str, Any] = {
        "hidden_size": hidden,
        "intermediate_size": int(_required(meta, arch, "feed_forward_length")),
        "num_hidden_layers": n_layers,
        "num_attention_heads": n_heads,
        "num_key_value_heads": n_kv,
        "head_dim": int(head_dim),
        "rms_norm_eps": eps,
        "vocab_size": int(vocab),
        "max_position_embeddings": int(meta.get(f"{arch}.context_length", 2048)),
        "tie_word_embeddings": "output.weight" not in names,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "dtype": "float32",
    }
    for hf_key, gguf_key in (
        ("bos_token_id", "tokenizer.ggml.bos_token_id"),
        ("eos_token_id", "tokenizer.ggml.eos_token_id"),
        ("pad_token_id", "tokenizer.ggml.padding_token_id"),
    ):
        if gguf_key in meta:
            cfg[hf_key] = int(meta[gguf_key])
    if arch == "llama":
        theta = float(meta.get("llama.rope.freq_base", 10_000.0))
        if "llama.rope.scaling.type" in meta or "rope_freqs.weight" in names:
            raise GGUFConversionError(
                "this llama GGUF uses RoPE scaling (Llama-3.1 style rope_freqs / rope.scaling), "
                "which the converter does not support yet"
            )
        cfg.update(
            {
                "architectures": ["LlamaForCausalLM"],
                "model_type": "llama",
                "hidden_act": "silu",
                "mlp_bias": False,
                "rope_theta": theta,
                "rope_parameters": {"rope_type": "default", "rope_theta": theta},
            }
        )
    elif arch == "gemma3":
        theta = float(meta.get("gemma3.rope.freq_base", 1_000_000.0))
        layer_types = [
            "full_attention" if (i + 1) % _GEMMA3_SLIDING_PATTERN == 0 else "sliding_attention"
            for i in range(n_layers)
        ]
        cfg.update(
            {
                "architectures": ["Gemma3ForCausalLM"],
                "model_type": "gemma3_text",
                "hidden_activation": "gelu_pytorch_tanh",
                "query_pre_attn_scalar": int(head_dim),
                "sliding_window": int(meta.get("gemma3.attention.sliding_window", 4096)),
                "layer_types": layer_types,
                "attn_logit_softcapping": None,
                "final_logit_softcapping": None,
                "use_bidirectional_attention": False,
                "rope_theta": theta,
                "rope_local_base_freq": _GEMMA3_LOCAL_ROPE_BASE,
                "rope_parameters": {
                    "full_attention": {"rope_type": "default", "rope_theta": theta},
                    "sliding_attention": {"rope_type": "default", "rope_theta": _GEMMA3_LOCAL_ROPE_BASE},
                },
            }
        )
    return cfg


# --------------------------------------------------------------------------------------------
# Tensors
# --------------------------------------------------------------------------------------------


def hf_tensor_name(gguf_name: str, arch: str) -> str:
    """The HF parameter name of a GGUF tensor (``blk.3.attn_q.weight`` ->
    ``model.layers.3.self_attn.q_proj.weight``). Raises for names the architecture does not use."""
    if arch not in _LAYER_NAMES:
        raise GGUFConversionError(
            f"unsupported GGUF architecture {arch!r}; supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    m = _LAYER_RE.match(gguf_name)
    if m and m.group(2) in _LAYER_NAMES[arch]:
        return f"model.layers.{int(m.group(1))}.{_LAYER_NAMES[arch][m.group(2)]}"
    raise GGUFConversionError(f"unexpected tensor {gguf_name!r} for a {arch} GGUF; the converter does not know it")


def permute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's row permutation of a q/k projection ``[out, in]`` (HF order -> GGUF order)."""
    out = w.shape[0]
    _check_qk_rows(out, n_head)
    return w.reshape(n_head, 2, out // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo :func:`permute_qk` (GGUF order -> HF order); ``n_head`` is the q or the kv head count."""
    out = w.shape[0]
    _check_qk_rows(out, n_head)
    return w.reshape(n_head, out // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _check_qk_rows(out: int, n_head: int) -> None:
    if n_head <= 0 or out % (2 * n_head) != 0:
        raise GGUFConversionError(f"q/k projection with {out} rows cannot be split into {n_head} heads of even size")


def _dequantize(tensor) -> np.ndarray:
    from gguf import GGMLQuantizationType, quants

    ttype = GGMLQuantizationType(tensor.tensor_type)
    if ttype == GGMLQuantizationType.F32:
        w = np.asarray(tensor.data, dtype=np.float32)
    elif ttype == GGMLQuantizationType.F16:
        w = np.asarray(tensor.data).astype(np.float32)
    else:
        try:
            w = quants.dequantize(tensor.data, ttype)
        except NotImplementedError as err:
            supported = sorted(["F32", "F16"] + [t.name for t in quants._type_traits])
            raise GGUFConversionError(
                f"tensor {tensor.name!r} has GGUF type {ttype.name}, which gguf.quants cannot dequantize; "
                f"supported types: {', '.join(supported)}"
            ) from err
    shape = tuple(int(d) for d in reversed(tensor.shape.tolist()))  # ggml lists the fastest dim first
    return np.asarray(w, dtype=np.float32).reshape(shape)


def load_gguf(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, Any]]:
    """Read and convert a GGUF file in memory.

    Returns:
        ``(hf_config, tensors, metadata)``: the HF config dict, float32 tensors under HF names and
        layouts (``[out, in]`` for projections; ``lm_head.weight`` absent when tied), and the raw
        GGUF metadata (without the big tokenizer arrays).
    """
    reader = open_reader(path)
    meta = read_metadata(reader, skip_arrays=("tokenizer.ggml.tokens", "tokenizer.ggml.scores",
                                               "tokenizer.ggml.token_type", "tokenizer.ggml.merges"))
    arch = _arch_of(meta)
    if f"{arch}.vocab_size" not in meta:
        # Like transformers: the tokenizer's length, else the embedding's row count.
        if "tokenizer.ggml.tokens" in reader.fields:
            meta[f"{arch}.vocab_size"] = len(reader.fields["tokenizer.ggml.tokens"].data)
        else:
            embd = [t for t in reader.tensors if t.name == "token_embd.weight"]
            if embd:
                meta[f"{arch}.vocab_size"] = int(embd[0].shape[-1])
    cfg = hf_config_from_metadata(meta, [t.name for t in reader.tensors])
    tensors: dict[str, np.ndarray] = {}
    for t in reader.tensors:
        name = hf_tensor_name(t.name, arch)
        w = _dequantize(t)
        if arch == "llama" and t.name.endswith(".attn_q.weight"):
            w = unpermute_qk(w, cfg["num_attention_heads"])
        elif arch == "llama" and t.name.endswith(".attn_k.weight"):
            w = unpermute_qk(w, cfg["num_key_value_heads"])
        if arch == "gemma3" and t.name.endswith("norm.weight"):
            w = w - np.float32(1.0)
        tensors[name] = np.ascontiguousarray(w, dtype=np.float32)
    _check_shapes(cfg, tensors)
    return cfg, tensors, meta


def _check_shapes(cfg: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> None:
    """Every expected tensor is present with the shape the config implies."""
    d, f, hd = cfg["hidden_size"], cfg["intermediate_size"], cfg["head_dim"]
    h, kv, v = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["vocab_size"]
    want = {"model.embed_tokens.weight": (v, d), "model.norm.weight": (d,)}
    if not cfg["tie_word_embeddings"]:
        want["lm_head.weight"] = (v, d)
    per_layer = {
        "self_attn.q_proj.weight": (h * hd, d),
        "self_attn.k_proj.weight": (kv * hd, d),
        "self_attn.v_proj.weight": (kv * hd, d),
        "self_attn.o_proj.weight": (d, h * hd),
        "mlp.gate_proj.weight": (f, d),
        "mlp.up_proj.weight": (f, d),
        "mlp.down_proj.weight": (d, f),
        "input_layernorm.weight": (d,),
        "post_attention_layernorm.weight": (d,),
    }
    if cfg["model_type"] == "gemma3_text":
        per_layer.update(
            {
                "self_attn.q_norm.weight": (hd,),
                "self_attn.k_norm.weight": (hd,),
                "pre_feedforward_layernorm.weight": (d,),
                "post_feedforward_layernorm.weight": (d,),
            }
        )
    for i in range(cfg["num_hidden_layers"]):
        for k, s in per_layer.items():
            want[f"model.layers.{i}.{k}"] = s
    missing = sorted(set(want) - set(tensors))
    if missing:
        raise GGUFConversionError(f"GGUF file lacks {len(missing)} expected tensors, e.g. {missing[:3]}")
    extra = sorted(set(tensors) - set(want))
    if extra:
        raise GGUFConversionError(f"GGUF file has tensors beyond the config's layers, e.g. {extra[:3]}")
    for k, s in want.items():
        if tuple(tensors[k].shape) != s:
            raise GGUFConversionError(f"tensor {k!r} has shape {tuple(tensors[k].shape)}, config implies {s}")


# --------------------------------------------------------------------------------------------
# Writing the HF directory
# --------------------------------------------------------------------------------------------


def convert_gguf_to_hf_dir(
    gguf_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    tokenizer: bool = True,
    overwrite: bool = False,
) -> Path:
    """Convert a GGUF file into an HF-format directory and return its path.

    Writes ``config.json``, ``model.safetensors`` (float32, HF names/layouts),
    ``generation_config.json`` and, with ``tokenizer=True``, the tokenizer files (``tokenizer.json``,
    ``tokenizer_config.json`` with the chat template when the file has one). The directory is built
    beside ``out_dir`` and renamed into place, so a crash never leaves a half-written ``out_dir``.
    """
    out = Path(out_dir)
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"output directory {str(out)!r} already exists (pass overwrite=True)")
    cfg, tensors, meta = load_gguf(gguf_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        write_hf_dir(tmp, cfg, tensors, meta)
        if tokenizer:
            from spgg_jax.models.weights.gguf_tokenizer import save_tokenizer_from_gguf

            save_tokenizer_from_gguf(gguf_path, tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def write_hf_dir(out: Path, cfg: Mapping[str, Any], tensors: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    """Write ``config.json``, ``generation_config.json`` and ``model.safetensors`` into ``out``."""
    from safetensors.numpy import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = dict(cfg)
    cfg["spgg_source"] = {
        "format": "gguf",
        "gguf_name": meta.get("general.name"),
        "converter_version": CONVERTER_VERSION,
    }
    (out / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    gen = {k: cfg[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if k in cfg}
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2, sort_keys=True) + "\n")
    save_file(dict(tensors), str(out / "model.safetensors"), metadata={"format": "pt"})
    os.chmod(out / "model.safetensors", 0o644)  # safetensors creates it private


# --------------------------------------------------------------------------------------------
# Synthetic GGUF files (offline tests and demos)

_SYNTH_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _synthetic_vocab() -> tuple[list[str], list[int], list[str]]:
    """A tiny byte-level BPE vocabulary: 3 control tokens, the 256 byte symbols and 4 merges."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    byte_syms = list(bytes_to_unicode().values())
    merges = ["\u0120 t", "h e", "\u0120t he", "i s"]  # " t", "he", " the", "is"
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens = specials + byte_syms + [m.replace(" ", "") for m in merges]
    types = [3] * len(specials) + [1] * (len(tokens) - len(specials))  # 3 CONTROL, 1 NORMAL
    return tokens, types, merges


def write_synthetic_gguf(
    path: str | os.PathLike,
    arch: str = "llama",
    *,
    n_layers: int = 2,
    d_model: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    head_dim: int = 16,
    d_ff: int = 96,
    vocab_size: int | None = None,
    tied: bool = True,
    tensor_types: Mapping[str, str] | None = None,
    tokenizer: bool = True,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Write a small random GGUF the way llama.cpp lays one out; return the HF tensors it encodes.

    Weights are multiples of 2**-7 in [-127, 127] * 2**-7 with a +-127 in every 32-block, so F16 and
    Q8_0 store them exactly and the returned HF-layout float32 tensors are exactly what a correct
    converter must produce. ``llama``: q/k rows are permuted as llama.cpp does; ``gemma3``: norms are
    stored as ``w + 1``. Any other ``arch`` string is written as-is with llama's tensors (for
    unsupported-architecture tests). ``tensor_types`` maps GGUF tensor names to a type name
    ("F32", "F16", "Q8_0", "I8"); by default 2-D weights alternate F16 and Q8_0, norms are F32.
    ``tokenizer``: add a tiny byte-level BPE vocabulary (``llama`` only; vocab_size becomes 263)
    with a ChatML template.
    """
    import gguf
    from gguf import GGMLQuantizationType as Q
    from gguf import quants

    rng = np.random.default_rng(seed)
    tokens = types = merges = None
    if tokenizer:
        tokens, types, merges = _synthetic_vocab()
        vocab_size = len(tokens)
    vocab_size = vocab_size or 96
    for name, v in (("d_model", d_model), ("d_ff", d_ff), ("n_heads * head_dim", n_heads * head_dim)):
        if v % 32:  # the input width of some projection; a Q8_0 block is 32 values
            raise ValueError(f"{name} must be a multiple of 32 (a Q8_0 block), got {v}")

    def weight(rows: int, cols: int) -> np.ndarray:
        q = rng.integers(-127, 128, size=(rows, cols)).astype(np.float32)
        q.reshape(-1)[::32] = 127.0 * rng.choice([-1.0, 1.0], size=q.size // 32)
        return q * np.float32(2.0**-7)

    def norm(n: int) -> np.ndarray:
        return (rng.integers(-64, 64, size=n) * 2.0**-6).astype(np.float32)

    hf: dict[str, np.ndarray] = {}
    gg: dict[str, np.ndarray] = {}

    def put(gname: str, hname: str, w: np.ndarray, stored: np.ndarray | None = None) -> None:
        hf[hname] = w
        gg[gname] = w if stored is None else stored

    put("token_embd.weight", "model.embed_tokens.weight", weight(vocab_size, d_model))
    is_gemma = arch == "gemma3"
    plus = np.float32(1.0) if is_gemma else np.float32(0.0)
    n = norm(d_model)
    put("output_norm.weight", "model.norm.weight", n, n + plus)
    if not tied:
        put("output.weight", "lm_head.weight", weight(vocab_size, d_model))
    for i in range(n_layers):
        p, h = f"blk.{i}.", f"model.layers.{i}."
        q = weight(n_heads * head_dim, d_model)
        k = weight(n_kv_heads * head_dim, d_model)
        if is_gemma:
            put(p + "attn_q.weight", h + "self_attn.q_proj.weight", q)
            put(p + "attn_k.weight", h + "self_attn.k_proj.weight", k)
        else:
            put(p + "attn_q.weight", h + "self_attn.q_proj.weight", q, permute_qk(q, n_heads))
            put(p + "attn_k.weight", h + "self_attn.k_proj.weight", k, permute_qk(k, n_kv_heads))
        put(p + "attn_v.weight", h + "self_attn.v_proj.weight", weight(n_kv_heads * head_dim, d_model))
        put(p + "attn_output.weight", h + "self_attn.o_proj.weight", weight(d_model, n_heads * head_dim))
        put(p + "ffn_gate.weight", h + "mlp.gate_proj.weight", weight(d_ff, d_model))
        put(p + "ffn_up.weight", h + "mlp.up_proj.weight", weight(d_ff, d_model))
        put(p + "ffn_down.weight", h + "mlp.down_proj.weight", weight(d_model, d_ff))
        norms = [("attn_norm.weight", "input_layernorm.weight", d_model)]
        if is_gemma:
            norms += [
                ("attn_q_norm.weight", "self_attn.q_norm.weight", head_dim),
                ("attn_k_norm.weight", "self_attn.k_norm.weight", head_dim),
                ("post_attention_norm.weight", "post_attention_layernorm.weight", d_model),
                ("ffn_norm.weight", "pre_feedforward_layernorm.weight", d_model),
                ("post_ffw_norm.weight", "post_feedforward_layernorm.weight", d_model),
            ]
        else:
            norms += [("ffn_norm.weight", "post_attention_layernorm.weight", d_model)]
        for gname, hname, size in norms:
            w = norm(size)
            put(p + gname, h + hname, w, w + plus)

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(f"synthetic-{arch}")
    writer.add_block_count(n_layers)
    writer.add_context_length(256)
    writer.add_embedding_length(d_model)
    writer.add_feed_forward_length(d_ff)
    writer.add_head_count(n_heads)
    writer.add_head_count_kv(n_kv_heads)
    writer.add_layer_norm_rms_eps(1e-6 if is_gemma else 1e-5)
    if is_gemma:
        writer.add_rope_freq_base(1_000_000.0)
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
        writer.add_sliding_window(8)
    else:
        writer.add_rope_freq_base(10_000.0)
        writer.add_rope_dimension_count(head_dim)
        writer.add_vocab_size(vocab_size)
    if tokens is not None:
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_merges(merges)
        writer.add_bos_token_id(1)
        writer.add_eos_token_id(2)
        writer.add_pad_token_id(0)
        writer.add_unk_token_id(0)
        writer.add_add_bos_token(False)
        writer.add_chat_template(_SYNTH_CHAT_TEMPLATE)
    else:
        writer.add_bos_token_id(1)
        writer.add_eos_token_id(2)
        writer.add_pad_token_id(0)
    types_by_name = dict(tensor_types or {})
    for j, (gname, w) in enumerate(gg.items()):
        default = "F32" if w.ndim == 1 else ("F16" if j % 2 else "Q8_0")
        tname = types_by_name.get(gname, default)
        if tname == "F32":
            writer.add_tensor(gname, w.astype(np.float32))
        elif tname == "F16":
            writer.add_tensor(gname, w.astype(np.float16))
        elif tname == "I8":
            writer.add_tensor(gname, np.round(w * 128).astype(np.int8))
        else:
            qtype = Q[tname]
            writer.add_tensor(gname, quants.quantize(w, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return hf
