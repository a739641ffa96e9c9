"""Sweep results to files people can read and plot: CSV, JSON and PNG figures (matplotlib Agg)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from spgg_jax.tidy import tidy

SCALAR_COLUMNS = [
    "analysis", "reward", "n", "c_min", "c_max", "w0", "r", "kappa", "gamma", "rho", "P", "B", "m0",
    "tau", "cost_power", "cost_alpha", "final_score", "welfare", "threshold_met", "any_free_rider",
    "n_free_riders", "unique", "path_unique", "n_ties", "min_margin", "good",
]


def write_csv(rows: Sequence[Mapping], path: Path) -> Path:
    """One row per solved game; per-agent q_i and R_i spread over columns q_1.., R_1.. A variant's
    own parameters (not in ``SCALAR_COLUMNS``) come right after the shared ones."""
    max_n = max(int(r["n"]) for r in rows)
    header = [c for c in SCALAR_COLUMNS if any(c in r for r in rows)]
    extra = [k for r in rows for k, v in r.items()
             if k not in SCALAR_COLUMNS and k != "all_above_cmin" and not isinstance(v, (list, tuple))]
    at = header.index("final_score") if "final_score" in header else len(header)
    header[at:at] = list(dict.fromkeys(extra))
    header += [f"q_{i + 1}" for i in range(max_n)] + [f"R_{i + 1}" for i in range(max_n)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            q = list(r["q"]) + [""] * (max_n - len(r["q"]))
            rw = list(r["rewards"]) + [""] * (max_n - len(r["rewards"]))
            w.writerow([r.get(c, "") for c in header if not c.startswith(("q_", "R_"))] + q + rw)
    return path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _title(meta: Mapping | None) -> str:
    """What was run, for a figure's title: the reward, n and the contribution grid."""
    meta = meta or {}
    base = meta.get("base") or {}
    parts = [str(meta.get("reward", "game"))]
    if "n" in base:
        parts.append(f"n={base['n']}")
    text = ", ".join(parts)
    return text + (f": equilibria on a contribution grid of {meta['grid']} points" if "grid" in meta else "")


def _has_threshold(meta: Mapping | None) -> bool:
    from spgg_jax.game.rewards import REWARDS

    reward = (meta or {}).get("reward")
    return reward not in REWARDS or REWARDS.get(reward).has_threshold


def _edges(values: Sequence[float]) -> np.ndarray:
    """Cell edges around sorted grid values (midpoints inside, half a step beyond each end)."""
    v = np.asarray(values, float)
    if len(v) == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = (v[1:] + v[:-1]) / 2
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


def _save(fig, plt, path: Path, title: str, rect=(0, 0, 1, 1)) -> Path:
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_profiles(groups: Mapping[str, Sequence[Mapping]], path: Path, meta: Mapping | None = None) -> Path | None:
    """Contribution q_i by position: one line per n, and along the B or gamma sweep (who carries the load)."""
    panels = [(k, v) for k, v in groups.items() if k == "by_n" or k in ("1d_B", "1d_gamma")]
    if not panels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2), squeeze=False)
    for ax, (name, rows) in zip(axes[0], panels):
        if name == "by_n":
            picks, labels = rows, [f"n={r['n']}" for r in rows]
            ax.set_title("equilibrium contribution by position", fontsize=10)
        else:
            key = name[3:]
            picks = rows[:: max(1, int(np.ceil(len(rows) / 6)))]
            labels = [f"{key}={r[key]:g}" for r in picks]
            ax.set_title(f"equilibrium profile along the {key} sweep", fontsize=10)
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(picks)))  # ordered: dark = small, light = large
        for r, label, c in zip(picks, labels, colors):
            ax.plot(range(1, r["n"] + 1), r["q"], marker="o", color=c, label=label)
        ax.set_xlabel("position i (1 moves first)")
        ax.set_ylabel("equilibrium contribution q_i")
        ax.xaxis.get_major_locator().set_params(integer=True)
        top = max(max(r["q"]) for r in rows)
        ax.set_ylim(0, max(1.05, top * 1.05))
        ax.legend(fontsize=7, loc="lower right")
    return _save(fig, plt, path, _title(meta))


def plot_welfare(groups: Mapping[str, Sequence[Mapping]], path: Path, meta: Mapping | None = None) -> Path | None:
    """Welfare W (top row) and final score S (bottom row, with the threshold B) against each swept
    parameter of the 1-D sweeps: one quantity, one scale per panel."""
    panels = [(k[3:], v) for k, v in groups.items() if k.startswith("1d_")]
    if not panels:
        return None
    plt = _plt()
    cols = len(panels)
    fig, axes = plt.subplots(2, cols, figsize=(4.2 * cols, 6), squeeze=False, sharex="col")
    for j, (key, rows) in enumerate(panels):
        x = [r[key] for r in rows]
        tied = [i for i, r in enumerate(rows) if not r["unique"]]
        for ax, col, label, color in ((axes[0][j], "welfare", "welfare W = sum of rewards", "C0"),
                                      (axes[1][j], "final_score", "final score S", "C1")):
            y = [r[col] for r in rows]
            ax.plot(x, y, color=color, marker=".", label=label)
            if tied:
                ax.scatter([x[i] for i in tied], [y[i] for i in tied], color="red", s=18, zorder=3,
                           label="tie (not unique)")
            ax.set_ylabel(label)
        if _has_threshold(meta) and all("B" in r for r in rows):
            axes[1][j].plot(x, [r["B"] for r in rows], color="gray", ls=":", label="threshold B")
        axes[1][j].set_ylim(0, max(1.05, 1.05 * max(r["final_score"] for r in rows)))  # S lives in [c_min, c_max]
        axes[0][j].set_title(f"against {key}", fontsize=10)
        axes[1][j].set_xlabel(key)
        for ax in axes[:, j]:
            ax.legend(fontsize=7, loc="best")
    return _save(fig, plt, path, _title(meta))


CATEGORY_LABELS = ["ties (not unique)", "unique, S < B", "unique, S >= B, free rider", "unique, S >= B, all > c_min"]


def category(row: Mapping) -> int:
    if not row["unique"]:
        return 0
    if not row["threshold_met"]:
        return 1
    if row["any_free_rider"]:
        return 2
    return 3


def plot_maps(groups: Mapping[str, Sequence[Mapping]], path: Path, meta: Mapping | None = None) -> Path | None:
    """Uniqueness / threshold-met / free-riding map for each 2-D sweep; each cell is one solved game."""
    panels = [(k, v) for k, v in groups.items() if k.startswith("map_")]
    if not panels:
        return None
    plt = _plt()
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap(["#d62728", "#ff7f0e", "#bcbd22", "#2ca02c"])
    fig, axes = plt.subplots(1, len(panels), figsize=(max(6.5, 5.5 * len(panels)), 5.2), squeeze=False)
    for ax, (name, rows) in zip(axes[0], panels):
        x_key, y_key = name[4:].split("_", 1)
        xs = sorted({r[x_key] for r in rows})
        ys = sorted({r[y_key] for r in rows})
        img = np.full((len(ys), len(xs)), np.nan)
        for r in rows:
            img[ys.index(r[y_key]), xs.index(r[x_key])] = category(r)
        ax.pcolormesh(_edges(xs), _edges(ys), img, cmap=cmap, vmin=-0.5, vmax=3.5)
        ax.set_xlabel(x_key)
        ax.set_ylabel(y_key)
        ax.set_title(f"equilibrium over ({x_key}, {y_key}): {len(xs)} x {len(ys)} games", fontsize=10)
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i)) for i in range(4)]
    fig.legend(handles, CATEGORY_LABELS, loc="lower center", ncol=2, fontsize=8, frameon=False)
    return _save(fig, plt, path, _title(meta), rect=(0, 0.1, 1, 1))  # the legend below the panels


def write_report(groups: Mapping[str, Sequence[Mapping]], out_dir: Path, meta: Mapping) -> dict[str, str]:
    """Write sweep.csv, summary.json and the PNG figures into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [r for rs in groups.values() for r in rs]
    files = {"csv": str(write_csv(rows, out_dir / "sweep.csv"))}
    for key, fn, name in (
        ("profiles", plot_profiles, "profile_by_position.png"),
        ("welfare", plot_welfare, "welfare_vs_params.png"),
        ("maps", plot_maps, "equilibrium_maps.png"),
    ):
        p = fn(groups, out_dir / name, meta)
        if p is not None:
            files[key] = str(p)
    summary = {
        "meta": dict(meta),
        "points": len(rows),
        "fraction_unique": float(np.mean([r["unique"] for r in rows])),
        "fraction_threshold_met": float(np.mean([r["threshold_met"] for r in rows])),
        "fraction_any_free_rider": float(np.mean([r["any_free_rider"] for r in rows])),
        "fraction_good": float(np.mean([r["good"] for r in rows])),
        "files": files,
    }
    (out_dir / "summary.json").write_text(json.dumps(tidy(summary), indent=2))
    files["summary"] = str(out_dir / "summary.json")
    return files
