"""Advantages and returns: pure functions on arrays (no models, no games).

- :func:`gae`: generalised advantage estimation over a time axis (Schulman et al. 2016).
- :func:`group_advantages`: GRPO-style baselines within groups of samples of the same prompt.
- :func:`normalize`: masked mean/std normalisation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gae(rewards, values, dones, gamma: float, lam: float):
    """GAE over the leading time axis.

    ``rewards`` f32[T, ...], ``values`` f32[T+1, ...] (bootstrap value last), ``dones`` bool[T, ...]
    (True where the episode ends after step t, cutting the bootstrap). Returns (advantages f32[T, ...],
    returns = advantages + values[:-1]).
    """
    not_done = 1.0 - jnp.asarray(dones, jnp.float32)
    deltas = rewards + gamma * values[1:] * not_done - values[:-1]

    def step(carry, x):
        delta, nd = x
        carry = delta + gamma * lam * nd * carry
        return carry, carry

    _, adv = jax.lax.scan(step, jnp.zeros_like(deltas[0]), (deltas, not_done), reverse=True)
    return adv, adv + values[:-1]


def group_advantages(rewards, group_size: int, scale: bool = True, eps: float = 1e-6):
    """GRPO baselines: ``rewards`` f32[B, ...] with B = groups * group_size, consecutive rows one group.

    Advantage = (r - mean of its group) / (std of its group + eps) if ``scale`` else r - mean.
    A group whose rewards are all equal gets zero advantage (no signal).
    """
    b = rewards.shape[0]
    if b % group_size:
        raise ValueError(f"batch {b} is not a multiple of group_size {group_size}")
    g = rewards.reshape((b // group_size, group_size) + rewards.shape[1:])
    centred = g - jnp.mean(g, axis=1, keepdims=True)
    if scale:
        centred = centred / (jnp.std(g, axis=1, keepdims=True) + eps)
    return centred.reshape(rewards.shape)


def normalize(x, mask=None, eps: float = 1e-8):
    """(x - mean) / (std + eps) over the entries where ``mask`` is True (all when None)."""
    if mask is None:
        mask = jnp.ones_like(x, bool)
    m = mask.astype(jnp.float32)
    n = jnp.maximum(jnp.sum(m), 1.0)
    mean = jnp.sum(x * m) / n
    var = jnp.sum(((x - mean) ** 2) * m) / n
    return jnp.where(mask, (x - mean) / (jnp.sqrt(var) + eps), 0.0)
