"""Log-probabilities of given continuations under the model (the training-side recomputation).

Policy-gradient losses need log pi(token | prefix) recomputed in the training forward pass; this is
the pure function that does it, and the sampler's ``model_logprobs`` must agree with it.

It comes in two pieces, so a learner that trains only the top layers runs the frozen trunk once and
without a backward pass: ``trunk_states`` (the residual stream entering layer ``start`` over the
prompt and continuation) and ``logprobs_from_layer`` (layers ``start..`` and the head, from that
stream). ``continuation_logprobs`` is the two with ``start=0``. The sampler can capture the same
stream during the rollout (``capture=``), which spares even the trunk's forward.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from spgg_jax.models.config import ModelConfig
from spgg_jax.models.decoder import embed, final_hidden, layer_slice, logits_from_hidden, positions_from_mask, run_layers


def _sequence(prompt_tokens, prompt_mask, tokens, mask):
    seq = jnp.concatenate([prompt_tokens, tokens], axis=1)
    seq_mask = jnp.concatenate([prompt_mask.astype(bool), mask.astype(bool)], axis=1)
    return seq, seq_mask, positions_from_mask(seq_mask)


def trunk_states(params: Any, cfg: ModelConfig, prompt_tokens: jax.Array, prompt_mask: jax.Array,
                 tokens: jax.Array, mask: jax.Array, layer: int) -> jax.Array:
    """The residual stream entering layer ``layer`` over prompt + continuation: [B, P+T, D]
    (``layer=0``: the embedding). Inputs as for :func:`continuation_logprobs`."""
    seq, seq_mask, positions = _sequence(prompt_tokens, prompt_mask, tokens, mask)
    x = embed(params, cfg, seq, positions)
    return run_layers(layer_slice(params, 0, layer), cfg, x, positions, seq_mask, 0, layer)


def logprobs_from_layer(params: Any, cfg: ModelConfig, x: jax.Array, prompt_mask: jax.Array, tokens: jax.Array,
                        mask: jax.Array, temperature: jax.Array | float = 1.0, start: int = 0) -> jax.Array:
    """:func:`continuation_logprobs` from the residual stream ``x`` [B, P+T, D] entering layer
    ``start`` (``trunk_states(..., layer=start)``, or the sampler's capture): runs layers
    ``start..n-1`` of ``params`` and the head. f32[B,T], 0 where masked."""
    p = prompt_mask.shape[1]
    seq_mask = jnp.concatenate([prompt_mask.astype(bool), mask.astype(bool)], axis=1)
    if x.shape[:2] != seq_mask.shape:
        raise ValueError(f"residual stream {x.shape[:2]} does not match prompt + continuation {seq_mask.shape}")
    positions = positions_from_mask(seq_mask)
    x = run_layers(layer_slice(params, start), cfg, x, positions, seq_mask, start, cfg.n_layers)
    hidden = final_hidden(params, cfg, x[:, p - 1: -1])
    logits = logits_from_hidden(params, cfg, hidden).astype(jnp.float32)
    temp = jnp.broadcast_to(jnp.asarray(temperature, jnp.float32), (x.shape[0],))
    logits = logits / temp[:, None, None]
    lp = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), tokens[..., None], axis=-1)[..., 0]
    return jnp.where(mask, lp, 0.0)


def continuation_logprobs(
    params: Any,
    cfg: ModelConfig,
    prompt_tokens: jax.Array,
    prompt_mask: jax.Array,
    tokens: jax.Array,
    mask: jax.Array,
    temperature: jax.Array | float = 1.0,
) -> jax.Array:
    """log p(tokens[:, t] | prompt, tokens[:, :t]) for every generated slot: f32[B,T] (0 where masked).

    ``prompt_tokens`` i32[B,P] left-padded with ``prompt_mask``; ``tokens`` i32[B,T] right-padded
    with ``mask``. ``temperature`` (scalar or f32[B]) divides the logits first (1 = raw model).
    """
    x = trunk_states(params, cfg, prompt_tokens, prompt_mask, tokens, mask, 0)
    return logprobs_from_layer(params, cfg, x, prompt_mask, tokens, mask, temperature, 0)
