"""Policy-gradient losses as pure functions, in a registry (``LOSSES``).

An algorithm (``spgg_jax.rl.algorithms``) pairs one of these losses with an advantage estimator;
GRPO, for example, is the ``ppo`` loss on group-normalised advantages.

Every loss takes log-probabilities under the current policy (recomputed inside the training
forward pass), the behaviour log-probabilities recorded at sampling time, advantages and a mask,
and returns ``(loss, metrics)``; metrics include the clip fraction and an approximate KL.
"""

from __future__ import annotations

import jax.numpy as jnp

from spgg_jax.registry import Registry

LOSSES: Registry = Registry("policy loss")


def masked_mean(x, mask):
    m = mask.astype(jnp.float32)
    return jnp.sum(x * m) / jnp.maximum(jnp.sum(m), 1.0)


def ppo_clip_objective(logp, logp_old, adv, clip_eps: float):
    """Per-element clipped surrogate min(r A, clip(r, 1-e, 1+e) A) and whether it was clipped."""
    ratio = jnp.exp(logp - logp_old)
    unclipped = ratio * adv
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv
    return jnp.minimum(unclipped, clipped), (clipped < unclipped), ratio


def approx_kl(logp, logp_old):
    """The k3 estimator of KL(old || new), E[(r - 1) - log r] with r = p_new / p_old: >= 0, low variance."""
    log_r = logp - logp_old
    return jnp.exp(log_r) - 1.0 - log_r


def kl_to_reference(logp, ref_logp):
    """k3 estimator of KL(pi || pi_ref) per token, for samples drawn from pi: exp(d) - d - 1, d = ref - logp."""
    d = ref_logp - logp
    return jnp.exp(d) - d - 1.0


@LOSSES.register("ppo")
def ppo_loss(logp, logp_old, adv, mask, clip_eps: float = 0.2, ref_logp=None, kl_coef: float = 0.0):
    """PPO clipped surrogate (negated, averaged over valid entries), plus an optional KL penalty.

    Shapes broadcast: token-level use passes ``adv`` as f32[B, 1] against f32[B, T] log-probs.
    """
    adv = jnp.broadcast_to(adv, logp.shape)
    obj, was_clipped, ratio = ppo_clip_objective(logp, logp_old, adv, clip_eps)
    loss = -masked_mean(obj, mask)
    metrics = {
        "clip_frac": masked_mean(was_clipped.astype(jnp.float32), mask),
        "approx_kl": masked_mean(approx_kl(logp, logp_old), mask),
        "ratio_mean": masked_mean(ratio, mask),
    }
    if ref_logp is not None:
        kl = masked_mean(kl_to_reference(logp, ref_logp), mask)
        loss = loss + kl_coef * kl
        metrics["kl_ref"] = kl
    return loss, metrics


@LOSSES.register("reinforce")
def reinforce_loss(logp, logp_old, adv, mask, clip_eps: float = 0.2, ref_logp=None, kl_coef: float = 0.0):
    """Vanilla policy gradient -A log pi (on-policy; ``logp_old`` only feeds the metrics)."""
    adv = jnp.broadcast_to(adv, logp.shape)
    loss = -masked_mean(adv * logp, mask)
    metrics = {"clip_frac": jnp.zeros(()), "approx_kl": masked_mean(approx_kl(logp, logp_old), mask)}
    if ref_logp is not None:
        kl = masked_mean(kl_to_reference(logp, ref_logp), mask)
        loss = loss + kl_coef * kl
        metrics["kl_ref"] = kl
    return loss, metrics


def value_loss(values, returns, values_old=None, clip_eps: float | None = None, mask=None):
    """0.5 (V - R)^2, optionally PPO-style clipped around the old values."""
    mask = jnp.ones_like(values, bool) if mask is None else mask
    err = (values - returns) ** 2
    if values_old is not None and clip_eps is not None:
        clipped = values_old + jnp.clip(values - values_old, -clip_eps, clip_eps)
        err = jnp.maximum(err, (clipped - returns) ** 2)
    return 0.5 * masked_mean(err, mask)
