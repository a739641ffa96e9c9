"""Sweep results to files people can read and plot: CSV, JSON and PNG figures (matplotlib Agg)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

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


def plot_profiles(groups: Mapping[str, Sequence[Mapping]], path: Path) -> Path | None:
    """Contribution q_i by position: one line per n, and along the B sweep (who carries the load)."""
    panels = [(k, v) for k, v in groups.items() if k == "by_n" or k in ("1d_B", "1d_gamma")]
    if not panels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (name, rows) in zip(axes[0], panels):
        if name == "by_n":
            for r in rows:
                ax.plot(range(1, r["n"] + 1), r["q"], marker="o", label=f"n={r['n']}")
            ax.set_title("equilibrium contribution by position")
        else:
            key = name[3:]
            pick = rows[:: max(1, len(rows) // 6)]
            for r in pick:
                ax.plot(range(1, r["n"] + 1), r["q"], marker="o", label=f"{key}={r[key]:.2f}")
            ax.set_title(f"profile along the {key} sweep")
        ax.set_xlabel("position i")
        ax.set_ylabel("q_i")
        ax.set_ylim(0, max(1.05, max(max(r["q"]) for r in rows) * 1.05))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_welfare(groups: Mapping[str, Sequence[Mapping]], path: Path) -> Path | None:
    """Welfare W and final score S against each swept parameter (1-D sweeps)."""
    panels = [(k[3:], v) for k, v in groups.items() if k.startswith("1d_")]
    if not panels:
        return None
    plt = _plt()
    cols = min(3, len(panels))
    rows_n = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows_n, cols, figsize=(5 * cols, 3.6 * rows_n), squeeze=False)
    for ax, (key, rows) in zip(axes.ravel(), panels):
        x = [r[key] for r in rows]
        ax.plot(x, [r["welfare"] for r in rows], color="C0", label="welfare W")
        ax.plot(x, [r["final_score"] for r in rows], color="C1", ls="--", label="final score S")
        bad = [r[key] for r in rows if not r["unique"]]
        if bad:
            ax.scatter(bad, [r["welfare"] for r in rows if not r["unique"]], color="red", s=12, zorder=3, label="tie (not unique)")
        ax.set_xlabel(key)
        ax.set_title(f"W and S against {key}")
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


CATEGORY_LABELS = ["ties (not unique)", "unique, S < B", "unique, S >= B, free rider", "unique, S >= B, all > c_min"]


def category(row: Mapping) -> int:
    if not row["unique"]:
        return 0
    if not row["threshold_met"]:
        return 1
    if row["any_free_rider"]:
        return 2
    return 3


def plot_maps(groups: Mapping[str, Sequence[Mapping]], path: Path) -> Path | None:
    """Uniqueness / threshold-met / free-riding map for each 2-D sweep."""
    panels = [(k, v) for k, v in groups.items() if k.startswith("map_")]
    if not panels:
        return None
    plt = _plt()
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap(["#d62728", "#ff7f0e", "#bcbd22", "#2ca02c"])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.6), squeeze=False)
    for ax, (name, rows) in zip(axes[0], panels):
        x_key, y_key = name[4:].split("_", 1)
        xs = sorted({r[x_key] for r in rows})
        ys = sorted({r[y_key] for r in rows})
        img = np.full((len(ys), len(xs)), np.nan)
        for r in rows:
            img[ys.index(r[y_key]), xs.index(r[x_key])] = category(r)
        ax.imshow(img, origin="lower", cmap=cmap, vmin=-0.5, vmax=3.5, aspect="auto",
                  extent=[xs[0], xs[-1], ys[0], ys[-1]], interpolation="nearest")
        ax.set_xlabel(x_key)
        ax.set_ylabel(y_key)
        ax.set_title(f"equilibrium map over ({x_key}, {y_key})")
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i)) for i in range(4)]
    fig.legend(handles, CATEGORY_LABELS, loc="lower center", ncol=4, fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
        p = fn(groups, out_dir / name)
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
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    files["summary"] = str(out_dir / "summary.json")
    return files
