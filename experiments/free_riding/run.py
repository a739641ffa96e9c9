"""The free-riding contrast on LLM rollouts: the same team trained under pgg, spgg and mac_spgg with
the same token-effort cost, and per agent over training: tokens generated, the policy's chosen
max_new_tokens, the own-cost term, accuracy and the share of turns that contribute nothing (empty, no
answer, or a bare copy of a predecessor's answer: ``nothing/agentK``).

    python experiments/free_riding/run.py                       # CPU setting (cpu.json)
    python experiments/free_riding/run.py --config experiments/free_riding/gpu.json --out runs/free_riding/gpu
    python experiments/free_riding/run.py --report-only --out runs/free_riding/cpu   # table + plot again
    python experiments/free_riding/run.py --rewards pgg,mac_spgg --seeds 0,1,2 gen_params.min_new_tokens=1

Writes OUT/<reward>/ (each a normal training run; with ``--seeds``: OUT/<reward>/seed<S>),
OUT/free_riding.csv (per reward variant, agent and window: first and last quarter of the steps; with
seeds: the mean over the seeds and its t 95% interval across them), OUT/free_riding.json and
OUT/free_riding.png (per agent over the steps: tokens, turns contributing nothing, own correctness,
chosen max_new_tokens, and the team's accuracy). The
classic games reward effort with (r/n) < 1 per unit and charge it 1 per unit, so their SPNE is
free riding; MAC-SPGG's share and threshold penalty make effort pay. Whether LLM agents trained on
these rewards show the difference is what this measures. On episodes ``spgg`` and ``pgg`` are the
same reward (one payoff; they differ only in the game's timing, and a team's turns are always
sequential), so their runs are identical: ``--rewards pgg,mac_spgg`` saves a third of the time.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REWARDS = ("pgg", "spgg", "mac_spgg")
HERE = Path(__file__).resolve().parent
#: per-agent series reported (metrics.jsonl keys with an agent suffix)
SERIES = ("tokens", "mode/max_new_tokens", "own_cost", "correct", "reward", "nothing")


def run_dir(out: Path, reward: str, seed: int | None = None) -> Path:
    """OUT/<reward>, or OUT/<reward>/seed<S> with --seeds."""
    return out / reward if seed is None else out / reward / f"seed{seed}"


def train(config: str, out: Path, reward: str, extra: list[str], seed: int | None = None) -> Path:
    run = run_dir(out, reward, seed)
    cmd = [sys.executable, "-m", "spgg_jax.cli.main", "train", "--config", config, f"team.reward={reward}",
           f"run_dir={run}", "--overwrite", "--no-eval", "progress=false", *extra]
    if seed is not None:
        cmd.append(f"seed={seed}")
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return run


def _metrics(path: Path) -> list[dict] | None:
    path = path / "metrics.jsonl"
    if not path.is_file():
        return None
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] or None


def _window_rows(m: list[dict], reward: str) -> list[dict]:
    """Per window (first / last quarter of the steps) and agent: the mean of each series in one run."""
    rows = []
    n_agents = len([k for k in m[0] if k.startswith("tokens/agent")])
    k = max(1, len(m) // 4)
    for window, part in (("first", m[:k]), ("last", m[-k:])):
        for a in range(1, n_agents + 1):
            row = {"variant": reward, "window": window, "steps": f"{part[0]['step']}-{part[-1]['step']}", "agent": a}
            for s in SERIES:
                vals = [r.get(f"{s}/agent{a}") for r in part if r.get(f"{s}/agent{a}") is not None]
                row[s] = round(float(np.mean(vals)), 4) if vals else None
            row["team_accuracy"] = round(float(np.mean([r["accuracy"] for r in part])), 4)
            row["free_riding"] = round(float(np.mean([r.get(f"free_riding/agent{a}", 0.0) for r in part])), 4)
            rows.append(row)
    return rows


def summarise(out: Path, rewards=REWARDS, seeds: list[int] | None = None) -> list[dict]:
    """Per reward, agent and window (first / last quarter of the steps): the mean of each series. With
    ``seeds``: the mean over the seeds of each run's window mean, with Student's t 95% interval across
    the seeds (columns SERIES_lo, SERIES_hi; ``seeds`` = how many runs were found)."""
    from spgg_jax.eval.seeds import t_interval

    rows = []
    for reward in rewards:
        if seeds is None:
            m = _metrics(run_dir(out, reward))
            rows += _window_rows(m, reward) if m else []
            continue
        per_seed = [_window_rows(m, reward) for m in (_metrics(run_dir(out, reward, s)) for s in seeds) if m]
        if not per_seed:
            continue
        for i, first in enumerate(per_seed[0]):
            row = {"variant": reward, "window": first["window"], "steps": first["steps"], "agent": first["agent"],
                   "seeds": len(per_seed)}
            for s in (*SERIES, "team_accuracy", "free_riding"):
                vals = [p[i][s] for p in per_seed if p[i][s] is not None]
                stats = t_interval(vals) if vals else {"mean": None, "ci95": None}
                row[s] = None if stats["mean"] is None else round(stats["mean"], 4)
                lo, hi = stats["ci95"] or (None, None)
                row[f"{s}_lo"] = None if lo is None else round(lo, 4)
                row[f"{s}_hi"] = None if hi is None else round(hi, 4)
            rows.append(row)
    return rows


#: panels of the plot: per-agent series (one column per agent) and the team's accuracy
PLOTTED = (("tokens", "tokens generated"), ("nothing", "share of turns contributing nothing"),
           ("correct", "own answer right"), ("mode/max_new_tokens", "chosen max_new_tokens (policy mode)"))


def plot(out: Path, rewards=REWARDS, seeds: list[int] | None = None) -> Path:
    """Per agent over training steps: each PLOTTED series (mean across seeds, the band its t 95% interval
    when there are several), and the team's accuracy; one colour per reward."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spgg_jax.eval.seeds import t_interval

    colors = {"pgg": "tab:red", "spgg": "tab:orange", "mac_spgg": "tab:blue"}
    runs = {r: [m for m in ([_metrics(run_dir(out, r))] if seeds is None else
                            [_metrics(run_dir(out, r, s)) for s in seeds]) if m] for r in rewards}
    runs = {r: ms for r, ms in runs.items() if ms}
    n_agents = max((len([k for k in ms[0][0] if k.startswith("tokens/agent")]) for ms in runs.values()), default=1)
    fig, axes = plt.subplots(len(PLOTTED), n_agents + 1, figsize=(4.2 * (n_agents + 1), 3.0 * len(PLOTTED)),
                             squeeze=False)

    def draw(ax, reward, ms, key):
        steps = min(len(m) for m in ms)
        x = [ms[0][i]["step"] for i in range(steps)]
        ys = np.array([[m[i].get(key) if m[i].get(key) is not None else np.nan for i in range(steps)] for m in ms])
        ax.plot(x, np.nanmean(ys, 0), color=colors.get(reward), label=reward)
        if len(ms) > 1:
            band = [t_interval(ys[:, i][np.isfinite(ys[:, i])])["ci95"] if np.isfinite(ys[:, i]).sum() > 1 else
                    (np.nan, np.nan) for i in range(steps)]
            ax.fill_between(x, [b[0] for b in band], [b[1] for b in band], color=colors.get(reward), alpha=0.2)

    for reward, ms in runs.items():
        for row, (series, _) in enumerate(PLOTTED):
            for a in range(n_agents):
                draw(axes[row][a], reward, ms, f"{series}/agent{a + 1}")
        draw(axes[0][n_agents], reward, ms, "accuracy")
    for row, (_, title) in enumerate(PLOTTED):
        for a in range(n_agents):
            ax = axes[row][a]
            ax.set_title(f"agent {a + 1}: {title}", fontsize=9)
            ax.set_xlabel("step")
            ax.xaxis.get_major_locator().set_params(integer=True)
            if PLOTTED[row][0] in ("nothing", "correct"):  # shares: the whole [0, 1]
                ax.set_ylim(-0.03, 1.03)
            ax.legend(fontsize=7)
        if row:
            axes[row][n_agents].axis("off")
    team = axes[0][n_agents]
    team.set_title("team accuracy (training batches)", fontsize=9)
    team.set_xlabel("step")
    team.xaxis.get_major_locator().set_params(integer=True)
    team.set_ylim(-0.03, 1.03)
    team.legend(fontsize=7)
    k = "" if seeds is None else f"; mean of {len(seeds)} seeds, band: t 95% interval across seeds"
    fig.suptitle(f"Free-riding contrast: the same team, the same token-effort cost; rewards {', '.join(runs)}{k}",
                 fontsize=11)
    fig.tight_layout()
    png = out / "free_riding.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(HERE / "cpu.json"), help="base training config (default: cpu.json)")
    ap.add_argument("--out", default="runs/free_riding/cpu", help="output directory (default runs/free_riding/cpu)")
    ap.add_argument("--rewards", default=",".join(REWARDS), help="comma-separated rewards (default pgg,spgg,mac_spgg)")
    ap.add_argument("--report-only", action="store_true", help="only rebuild the table and plot from OUT")
    ap.add_argument("--seeds", default=None, metavar="S,S,...",
                    help="train each reward once per seed (e.g. 0,1,2) into OUT/<reward>/seed<S>; the table and plot "
                    "give the mean across seeds with a t 95%% interval")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="extra spgg train overrides for every run")
    args = ap.parse_args(argv)
    out = Path(args.out)
    rewards = [r for r in args.rewards.split(",") if r]
    seeds = None
    if args.seeds:
        from spgg_jax.train.seeds import parse_seeds

        seeds = parse_seeds(args.seeds)
    if not args.report_only:
        for reward in rewards:
            for seed in (seeds or [None]):
                train(args.config, out, reward, args.overrides, seed)
    rows = summarise(out, rewards, seeds)
    if not rows:
        print(f"no runs under {out}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "free_riding.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (out / "free_riding.json").write_text(json.dumps(rows, indent=1))
    png = plot(out, rewards, seeds)
    if seeds:
        print(f"mean over {len(seeds)} seeds [t 95% interval across seeds]")

    def fmt(r, s):
        v, lo = r[s], r.get(f"{s}_lo")
        return "-" if v is None else f"{v:.3f}" + ("" if lo is None else f" [{lo:.2f},{r[f'{s}_hi']:.2f}]")

    w = 19 if seeds else 8
    cols = ("tokens", "mode/max_new_tokens", "own_cost", "correct", "nothing", "team_accuracy")
    names = ("tokens", "max_new", "own_cost", "correct", "nothing", "team acc")
    print(f"{'variant':9s} {'window':6s} {'agent':>5s} " + " ".join(f"{n:>{w}s}" for n in names))
    for r in rows:
        print(f"{r['variant']:9s} {r['window']:6s} {r['agent']:5d} " + " ".join(f"{fmt(r, c):>{w}s}" for c in cols))
    print(f"written: {out / 'free_riding.csv'}, {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
