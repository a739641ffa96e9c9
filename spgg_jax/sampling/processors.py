"""Pure logit processing: the sampling distribution as a function of raw logits and history.

Order as in transformers' ``generate``: repetition penalty, (presence penalty), temperature,
top-k, top-p. All parameters are per-row traced arrays. top-k and top-p are exact but use no sort:
a bisection over the float bit patterns finds each row's cut-off with 32 masked reductions.

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


def _ordered_bits(x):
    """uint32 keys with the same order as the float32 values (a total order; -inf is smallest)."""
    bits = lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)
    return jnp.where(bits >> 31 == 1, ~bits, bits | jnp.uint32(0x80000000))


def _largest_threshold(keys, ok):
    """Per row, the largest uint32 t with ok(row_mask(keys >= t)) True, by bisection (32 steps).

    ``ok(mask) -> bool[B]`` must be monotone (True for t = 0). Exact: no sort, 32 masked
    reductions over the vocabulary instead of an O(V log V) sort per row.
    """
    b = keys.shape[0]
    lo = jnp.zeros((b,), jnp.uint32)  # ok(lo) holds
    hi = jnp.full((b,), 0xFFFFFFFF, jnp.uint32)

    def body(_, carry):
        lo, hi = carry
        mid = lo + (hi - lo) // 2 + (hi - lo) % 2  # upper midpoint so the loop always moves
        good = ok(keys >= mid[:, None])
        return jnp.where(good, mid, lo), jnp.where(good, hi, mid - 1)

    lo, _ = lax.fori_loop(0, 32, body, (lo, hi))
    return lo


def _top_k(scaled, top_k):
    """Mask (to -inf) the logits below each row's k-th largest (ties at the k-th value kept; k <= 0: all)."""
    v = scaled.shape[-1]
    k = jnp.where(top_k > 0, jnp.minimum(top_k, v), v)
    keys = _ordered_bits(scaled)
    kth = _largest_threshold(keys, lambda m: jnp.sum(m, axis=-1) >= k)
    return jnp.where(keys >= kth[:, None], scaled, NEG_INF)


def _top_p(x, top_p):
    """Keep the smallest set of most likely tokens with mass >= p: every token whose probability is
    >= the largest cut-off c with mass(prob >= c) >= p (the token crossing p and ties kept)."""
    probs = jax.nn.softmax(x, axis=-1)
    pkeys = _ordered_bits(probs)
    cut = _largest_threshold(pkeys, lambda m: jnp.sum(jnp.where(m, probs, 0.0), axis=-1) >= top_p * (1 - 1e-6))
    keep = (pkeys >= cut[:, None]) | (probs >= jnp.max(probs, axis=-1, keepdims=True))
    return jnp.where(keep, x, NEG_INF)


def _top_k_top_p(scaled, top_k, top_p):
    """top-k, then top-p, exactly as a sort would (each an exact bisection, no sort)."""
    return _top_p(_top_k(scaled, top_k), top_p)


def sampling_logits(logits, p: SamplingParams, seen, seen_generated):
    """Processed logits whose softmax is the sampling distribution (greedy rows: temperature 1).

    Returns f32[B,V] with -inf outside the top-k / top-p support. Each cut-off search (32 masked
    reductions over the vocabulary) runs only when some row uses it (a ``lax.cond`` each): a batch
    that uses top-p but no top-k pays for one search, not two.
    """
    logits = apply_penalties(logits.astype(jnp.float32), p, seen, seen_generated)
    temp = jnp.where(p.temperature > 0, p.temperature, 1.0)
    scaled = logits / temp[:, None]
    scaled = lax.cond(jnp.any(p.top_k > 0), lambda x: _top_k(x, p.top_k), lambda x: x, scaled)
    return lax.cond(jnp.any(p.top_p < 1.0), lambda x: _top_p(x, p.top_p), lambda x: x, scaled)


DRAW_BLOCK = 128


def draw_tokens(key, proc):
    """One token per row from softmax(proc) by inverse CDF, with one uniform number per row.

    Two levels, both O(V): the vocabulary is cut into blocks of ``DRAW_BLOCK`` entries; the
    uniform picks a block from the cumulative block masses, then an entry from the cumulative
    masses inside that block. Exact in distribution (float32 rounding aside), like a Gumbel-max
    draw, but a Gumbel draw needs a random number and two logs per vocabulary entry, which on CPU
    cost more than the rest of the token choice together (docs/sampling.md#speed). Entries of zero
    probability (outside top-k / top-p) are never chosen.
    """
    b, v = proc.shape
    nb = -(-v // DRAW_BLOCK)
    probs = jax.nn.softmax(proc, axis=-1)
    probs = jnp.pad(probs, ((0, 0), (0, nb * DRAW_BLOCK - v)))
    blocks = probs.reshape(b, nb, DRAW_BLOCK)
    block_cum = jnp.cumsum(jnp.sum(blocks, axis=-1), axis=-1)  # [B, nb]
    u = jax.random.uniform(key, (b,)) * block_cum[:, -1]
    # the first block whose cumulative mass exceeds u (zero-mass blocks are stepped over)
    bi = jnp.minimum(jnp.sum(block_cum <= u[:, None], axis=-1), nb - 1)
    before = jnp.where(bi > 0, jnp.take_along_axis(block_cum, jnp.maximum(bi - 1, 0)[:, None], -1)[:, 0], 0.0)
    inner = jnp.take_along_axis(blocks, bi[:, None, None], axis=1)[:, 0]  # [B, DRAW_BLOCK]
    inner_cum = jnp.cumsum(inner, axis=-1)
    # u's place inside the block, kept below the block's own total (the two sums round differently)
    r = jnp.minimum(u - before, inner_cum[:, -1] * (1 - 1e-6))
    j = jnp.minimum(jnp.sum(inner_cum <= r[:, None], axis=-1), DRAW_BLOCK - 1)
    tok = bi * DRAW_BLOCK + j
    # a zero-probability pick can only come from rounding at a block's edge: take the block's best
    chosen = jnp.take_along_axis(inner, j[:, None], axis=-1)[:, 0]
    return jnp.where(chosen > 0, tok, bi * DRAW_BLOCK + jnp.argmax(inner, axis=-1)).astype(jnp.int32)


def choose_tokens(key, logits, p: SamplingParams, seen, seen_generated):
    """Sample one token per row. Returns (tokens i32[B], sampling log-prob f32[B], model log-prob f32[B]).

    Greedy rows (temperature 0) take the argmax of the penalised logits; their sampling
    log-probability is 0 (a deterministic choice). The model log-prob is log softmax of the raw
    logits, what a separate forward pass over the sequence gives.
    """
    proc = sampling_logits(logits, p, seen, seen_generated)
    sampled = draw_tokens(key, proc)
    greedy = jnp.argmax(proc, axis=-1)  # temperature/top-k/top-p do not move the argmax
    is_greedy = p.temperature <= 0
    tok = jnp.where(is_greedy, greedy, sampled).astype(jnp.int32)
    lp_all = jax.nn.log_softmax(proc, axis=-1)
    samp_lp = jnp.where(is_greedy, 0.0, jnp.take_along_axis(lp_all, tok[:, None], axis=-1)[:, 0])
    model_lp = jnp.take_along_axis(jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1), tok[:, None], axis=-1)[:, 0]
    return tok, samp_lp, model_lp
