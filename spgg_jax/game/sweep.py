"""Parameter sweeps: many games solved in one jitted, vmapped call.

A sweep is a list of parameter points around a base ``GameParams``; the points are stacked into one
``GameParams`` pytree with a leading batch axis and solved with :func:`solve_batch`. Any numeric
parameter can be swept: the shared ones and the variant's own (:func:`sweepable`). ``n`` is static
(it changes shapes), so each distinct ``n`` is its own call.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Mapping, Sequence

import jax
import numpy as np

from spgg_jax.game.params import GameParams
from spgg_jax.game.rewards import param_names, validate_for
from spgg_jax.game.solver import solve_batch


def sweepable(reward: str) -> list[str]:
    """The parameters a sweep of ``reward`` may vary (besides ``n``): shared and the variant's own,
    every numeric one except the per-agent ``weights``."""
    return [k for k in param_names(reward) if k != "weights"]


#: Most values one sweep axis may have.
MAX_AXIS_POINTS = 10_000


def parse_axis(spec: str, reward: str = "mac_spgg") -> tuple[str, list[float]]:
    """``"gamma=0:1:11"`` (start:stop:count, inclusive) or ``"rho=1,1.5,2"`` -> (name, values); the
    name must be ``n`` or a parameter of ``reward`` (:func:`sweepable`)."""
    if "=" not in spec:
        raise ValueError(f"sweep axis {spec!r} must look like name=start:stop:count or name=v1,v2,...")
    name, raw = (s.strip() for s in spec.split("=", 1))
    names = sweepable(reward)
    if name != "n" and name not in names:
        raise ValueError(f"cannot sweep {name!r} for reward {reward!r}; sweepable: n, {', '.join(names)}")
    try:
        if ":" in raw:
            start, stop, count = raw.split(":")
            count = int(count)
            if not 1 <= count <= MAX_AXIS_POINTS:
                raise ValueError(f"sweep axis {spec!r}: count must be 1..{MAX_AXIS_POINTS}, got {count}")
            values = np.linspace(float(start), float(stop), count).tolist()
        else:
            values = [float(v) for v in raw.split(",") if v.strip()]
    except ValueError as err:
        if str(err).startswith("sweep axis"):
            raise
        raise ValueError(f"sweep axis {spec!r}: values must be numbers (start:stop:count or v1,v2,...)") from None
    if not values:
        raise ValueError(f"sweep axis {spec!r} has no values")
    if not all(np.isfinite(values)):
        raise ValueError(f"sweep axis {spec!r}: values must be finite")
    if len(values) > MAX_AXIS_POINTS:
        raise ValueError(f"sweep axis {spec!r}: at most {MAX_AXIS_POINTS} values, got {len(values)}")
    if name == "n" and any(v != int(v) or v < 2 for v in values):
        raise ValueError(f"sweep axis {spec!r}: n values must be integers >= 2")
    if name == "n":
        values = [int(v) for v in values]
    return name, values


def stack_params(base: GameParams, points: Sequence[Mapping[str, float]]) -> GameParams:
    """Stack parameter points (dicts of overrides of ``base``) into one batched ``GameParams``."""
    cols = {k: np.asarray(getattr(base, k), np.float32) for k in base.param_names()}
    batch = {k: np.broadcast_to(v, (len(points),) + v.shape).copy() for k, v in cols.items()}
    for j, point in enumerate(points):
        for k, v in point.items():
            if k not in batch:
                raise ValueError(f"cannot sweep {k!r} for reward {base.reward or '(none)'!r}; sweepable: "
                                 f"{', '.join(k2 for k2 in batch if k2 != 'weights')}")
            batch[k][j] = v
    return base.updated(**batch)


def cartesian(axes: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    names = list(axes)
    return [dict(zip(names, vals)) for vals in itertools.product(*(axes[k] for k in names))]


def solve_points(
    reward: str,
    base: GameParams,
    points: Sequence[Mapping[str, Any]],
    grid_size: int = 101,
    method: str = "auto",
    chunk: int = 64,
) -> list[dict[str, Any]]:
    """Solve every point (``n`` may vary across points) and return one flat row per point."""
    rows: list[dict[str, Any]] = []
    by_n: dict[int, list[tuple[int, dict]]] = {}
    for j, pt in enumerate(points):
        pt = dict(pt)
        n = int(pt.pop("n", base.n))
        by_n.setdefault(n, []).append((j, pt))
    out: dict[int, dict[str, Any]] = {}
    for n, items in by_n.items():
        base_n = base if n == base.n else base.updated(n=n)
        stacked = stack_params(base_n, [pt for _, pt in items])
        validate_for(reward, stacked)
        eq = jax.device_get(solve_batch(reward, stacked, grid_size, method, chunk=chunk))
        for b, (j, pt) in enumerate(items):
            row: dict[str, Any] = {"reward": reward, "n": n}
            for k in stacked.param_names():
                if k != "weights":
                    row[k] = float(np.asarray(getattr(stacked, k))[b])
            row["final_score"] = float(eq.final_score[b])
            row["welfare"] = float(eq.welfare[b])
            row["threshold_met"] = bool(eq.threshold_met[b])
            row["any_free_rider"] = bool(np.any(eq.free_riders[b]))
            row["n_free_riders"] = int(np.sum(eq.free_riders[b]))
            row["all_above_cmin"] = not row["any_free_rider"]
            row["unique"] = bool(eq.unique[b])
            row["path_unique"] = bool(eq.path_unique[b])
            row["n_ties"] = int(eq.n_ties[b])
            row["min_margin"] = float(eq.min_margin[b])
            row["q"] = [float(x) for x in eq.q[b]]
            row["rewards"] = [float(x) for x in eq.rewards[b]]
            row["good"] = row["unique"] and row["all_above_cmin"] and row["threshold_met"]
            out[j] = row
    rows = [out[j] for j in range(len(points))]
    return rows


def one_at_a_time(base: GameParams, axes: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    """Points varying one parameter at a time around ``base`` (tagged with ``_axis``)."""
    pts = []
    for name, values in axes.items():
        for v in values:
            pts.append({name: v, "_axis": name})
    return pts


# The default analysis of `spgg game sweep` without --sweep: the comparative statics of the paper's
# Theorem 2 (welfare in gamma, rho, B), the effect of P and kappa, a uniqueness / threshold /
# free-riding map over (gamma, rho) and (P, B), and the contribution profile as n grows.
PRESET_1D = {
    "gamma": np.linspace(0.0, 1.5, 31).tolist(),
    "rho": np.linspace(0.0, 3.0, 31).tolist(),
    "P": np.linspace(0.0, 3.0, 31).tolist(),
    "B": np.linspace(0.1, 1.0, 31).tolist(),
    "kappa": np.linspace(0.25, 3.0, 31).tolist(),
}
PRESET_MAPS = {
    ("gamma", "rho"): (np.linspace(0.0, 1.5, 16).tolist(), np.linspace(0.0, 3.0, 16).tolist()),
    ("P", "B"): (np.linspace(0.0, 3.0, 16).tolist(), np.linspace(0.1, 1.0, 16).tolist()),
}
PRESET_N = [2, 3, 4]


def run_preset(reward: str, base: GameParams, grid_size: int = 101, method: str = "auto") -> dict[str, list[dict]]:
    """The default analysis (see ``PRESET_*``; axes that ``reward`` does not have are left out);
    returns rows grouped by sub-analysis."""
    names = set(sweepable(reward))
    groups: dict[str, list[dict]] = {}
    pts = one_at_a_time(base, {k: v for k, v in PRESET_1D.items() if k in names})
    axis_tags = [p.pop("_axis") for p in pts]
    rows = solve_points(reward, base, pts, grid_size, method)
    for tag, row in zip(axis_tags, rows):
        row["analysis"] = f"1d_{tag}"
        groups.setdefault(f"1d_{tag}", []).append(row)
    for (x, y), (xs, ys) in PRESET_MAPS.items():
        if not {x, y} <= names:
            continue
        rows = solve_points(reward, base, cartesian({x: xs, y: ys}), grid_size, method)
        for row in rows:
            row["analysis"] = f"map_{x}_{y}"
        groups[f"map_{x}_{y}"] = rows
    n_rows = solve_points(reward, base, [{"n": n} for n in PRESET_N], grid_size, method)
    for row in n_rows:
        row["analysis"] = "by_n"
    groups["by_n"] = n_rows
    return groups


def flatten(groups: Mapping[str, Iterable[dict]]) -> list[dict]:
    return [row for rows in groups.values() for row in rows]
