"""Statistics for evaluations: accuracy with a 95% interval and paired comparisons (pure numpy).

- :func:`accuracy_ci`: the Wilson score interval for a proportion. It keeps close to nominal
  coverage at small n and near 0 or 1, where the Wald interval p +- z sqrt(p(1-p)/n) collapses
  (it gives [0, 0] for 0 of 16 right).
- :func:`paired_comparison`: the difference of two methods' mean outcomes on the SAME problems.
  0/1 outcomes use Tango's asymptotic score interval for the difference of paired proportions
  (Tango 1998, Statistics in Medicine 17:891; recommended for all sample sizes by Fagerland,
  Lydersen & Laake 2014, BMC Med Res Methodol 14:116): the set of differences d not rejected by
  the score test whose variance uses the constrained maximum-likelihood estimate under d. It is
  deterministic (no resampling), stays inside [-1, 1], keeps close to nominal coverage at small n,
  and does not collapse when the methods never disagree (0 discordant pairs give a real interval
  around 0, where Newcombe's hybrid interval, also provided, has width 0 because the estimated
  correlation is 1). Real-valued scores (partial credit, judge scores) use a paired
  percentile bootstrap over problems (fixed seed, ``n_boot`` >= 10,000 resamples by default); it
  is approximate and undercovers a little at very small n (about 0.92-0.94 at n = 30 in our
  simulations).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

Z95 = 1.959963984540054  # the 0.975 quantile of the standard normal


def _as_outcomes(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of per-problem outcomes, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty: no problems to compute a statistic on")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf (e.g. {a[~np.isfinite(a)][:3].tolist()})")
    return a


def _is_binary(a: np.ndarray) -> bool:
    return bool(np.all((a == 0) | (a == 1)))


def wilson_interval(k: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for k successes of n: the p with |k/n - p| <= z sqrt(p(1-p)/n)."""
    if n <= 0:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 <= k <= n:
        raise ValueError(f"k must be in [0, n={n}], got {k}")
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    # exact ends at k = 0 and k = n (the formula gives them up to a rounding error, e.g. 5.6e-17)
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


def accuracy_ci(correct: Any) -> dict[str, Any]:
    """``{"accuracy", "n", "ci95": [lo, hi]}`` of per-problem 0/1 outcomes (Wilson score interval)."""
    a = _as_outcomes(correct, "correct")
    if not _is_binary(a):
        raise ValueError(f"correct must hold 0/1 (or bool) outcomes, got values like {np.unique(a)[:4].tolist()}")
    k, n = float(a.sum()), int(a.size)
    lo, hi = wilson_interval(k, n)
    return {"accuracy": k / n, "n": n, "ci95": [lo, hi]}


def newcombe_paired_interval(both: int, a_only: int, b_only: int, neither: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe's method-10 interval for p_a - p_b from a paired 2x2 table (no continuity correction).

    ``both``: problems both got right; ``a_only`` / ``b_only``: discordant pairs; ``neither``.
    """
    n = both + a_only + b_only + neither
    if n <= 0:
        raise ValueError("the paired table is empty")
    pa, pb = (both + a_only) / n, (both + b_only) / n
    la, ua = wilson_interval(both + a_only, n, z)
    lb, ub = wilson_interval(both + b_only, n, z)
    marg = (both + a_only) * (b_only + neither) * (both + b_only) * (a_only + neither)
    phi = 0.0 if marg == 0 else (both * neither - a_only * b_only) / math.sqrt(marg)
    d = pa - pb
    lo = d - math.sqrt(max(0.0, (pa - la) ** 2 - 2 * phi * (pa - la) * (ub - pb) + (ub - pb) ** 2))
    hi = d + math.sqrt(max(0.0, (ua - pa) ** 2 - 2 * phi * (ua - pa) * (pb - lb) + (pb - lb) ** 2))
    return max(-1.0, lo), min(1.0, hi)


def tango_paired_interval(both: int, a_only: int, b_only: int, neither: int, z: float = Z95) -> tuple[float, float]:
    """Tango's score interval for p_a - p_b from a paired 2x2 table (only the discordant cells and n
    matter). The endpoints solve |T(d)| = z by bisection (T decreases in d)."""
    n = both + a_only + b_only + neither
    if n <= 0:
        raise ValueError("the paired table is empty")
    b, c = float(a_only), float(b_only)

    def t_stat(d: float) -> float:
        big_a, big_b, big_c = 2.0 * n, -b - c + (2.0 * n - b + c) * d, -c * d * (1.0 - d)
        q21 = (math.sqrt(max(0.0, big_b * big_b - 4.0 * big_a * big_c)) - big_b) / (2.0 * big_a)
        var = n * (2.0 * q21 + d * (1.0 - d))
        num = b - c - n * d
        if var <= 0.0:
            return 0.0 if num == 0 else math.copysign(math.inf, num)
        return num / math.sqrt(var)

    est = (b - c) / n

    def solve(lo: float, hi: float, target: float) -> float:  # T(lo) >= target >= T(hi)
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            if t_stat(mid) >= target:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    lower = -1.0 if t_stat(-1.0) <= z else solve(-1.0, est, z)
    upper = 1.0 if t_stat(1.0) >= -z else solve(est, 1.0, -z)
    return max(-1.0, lower), min(1.0, upper)


def paired_bootstrap_interval(diff: np.ndarray, n_boot: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the mean of per-problem differences, resampling problems (fixed seed)."""
    if n_boot < 1000:
        raise ValueError(f"n_boot must be >= 1000 for a stable 95% interval, got {n_boot}")
    rng = np.random.default_rng(seed)
    n = diff.size
    means = np.empty(n_boot)
    chunk = max(1, 2_000_000 // n)  # bound memory: chunk x n indices at a time
    for s in range(0, n_boot, chunk):
        m = min(chunk, n_boot - s)
        means[s:s + m] = diff[rng.integers(0, n, size=(m, n))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(lo), float(hi)


def paired_comparison(name_a: str, correct_a: Any, name_b: str, correct_b: Any, *, n_boot: int = 10_000,
                      seed: int = 0) -> dict[str, Any]:
    """Paired comparison of methods a and b on the same problems (row k of both = problem k).

    Returns ``{"a", "b", "mean_diff" (mean a - mean b), "ci95": [lo, hi], "n", "discordant",
    "a_only", "b_only", "method"}``. 0/1 outcomes: Tango's paired score interval
    (``method="tango"``); ``discordant`` = a_only + b_only, the problems exactly one method got
    right (only they carry information about the difference). Real-valued scores: the paired
    bootstrap (``method="bootstrap"``, ``n_boot`` resamples, ``seed``); ``discordant`` counts the
    problems whose scores differ, ``a_only`` / ``b_only`` those where a / b scored higher.
    """
    a = _as_outcomes(correct_a, f"outcomes of {name_a!r}")
    b = _as_outcomes(correct_b, f"outcomes of {name_b!r}")
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes need the same problems: {name_a!r} has {a.size}, {name_b!r} has {b.size}")
    n = int(a.size)
    a_only, b_only = int(np.sum(a > b)), int(np.sum(b > a))
    if _is_binary(a) and _is_binary(b):
        both = int(np.sum((a == 1) & (b == 1)))
        lo, hi = tango_paired_interval(both, a_only, b_only, n - both - a_only - b_only)
        method = "tango"
    else:
        lo, hi = paired_bootstrap_interval(a - b, n_boot, seed)
        method = "bootstrap"
    return {"a": name_a, "b": name_b, "mean_diff": float(np.mean(a) - np.mean(b)), "ci95": [lo, hi], "n": n,
            "discordant": a_only + b_only, "a_only": a_only, "b_only": b_only, "method": method}
