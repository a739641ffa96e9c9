"""Log-probabilities of given continuations under the model (the training-side recomputation).

Policy-gradient losses need log pi(token | prefix) recomputed in the training forward pass; this is
the pure function that does it, and the sampler's ``model_logprobs`` must agree with it.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from spgg_jax.models.config import ModelConfig
from spgg_jax.models.decoder import forward, logits_from_hidden, positions_from_mask


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
    p = prompt_tokens.shape[1]
    seq = jnp.concatenate([prompt_tokens, tokens], axis=1)
    seq_mask = jnp.concatenate([prompt_mask.astype(bool), mask.astype(bool)], axis=1)
    hidden, _ = forward(params, cfg, seq, positions_from_mask(seq_mask), seq_mask)
    logits = logits_from_hidden(params, cfg, hidden[:, p - 1 : -1]).astype(jnp.float32)
    temp = jnp.broadcast_to(jnp.asarray(temperature, jnp.float32), (seq.shape[0],))
    logits = logits / temp[:, None, None]
    lp = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), tokens[..., None], axis=-1)[..., 0]
    return jnp.where(mask, lp, 0.0)
