"""Reward variants: hand-computed values, batching, jit/vmap/grad, validation, registry."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spgg_jax.game.costs import COSTS
from spgg_jax.game.params import GameParams, parse_overrides
from spgg_jax.game.rewards import REWARDS, get_reward, make_params, register_reward, rewards
from spgg_jax.game.scores import final_score, predecessor_quality
from spgg_jax.game.sweep import stack_params


def test_mac_spgg_hand_computed_fo_and_po():
    p = make_params("mac_spgg", 3, kappa=1.0, gamma=0.5, rho=1.8, P=1.5, B=0.6, m0=0.55)
    q = jnp.array([0.5, 0.6, 0.9])
    s = (0.5 + 0.6 + 0.9) / 3  # 0.6667 >= B: no penalty
    m_fo = [0.55, 0.5, 0.55]
    expected = [-0.5 * qi**2 + 0.5 * qi * mi + 1.8 / 3 * s for qi, mi in zip([0.5, 0.6, 0.9], m_fo)]
    np.testing.assert_allclose(rewards("mac_spgg", q, p), expected, rtol=1e-6)
    p_po = p.updated(observation="po")
    m_po = [0.55, 0.5, 0.6]
    expected_po = [-0.5 * qi**2 + 0.5 * qi * mi + 1.8 / 3 * s for qi, mi in zip([0.5, 0.6, 0.9], m_po)]
    np.testing.assert_allclose(rewards("mac_spgg", q, p_po), expected_po, rtol=1e-6)
    # below the threshold everyone pays P
    q_low = jnp.array([0.2, 0.2, 0.2])
    diff = rewards("mac_spgg", q_low, p) - rewards("mac_spgg", q_low, p.updated(P=0.0))
    np.testing.assert_allclose(diff, [-1.5] * 3, rtol=1e-6)


def test_pgg_hand_computed():
    p = make_params("pgg", 4, r=2.0, w0=1.0)
    q = jnp.array([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(rewards("pgg", q, p), [1 - x + 2.0 / 4 * 1.0 for x in [0.1, 0.2, 0.3, 0.4]], rtol=1e-6)
    np.testing.assert_allclose(rewards("spgg", q, p), rewards("pgg", q, p))


@pytest.mark.parametrize("name", ["quadratic", "power", "exponential"])
def test_costs_strictly_convex_increasing(name):
    p = GameParams.create(3, cost=name, kappa=1.3, cost_power=2.5, cost_alpha=2.0)
    q = jnp.linspace(0.1, 1.0, 50)
    c = COSTS.get(name)(q, p)
    assert np.all(np.diff(np.asarray(c)) > 0)
    assert np.all(np.diff(np.asarray(c), 2) > 0)


def test_cost_values():
    p = GameParams.create(3, kappa=2.0, cost_power=3.0, cost_alpha=0.5)
    q = jnp.array(0.8)
    assert np.isclose(COSTS.get("quadratic")(q, p), 0.5 * 2.0 * 0.64)
    assert np.isclose(COSTS.get("power")(q, p), 2.0 * 0.8**3 / 3)
    assert np.isclose(COSTS.get("exponential")(q, p), 2.0 * (np.exp(0.4) - 1) / 0.5)


def test_scores_and_predecessor_quality():
    p = GameParams.create(3, weights=[0.2, 0.3, 0.5], m0=0.7)
    q = jnp.array([[0.1, 0.4, 1.0]])
    np.testing.assert_allclose(final_score(q, p), [0.02 + 0.12 + 0.5], rtol=1e-6)
    np.testing.assert_allclose(final_score(q, p.updated(score="last")), [1.0])
    np.testing.assert_allclose(predecessor_quality(q, p), [[0.7, 0.1, 0.25]], rtol=1e-6)
    np.testing.assert_allclose(predecessor_quality(q, p.updated(observation="po")), [[0.7, 0.1, 0.4]], rtol=1e-6)


@pytest.mark.parametrize("name", sorted(REWARDS.names()))
def test_batch_dims_jit_and_vmap_over_params(name):
    p = make_params(name, 3)
    q = jax.random.uniform(jax.random.key(0), (4, 5, 3), minval=0.1, maxval=1.0)
    fn = get_reward(name).fn
    out = jax.jit(fn)(q, p)
    chex.assert_shape(out, (4, 5, 3))
    chex.assert_tree_all_finite(out)
    np.testing.assert_allclose(out, fn(q, p), rtol=1e-6, atol=1e-6)
    # vmap over a stack of parameter pytrees: a sweep is one call, over a shared parameter (kappa) and
    # the variant's own first parameter (gamma for MAC-SPGG, w0 for the classic games)
    own = get_reward(name).params.names()[0]
    gammas = [0.0, 0.3, 0.9]
    stacked = stack_params(p, [{own: g, "kappa": 1.0 + g} for g in gammas])
    batched = jax.vmap(fn, in_axes=(None, 0))(q[0, 0], stacked)
    for j, g in enumerate(gammas):
        np.testing.assert_allclose(batched[j], fn(q[0, 0], p.updated(**{own: g, "kappa": 1.0 + g})), rtol=1e-5, atol=1e-6)


def test_grad_of_smooth_variant_matches_finite_differences():
    p = make_params("mac_spgg_smooth", 3, tau=0.1)
    q = jnp.array([0.3, 0.55, 0.8])
    f = lambda q: jnp.sum(rewards("mac_spgg_smooth", q, p) * jnp.array([1.0, 2.0, 3.0]))  # noqa: E731
    g = jax.grad(f)(q)
    eps = 1e-3
    fd = [(f(q.at[i].add(eps)) - f(q.at[i].add(-eps))) / (2 * eps) for i in range(3)]
    np.testing.assert_allclose(g, fd, rtol=2e-2, atol=2e-3)
    # gradients with respect to parameters too
    gp = jax.grad(lambda gamma: jnp.sum(rewards("mac_spgg_smooth", q, p.replace(gamma=gamma))))(0.5)
    m = predecessor_quality(q, p)
    np.testing.assert_allclose(gp, float(jnp.sum(q * m)), rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n=1), "n \\(number of agents\\)"),
        (dict(c_min=0.0), "c_min must be > 0"),
        (dict(c_min=1.0, c_max=0.5), "c_min must be < c_max"),
        (dict(kappa=-1.0), "kappa must be >= 0"),
        (dict(gamma=float("nan")), "gamma must be finite"),
        (dict(P=float("inf")), "P must be finite"),
        (dict(weights=[0.5, 0.5]), "weights must have shape"),
        (dict(weights=[0.5, 0.6, 0.1]), "weights must sum to 1"),
        (dict(observation="partial"), "observation must be one of"),
        (dict(cost="cubic"), "unknown cost 'cubic'"),
        (dict(bogus=1.0), "unknown game parameter"),
    ],
)
def test_validation_errors_name_the_bad_value(kwargs, match):
    n = kwargs.pop("n", 3)
    with pytest.raises(ValueError, match=match):
        make_params("mac_spgg", n, **kwargs)


@pytest.mark.parametrize("r", [1.0, 3.0, 4.5])
def test_classic_r_must_be_a_social_dilemma(r):
    with pytest.raises(ValueError, match=r"r must lie in \(1, n=3\)"):
        make_params("pgg", 3, r=r)
    with pytest.raises(ValueError, match=r"unknown game parameter\(s\) \['r'\] for reward 'mac_spgg'"):
        make_params("mac_spgg", 3, r=r)  # r is the classic games' own parameter, not MAC-SPGG's


def test_unknown_reward_lists_registered():
    with pytest.raises(KeyError, match="registered: .*mac_spgg"):
        get_reward("nope")


def test_register_custom_full_reward_and_duplicate_name():
    name = "test_only_linear"

    @register_reward(name, overwrite=True)
    def linear(q, p):
        """R_i = q_i - mean(q)"""
        return q - jnp.mean(q, axis=-1, keepdims=True)

    p = make_params(name, 3)
    np.testing.assert_allclose(rewards(name, jnp.array([0.1, 0.2, 0.3]), p), [-0.1, 0.0, 0.1], atol=1e-6)
    with pytest.raises(ValueError, match="already registered"):
        register_reward(name)(linear)


def test_parse_overrides_types_and_errors():
    out = parse_overrides(["gamma=0.5", "observation=po", "weights=0.2,0.3,0.5", "n=4"])
    assert out == {"gamma": 0.5, "observation": "po", "weights": [0.2, 0.3, 0.5], "n": 4}
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["gamma"])
    with pytest.raises(ValueError, match="must be a number"):
        parse_overrides(["gamma=abc"])
    with pytest.raises(ValueError, match="unknown game parameter 'gama'"):
        parse_overrides(["gama=1"])


def test_rewards_given_measured_score_and_effort_cost():
    from spgg_jax.game import rewards_given_score

    p = make_params("mac_spgg", 3)
    q = jnp.array([[0.1, 1.0, 1.0], [1.0, 1.0, 0.1]])
    # when S equals the mean of q, the measured-score form equals the plain reward
    np.testing.assert_allclose(rewards_given_score("mac_spgg", q, q.mean(-1), p), rewards("mac_spgg", q, p), rtol=1e-6)
    # a wrong final answer (S = 0) triggers the penalty for everyone
    r0 = rewards_given_score("mac_spgg", q, jnp.zeros(2), p)
    r1 = rewards_given_score("mac_spgg", q, jnp.ones(2), p)
    np.testing.assert_allclose(r1 - r0, 1.8 / 3 + 1.5, rtol=1e-6)
    # effort cost replaces the quality cost
    eff = jnp.full_like(q, 0.5)
    diff = rewards_given_score("mac_spgg", q, jnp.ones(2), p, effort=eff) - r1
    np.testing.assert_allclose(diff, 0.5 * q**2 - 0.5 * 0.25, rtol=1e-5, atol=1e-6)
    # benefits only
    np.testing.assert_allclose(rewards_given_score("mac_spgg", q, jnp.ones(2), p, effort=eff, charge_own_cost=False),
                               r1 + 0.5 * q**2, rtol=1e-5, atol=1e-6)
    # every per-agent variant takes an effort: pgg charges it linearly
    pp = make_params("pgg", 3)
    diff = rewards_given_score("pgg", q, jnp.ones(2), pp, effort=eff) - rewards_given_score("pgg", q, jnp.ones(2), pp)
    np.testing.assert_allclose(diff, q - 0.5, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="effort must have the shape"):
        rewards_given_score("pgg", q, jnp.ones(2), pp, effort=jnp.ones(3))


@pytest.mark.parametrize("name,own", [("pgg", "linear"), ("spgg", "linear"), ("mac_spgg", "cost"),
                                      ("mac_spgg_smooth", "cost")])
def test_per_agent_variants_split_benefit_and_own_cost(name, own):
    """R_i = benefit_i - own_cost(q_i) reproduces the game reward (x_i = q_i)."""
    from spgg_jax.game import get_reward
    from spgg_jax.game.rewards import reward_terms_given_score
    from spgg_jax.game.scores import final_score

    spec = get_reward(name)
    assert spec.own_cost_name == own and spec.benefit is not None
    p = make_params(name, 3, cost="power", cost_power=3.0) if own == "cost" else make_params(name, 3)
    q = jnp.array([[0.1, 0.55, 1.0], [0.7, 0.2, 0.4]])
    b, c = reward_terms_given_score(name, q, final_score(q, p), p)
    np.testing.assert_allclose(b - c, rewards(name, q, p), rtol=1e-5, atol=1e-6)
    want_c = q if own == "linear" else q**3 / 3
    np.testing.assert_allclose(c, want_c, rtol=1e-5, atol=1e-6)


def test_register_per_agent_reward_with_declared_own_cost():
    from spgg_jax.game import get_reward, register_per_agent_reward
    from spgg_jax.game.rewards import reward_terms_given_score

    @register_per_agent_reward("test_only_share", own_cost=lambda x, p: 2.0 * x, overwrite=True)
    def share(i, q_i, m_i, total, s, p):
        """benefit = S"""
        return s * jnp.ones_like(q_i)

    p = make_params("test_only_share", 2)
    q = jnp.array([0.2, 0.6])
    np.testing.assert_allclose(rewards("test_only_share", q, p), 0.4 - 2.0 * q, rtol=1e-6)  # S = mean q
    b, c = reward_terms_given_score("test_only_share", q, jnp.asarray(1.0), p, effort=jnp.array([0.5, 0.1]))
    np.testing.assert_allclose(b, [1.0, 1.0])
    np.testing.assert_allclose(c, [1.0, 0.2], rtol=1e-6)
    assert get_reward("test_only_share").own_cost_name == "<lambda>"
    with pytest.raises(ValueError, match="own_cost must be one of .*'quality'"):
        register_per_agent_reward("test_only_bad", own_cost="quality")
