"""The free-riding contrast on LLM rollouts: the same team trained under pgg, spgg and mac_spgg with
the same token-effort cost, and per agent over training: tokens generated, the policy's chosen
max_new_tokens, the own-cost term, accuracy and the share of turns that contribute nothing (empty, no
answer, or a bare copy of a predecessor's answer: ``nothing/agentK``).

    python experiments/free_riding/run.py                       # CPU setting (cpu.json)
    python experiments/free_riding/run.py --config experiments/free_riding/gpu.json --out runs/free_riding/gpu
    python experiments/free_riding/run.py --report-only --out runs/free_riding/cpu   # table + plot again

Writes OUT/<reward>/ (each a normal training run), OUT/free_riding.csv (per reward variant, agent and
window: first and last quarter of the steps), OUT/free_riding.json and OUT/free_riding.png. The
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


def train(config: str, out: Path, reward: str, extra: list[str]) -> Path:
    run = out / reward
    cmd = [sys.executable, "-m", "spgg_jax.cli.main", "train", "--config", config, f"team.reward={reward}",
           f"run_dir={run}", "--overwrite", "--no-eval", "progress=false", *extra]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return run


def summarise(out: Path, rewards=REWARDS) -> list[dict]:
    """Per reward, agent and window (first / last quarter of the steps): the mean of each series."""
    rows = []
    for reward in rewards:
        path = out / reward / "metrics.jsonl"
        if not path.is_file():
            continue
        m = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
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


def plot(out: Path, rewards=REWARDS) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4), squeeze=False)
    colors = {"pgg": "tab:red", "spgg": "tab:orange", "mac_spgg": "tab:blue"}
    for reward in rewards:
        color = colors.get(reward)
        path = out / reward / "metrics.jsonl"
        if not path.is_file():
            continue
        m = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        steps = [r["step"] for r in m]
        n_agents = len([k for k in m[0] if k.startswith("tokens/agent")])
        tokens = np.mean([[r[f"tokens/agent{a}"] for a in range(1, n_agents + 1)] for r in m], axis=1)
        limit = np.mean([[r.get(f"mode/max_new_tokens/agent{a}", np.nan) for a in range(1, n_agents + 1)] for r in m], axis=1)
        axes[0][0].plot(steps, tokens, color=color, label=reward)
        axes[0][1].plot(steps, limit, color=color, label=reward)
        axes[0][2].plot(steps, [r["accuracy"] for r in m], color=color, label=reward)
    for ax, title in zip(axes[0], ("tokens generated per agent (mean)", "chosen max_new_tokens (policy mode, mean)",
                                   "team accuracy (training batches)")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=8)
    fig.suptitle(f"Free-riding contrast: the same team, the same token-effort cost; rewards {', '.join(rewards)}",
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
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="extra spgg train overrides for every run")
    args = ap.parse_args(argv)
    out = Path(args.out)
    rewards = [r for r in args.rewards.split(",") if r]
    if not args.report_only:
        for reward in rewards:
            train(args.config, out, reward, args.overrides)
    rows = summarise(out, rewards)
    if not rows:
        print(f"no runs under {out}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "free_riding.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (out / "free_riding.json").write_text(json.dumps(rows, indent=1))
    png = plot(out, rewards)
    print(f"{'variant':9s} {'window':6s} {'agent':>5s} {'tokens':>7s} {'max_new':>8s} {'own_cost':>8s} {'correct':>8s} "
          f"{'nothing':>8s} {'team acc':>8s}")
    for r in rows:
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"{r['variant']:9s} {r['window']:6s} {r['agent']:5d} {fmt(r['tokens']):>7s} {fmt(r['mode/max_new_tokens']):>8s} "
              f"{fmt(r['own_cost']):>8s} {fmt(r['correct']):>8s} {fmt(r['nothing']):>8s} {fmt(r['team_accuracy']):>8s}")
    print(f"written: {out / 'free_riding.csv'}, {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
