"""``ModelConfig``: one frozen, hashable description of every supported decoder family.

The config is a static argument of jitted functions (``jax.jit(..., static_argnames="cfg")``), so
every field is an immutable Python scalar, string or tuple. Family differences are spelled out as
explicit switches (norm kind, activation, biases, q/k norms, sandwich norms, ...) so that adding a
family is mostly a new ``from_hf_config`` branch; see ``docs/models.md``.

``ModelConfig.from_hf_config`` reads a transformers ``PretrainedConfig`` or a raw ``config.json``
dict, in both the transformers v5 layout (``rope_parameters``) and the older one (top-level
``rope_theta`` / ``rope_scaling`` / ``rope_local_base_freq`` / ``sliding_window_pattern``).
``ModelConfig.to_hf_config`` goes the other way (used by the benchmark and the parity tests).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import numpy as np

# Families and the transformers names they correspond to.
SUPPORTED_MODEL_TYPES: dict[str, str] = {
    "llama": "llama",
    "qwen2": "qwen2",
    "qwen3": "qwen3",
    "gpt2": "gpt2",
    "gemma3_text": "gemma3",
}
SUPPORTED_ARCHITECTURES: dict[str, str] = {
    "LlamaForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
    "GPT2LMHeadModel": "gpt2",
    "Gemma3ForCausalLM": "gemma3",
}
FAMILIES = ("llama", "qwen2", "qwen3", "gpt2", "gemma3")
_HF_ARCH = {
    "llama": ("llama", "LlamaForCausalLM"),
    "qwen2": ("qwen2", "Qwen2ForCausalLM"),
    "qwen3": ("qwen3", "Qwen3ForCausalLM"),
    "gpt2": ("gpt2", "GPT2LMHeadModel"),
    "gemma3": ("gemma3_text", "Gemma3ForCausalLM"),
}
_ACTIVATIONS = {
    "silu": "silu",
    "swish": "silu",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_new": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "gelu_tanh": "gelu_tanh",
    "gelu": "gelu",
}
_DTYPES = ("float32", "bfloat16", "float16")


@dataclasses.dataclass(frozen=True)
class RopeConfig:
    """Rotary embedding parameters (HF ``rope_parameters`` of one layer type).

    ``rope_type``: "default", "linear" (positions divided by ``factor``) or "llama3" (Llama-3.1
    frequency-dependent scaling with ``low_freq_factor``, ``high_freq_factor``,
    ``original_max_position_embeddings``).
    """

    theta: float = 10000.0
    rope_type: str = "default"
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192

    def __post_init__(self):
        if self.rope_type not in ("default", "linear", "llama3"):
            raise ValueError(
                f"unsupported rope_type {self.rope_type!r}; supported: default, linear, llama3"
            )

    def inv_freq(self, head_dim: int) -> np.ndarray:
        """Inverse frequencies, float32 [head_dim // 2], computed like transformers does."""
        exponent = np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / np.float32(head_dim)
        inv = (1.0 / (np.float32(self.theta) ** exponent)).astype(np.float32)
        if self.rope_type == "linear":
            inv = inv / np.float32(self.factor)
        elif self.rope_type == "llama3":
            old = float(self.original_max_position_embeddings)
            low_wl = old / self.low_freq_factor
            high_wl = old / self.high_freq_factor
            wavelen = 2 * math.pi / inv
            scaled = np.where(wavelen > low_wl, inv / self.factor, inv)
            smooth = (old / wavelen - self.low_freq_factor) / (self.high_freq_factor - self.low_freq_factor)
            smoothed = (1 - smooth) * scaled / self.factor + smooth * scaled
            medium = ~(wavelen < high_wl) & ~(wavelen > low_wl)
            inv = np.where(medium, smoothed, scaled)
        return inv.astype(np.float32)

    def to_hf(self) -> dict[str, Any]:
        d: dict[str, Any] = {"rope_type": self.rope_type, "rope_theta": self.theta}
        if self.rope_type in ("linear", "llama3"):
            d["factor"] = self.factor
        if self.rope_type == "llama3":
            d.update(
                low_freq_factor=self.low_freq_factor,
                high_freq_factor=self.high_freq_factor,
                original_max_position_embeddings=self.original_max_position_embeddings,
            )
        return d

    @classmethod
    def from_hf(cls, params: Mapping[str, Any] | None, default_theta: float) -> "RopeConfig":
        params = dict(params or {})
        rope_type = params.get("rope_type", params.get("type", "default")) or "default"
        theta = params.get("rope_theta", default_theta)
        kw: dict[str, Any] = {"theta": float(theta), "rope_type": str(rope_type)}
        if rope_type in ("linear", "llama3"):
            kw["factor"] = float(params["factor"])
        if rope_type == "llama3":
            kw["low_freq_factor"] = float(params.get("low_freq_factor", 1.0))
            kw["high_freq_factor"] = float(params.get("high_freq_factor", 4.0))
            kw["original_max_position_embeddings"] = int(params.get("original_max_position_embeddings", 8192))
        return cls(**kw)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture and numerics of one decoder-only model; hashable (a static jit argument).

    Shapes: ``d_model`` (D), ``n_heads`` (H), ``n_kv_heads`` (KH, < H means grouped-query attention),
    ``head_dim`` (Hd, may differ from D/H), ``d_ff`` (MLP width), ``vocab_size`` (V).
    ``layer_windows[i]``: sliding-window size of layer i (key slot > query slot - window); 0 means
    full causal attention. Layers with a window use ``rope_local`` when given, else ``rope``.
    ``param_dtype``: storage dtype of the weights; ``dtype``: compute dtype of matmuls (norms,
    softmax and logits are float32).
    """

    family: str
    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    d_ff: int
    max_position_embeddings: int = 2048
    norm_eps: float = 1e-6
    norm: str = "rms"  # "rms" (x*w), "rms_plus_one" (x*(1+w), gemma), "layernorm" (gpt2)
    activation: str = "silu"  # "silu", "gelu_tanh", "gelu"
    gated_mlp: bool = True  # down(act(gate(x)) * up(x)); False: down(act(up(x)))
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False  # per-head norm of q and k before RoPE (qwen3, gemma3)
    sandwich_norm: bool = False  # post-attention and post-MLP norms (gemma3)
    embed_scale: bool = False  # multiply embeddings by sqrt(d_model) (gemma3)
    learned_positions: bool = False  # gpt2: learned position table instead of RoPE
    tie_embeddings: bool = False
    query_pre_attn_scalar: float | None = None  # attention scale = this ** -0.5 (default head_dim)
    attn_logit_softcap: float | None = None
    final_logit_softcap: float | None = None
    rope: RopeConfig | None = RopeConfig()
    rope_local: RopeConfig | None = None
    layer_windows: tuple[int, ...] = ()
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    pad_token_id: int | None = None
    param_dtype: str = "float32"
    dtype: str = "float32"
    remat: bool = False  # rematerialise each layer in the backward pass (training memory)

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"unknown family {self.family!r}; supported: {', '.join(FAMILIES)}")
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "head_dim", "d_ff"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"ModelConfig.{name} must be a positive int, got {v!r}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})"
            )
        if self.norm not in ("rms", "rms_plus_one", "layernorm"):
            raise ValueError(f"unknown norm {self.norm!r}; supported: rms, rms_plus_one, layernorm")
        if self.activation not in ("silu", "gelu_tanh", "gelu"):
            raise ValueError(f"unknown activation {self.activation!r}; supported: silu, gelu_tanh, gelu")
        for name in ("param_dtype", "dtype"):
            if getattr(self, name) not in _DTYPES:
                raise ValueError(f"ModelConfig.{name} must be one of {_DTYPES}, got {getattr(self, name)!r}")
        if self.rope is None and not self.learned_positions:
            raise ValueError("a model needs RoPE (rope=RopeConfig(...)) or learned_positions=True")
        if self.layer_windows and len(self.layer_windows) != self.n_layers:
            raise ValueError(
                f"layer_windows has {len(self.layer_windows)} entries for {self.n_layers} layers"
            )
        if self.head_dim % 2 and self.rope is not None:
            raise ValueError(f"RoPE needs an even head_dim, got {self.head_dim}")

    # ----------------------------------------------------------------------------------------
    def replace(self, **changes: Any) -> "ModelConfig":
        """A copy with some fields changed (e.g. ``cfg.replace(dtype="bfloat16")``)."""
        return dataclasses.replace(self, **changes)

    @property
    def jnp_dtype(self):
        import jax.numpy as jnp

        return jnp.dtype(self.dtype)

    @property
    def jnp_param_dtype(self):
        import jax.numpy as jnp

        return jnp.dtype(self.param_dtype)

    @property
    def windows(self) -> tuple[int, ...]:
        """Per-layer sliding window (0 = full attention), always ``n_layers`` long."""
        return self.layer_windows or (0,) * self.n_layers

    @property
    def attn_scale(self) -> float:
        base = self.query_pre_attn_scalar if self.query_pre_attn_scalar else self.head_dim
        return float(base) ** -0.5

    def rope_table(self) -> np.ndarray:
        """Per-layer inverse RoPE frequencies, float32 [n_layers, head_dim // 2] (zeros without RoPE)."""
        half = self.head_dim // 2
        if self.rope is None:
            return np.zeros((self.n_layers, max(half, 1)), np.float32)
        glob = self.rope.inv_freq(self.head_dim)
        loc = self.rope_local.inv_freq(self.head_dim) if self.rope_local is not None else glob
        return np.stack([loc if w > 0 else glob for w in self.windows]).astype(np.float32)

    # ----------------------------------------------------------------------------------------
    @classmethod
    def from_hf_config(cls, config: Any, **overrides: Any) -> "ModelConfig":
        """Build a config from a transformers ``PretrainedConfig`` or a raw ``config.json`` dict.

        ``overrides`` replace fields afterwards (e.g. ``dtype="bfloat16"``). Raises ``ValueError``
        naming the supported model types when the architecture is unknown.
        """
        if isinstance(config, Mapping):
            c = dict(config)
        elif hasattr(config, "to_dict"):
            c = config.to_dict()
        else:
            raise TypeError(f"expected a PretrainedConfig or a config dict, got {type(config).__name__}")
        family = _family_of(c)
        builder = {
            "llama": _from_llama_like,
            "qwen2": _from_llama_like,
            "qwen3": _from_llama_like,
            "gpt2": _from_gpt2,
            "gemma3": _from_gemma3,
        }[family]
        try:
            kw = builder(c, family)
        except KeyError as err:  # a key the family needs is missing: say which
            raise ValueError(f"the model config lacks the key {err.args[0]!r} (model_type "
                             f"{c.get('model_type')!r} needs it)") from None
        except TypeError as err:  # e.g. "hidden_size": null
            raise ValueError(f"the model config has a value of the wrong type ({err})") from None
        eos = c.get("eos_token_id")
        kw["eos_token_ids"] = tuple(int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos]) if e is not None)
        kw["bos_token_id"] = c.get("bos_token_id") if isinstance(c.get("bos_token_id"), int) else None
        kw["pad_token_id"] = c.get("pad_token_id") if isinstance(c.get("pad_token_id"), int) else None
        kw.update(overrides)
        return cls(**kw)

    def to_hf_config(self) -> dict[str, Any]:
        """A ``config.json`` dict (transformers v5 layout) describing the same architecture."""
        model_type, arch = _HF_ARCH[self.family]
        eos = list(self.eos_token_ids)
        common: dict[str, Any] = {
            "model_type": model_type,
            "architectures": [arch],
            "vocab_size": self.vocab_size,
            "tie_word_embeddings": self.tie_embeddings,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": (eos[0] if len(eos) == 1 else eos) if eos else None,
            "pad_token_id": self.pad_token_id,
        }
        if self.family == "gpt2":
            common.update(
                n_embd=self.d_model, n_layer=self.n_layers, n_head=self.n_heads,
                n_inner=self.d_ff, n_positions=self.max_position_embeddings,
                layer_norm_epsilon=self.norm_eps, activation_function="gelu_new",
            )
            return common
        common.update(
            hidden_size=self.d_model,
            intermediate_size=self.d_ff,
            num_hidden_layers=self.n_layers,
            num_attention_heads=self.n_heads,
            num_key_value_heads=self.n_kv_heads,
            head_dim=self.head_dim,
            max_position_embeddings=self.max_position_embeddings,
            rms_norm_eps=self.norm_eps,
        )
        assert self.rope is not None
        if self.family == "gemma3":
            local = self.rope_local or self.rope
            qpas = self.query_pre_attn_scalar or self.head_dim
            qpas = int(qpas) if float(qpas).is_integer() else qpas
            common.update(
                hidden_activation="gelu_pytorch_tanh",
                query_pre_attn_scalar=qpas,
                sliding_window=max(self.windows) or 4096,
                layer_types=["sliding_attention" if w else "full_attention" for w in self.windows],
                rope_parameters={"full_attention": self.rope.to_hf(), "sliding_attention": local.to_hf()},
                attn_logit_softcapping=self.attn_logit_softcap,
                final_logit_softcapping=self.final_logit_softcap,
            )
            return common
        common.update(hidden_act="silu", rope_parameters=self.rope.to_hf())
        if self.family == "llama":
            common.update(attention_bias=self.qkv_bias, mlp_bias=self.mlp_bias)
        if self.family == "qwen3":
            common.update(attention_bias=self.qkv_bias)
        return common


# --------------------------------------------------------------------------------------------
def _family_of(c: Mapping[str, Any]) -> str:
    model_type = c.get("model_type")
    if model_type in SUPPORTED_MODEL_TYPES:
        return SUPPORTED_MODEL_TYPES[model_type]
    for arch in c.get("architectures") or []:
        if arch in SUPPORTED_ARCHITECTURES:
            return SUPPORTED_ARCHITECTURES[arch]
    raise ValueError(
        f"unsupported model: model_type={model_type!r}, architectures={c.get('architectures')!r}; "
        f"supported model types: {', '.join(sorted(SUPPORTED_MODEL_TYPES))} "
        f"(architectures: {', '.join(sorted(SUPPORTED_ARCHITECTURES))})"
    )


def _rope_params(c: Mapping[str, Any], default_theta: float) -> RopeConfig:
    """Single-type RoPE from v5 ``rope_parameters`` or legacy ``rope_theta`` + ``rope_scaling``."""
    rp = c.get("rope_parameters")
    if rp:
        return RopeConfig.from_hf(rp, c.get("rope_theta", default_theta))
    return RopeConfig.from_hf(c.get("rope_scaling"), c.get("rope_theta", default_theta))


def _get(c: Mapping[str, Any], *names: str, default: Any = None) -> Any:
    for n in names:
        if c.get(n) is not None:
            return c[n]
    return default


def _from_llama_like(c: Mapping[str, Any], family: str) -> dict[str, Any]:
    d = int(c["hidden_size"])
    h = int(c["num_attention_heads"])
    act = _get(c, "hidden_act", default="silu")
    if act not in _ACTIVATIONS:
        raise ValueError(f"unsupported hidden_act {act!r}; supported: {', '.join(_ACTIVATIONS)}")
    layer_types = c.get("layer_types")
    n_layers = int(c["num_hidden_layers"])
    windows: tuple[int, ...] = ()
    sw = c.get("sliding_window")
    if layer_types and "sliding_attention" in layer_types and sw:
        windows = tuple(int(sw) if t == "sliding_attention" else 0 for t in layer_types)
    elif family == "qwen2" and c.get("use_sliding_window") and sw:
        mwl = int(c.get("max_window_layers", n_layers))
        windows = tuple(int(sw) if i >= mwl else 0 for i in range(n_layers))
    if family == "qwen2":
        qkv_bias, o_bias = True, False
    else:
        qkv_bias = o_bias = bool(c.get("attention_bias", False))
    return dict(
        family=family,
        vocab_size=int(c["vocab_size"]),
        d_model=d,
        n_layers=n_layers,
        n_heads=h,
        n_kv_heads=int(_get(c, "num_key_value_heads", default=h)),
        head_dim=int(_get(c, "head_dim", default=d // h)),
        d_ff=int(c["intermediate_size"]),
        max_position_embeddings=int(c.get("max_position_embeddings", 2048)),
        norm_eps=float(_get(c, "rms_norm_eps", default=1e-6)),
        norm="rms",
        activation=_ACTIVATIONS[act],
        gated_mlp=True,
        qkv_bias=qkv_bias,
        o_bias=o_bias,
        mlp_bias=bool(c.get("mlp_bias", False)),
        qk_norm=family == "qwen3",
        tie_embeddings=bool(c.get("tie_word_embeddings", False)),
        rope=_rope_params(c, 10000.0),
        layer_windows=windows,
    )


def _from_gpt2(c: Mapping[str, Any], family: str) -> dict[str, Any]:
    d = int(c["n_embd"])
    h = int(c["n_head"])
    act = c.get("activation_function", "gelu_new")
    if act not in _ACTIVATIONS:
        raise ValueError(f"unsupported activation_function {act!r}; supported: {', '.join(_ACTIVATIONS)}")
    if c.get("scale_attn_by_inverse_layer_idx") or c.get("reorder_and_upcast_attn"):
        raise ValueError("GPT-2 scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn are not supported")
    if c.get("scale_attn_weights") is False:
        raise ValueError("GPT-2 scale_attn_weights=False is not supported")
    return dict(
        family="gpt2",
        vocab_size=int(c["vocab_size"]),
        d_model=d,
        n_layers=int(c["n_layer"]),
        n_heads=h,
        n_kv_heads=h,
        head_dim=d // h,
        d_ff=int(c.get("n_inner") or 4 * d),
        max_position_embeddings=int(c.get("n_positions", 1024)),
        norm_eps=float(c.get("layer_norm_epsilon", 1e-5)),
        norm="layernorm",
        activation=_ACTIVATIONS[act],
        gated_mlp=False,
        qkv_bias=True,
        o_bias=True,
        mlp_bias=True,
        learned_positions=True,
        tie_embeddings=bool(c.get("tie_word_embeddings", True)),
        rope=None,
    )


def _from_gemma3(c: Mapping[str, Any], family: str) -> dict[str, Any]:
    if c.get("use_bidirectional_attention"):
        raise ValueError("Gemma 3 use_bidirectional_attention=True is not supported (decoder only)")
    kw = _from_llama_like({**c, "hidden_act": _get(c, "hidden_activation", "hidden_act", default="gelu_pytorch_tanh"),
                           "layer_types": None, "sliding_window": None}, "llama")
    n_layers = kw["n_layers"]
    layer_types = c.get("layer_types")
    if not layer_types:
        pattern = int(_get(c, "sliding_window_pattern", "_sliding_window_pattern", default=6))
        layer_types = ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(n_layers)]
    if len(layer_types) != n_layers:
        raise ValueError(f"layer_types has {len(layer_types)} entries for {n_layers} layers")
    sw = int(_get(c, "sliding_window", default=4096))
    rp = c.get("rope_parameters")
    if rp and ("full_attention" in rp or "sliding_attention" in rp):
        glob = RopeConfig.from_hf(rp.get("full_attention"), c.get("rope_theta", 1e6))
        loc = RopeConfig.from_hf(rp.get("sliding_attention"), c.get("rope_local_base_freq", 1e4))
    else:  # legacy: rope_theta (+ rope_scaling) global, rope_local_base_freq local
        glob = RopeConfig.from_hf(rp or c.get("rope_scaling"), c.get("rope_theta", 1e6))
        loc = RopeConfig(theta=float(c.get("rope_local_base_freq", 1e4)))
    kw.update(
        family="gemma3",
        norm="rms_plus_one",
        qk_norm=True,
        sandwich_norm=True,
        embed_scale=True,
        tie_embeddings=bool(c.get("tie_word_embeddings", True)),
        query_pre_attn_scalar=float(_get(c, "query_pre_attn_scalar", default=kw["head_dim"])),
        # transformers' Gemma 3 ignores attn_logit_softcapping (its attention never caps the
        # scores; Gemma 2 did): so do we, or logits would differ from the reference (by 0.11 on
        # a tiny model with the field set to 50). The final-logit cap is applied by both.
        attn_logit_softcap=None,
        final_logit_softcap=c.get("final_logit_softcapping"),
        rope=glob,
        rope_local=loc,
        layer_windows=tuple(sw if t == "sliding_attention" else 0 for t in layer_types),
    )
    return kw
