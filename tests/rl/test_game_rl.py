"""Policy-gradient learners in the public-goods games (spgg_jax.rl.game_learners).

Compiles dominate the run time on CPU (a training run of a few hundred steps runs in about a
second once compiled), so each fixture compiles one vmapped training function and several tests
share it.
"""

import chex
import jax
import numpy as np
import pytest

from spgg_jax.game import make_params, solve
from spgg_jax.game.sweep import stack_params
from spgg_jax.rl.game_learners import METRIC_NAMES, GameRLConfig, greedy_path, make_train, seed_keys

# Learners' mean contribution per position (over seeds and the last 20% of steps) must lie within
# this distance of the SPNE of the grid game. Why 0.1 (10% of [c_min, c_max] = 0.9): at the default
# MAC-SPGG the SPNE sits on a ridge. Agents 1 and 2 split the fixed total 0.8 the threshold needs
# (agent 3 tops up to c_max), and agent 1's payoff along that ridge is -(q1 - 0.275)^2 / 2 + const,
# so missing its SPNE by 0.1 costs it 0.005: below the Monte-Carlo noise of a batch-128 reward
# estimate (about 0.02, measured in test_learners_reach_the_mac_spgg_spne), so a policy gradient
# barely sees it. Agents 2 and 3 sit a few hundredths above / below the SPNE because their
# policies keep exploration noise (max_concentration) and the threshold penalty punishes the
# misses that noise causes.
SPNE_TOL = 0.1
STEPS_MAC = 400


def _last(m, frac=0.2):
    k = max(1, int(m.shape[1] * frac))
    return np.asarray(m[:, -k:])


@pytest.fixture(scope="module")
def mac_run():
    cfg = GameRLConfig(reward="mac_spgg", n=3, steps=STEPS_MAC, batch=128, ppo_epochs=2, hidden=(16,), lr=3e-3)
    gp = make_params("mac_spgg", 3)
    params, metrics = jax.jit(jax.vmap(make_train(cfg), in_axes=(0, None)))(seed_keys(range(4)), gp)
    return cfg, gp, params, jax.device_get(metrics)


@pytest.fixture(scope="module")
def spgg_run():
    """Classic sequential PGG, seeds x two multipliers r < n, one vmapped call (REINFORCE, grid)."""
    cfg = GameRLConfig(reward="spgg", n=3, steps=150, batch=64, algorithm="reinforce", actions="grid",
                       grid_size=21, hidden=(16,), lr=1e-2)
    base = make_params("spgg", 3)
    points = [{"r": r} for r in (1.5, 2.5) for _ in range(2)]
    keys = seed_keys([0, 1, 0, 1])
    params, metrics = jax.jit(jax.vmap(make_train(cfg)))(keys, stack_params(base, points))
    return cfg, base, jax.device_get(metrics)


def test_metrics_have_documented_shapes(mac_run):
    cfg, _, _, m = mac_run
    assert set(m) == set(METRIC_NAMES)
    for k, v in m.items():
        per_pos = METRIC_NAMES[k].startswith("[n]")
        chex.assert_shape(v, (4, cfg.steps, cfg.n) if per_pos else (4, cfg.steps))
        assert np.all(np.isfinite(v)), k


def test_uniform_start(mac_run, spgg_run):
    """Zero-initialised heads: the first batch is uniform on [c_min, c_max] (mean 0.55, std ~0.26)."""
    for m in (mac_run[3], spgg_run[2]):
        np.testing.assert_allclose(m["q_mean"][:, 0].mean(), 0.55, atol=0.03)
        np.testing.assert_allclose(m["q_std"][:, 0].mean(), 0.9 / np.sqrt(12), atol=0.03)
    # Beta(1, 1): P(q within 5% of the range above c_min) = 0.05
    np.testing.assert_allclose(mac_run[3]["free_ride_rate"][:, 0].mean(), 0.05, atol=0.02)


def test_classic_spgg_learners_free_ride(spgg_run):
    cfg, base, m = spgg_run
    c_min = float(base.c_min)
    start, end = m["q_mean"][:, 0], _last(m["q_mean"]).mean(1)
    assert np.all(start > 0.45)
    # every run, both multipliers: every position ends within 0.02 of c_min, nearly always free riding
    np.testing.assert_array_less(end, c_min + 0.02)
    assert np.all(_last(m["free_ride_rate"]).mean(1) > 0.9)
    assert np.all(_last(m["welfare"]).mean(1) < m["welfare"][:, 0])  # the dilemma: welfare falls


def test_simultaneous_pgg_learners_free_ride_with_ppo_beta():
    cfg = GameRLConfig(reward="pgg", n=4, steps=150, batch=64, ppo_epochs=2, hidden=(16,), lr=1e-2)
    gp = make_params("pgg", 4, r=3.0)
    _, m = jax.jit(jax.vmap(make_train(cfg), in_axes=(0, None)))(seed_keys([0, 1]), gp)
    m = jax.device_get(m)
    assert np.all(m["q_mean"][:, 0] > 0.45)
    np.testing.assert_array_less(_last(m["q_mean"]).mean(1), float(gp.c_min) + 0.05)
    assert np.all(_last(m["free_ride_rate"]).mean(1) > 0.8)


def test_learners_reach_the_mac_spgg_spne(mac_run):
    cfg, gp, params, m = mac_run
    eq = solve("mac_spgg", gp, 101)
    spne = np.asarray(eq.q)
    np.testing.assert_allclose(spne, [0.271, 0.532, 1.0], atol=1e-3)  # the documented default SPNE
    q_end = _last(m["q_mean"])  # [seeds, k, n]
    learned = q_end.mean((0, 1))
    np.testing.assert_allclose(learned, spne, atol=SPNE_TOL)
    # ... in every seed: nobody free rides, the last agent carries the threshold, it is met
    per_seed = q_end.mean(1)
    assert np.all(per_seed > float(gp.c_min) + 0.1), per_seed
    assert np.all(per_seed[:, 2] > 0.9), per_seed
    assert np.all(_last(m["threshold_rate"]).mean(1) > 0.9)
    assert np.all(_last(m["free_ride_rate"]).mean(1) < 0.02)
    # the team meets the threshold with a small safety margin against its own exploration noise
    s_end = _last(m["score"]).mean(1)
    assert np.all((s_end >= float(gp.B)) & (s_end < float(gp.B) + 0.1)), s_end
    # the deterministic path (policy means) agrees with the sampled means
    np.testing.assert_allclose(_last(m["q_det"]).mean((0, 1)), learned, atol=0.03)
    # the greedy path of the returned parameters is the last logged q_det
    path = greedy_path(cfg, jax.tree.map(lambda x: x[0], params), gp)
    np.testing.assert_allclose(np.asarray(path), m["q_det"][0, -1], atol=1e-5)
    # the justification of SPNE_TOL: the agent-1 payoff noise of one batch is ~0.02 > 0.1^2 / 2
    r1_noise = m["reward_mean"][:, -50:, 0].std()
    assert r1_noise > SPNE_TOL**2 / 2, r1_noise


def test_vmap_over_seeds_and_params_matches_separate_runs():
    """(c) one vmapped call over (seed, params) == each run alone; (d) deterministic given the key."""
    cfg = GameRLConfig(reward="mac_spgg", n=3, steps=10, batch=32, algorithm="reinforce", actions="grid",
                       grid_size=11, hidden=(8,))
    base = make_params("mac_spgg", 3)
    stacked = stack_params(base, [{"gamma": 0.2}, {"gamma": 0.2}, {"gamma": 0.9, "B": 0.5}])
    keys = seed_keys([0, 1, 0])
    train = make_train(cfg)
    pv, mv = jax.jit(jax.vmap(train))(keys, stacked)
    single = jax.jit(train)
    runs = []
    for j in range(3):
        gp_j = jax.tree.map(lambda x: x[j], stacked)
        ps, ms = single(keys[j], gp_j)
        runs.append(ms)
        # float32 reduction order differs between batched and single matmuls (ulp-level); the
        # sampled actions are identical, so everything agrees to ~1e-5
        for k in mv:
            np.testing.assert_allclose(mv[k][j], ms[k], atol=1e-4, rtol=1e-4, err_msg=k)
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[j], pv), ps, atol=1e-4, rtol=1e-4)
    # the three runs really differ (seed, then params), so the comparison above is not vacuous
    assert not np.allclose(runs[0]["q_mean"], runs[1]["q_mean"])
    assert not np.allclose(runs[0]["q_mean"], runs[2]["q_mean"])
    # (d) determinism: the same key and params give bit-identical results
    gp0 = jax.tree.map(lambda x: x[0], stacked)
    p_a, m_a = single(keys[0], gp0)
    p_b, m_b = single(keys[0], gp0)
    chex.assert_trees_all_equal(m_a, runs[0])
    chex.assert_trees_all_equal((p_a, m_a), (p_b, m_b))


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"algorithm": "a2c"}, "algorithm"),
        ({"actions": "gauss"}, "actions"),
        ({"reward": "nope"}, "nope"),
        ({"n": 1}, "n"),
        ({"batch": 1}, "batch"),
        ({"lr": 0.0}, "lr"),
        ({"hidden": (8, 0)}, "hidden"),
        ({"max_concentration": 1.0}, "max_concentration"),
    ],
)
def test_config_validation_names_the_bad_value(kw, match):
    with pytest.raises((ValueError, KeyError), match=match):
        GameRLConfig(**kw)


def test_n_mismatch_is_rejected():
    train = make_train(GameRLConfig(n=3, steps=1, batch=2))
    with pytest.raises(ValueError, match="n=4"):
        jax.eval_shape(train, jax.random.key(0), make_params("mac_spgg", 4))
