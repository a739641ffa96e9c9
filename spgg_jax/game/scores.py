"""Final task score S(q) and the predecessor quality m_i(q) that agent i observes.

``SCORES`` registry: ``score(q: f32[..., n], params) -> f32[...]``. Built-ins: ``mean`` (the
weighted mean sum_j w_j q_j, default w_j = 1/n) and ``last`` (the last agent's q_n, the group's
answer in the LLM protocol).
"""

from __future__ import annotations

import jax.numpy as jnp

from spgg_jax.registry import Registry

SCORES: Registry = Registry("score")


@SCORES.register("mean")
def weighted_mean_score(q, p):
    """S = sum_j w_j q_j."""
    return jnp.sum(q * p.weights, axis=-1)


@SCORES.register("last")
def last_agent_score(q, p):
    """S = q_n."""
    return q[..., -1]


def predecessor_quality(q, p):
    """m_i for every agent: f32[..., n].

    FO: the mean of q_1..q_{i-1}; PO: q_{i-1}; agent 1 (no predecessors): the constant m0.
    """
    n = q.shape[-1]
    m0 = jnp.broadcast_to(jnp.asarray(p.m0, q.dtype)[..., None], q.shape[:-1] + (1,))
    if p.observation == "po":
        return jnp.concatenate([m0, q[..., :-1]], axis=-1)
    csum = jnp.cumsum(q, axis=-1)[..., :-1]
    counts = jnp.arange(1, n, dtype=q.dtype)
    return jnp.concatenate([m0, csum / counts], axis=-1)


def final_score(q, p):
    """S(q) with the score function named by ``p.score``."""
    return SCORES.get(p.score)(q, p)
