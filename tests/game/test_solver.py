"""Equilibrium solvers against brute force, against each other, and on the classic results."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spgg_jax.game.rewards import get_reward, make_params, register_reward
from spgg_jax.game.solver import contribution_grid, solve, solve_batch, solve_exact, solve_markov, solve_nash
from spgg_jax.game.sweep import stack_params


def brute_force_spne(reward, params, g):
    """Plain-Python backward induction over the full game tree (reference implementation)."""
    n = params.n
    grid = np.asarray(contribution_grid(params, g))
    profiles = np.array(list(itertools.product(range(g), repeat=n)))
    r_all = np.asarray(get_reward(reward).fn(jnp.asarray(grid[profiles]), params)).reshape((g,) * n + (n,))
    margins = []

    def play(history):
        i = len(history)
        if i == n:
            return history
        outcomes = [play(history + (a,)) for a in range(g)]
        pay = np.array([r_all[o][i] for o in outcomes])
        order = np.argsort(-pay, kind="stable")
        margins.append(pay[order[0]] - pay[order[1]])
        return outcomes[int(np.argmax(pay))]

    path = play(())
    return np.array(path), min(margins)


RANDOM_CASES = [
    ("mac_spgg", dict()),
    ("mac_spgg", dict(observation="po", B=0.5, gamma=0.9)),
    ("mac_spgg", dict(score="last", B=0.7, kappa=1.5)),
    ("mac_spgg", dict(cost="power", cost_power=3.0, rho=2.5)),
    ("mac_spgg", dict(cost="exponential", cost_alpha=2.0, P=0.5)),
    ("mac_spgg_smooth", dict(tau=0.03)),
    ("spgg", dict(r=1.5)),
]


@pytest.mark.parametrize("reward, kw", RANDOM_CASES)
def test_exact_matches_brute_force(reward, kw):
    g = 9
    p = make_params(reward, 3, **kw)
    path, min_margin = brute_force_spne(reward, p, g)
    eq = solve(reward, p, g, method="exact")
    np.testing.assert_array_equal(eq.index, path)
    np.testing.assert_allclose(float(eq.min_margin), min_margin, atol=1e-6)
    np.testing.assert_allclose(eq.q, np.asarray(contribution_grid(p, g))[path])


@pytest.mark.parametrize(
    "reward, kw, n", [c + (3,) for c in RANDOM_CASES] + [c + (4,) for c in RANDOM_CASES[:3]]
)
def test_markov_matches_exact(reward, kw, n):
    g = 13
    p = make_params(reward, n, **kw)
    ex = solve(reward, p, g, method="exact")
    mk = solve(reward, p, g, method="markov")
    np.testing.assert_array_equal(ex.index, mk.index)
    assert bool(ex.unique) == bool(mk.unique)
    assert int(ex.n_ties == 0) == int(mk.n_ties == 0)
    np.testing.assert_allclose(ex.min_margin, mk.min_margin, atol=1e-6)
    np.testing.assert_allclose(ex.path_margins, mk.path_margins, atol=1e-6)
    np.testing.assert_allclose(ex.welfare, mk.welfare, rtol=1e-6)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_classic_games_free_ride_for_every_r_below_n(n):
    grid = 21 if n == 4 else 101
    for r in np.linspace(1.05, n - 0.05, 6):
        p = make_params("pgg", n, r=float(r))
        for reward, method in (("pgg", "nash"), ("spgg", "exact"), ("spgg", "markov")):
            eq = solve(reward, p, grid, method=method)
            assert bool(eq.unique), (reward, r)
            assert bool(np.all(eq.free_riders)), (reward, r, eq.q)
            np.testing.assert_allclose(eq.q, p.c_min)


@pytest.mark.parametrize("n", [8, 16])
def test_scalable_solver_large_n(n):
    p = make_params("spgg", n, r=n / 2)
    eq = solve("spgg", p, 101)
    assert bool(eq.unique) and bool(np.all(eq.free_riders))
    mac = solve("mac_spgg", make_params("mac_spgg", n), 101)
    assert mac.q.shape == (n,)
    assert np.all(np.isfinite(np.asarray(mac.rewards)))


def test_default_mac_spgg_has_unique_effortful_equilibrium():
    p = make_params("mac_spgg", 3)
    eq = solve("mac_spgg", p, 101)
    assert bool(eq.unique)
    assert not bool(np.any(eq.free_riders))
    assert bool(eq.threshold_met) and float(eq.final_score) >= float(p.B)


def test_ties_are_reported_not_hidden():
    name = "test_only_flat"

    @register_reward(name, overwrite=True)
    def flat(q, p):
        """Everyone indifferent: every decision node is a tie."""
        return jnp.zeros_like(q)

    p = make_params(name, 3)
    eq = solve(name, p, 5, method="exact")
    assert not bool(eq.unique)
    assert int(eq.n_ties) == 1 + 5 + 25  # every node of the tree
    # an exact tie only off the equilibrium path still breaks uniqueness
    name2 = "test_only_offpath_tie"

    @register_reward(name2, overwrite=True)
    def offpath(q, p):
        """Agent 1 prefers high q_1; agent 2 is indifferent only after q_1 = c_min (off path)."""
        r1 = q[..., 0]
        r2 = jnp.where(q[..., 0] <= p.c_min, 0.0, -jnp.abs(q[..., 1] - 0.5))
        return jnp.stack([r1, r2], axis=-1)

    eq2 = solve(name2, make_params(name2, 2), 5, method="exact")
    assert int(eq2.index[0]) == 4  # on path agent 1 plays c_max
    assert float(eq2.path_margins[1]) > 1e-3  # strict on path
    assert not bool(eq2.unique) and int(eq2.n_ties) == 1


def test_nash_detects_multiple_equilibria():
    name = "test_only_coordination"

    @register_reward(name, timing="simultaneous", overwrite=True)
    def coordination(q, p):
        """Both want to match each other: every diagonal profile is an equilibrium."""
        d = -jnp.abs(q[..., 0] - q[..., 1])
        return jnp.stack([d, d], axis=-1)

    eq = solve(name, make_params(name, 2), 5)
    assert not bool(eq.unique)
    assert int(eq.n_ties) >= 4  # five equilibria


def test_solve_batch_equals_individual_solves_and_is_one_call():
    p = make_params("mac_spgg", 3)
    gammas = [0.0, 0.4, 0.8, 1.2, 1.6]
    stacked = stack_params(p, [{"gamma": g, "B": 0.5 + 0.05 * j} for j, g in enumerate(gammas)])
    batch = solve_batch("mac_spgg", stacked, 31, chunk=2)
    for j, g in enumerate(gammas):
        one = solve("mac_spgg", p.updated(gamma=g, B=0.5 + 0.05 * j), 31)
        np.testing.assert_array_equal(batch.index[j], one.index)
        assert bool(batch.unique[j]) == bool(one.unique)
    # vmap works directly too
    vm = jax.jit(jax.vmap(lambda pp: solve_markov("mac_spgg", pp, 31)))(stacked)
    np.testing.assert_array_equal(vm.index, batch.index)


def test_method_errors():
    p = make_params("mac_spgg", 3, weights=[0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="equal final-score weights"):
        solve("mac_spgg", p, 11, method="markov")
    solve("mac_spgg", p, 11, method="exact")  # exact handles any weights
    with pytest.raises(ValueError, match="overflow|exceed"):
        solve("mac_spgg", make_params("mac_spgg", 6), 101, method="exact")
    with pytest.raises(ValueError, match="unknown solver method"):
        solve("mac_spgg", make_params("mac_spgg", 3), 11, method="magic")


def test_solve_nash_direct_and_exact_direct_agree_on_dominant_strategy():
    p = make_params("pgg", 3, r=2.0)
    a = solve_nash("pgg", p, 11)
    b = solve_exact("spgg", p, 11)
    np.testing.assert_array_equal(a.index, b.index)


@pytest.mark.parametrize("B", [0.4, 0.49, 0.55, 0.67, 0.91])
def test_threshold_exactly_on_grid_sum_is_consistent(B):
    """S often lands exactly on B; both solvers must treat it alike (regression: float32 S < B)."""
    p = make_params("mac_spgg", 3, B=B)
    ex = solve("mac_spgg", p, 101, method="exact")
    mk = solve("mac_spgg", p, 101, method="markov")
    np.testing.assert_array_equal(ex.index, mk.index)
    assert bool(ex.threshold_met) == bool(mk.threshold_met)
    np.testing.assert_allclose(ex.welfare, mk.welfare, rtol=1e-5)
    if B == 0.91:  # float64 reference: (0.73, 1, 1), S = B exactly, W = 1.370
        np.testing.assert_allclose(ex.q, [0.73, 1.0, 1.0], atol=1e-6)
        assert bool(ex.threshold_met)
        np.testing.assert_allclose(float(ex.welfare), 1.3698, atol=2e-4)


def _mac_spgg_f64(q, n, obs, c_min=0.1, c_max=1.0, kappa=1.0, gamma=0.5, rho=1.8, P=1.5, B=0.6):
    """MAC-SPGG rewards in float64 (quadratic cost), the reference for the brute force below."""
    q = np.asarray(q, np.float64)
    m0 = 0.5 * (c_min + c_max)
    m = np.concatenate([[m0], q[:-1]]) if obs == "po" else np.array([m0] + [q[:i].mean() for i in range(1, n)])
    s = q.mean()
    return -0.5 * kappa * q * q + gamma * q * m + (rho / n) * s - P * (s < B - 1e-6)


def _spne_paths(n, g, obs, tol=1e-6, **kw):
    """Every SPNE path of MAC-SPGG on the grid over EVERY tie-break, by brute force in float64.

    A subgame's outcome set is the union, over the mover's actions a, of the outcomes o of a's
    subgame at which a is a best response within tol when every other action b is followed by
    its worst outcome for the mover (choices in different subgames are independent).
    """
    grid = 0.1 + 0.9 * np.arange(g) / (g - 1)

    def outcomes(h):
        i = len(h)
        if i == n:
            return {h: _mac_spgg_f64(grid[list(h)], n, obs, **kw)}
        sub = [outcomes(h + (a,)) for a in range(g)]
        worst = [min(v[i] for v in c.values()) for c in sub]
        out = {}
        for a, c in enumerate(sub):
            rival = max(worst[b] for b in range(g) if b != a)
            out.update({o: v for o, v in c.items() if v[i] >= rival - tol})
        return out

    return set(outcomes(()))


def test_f64_reference_matches_the_registered_reward():
    from spgg_jax.game.rewards import make_params

    p = make_params("mac_spgg", 3, observation="po", gamma=0.7, rho=1.3, P=0.8, B=0.5)
    q = np.array([[0.1, 0.55, 1.0], [0.3, 0.2, 0.9]])
    np.testing.assert_allclose(np.asarray(get_reward("mac_spgg").fn(jnp.asarray(q, jnp.float32), p)),
                               [_mac_spgg_f64(x, 3, "po", gamma=0.7, rho=1.3, P=0.8, B=0.5) for x in q],
                               atol=1e-6)


# The counterexample: flagged path_unique when the flag only checked the on-path margins
# under the lower-index tie-break, yet it has four SPNE paths in exact arithmetic.
FOUR_PATHS = dict(gamma=0.5, rho=1.6, P=0.5, B=0.6)


@pytest.mark.parametrize("method", ["exact", "markov"])
def test_path_unique_means_one_path_under_every_tie_break(method):
    """path_unique = the equilibrium path is the same under every tie-break (docs/theory.md)."""
    p = make_params("mac_spgg", 2, observation="po", **FOUR_PATHS)
    eq = jax.device_get(solve("mac_spgg", p, 19, method))
    paths = _spne_paths(2, 19, "po", **FOUR_PATHS)
    assert paths == {(13, 14), (15, 15), (16, 15), (17, 16)}
    assert tuple(np.asarray(eq.index).tolist()) in paths
    if method == "exact":  # the old flag's condition (all on-path margins strict) holds here
        assert np.all(np.asarray(eq.path_margins) > 1e-6)
    assert not bool(eq.path_unique) and not bool(eq.unique)
    assert float(eq.path_robust_margins[0]) <= 1e-6
    # the previous test game (two SPNE paths) is not path_unique either
    p2 = make_params("mac_spgg", 2, observation="po", gamma=0.3, rho=2.0, P=0.5, B=0.4)
    e2 = jax.device_get(solve("mac_spgg", p2, 19, method))
    assert _spne_paths(2, 19, "po", gamma=0.3, rho=2.0, P=0.5, B=0.4) == {(14, 13), (13, 13)}
    assert not bool(e2.path_unique)


@pytest.mark.parametrize("n,g,count", [(2, 19, 40), (3, 7, 10)])
def test_path_unique_against_brute_force_over_tie_breaks(n, g, count):
    """Over random games (FO and PO): path_unique implies exactly one SPNE path (both solvers);
    for two movers it is exact (path_unique iff one path); unique implies path_unique."""
    rng = np.random.default_rng(n)
    for obs in ("po", "fo"):
        pts = [dict(gamma=float(rng.choice(np.arange(0, 16) / 10)), rho=float(rng.choice(np.arange(0, 16) / 5)),
                    P=float(rng.choice([0.25, 0.5, 1.0, 1.5, 3.0])), B=float(rng.choice(np.arange(1, 11) / 10)))
               for _ in range(count)]
        pts[0] = dict(FOUR_PATHS)
        ps = stack_params(make_params("mac_spgg", n, observation=obs), pts)
        sols = {m: jax.device_get(solve_batch("mac_spgg", ps, g, m)) for m in ("exact", "markov")}
        singles = 0
        for b, d in enumerate(pts):
            paths = _spne_paths(n, g, obs, **d)
            for m, e in sols.items():
                pu = bool(e.path_unique[b])
                if pu:
                    assert paths == {tuple(np.asarray(e.index[b]).tolist())}, (m, obs, d, paths)
                if bool(e.unique[b]):
                    assert pu
                if n == 2:
                    assert pu == (len(paths) == 1), (m, obs, d, paths)
            singles += len(paths) == 1
        assert singles >= count // 2


def test_path_unique_without_a_monotone_declaration_is_conservative():
    """A per-agent reward not declared outcome-monotone: the scalable solver only trusts subgames
    whose every tie-break ends in the same state, so it never claims more than the exact solver."""
    import dataclasses

    from spgg_jax.game.rewards import make_params

    spec = dataclasses.replace(get_reward("mac_spgg"), outcome_monotone=False)
    pts = [dict(FOUR_PATHS), dict(gamma=0.9, rho=1.0, P=1.5, B=0.3), dict(gamma=0.3, rho=2.0, P=0.5, B=0.4)]
    for d in pts:
        p = make_params("mac_spgg", 2, observation="po", **d)
        mk = jax.device_get(solve_markov(spec, p, 19))
        ex = jax.device_get(solve_exact("mac_spgg", p, 19))
        assert bool(mk.path_unique) <= bool(ex.path_unique)
        if bool(mk.unique):
            assert bool(mk.path_unique)


def test_path_unique_nash_means_one_equilibrium():
    p = make_params("pgg", 3)
    e = jax.device_get(solve("pgg", p, 11, "nash"))
    assert bool(e.path_unique) and bool(e.unique)


def test_unique_games_have_one_spne_path():
    from spgg_jax.game.rewards import make_params

    checked = 0
    for gamma in (0.3, 0.5, 0.7, 0.9, 1.1):
        p = make_params("mac_spgg", 2, gamma=gamma)
        e = jax.device_get(solve("mac_spgg", p, 19, "exact"))
        if bool(e.unique):
            assert bool(e.path_unique)
            assert _spne_paths(2, 19, "fo", gamma=gamma) == {tuple(np.asarray(e.index).tolist())}
            checked += 1
    assert checked >= 1
