"""Advantages and losses on hand-computed cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spgg_jax.rl.advantages import gae, group_advantages, normalize
from spgg_jax.rl.losses import LOSSES, approx_kl, kl_to_reference, ppo_loss, value_loss


def test_gae_hand_computed():
    r = jnp.array([1.0, 0.0, 2.0])
    v = jnp.array([0.5, 0.4, 0.3, 10.0])  # the last is the bootstrap, cut by done at t=2
    d = jnp.array([False, False, True])
    gamma, lam = 0.9, 0.8
    d2 = 2.0 - 0.3
    d1 = 0.0 + 0.9 * 0.3 - 0.4
    d0 = 1.0 + 0.9 * 0.4 - 0.5
    a2 = d2
    a1 = d1 + 0.72 * a2
    a0 = d0 + 0.72 * a1
    adv, ret = gae(r, v, d, gamma, lam)
    np.testing.assert_allclose(adv, [a0, a1, a2], rtol=1e-6)
    np.testing.assert_allclose(ret, np.array([a0, a1, a2]) + np.array([0.5, 0.4, 0.3]), rtol=1e-6)


def test_gae_one_step_episodes_is_r_minus_v():
    r = jnp.array([[1.0, 2.0]])
    v = jnp.array([[0.25, 0.5], [9.0, 9.0]])
    adv, _ = gae(r, v, jnp.ones((1, 2), bool), 0.99, 0.95)
    np.testing.assert_allclose(adv, [[0.75, 1.5]])


def test_group_advantages():
    r = jnp.array([1.0, 0.0, 0.0, 1.0, 2.0, 2.0])
    a = group_advantages(r, 3, scale=False)
    np.testing.assert_allclose(a, [2 / 3, -1 / 3, -1 / 3, -1 / 3, 2 / 3, 2 / 3][:3] + [-2 / 3, 1 / 3, 1 / 3], rtol=1e-6)
    s = group_advantages(jnp.array([1.0, 1.0, 3.0, 5.0]), 2)
    np.testing.assert_allclose(s, [0.0, 0.0, -1.0, 1.0], atol=1e-5)
    with pytest.raises(ValueError, match="multiple of group_size"):
        group_advantages(jnp.ones(5), 2)


def test_normalize_masked():
    x = jnp.array([1.0, 3.0, 100.0])
    out = normalize(x, jnp.array([True, True, False]))
    np.testing.assert_allclose(out, [-1.0, 1.0, 0.0], atol=1e-6)


def test_ppo_clip_boundaries():
    eps = 0.2
    logp_old = jnp.zeros(4)
    ratio = jnp.array([1.5, 1.5, 0.5, 0.5])
    adv = jnp.array([1.0, -1.0, 1.0, -1.0])
    logp = jnp.log(ratio)
    mask = jnp.ones(4, bool)
    loss, m = ppo_loss(logp, logp_old, adv, mask, eps)
    # objective: min(r A, clip(r) A): [1.2, -1.5, 0.5, -0.8]
    np.testing.assert_allclose(loss, -np.mean([1.2, -1.5, 0.5, -0.8]), rtol=1e-6)
    np.testing.assert_allclose(m["clip_frac"], 0.5)
    # gradients vanish exactly where the clip is active (A>0, r>1+e and A<0, r<1-e)
    g = jax.grad(lambda lp: ppo_loss(lp, logp_old, adv, mask, eps)[0])(logp)
    assert g[0] == 0 and g[3] == 0 and g[1] != 0 and g[2] != 0
    # inside the trust region the gradient is -A r / N
    inside = jnp.log(jnp.array([1.1, 0.9]))
    g2 = jax.grad(lambda lp: ppo_loss(lp, jnp.zeros(2), jnp.array([2.0, -1.0]), jnp.ones(2, bool), eps)[0])(inside)
    np.testing.assert_allclose(g2, [-2.0 * 1.1 / 2, 1.0 * 0.9 / 2], rtol=1e-6)


def test_token_level_masking_and_kl_reference():
    logp = jnp.log(jnp.array([[0.5, 0.25, 0.9], [0.2, 0.2, 0.2]]))
    mask = jnp.array([[True, True, False], [True, False, False]])
    adv = jnp.array([[1.0], [-2.0]])
    loss, m = ppo_loss(logp, logp, adv, mask, 0.2, ref_logp=logp, kl_coef=1.0)
    np.testing.assert_allclose(loss, -(1.0 + 1.0 - 2.0) / 3, rtol=1e-6)
    np.testing.assert_allclose(m["kl_ref"], 0.0, atol=1e-7)
    assert np.all(np.asarray(approx_kl(logp, logp - 0.3)) >= 0)
    np.testing.assert_allclose(kl_to_reference(jnp.log(0.5), jnp.log(0.25)), 0.5 - np.log(0.5) - 1, rtol=1e-6)


def test_registry_and_value_loss():
    assert {"ppo", "reinforce"} <= set(LOSSES.names())
    lp = jnp.log(jnp.array([0.5, 0.5]))
    loss, _ = LOSSES.get("reinforce")(lp, lp, jnp.array([1.0, 2.0]), jnp.ones(2, bool))
    np.testing.assert_allclose(loss, -np.mean([np.log(0.5), 2 * np.log(0.5)]), rtol=1e-6)
    np.testing.assert_allclose(value_loss(jnp.array([1.0, 3.0]), jnp.array([0.0, 1.0])), 0.5 * (1 + 4) / 2)
    clipped = value_loss(jnp.array([1.0]), jnp.array([0.0]), values_old=jnp.array([0.0]), clip_eps=0.2)
    np.testing.assert_allclose(clipped, 0.5)
