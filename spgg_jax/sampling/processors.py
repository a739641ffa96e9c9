"""Pure logit processing: the sampling distribution as a function of raw logits and history.

Order as in transformers' ``generate``: repetition penalty, (presence penalty), temperature,
top-k, top-p. All parameters are per-row traced arrays.

- repetition penalty (transformers ``RepetitionPenaltyLogitsProcessor``): for every token id that
  occurs in the prompt or the generated text, a logit l becomes l / r if l > 0 else l * r.
- presence penalty (OpenAI / vLLM; transformers has none): subtract ``presence_penalty`` once from
  every token id that occurs in the *generated* text so far.
- top-k keeps the k largest logits (ties at the k-th value kept, as transformers does); top-p keeps
  the smallest set of most likely tokens whose probability mass is >= p (the token that crosses p is
  kept; ties at the cut-off value kept).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from spgg_jax.sampling.params import SamplingParams

NEG_INF = -jnp.inf


def apply_penalties(logits, p: SamplingParams, seen, seen_generated):
    """logits f32[B,V]; seen / seen_generated bool[B,V] (prompt+generated / generated only)."""
    rp = p.repetition_penalty[:, None]
    penalised = jnp.where(logits > 0, logits / rp, logits * rp)
    logits = jnp.where(seen, penalised, logits)
    return logits - p.presence_penalty[:, None] * seen_generated.astype(logits.dtype)


def _top_k_top_p(scaled, top_k, top_p):
    """Mask (to -inf) everything outside top-k then top-p; one descending sort of the vocab."""
    v = scaled.shape[-1]
    sorted_desc = -jnp.sort(-scaled, axis=-1)
    k = jnp.where(top_k > 0, jnp.minimum(top_k, v), v)
    kth = jnp.take_along_axis(sorted_desc, (k - 1)[:, None], axis=-1)
    ranks = jnp.arange(v)[None, :]
    sorted_k = jnp.where(ranks < k[:, None], sorted_desc, NEG_INF)
    probs = jax.nn.softmax(sorted_k, axis=-1)
    exclusive = jnp.cumsum(probs, axis=-1) - probs
    keep_sorted = (exclusive < top_p[:, None]) & (ranks < k[:, None])
    keep_sorted = keep_sorted.at[:, 0].set(True)  # always keep the most likely token
    n_keep = jnp.sum(keep_sorted, axis=-1)
    cutoff = jnp.take_along_axis(sorted_desc, (n_keep - 1)[:, None], axis=-1)
    cutoff = jnp.maximum(cutoff, kth)
    return jnp.where(scaled >= cutoff, scaled, NEG_INF)


def sampling_logits(logits, p: SamplingParams, seen, seen_generated):
    """Processed logits whose softmax is the sampling distribution (greedy rows: temperature 1).

    Returns f32[B,V] with -inf outside the top-k / top-p support. Skips the vocabulary sort (a
    ``lax.cond``) when no row uses top-k or top-p.
    """
    logits = apply_penalties(logits.astype(jnp.float32), p, seen, seen_generated)
    temp = jnp.where(p.temperature > 0, p.temperature, 1.0)
    scaled = logits / temp[:, None]
    needs_sort = jnp.any((p.top_k > 0) | (p.top_p < 1.0))
    return lax.cond(needs_sort, lambda x: _top_k_top_p(x, p.top_k, p.top_p), lambda x: x, scaled)


def choose_tokens(key, logits, p: SamplingParams, seen, seen_generated):
    """Sample one token per row. Returns (tokens i32[B], sampling log-prob f32[B], model log-prob f32[B]).

    Greedy rows (temperature 0) take the argmax of the penalised logits; their sampling
    log-probability is 0 (a deterministic choice). The model log-prob is log softmax of the raw
    logits, what a separate forward pass over the sequence gives.
    """
    proc = sampling_logits(logits, p, seen, seen_generated)
    sampled = jax.random.categorical(key, proc, axis=-1)
    greedy = jnp.argmax(proc, axis=-1)  # temperature/top-k/top-p do not move the argmax
    is_greedy = p.temperature <= 0
    tok = jnp.where(is_greedy, greedy, sampled).astype(jnp.int32)
    lp_all = jax.nn.log_softmax(proc, axis=-1)
    samp_lp = jnp.where(is_greedy, 0.0, jnp.take_along_axis(lp_all, tok[:, None], axis=-1)[:, 0])
    model_lp = jnp.take_along_axis(jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1), tok[:, None], axis=-1)[:, 0]
    return tok, samp_lp, model_lp
