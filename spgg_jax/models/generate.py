"""A small, correct KV-cached greedy decoder (reference for the fast sampler in spgg_jax.sampling).

Prefill the left-padded prompt into an empty cache, then decode one token at a time under
``lax.while_loop`` until ``max_new_tokens`` or every row has emitted an EOS id.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from spgg_jax.models.config import ModelConfig
from spgg_jax.models.decoder import forward, init_cache, logits_from_hidden, positions_from_mask


@functools.partial(jax.jit, static_argnames=("cfg", "max_new_tokens", "eos_ids", "pad_id"))
def _greedy(params, cfg, prompt_tokens, prompt_mask, max_new_tokens, eos_ids, pad_id):
    b, p = prompt_tokens.shape
    prompt_mask = prompt_mask.astype(bool)
    cache = init_cache(cfg, b, p + max_new_tokens)
    positions = positions_from_mask(prompt_mask)
    hidden, cache = forward(params, cfg, prompt_tokens, positions, prompt_mask, cache)
    eos = jnp.asarray(eos_ids if eos_ids else (-1,), jnp.int32)

    def pick(h):
        return jnp.argmax(logits_from_hidden(params, cfg, h)[:, -1], axis=-1).astype(jnp.int32)

    first = pick(hidden[:, -1:])
    out = jnp.full((b, max_new_tokens), pad_id, jnp.int32).at[:, 0].set(first)
    done = jnp.isin(first, eos)
    pos = positions[:, -1] + 1
    ones = jnp.ones((b, 1), bool)

    def cond(state):
        i, _, _, _, _, done = state
        return (i < max_new_tokens) & ~jnp.all(done)

    def body(state):
        i, tok, pos, cache, out, done = state
        h, cache = forward(params, cfg, tok[:, None], pos[:, None], ones, cache)
        nxt = jnp.where(done, pad_id, pick(h))
        out = lax.dynamic_update_slice(out, nxt[:, None], (0, i))
        return i + 1, nxt, pos + 1, cache, out, done | jnp.isin(nxt, eos)

    state = (jnp.asarray(1, jnp.int32), first, pos, cache, out, done)
    return lax.while_loop(cond, body, state)[4]


def greedy_generate(
    params: Any,
    cfg: ModelConfig,
    prompt_tokens: jax.Array,
    prompt_mask: jax.Array,
    max_new_tokens: int,
    eos_ids: Sequence[int] | None = None,
    pad_id: int = 0,
) -> jax.Array:
    """Greedy continuation: int32 [B, max_new_tokens].

    ``prompt_tokens`` int32 [B,P] left-padded, ``prompt_mask`` bool [B,P] (True at real tokens).
    ``eos_ids`` default to ``cfg.eos_token_ids``; a row's EOS token is kept and every later slot
    is ``pad_id``. Jitted (recompiles per prompt length / max_new_tokens).
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if prompt_tokens.ndim != 2 or prompt_mask.shape != prompt_tokens.shape:
        raise ValueError(
            f"prompt_tokens {prompt_tokens.shape} and prompt_mask {prompt_mask.shape} must be equal [B, P]"
        )
    eos = tuple(int(e) for e in (cfg.eos_token_ids if eos_ids is None else eos_ids))
    return _greedy(params, cfg, jnp.asarray(prompt_tokens, jnp.int32), jnp.asarray(prompt_mask),
                   int(max_new_tokens), eos, int(pad_id))
