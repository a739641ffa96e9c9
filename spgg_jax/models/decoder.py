"""The Flax decoder shared by every family, and pure functions on its params pytree.

One ``DecoderLayer`` is scanned over depth with ``nn.scan`` (params stacked on a leading "layers"
axis), so compile time does not grow with the number of layers. Per-layer differences (Gemma 3's
sliding window and RoPE base) are scanned arrays, not Python branches.

Public pure functions (``cfg`` is hashable: pass it as a static jit argument):

- ``init_params(cfg, rng) -> params``            plain arrays (no ``nn.Partitioned`` boxes)
- ``param_logical_axes(cfg) -> tree of PartitionSpec``  logical axis names per param
- ``init_cache(cfg, batch, max_len, dtype=None) -> KVCache``
- ``forward(params, cfg, tokens, positions, attn_mask, cache=None) -> (hidden f32[B,T,D], cache)``
- ``logits_from_hidden(params, cfg, hidden) -> f32[B,T,V]``
- ``apply(params, cfg, tokens, positions, attn_mask, cache=None) -> (logits, cache)``
- ``positions_from_mask(mask) -> int32[B,T]``     cumsum(mask) - 1, clipped at 0 (left padding)
- ``count_params(params) -> int``

KV cache convention: all rows write at the same slot ``cache.index`` (prompts are left-padded),
``cache.mask[b, s]`` says whether slot s of row b holds a real token. Attention is causal in slot
order, masks invalid slots, and (per layer) limits keys to ``slot > query_slot - window``.
"""

from __future__ import annotations

import functools
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from spgg_jax.models.config import ModelConfig

Params = Any  # nested dict of arrays
_NEG = float(np.finfo(np.float32).min)

# --------------------------------------------------------------------------------------------
# KV cache


@flax.struct.dataclass
class KVCache:
    """Key/value cache of all layers.

    k, v: [layers, batch, max_len, kv_heads, head_dim]; mask: bool [batch, max_len] (slot holds a
    real token); index: int32 scalar, the slot the next token(s) are written to (same for all rows).
    """

    k: jax.Array
    v: jax.Array
    mask: jax.Array
    index: jax.Array

    @property
    def max_len(self) -> int:
        return self.k.shape[2]


CACHE_AXES = ("layers", "batch", "cache_length", "kv_heads", "head_dim")


def init_cache(cfg: ModelConfig, batch: int, max_len: int, dtype: Any = None) -> KVCache:
    """An empty cache for ``batch`` rows of up to ``max_len`` tokens (prompt + generated)."""
    if batch <= 0 or max_len <= 0:
        raise ValueError(f"init_cache needs batch > 0 and max_len > 0, got batch={batch}, max_len={max_len}")
    dtype = jnp.dtype(dtype or cfg.dtype)
    shape = (cfg.n_layers, batch, max_len, cfg.n_kv_heads, cfg.head_dim)
    return KVCache(
        k=jnp.zeros(shape, dtype),
        v=jnp.zeros(shape, dtype),
        mask=jnp.zeros((batch, max_len), bool),
        index=jnp.zeros((), jnp.int32),
    )


def positions_from_mask(mask: jax.Array) -> jax.Array:
    """Per-row positions for a (left-)padded batch: ``cumsum(mask) - 1`` clipped at 0, int32."""
    return jnp.maximum(jnp.cumsum(mask.astype(jnp.int32), axis=-1) - 1, 0).astype(jnp.int32)


# --------------------------------------------------------------------------------------------
# Building blocks


def _param(module: nn.Module, name: str, init, shape, axes, cfg: ModelConfig):
    return module.param(name, nn.with_logical_partitioning(init, axes), shape, cfg.jnp_param_dtype)


_KERNEL_INIT = nn.initializers.normal(stddev=0.02)


class Norm(nn.Module):
    """RMSNorm (``w*x``), Gemma RMSNorm (``(1+w)*x``) or LayerNorm (with bias), in float32."""

    cfg: ModelConfig
    dim: int
    axis: str  # logical axis of the scale: "embed" or "head_dim"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cfg = self.cfg
        init = nn.initializers.zeros if cfg.norm == "rms_plus_one" else nn.initializers.ones
        scale = _param(self, "scale", init, (self.dim,), (self.axis,), cfg).astype(jnp.float32)
        xf = x.astype(jnp.float32)
        if cfg.norm == "layernorm":
            bias = _param(self, "bias", nn.initializers.zeros, (self.dim,), (self.axis,), cfg)
            mean = xf.mean(-1, keepdims=True)
            var = jnp.square(xf - mean).mean(-1, keepdims=True)
            y = (xf - mean) * lax.rsqrt(var + cfg.norm_eps) * scale + bias.astype(jnp.float32)
        else:
            y = xf * lax.rsqrt(jnp.square(xf).mean(-1, keepdims=True) + cfg.norm_eps)
            y = y * (1.0 + scale if cfg.norm == "rms_plus_one" else scale)
        return y.astype(x.dtype)


def _activation(cfg: ModelConfig, x: jax.Array) -> jax.Array:
    if cfg.activation == "silu":
        return jax.nn.silu(x)
    return jax.nn.gelu(x, approximate=cfg.activation == "gelu_tanh")


def apply_rope(x: jax.Array, positions: jax.Array, inv_freq: jax.Array) -> jax.Array:
    """Rotate-half RoPE (the HF layout). x [B,T,N,Hd], positions int [B,T], inv_freq f32 [Hd/2]."""
    freqs = positions.astype(jnp.float32)[..., None] * inv_freq  # [B,T,Hd/2]
    cos = jnp.cos(freqs)[:, :, None, :].astype(x.dtype)
    sin = jnp.sin(freqs)[:, :, None, :].astype(x.dtype)
    x1, x2 = jnp.split(x, 2, axis=-1)
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    q_slots: jax.Array,
    k_valid: jax.Array,
    window: jax.Array,
    scale: float,
    softcap: float | None = None,
) -> jax.Array:
    """Masked grouped-query attention.

    q [B,T,H,Hd], k/v [B,S,KH,Hd], q_slots int32 [T] (slot index of each query), k_valid bool [B,S],
    window int32 scalar (0 = no window). Key slot s is visible to query slot t when s <= t,
    k_valid[b, s] and (window == 0 or s > t - window). Softmax in float32.
    """
    b, t, h, hd = q.shape
    kh = k.shape[2]
    qg = q.reshape(b, t, kh, h // kh, hd)
    s = jnp.einsum("btkgd,bskd->bkgts", qg, k, preferred_element_type=jnp.float32) * scale
    if softcap:
        s = jnp.tanh(s / softcap) * softcap
    k_slots = jnp.arange(k.shape[1], dtype=jnp.int32)
    allowed = k_slots[None, :] <= q_slots[:, None]  # [T,S]
    in_window = k_slots[None, :] > (q_slots[:, None] - window)
    allowed = allowed & jnp.where(window > 0, in_window, True)
    allowed = allowed[None, :, :] & k_valid[:, None, :]  # [B,T,S]
    s = jnp.where(allowed[:, None, None, :, :], s, _NEG)
    p = jax.nn.softmax(s, axis=-1).astype(v.dtype)
    out = jnp.einsum("bkgts,bskd->btkgd", p, v, preferred_element_type=jnp.float32)
    return out.reshape(b, t, h, hd).astype(q.dtype)


class Attention(nn.Module):
    cfg: ModelConfig

    @nn.compact
    def __call__(self, x, positions, inv_freq, window, q_slots, k_valid, kv_cache, layer_idx, write_index):
        cfg = self.cfg
        dt = cfg.jnp_dtype
        d, h, kh, hd = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim

        def proj(name, n, n_axis):
            w = _param(self, f"{name}_proj_kernel", _KERNEL_INIT, (d, n, hd), ("embed", n_axis, "head_dim"), cfg)
            y = jnp.einsum("btd,dnh->btnh", x, w.astype(dt))
            if cfg.qkv_bias:
                bias = _param(self, f"{name}_proj_bias", nn.initializers.zeros, (n, hd), (n_axis, "head_dim"), cfg)
                y = y + bias.astype(dt)
            return y

        q = proj("q", h, "heads")
        k = proj("k", kh, "kv_heads")
        v = proj("v", kh, "kv_heads")
        if cfg.qk_norm:
            q = Norm(cfg, hd, "head_dim", name="q_norm")(q)
            k = Norm(cfg, hd, "head_dim", name="k_norm")(k)
        if cfg.rope is not None:
            q = apply_rope(q, positions, inv_freq)
            k = apply_rope(k, positions, inv_freq)
        q = nn.with_logical_constraint(q, ("batch", "length", "heads", "head_dim"))

        if kv_cache is None:
            k_all, v_all, new_cache = k, v, None
        else:
            ck, cv = kv_cache
            start = (layer_idx, 0, write_index, 0, 0)
            ck = lax.dynamic_update_slice(ck, k[None].astype(ck.dtype), start)
            cv = lax.dynamic_update_slice(cv, v[None].astype(cv.dtype), start)
            k_all = lax.dynamic_index_in_dim(ck, layer_idx, 0, keepdims=False).astype(dt)
            v_all = lax.dynamic_index_in_dim(cv, layer_idx, 0, keepdims=False).astype(dt)
            new_cache = (ck, cv)

        out = attention(q, k_all, v_all, q_slots, k_valid, window, cfg.attn_scale, cfg.attn_logit_softcap)
        wo = _param(self, "o_proj_kernel", _KERNEL_INIT, (h, hd, d), ("heads", "head_dim", "embed"), cfg)
        y = jnp.einsum("btnh,nhd->btd", out, wo.astype(dt))
        if cfg.o_bias:
            y = y + _param(self, "o_proj_bias", nn.initializers.zeros, (d,), ("embed",), cfg).astype(dt)
        return y, new_cache


class MLP(nn.Module):
    cfg: ModelConfig

    @nn.compact
    def __call__(self, x):
        cfg = self.cfg
        dt = cfg.jnp_dtype
        d, f = cfg.d_model, cfg.d_ff

        def dense(name, inp, shape, axes):
            w = _param(self, f"{name}_kernel", _KERNEL_INIT, shape, axes, cfg)
            y = jnp.einsum("btd,df->btf", inp, w.astype(dt))
            if cfg.mlp_bias:
                y = y + _param(self, f"{name}_bias", nn.initializers.zeros, shape[1:], axes[1:], cfg).astype(dt)
            return y

        up = dense("up_proj", x, (d, f), ("embed", "mlp"))
        if cfg.gated_mlp:
            hidden = _activation(cfg, dense("gate_proj", x, (d, f), ("embed", "mlp"))) * up
        else:
            hidden = _activation(cfg, up)
        hidden = nn.with_logical_constraint(hidden, ("batch", "length", "mlp"))
        return dense("down_proj", hidden, (f, d), ("mlp", "embed"))


class DecoderLayer(nn.Module):
    """One pre-norm block; the scan body. carry = (x, kv) where kv is None or (k, v) of all layers."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, carry, xs, ctx):
        cfg = self.cfg
        x, kv = carry
        layer_idx, inv_freq, window = xs
        positions, q_slots, k_valid, write_index = ctx
        h = Norm(cfg, cfg.d_model, "embed", name="attn_norm")(x)
        h, kv = Attention(cfg, name="attn")(h, positions, inv_freq, window, q_slots, k_valid, kv, layer_idx, write_index)
        if cfg.sandwich_norm:
            h = Norm(cfg, cfg.d_model, "embed", name="post_attn_norm")(h)
        x = x + h
        h = Norm(cfg, cfg.d_model, "embed", name="mlp_norm")(x)
        h = MLP(cfg, name="mlp")(h)
        if cfg.sandwich_norm:
            h = Norm(cfg, cfg.d_model, "embed", name="post_mlp_norm")(h)
        x = x + h
        x = nn.with_logical_constraint(x, ("batch", "length", "embed"))
        return (x, kv), None


def _scanned_layers(cfg: ModelConfig, length: int, name: str = "layers"):
    """``length`` decoder layers as one ``nn.scan`` (params stacked on a leading "layers" axis)."""
    layer = DecoderLayer
    if cfg.remat:
        layer = nn.remat(layer, prevent_cse=False)
    return nn.scan(
        layer,
        variable_axes={"params": 0},
        split_rngs={"params": True},
        in_axes=(0, nn.broadcast),
        length=length,
        metadata_params={nn.PARTITION_NAME: "layers"},
    )(cfg, name=name)


def _layer_xs(cfg: ModelConfig, start: int, stop: int):
    """The scanned per-layer inputs of layers [start, stop): layer index, RoPE table row, window."""
    return (
        jnp.arange(start, stop, dtype=jnp.int32),
        jnp.asarray(cfg.rope_table()[start:stop]),
        jnp.asarray(cfg.windows[start:stop], jnp.int32),
    )


def _layer_context(t: int, positions, attn_mask, cache: KVCache | None):
    """(kv carry, broadcast context) of ``t`` new tokens: without a cache they attend to each other;
    with one they are written at ``cache.index`` and attend to every valid slot before them."""
    attn_mask = attn_mask.astype(bool)
    if cache is None:
        write_index = jnp.zeros((), jnp.int32)
        k_valid = attn_mask
        kv = None
    else:
        write_index = cache.index
        k_valid = lax.dynamic_update_slice(cache.mask, attn_mask, (0, write_index))
        kv = (cache.k, cache.v)
    q_slots = write_index + jnp.arange(t, dtype=jnp.int32)
    return kv, (positions, q_slots, k_valid, write_index)


def _next_cache(cache: KVCache | None, kv, ctx, t: int) -> KVCache | None:
    if cache is None:
        return None
    _, _, k_valid, write_index = ctx
    return KVCache(k=kv[0], v=kv[1], mask=k_valid, index=write_index + t)


class LayerStack(nn.Module):
    """Layers [start, start + length) of the decoder as one scan; its params are that slice of the
    decoder's ``layers`` (``{"layers": slice}``), and the KV carry is every layer's cache."""

    cfg: ModelConfig
    length: int

    @nn.compact
    def __call__(self, x, kv, xs, ctx):
        (x, kv), _ = _scanned_layers(self.cfg, self.length)((x, kv), xs, ctx)
        return x, kv


class Decoder(nn.Module):
    """Embedding -> scanned layers -> final norm. ``__call__`` returns (hidden f32, new cache)."""

    cfg: ModelConfig

    def setup(self):
        cfg = self.cfg
        self.embedding = self.param(
            "embed", nn.with_logical_partitioning(_KERNEL_INIT, ("vocab", "embed")),
            (cfg.vocab_size, cfg.d_model), cfg.jnp_param_dtype,
        )
        if cfg.learned_positions:
            self.pos_embedding = self.param(
                "pos_embed", nn.with_logical_partitioning(_KERNEL_INIT, (None, "embed")),
                (cfg.max_position_embeddings, cfg.d_model), cfg.jnp_param_dtype,
            )
        self.layers = _scanned_layers(cfg, cfg.n_layers)
        self.final_norm = Norm(cfg, cfg.d_model, "embed")
        if not cfg.tie_embeddings:
            self.lm_head = self.param(
                "lm_head", nn.with_logical_partitioning(_KERNEL_INIT, ("embed", "vocab")),
                (cfg.d_model, cfg.vocab_size), cfg.jnp_param_dtype,
            )

    def embed(self, tokens, positions):
        """The residual stream entering layer 0: token (and learned position) embeddings, [B,T,D]."""
        cfg = self.cfg
        dt = cfg.jnp_dtype
        # FSDP all-gathers the table's embed dim before the lookup (a gather cannot keep both the
        # table's fsdp split and the batch's); the vocab split over tensor stays.
        table = nn.with_logical_constraint(self.embedding, ("vocab", None))
        x = jnp.take(table, tokens, axis=0)
        if cfg.embed_scale:
            x = x * jnp.asarray(np.sqrt(cfg.d_model), self.embedding.dtype)
        if cfg.learned_positions:
            x = x + jnp.take(self.pos_embedding, positions, axis=0)
        return nn.with_logical_constraint(x.astype(dt), ("batch", "length", "embed"))

    def final(self, x):
        """Hidden states after the final norm, float32."""
        return self.final_norm(x).astype(jnp.float32)

    def __call__(self, tokens, positions, attn_mask, cache: KVCache | None = None):
        cfg = self.cfg
        x = self.embed(tokens, positions)
        kv, ctx = _layer_context(tokens.shape[1], positions, attn_mask, cache)
        (x, kv), _ = self.layers((x, kv), _layer_xs(cfg, 0, cfg.n_layers), ctx)
        return self.final(x), _next_cache(cache, kv, ctx, tokens.shape[1])

    def logits(self, hidden):
        cfg = self.cfg
        dt = cfg.jnp_dtype
        h = hidden.astype(dt)
        if cfg.tie_embeddings:
            out = jnp.einsum("btd,vd->btv", h, self.embedding.astype(dt), preferred_element_type=jnp.float32)
        else:
            out = jnp.einsum("btd,dv->btv", h, self.lm_head.astype(dt), preferred_element_type=jnp.float32)
        if cfg.final_logit_softcap:
            out = jnp.tanh(out / cfg.final_logit_softcap) * cfg.final_logit_softcap
        return nn.with_logical_constraint(out, ("batch", "length", "vocab"))


# --------------------------------------------------------------------------------------------
# Pure functions on the params pytree


def _dummy_inputs():
    return jnp.zeros((1, 1), jnp.int32), jnp.zeros((1, 1), jnp.int32), jnp.ones((1, 1), bool)


@functools.partial(jax.jit, static_argnums=0)
def init_boxed_params(cfg: ModelConfig, rng: jax.Array) -> Params:
    """Random params with ``nn.LogicallyPartitioned`` boxes (logical axis metadata); jitted."""
    return Decoder(cfg).init(rng, *_dummy_inputs())["params"]


def init_params(cfg: ModelConfig, rng: jax.Array) -> Params:
    """Random params of the right shapes, as plain arrays.

    For shapes only (large models), use ``jax.eval_shape(lambda: init_params(cfg, rng))``.
    """
    return nn.unbox(init_boxed_params(cfg, rng))


def param_logical_axes(cfg: ModelConfig) -> Params:
    """Tree (same structure as params) of ``PartitionSpec`` with logical axis names.

    Map to a mesh with ``nn.logical_to_mesh_sharding(specs, mesh, rules)``.
    """
    boxed = jax.eval_shape(lambda: init_boxed_params(cfg, jax.random.PRNGKey(0)))
    return nn.get_partition_spec(boxed)


def param_shapes(cfg: ModelConfig) -> Params:
    """Tree of ``jax.ShapeDtypeStruct`` of the params (nothing allocated)."""
    return jax.eval_shape(lambda: init_params(cfg, jax.random.PRNGKey(0)))


def count_params(params: Params) -> int:
    """Number of scalars in a params tree (arrays or ``ShapeDtypeStruct``s)."""
    return int(sum(np.prod(x.shape, dtype=np.int64) for x in jax.tree_util.tree_leaves(params)))


def _check_inputs(cfg: ModelConfig, tokens, positions, attn_mask, cache):
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be [batch, length], got shape {tokens.shape}")
    if positions.shape != tokens.shape or attn_mask.shape != tokens.shape:
        raise ValueError(
            f"tokens {tokens.shape}, positions {positions.shape} and attn_mask {attn_mask.shape} must match"
        )
    if cfg.learned_positions:
        # Past the table, jnp.take fills with NaN: every logit would silently be non-finite
        # (transformers raises). Lengths are static; concrete positions are checked by value.
        n_pos = cfg.max_position_embeddings
        span = cache.k.shape[2] if cache is not None else tokens.shape[1]
        if span > n_pos:
            raise ValueError(f"{span} positions ({'cache slots' if cache is not None else 'tokens'}) "
                             f"exceed the model's {n_pos} learned position embeddings (n_positions)")
        if not isinstance(positions, jax.core.Tracer) and positions.size:
            top = int(np.max(np.asarray(positions)))
            if top >= n_pos:
                raise ValueError(f"position {top} is past the model's {n_pos} learned position "
                                 f"embeddings (n_positions; the last is {n_pos - 1})")
    if cache is not None:
        if cache.k.shape[1] != tokens.shape[0]:
            raise ValueError(f"cache batch {cache.k.shape[1]} != tokens batch {tokens.shape[0]}")
        if tokens.shape[1] > cache.k.shape[2]:
            raise ValueError(f"{tokens.shape[1]} tokens do not fit a cache of {cache.k.shape[2]} slots")
        if cache.k.shape[0] != cfg.n_layers:
            raise ValueError(f"cache has {cache.k.shape[0]} layers, model has {cfg.n_layers}")


def forward(
    params: Params,
    cfg: ModelConfig,
    tokens: jax.Array,
    positions: jax.Array,
    attn_mask: jax.Array,
    cache: KVCache | None = None,
) -> tuple[jax.Array, KVCache | None]:
    """Hidden states after the final norm, float32 [B,T,D], and the updated cache (or None).

    ``tokens`` int32 [B,T]; ``positions`` int32 [B,T] (RoPE / learned positions, per row; for left
    padding use ``positions_from_mask``); ``attn_mask`` bool [B,T], True at real tokens. With a cache
    the T tokens are written at slots ``cache.index .. cache.index+T-1`` (the caller guarantees they
    fit: JAX clamps out-of-range writes) and attend to every valid earlier slot.
    """
    _check_inputs(cfg, tokens, positions, attn_mask, cache)
    return Decoder(cfg).apply({"params": params}, tokens, positions, attn_mask, cache)


def logits_from_hidden(params: Params, cfg: ModelConfig, hidden: jax.Array) -> jax.Array:
    """Logits float32 [B,T,V] from final hidden states (tied embedding or separate head)."""
    return Decoder(cfg).apply({"params": params}, hidden, method=Decoder.logits)


def apply(
    params: Params,
    cfg: ModelConfig,
    tokens: jax.Array,
    positions: jax.Array,
    attn_mask: jax.Array,
    cache: KVCache | None = None,
) -> tuple[jax.Array, KVCache | None]:
    """``forward`` followed by ``logits_from_hidden``: returns (logits f32 [B,T,V], cache)."""
    hidden, cache = forward(params, cfg, tokens, positions, attn_mask, cache)
    return logits_from_hidden(params, cfg, hidden), cache


# --------------------------------------------------------------------------------------------
# The decoder in pieces: embedding, a range of layers, the final norm. A frozen trunk (the layers
# below the trained ones) runs once, without a backward pass; its output (the residual stream at
# layer L) feeds the trained top layers. ``forward`` is ``final_hidden(run_layers(embed(...)))``.


def layer_slice(params: Params, start: int, stop: int | None = None) -> Params:
    """The stacked per-layer params of layers [start, stop) (``params['layers']`` sliced on its layer axis)."""
    return jax.tree_util.tree_map(lambda a: a[start:stop], params["layers"])


def embed(params: Params, cfg: ModelConfig, tokens: jax.Array, positions: jax.Array) -> jax.Array:
    """The residual stream entering layer 0, ``cfg.dtype`` [B,T,D]."""
    return Decoder(cfg).apply({"params": params}, tokens, positions, method=Decoder.embed)


def final_hidden(params: Params, cfg: ModelConfig, x: jax.Array) -> jax.Array:
    """Hidden states after the final norm, float32 [B,T,D], from the residual stream after the last layer."""
    return Decoder(cfg).apply({"params": params}, x, method=Decoder.final)


def _check_range(cfg: ModelConfig, start: int, stop: int) -> None:
    if not (isinstance(start, int) and isinstance(stop, int) and 0 <= start <= stop <= cfg.n_layers):
        raise ValueError(f"layer range [{start}, {stop}) must lie in [0, {cfg.n_layers}] with start <= stop")


def _run(layer_params: Params, cfg: ModelConfig, x, kv, ctx, start: int, stop: int):
    if stop == start:
        return x, kv
    n = jax.tree_util.tree_leaves(layer_params)[0].shape[0]
    if n != stop - start:
        raise ValueError(f"layer params hold {n} layers for the range [{start}, {stop})")
    return LayerStack(cfg, stop - start).apply({"params": {"layers": layer_params}}, x, kv,
                                               _layer_xs(cfg, start, stop), ctx)


def run_layers(layer_params: Params, cfg: ModelConfig, x: jax.Array, positions: jax.Array, attn_mask: jax.Array,
               start: int, stop: int) -> jax.Array:
    """The residual stream after layers [start, stop) of ``x`` (the stream entering layer ``start``),
    without a cache: the T positions attend to each other (causal, ``attn_mask``, windows).

    ``layer_params`` are those layers' stacked params (``layer_slice(params, start, stop)``, or
    trained copies of them); RoPE bases and windows are the layers' own.
    """
    _check_range(cfg, start, stop)
    kv, ctx = _layer_context(x.shape[1], positions, attn_mask, None)
    return _run(layer_params, cfg, x, kv, ctx, start, stop)[0]


def split_layers(params: Params, layer: int) -> tuple[Params, Params]:
    """The stacked params of layers [0, layer) and [layer, n_layers) (for a loop that runs
    ``forward_capturing`` many times: slice once, outside it)."""
    return layer_slice(params, 0, layer), layer_slice(params, layer)


def forward_capturing(
    params: Params,
    cfg: ModelConfig,
    tokens: jax.Array,
    positions: jax.Array,
    attn_mask: jax.Array,
    cache: KVCache | None,
    layer: int,
    split: tuple[Params, Params] | None = None,
) -> tuple[jax.Array, KVCache | None, jax.Array]:
    """``forward`` that also returns the residual stream entering layer ``layer`` ([B,T,D], the
    output of layers [0, layer); ``layer=0`` is the embedding): (hidden f32, cache, residual).
    ``split``: ``split_layers(params, layer)``, when the caller has it already."""
    _check_inputs(cfg, tokens, positions, attn_mask, cache)
    _check_range(cfg, layer, cfg.n_layers)
    n, t = cfg.n_layers, tokens.shape[1]
    lower, upper = split_layers(params, layer) if split is None else split
    x = embed(params, cfg, tokens, positions)
    kv, ctx = _layer_context(t, positions, attn_mask, cache)
    x, kv = _run(lower, cfg, x, kv, ctx, 0, layer)
    captured = x
    x, kv = _run(upper, cfg, x, kv, ctx, layer, n)
    return final_hidden(params, cfg, x), _next_cache(cache, kv, ctx, t), captured
