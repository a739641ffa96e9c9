"""Reports of game-level learning runs (host side; used by ``spgg game learn``): ``learning.csv``,
``final.csv`` (the last 10% of steps against the SPNE), ``summary.json`` and ``learning_curves.png``."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from spgg_jax.rl.game_learners import GameRLConfig
from spgg_jax.tidy import tidy


def write_learning_report(out_dir, cfg: GameRLConfig, runs, metrics, spne_rows, axes: Sequence[str],
                          log_every: int = 10, extra: dict | None = None) -> dict[str, str]:
    """Write ``learning.csv`` (every ``log_every`` steps), ``final.csv`` (last 10% of steps vs the
    SPNE), ``summary.json`` and ``learning_curves.png``; returns {name: path}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n, steps = cfg.n, cfg.steps
    pos = lambda name: [f"{name}_{i + 1}" for i in range(n)]  # noqa: E731
    with open(out / "learning.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", *axes, "seed", "step", *pos("q"), *pos("q_det"), *pos("R"), "welfare", "score",
                    "threshold_rate", "free_ride_rate"])
        for j, r in enumerate(runs):
            for t in list(range(0, steps, max(1, log_every))) + ([steps - 1] if (steps - 1) % max(1, log_every) else []):
                w.writerow([j, *[r[a] for a in axes], r["seed"], t, *metrics["q_mean"][j, t], *metrics["q_det"][j, t],
                            *metrics["reward_mean"][j, t], metrics["welfare"][j, t], metrics["score"][j, t],
                            metrics["threshold_rate"][j, t], metrics["free_ride_rate"][j, t]])
    k = max(1, steps // 10)
    final = []
    for j, r in enumerate(runs):
        q = metrics["q_mean"][j, -k:].mean(0)
        spne = np.asarray(spne_rows[j]["q"])
        final.append({"run": j, **{a: r[a] for a in axes}, "seed": r["seed"],
                      **dict(zip(pos("q"), q.tolist())), **dict(zip(pos("spne_q"), spne.tolist())),
                      "max_abs_gap": float(np.max(np.abs(q - spne))),
                      "welfare": float(metrics["welfare"][j, -k:].mean()),
                      "spne_welfare": float(spne_rows[j]["welfare"]),
                      "threshold_rate": float(metrics["threshold_rate"][j, -k:].mean()),
                      "free_ride_rate": float(metrics["free_ride_rate"][j, -k:].mean())})
    with open(out / "final.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(final[0]))
        w.writeheader()
        w.writerows(final)
    summary = {"config": dataclasses.asdict(cfg), "axes": list(axes), "runs": len(runs),
               "mean_max_abs_gap": float(np.mean([r["max_abs_gap"] for r in final])), "final": final, **(extra or {})}
    with open(out / "summary.json", "w") as f:
        json.dump(tidy(summary), f, indent=2)
    files = {"learning": str(out / "learning.csv"), "final": str(out / "final.csv"), "summary": str(out / "summary.json")}
    png = _plot_learning(out / "learning_curves.png", cfg, runs, metrics, spne_rows, axes)
    if png:
        files["plot"] = str(png)
    return files


def _plot_learning(path, cfg, runs, metrics, spne_rows, axes, max_panels: int = 6):
    """Contribution by position over training (mean over seeds, min-max band) vs the SPNE (dashed)."""
    import matplotlib  # noqa: PLC0415  (plotting only: keeps imports light)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple, list[int]] = {}
    for j, r in enumerate(runs):
        groups.setdefault(tuple(r[a] for a in axes), []).append(j)
    keys = list(groups)
    if len(keys) > max_panels:
        keys = [keys[i] for i in np.linspace(0, len(keys) - 1, max_panels).round().astype(int)]
    fig, axs = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.8), squeeze=False, sharey=True)
    steps = np.arange(cfg.steps)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, key in zip(axs[0], keys):
        idx = groups[key]
        q = metrics["q_mean"][idx]  # [seeds, steps, n]
        for i in range(cfg.n):
            c = colors[i % len(colors)]
            ax.plot(steps, q[:, :, i].mean(0), color=c, label=f"agent {i + 1}")
            ax.fill_between(steps, q[:, :, i].min(0), q[:, :, i].max(0), color=c, alpha=0.2, lw=0)
            # interleaved dashes: equal equilibrium contributions stay visible in every agent's colour
            ax.axhline(spne_rows[idx[0]]["q"][i], color=c, lw=1.2, ls=(3 * i, (3, 3 * (cfg.n - 1))))
        title = ", ".join(f"{a}={v:g}" for a, v in zip(axes, key)) or "base parameters"
        ax.set_title(f"{title} ({len(idx)} seeds)", fontsize=10)
        ax.set_xlabel("training step")
        ax.xaxis.get_major_locator().set_params(integer=True)
    axs[0][0].set_ylabel("mean contribution q_i")
    handles, _ = axs[0][0].get_legend_handles_labels()
    handles += [plt.Line2D([], [], color="gray", lw=1.2, ls="--", label="equilibrium (SPNE)"),
                plt.Rectangle((0, 0), 1, 1, color="gray", alpha=0.2, lw=0, label="min-max over seeds")]
    axs[0][0].legend(handles=handles, loc="best", fontsize=8)
    fig.suptitle(f"{cfg.reward}, n={cfg.n}: {cfg.algorithm}/{cfg.actions} learners vs the equilibrium "
                 f"({cfg.steps} steps x {cfg.batch} episodes, lr {cfg.lr:g})", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
