"""One configuration over several seeds: each difference of accuracy per seed (with its within-run
paired interval) and its mean across seeds with a t-interval over the seeds.

``aggregate({seed: eval_json, ...})`` reads the evaluations of the runs (``eval.json`` of each
``RUN_DIR/seed<S>``, written by ``spgg train --seeds``) and returns

    {"seeds": [...], "k": K,
     "differences": [{"name", "a", "b", "per_seed": [{"seed", "b", "mean_diff", "ci95"}], "mean", "sd",
                      "ci95"}, ...],
     "rows": [{"method", "per_seed": [{"seed", "accuracy", "tokens_generated"}], "mean", "sd", "ci95"}, ...]}

The first difference is the headline (the trained team minus the best untrained baseline chosen on
each run's validation split; the baseline may differ between seeds and is named per seed), then
``team, trained - ROW`` for every row. The across-seed interval is mean +- t(0.975, K-1) sd / sqrt(K):
it treats the seeds as independent draws of a training run (each seed also draws its own problems),
so it says how much the result moves from one training run to the next, which the within-run
intervals (over problems, for one run) do not. With fewer than 2 seeds it is ``None``; with 2 it is
very wide (t = 12.7): use at least 3 seeds.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

HEADLINE = "team, trained - best untrained baseline (chosen on validation)"


def t_interval(values: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """``{"mean", "sd", "ci95": [lo, hi] or None, "k"}``: Student's t interval of the mean over ``values``."""
    v = np.asarray(values, np.float64)
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"t_interval needs a non-empty list of finite numbers, got {list(values)!r}")
    k, mean = int(v.size), float(v.mean())
    if k < 2:
        return {"mean": mean, "sd": None, "ci95": None, "k": k}
    from scipy.stats import t as student_t

    sd = float(v.std(ddof=1))
    half = float(student_t.ppf(0.5 + level / 2, k - 1)) * sd / math.sqrt(k)
    return {"mean": mean, "sd": sd, "ci95": [mean - half, mean + half], "k": k}


def _difference(name: str, a: str, b: str | None, per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    stats = t_interval([p["mean_diff"] for p in per_seed])
    return {"name": name, "a": a, "b": b, "per_seed": per_seed, "mean": stats["mean"], "sd": stats["sd"],
            "ci95": stats["ci95"]}


def aggregate(results: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """Per-seed and across-seed figures of the seeds' evaluations (module docstring)."""
    if not results:
        raise ValueError("no evaluated seeds to aggregate (did the runs evaluate? eval_size must be > 0)")
    seeds = sorted(results)
    diffs = []
    heads = [(s, results[s].get("headline")) for s in seeds]
    heads = [(s, h) for s, h in heads if h]
    if heads:
        diffs.append(_difference(HEADLINE, heads[0][1]["a"], None,
                                 [{"seed": s, "b": h["b"], "mean_diff": h["mean_diff"], "ci95": h["ci95"]}
                                  for s, h in heads]))
    pairs = list(dict.fromkeys((c["a"], c["b"]) for s in seeds for c in results[s].get("comparisons", [])))
    for a, b in pairs:
        per = [{"seed": s, "b": b, "mean_diff": c["mean_diff"], "ci95": c["ci95"]}
               for s in seeds for c in results[s].get("comparisons", []) if (c["a"], c["b"]) == (a, b)]
        diffs.append(_difference(f"{a} - {b}", a, b, per))
    rows = []
    for m in dict.fromkeys(r["method"] for s in seeds for r in results[s]["rows"]):
        per = [{"seed": s, "accuracy": r["accuracy"], "tokens_generated": r["tokens_generated"]}
               for s in seeds for r in results[s]["rows"] if r["method"] == m]
        stats = t_interval([p["accuracy"] for p in per])
        rows.append({"method": m, "per_seed": per, "mean": stats["mean"], "sd": stats["sd"], "ci95": stats["ci95"]})
    return {"seeds": seeds, "k": len(seeds), "differences": diffs, "rows": rows}


def _cell(d: float, ci: Sequence[float] | None, sign: str = "+") -> str:
    return f"{d:{sign}.3f}" + ("" if ci is None else f" [{ci[0]:{sign}.3f}, {ci[1]:{sign}.3f}]")


def format_seeds(agg: Mapping[str, Any]) -> str:
    """The per-seed differences (within-run intervals) and their means across seeds (t-intervals)."""
    seeds, k = agg["seeds"], agg["k"]
    name_w = max([len(d["name"]) for d in agg["differences"]] + [len(r["method"]) for r in agg["rows"]] + [10])
    head = f"{'difference of accuracy':{name_w}s}  " + "  ".join(f"{'seed ' + str(s):>24s}" for s in seeds) + \
        f"  {'mean across seeds (t 95%)':>28s}"
    lines = [f"{k} seeds: {', '.join(map(str, seeds))}; per seed: the run's paired 95% interval over its test "
             f"problems; across seeds: mean and Student's t 95% interval over the {k} runs", head, "-" * len(head)]
    for d in agg["differences"]:
        by_seed = {p["seed"]: p for p in d["per_seed"]}
        cells = [f"{_cell(by_seed[s]['mean_diff'], by_seed[s]['ci95']) if s in by_seed else '-':>24s}" for s in seeds]
        lines.append(f"{d['name']:{name_w}s}  " + "  ".join(cells) + f"  {_cell(d['mean'], d['ci95']):>28s}")
        if d["b"] is None:  # the headline: which baseline validation chose in each run
            lines.append(f"{'':{name_w}s}  baseline chosen: " + "; ".join(f"seed {p['seed']}: {p['b']}"
                                                                           for p in d["per_seed"]))
    lines += ["", f"{'accuracy':{name_w}s}  " + "  ".join(f"{'seed ' + str(s):>24s}" for s in seeds)
              + f"  {'mean across seeds (t 95%)':>28s}"]
    for r in agg["rows"]:
        by_seed = {p["seed"]: p for p in r["per_seed"]}
        cells = [f"{by_seed[s]['accuracy']:>24.3f}" if s in by_seed else f"{'-':>24s}" for s in seeds]
        lines.append(f"{r['method']:{name_w}s}  " + "  ".join(cells) + f"  {_cell(r['mean'], r['ci95'], '-'):>28s}")
    if k < 3:
        lines.append(f"note: {k} seed(s) give a very wide (or no) interval across seeds; use at least 3")
    return "\n".join(lines)
