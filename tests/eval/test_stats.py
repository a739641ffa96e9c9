"""Evaluation statistics: known values, edge cases, and coverage on simulated data (seeded)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spgg_jax.eval.stats import (
    accuracy_ci,
    newcombe_paired_interval,
    paired_bootstrap_interval,
    paired_comparison,
    tango_paired_interval,
    wilson_interval,
)


def test_wilson_known_values_and_definition():
    # 0 of 10: upper limit z^2 / (n + z^2); 10 of 10 mirrors it
    z2 = 1.959963984540054 ** 2
    assert wilson_interval(0, 10) == pytest.approx((0.0, z2 / (10 + z2)), abs=1e-12)
    assert wilson_interval(10, 10) == pytest.approx((10 / (10 + z2), 1.0), abs=1e-12)
    lo, hi = wilson_interval(23, 60)
    assert (round(lo, 4), round(hi, 4)) == (0.2709, 0.5098)
    # the endpoints are where the score statistic equals z
    for p in (lo, hi):
        assert abs(23 / 60 - p) / math.sqrt(p * (1 - p) / 60) == pytest.approx(1.959963984540054, rel=1e-9)


def test_accuracy_ci_format_and_errors():
    out = accuracy_ci(np.array([True, False, True, True]))
    assert out["accuracy"] == 0.75 and out["n"] == 4 and len(out["ci95"]) == 2
    assert out["ci95"][0] < 0.75 < out["ci95"][1]
    assert accuracy_ci([0] * 16)["ci95"][1] > 0.15  # not the Wald interval's [0, 0]
    with pytest.raises(ValueError, match="empty"):
        accuracy_ci([])
    with pytest.raises(ValueError, match="0/1"):
        accuracy_ci([0.5, 1.0])
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        accuracy_ci([[1, 0], [0, 1]])


def test_newcombe_known_value():
    # Newcombe (1998), paired example 36 / 12 / 2 / 0 (n = 50): difference 0.2, method 10: 0.0569 to 0.3404
    lo, hi = newcombe_paired_interval(36, 12, 2, 0)
    assert (round(lo, 4), round(hi, 4)) == (0.0569, 0.3404)
    # its weakness: no discordant pairs give a zero-width interval (estimated correlation 1)
    assert newcombe_paired_interval(5, 0, 0, 5) == (0.0, 0.0)


def test_tango_known_values_and_definition():
    # Fagerland, Lydersen & Laake (2014), airway hyper-responsiveness example (1 / 1 / 7 / 12, n = 21):
    # Tango's interval -0.517 to -0.026
    lo, hi = tango_paired_interval(1, 1, 7, 12)
    assert (round(lo, 3), round(hi, 3)) == (-0.517, -0.026)
    # no discordant pairs: closed form +-z^2 / (n + z^2), a real interval around 0
    z2 = 1.959963984540054 ** 2
    assert tango_paired_interval(5, 0, 0, 5) == pytest.approx((-z2 / (10 + z2), z2 / (10 + z2)), abs=1e-9)
    # close to Newcombe's on a large table, and inside [-1, 1] at the extremes
    assert tango_paired_interval(200, 30, 10, 60) == pytest.approx(newcombe_paired_interval(200, 30, 10, 60), abs=0.005)
    lo, hi = tango_paired_interval(0, 10, 0, 0)
    assert 0 < lo < 1 and hi == 1.0


def test_paired_comparison_binary():
    a = np.array([1, 1, 1, 0, 0, 1, 0, 1], bool)
    b = np.array([1, 0, 0, 0, 1, 1, 0, 0], bool)
    out = paired_comparison("team", a, "single", b)
    assert out["a"] == "team" and out["b"] == "single" and out["n"] == 8 and out["method"] == "tango"
    assert out["mean_diff"] == pytest.approx(0.25)
    assert (out["a_only"], out["b_only"], out["discordant"]) == (3, 1, 4)
    assert out["ci95"][0] < 0.25 < out["ci95"][1]
    assert out["ci95"] == pytest.approx(list(tango_paired_interval(2, 3, 1, 2)))
    # swapping a and b mirrors the interval
    rev = paired_comparison("single", b, "team", a)
    assert rev["ci95"] == pytest.approx([-out["ci95"][1], -out["ci95"][0]])
    with pytest.raises(ValueError, match="same problems.*'team' has 8.*'single' has 7"):
        paired_comparison("team", a, "single", b[:7])


def test_paired_comparison_real_valued_bootstrap_is_seeded():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, 40)
    b = a - 0.1 + rng.normal(0, 0.05, 40)
    out = paired_comparison("x", a, "y", b)
    assert out["method"] == "bootstrap" and out == paired_comparison("x", a, "y", b)  # fixed seed
    assert out["ci95"][0] > 0.05 and out["ci95"][1] < 0.15
    with pytest.raises(ValueError, match="n_boot"):
        paired_bootstrap_interval(a - b, n_boot=100)


def _coverage(n, sims, draw, truth, stat):
    hits = 0
    for _ in range(sims):
        lo, hi = stat(*draw(n))
        hits += lo <= truth <= hi
    return hits / sims


@pytest.mark.parametrize("n", [20, 60])
def test_coverage_on_simulated_data(n):
    rng = np.random.default_rng(n)
    # correlated paired 0/1 outcomes: P(a) = .6, P(b) = .45, table probabilities both .4, a_only .2,
    # b_only .05, neither .35
    probs = np.array([0.4, 0.2, 0.05, 0.35])

    def draw_pairs(n):
        cell = rng.choice(4, size=n, p=probs)
        return np.isin(cell, [0, 1]), np.isin(cell, [0, 2])

    cov = _coverage(n, 400, draw_pairs, 0.15, lambda a, b: paired_comparison("a", a, "b", b)["ci95"])
    assert cov >= 0.90, cov
    cov = _coverage(n, 400, lambda n: (rng.random(n) < 0.15,), 0.15, lambda a: accuracy_ci(a)["ci95"])
    assert cov >= 0.90, cov
    # real-valued scores: bootstrap (2,000 resamples to keep the test short)
    draw_real = lambda n: (rng.beta(2, 2, n), rng.beta(2, 3, n))  # noqa: E731 means .5 and .4
    cov = _coverage(n, 200, draw_real, 0.1,
                    lambda a, b: paired_bootstrap_interval(a - b, n_boot=2000, seed=int(rng.integers(1 << 30))))
    assert cov >= 0.85, cov
