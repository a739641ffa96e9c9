"""The token-level experiment's table: trained team, trained single agent and the untrained baselines,
paired on the same test problems, per seed and over the seeds.

    python experiments/token/compare.py --out runs/token                # after make token-experiment
    python experiments/token/compare.py --run team=runs/token/mac_spgg --run single=runs/token/single \\
        --run pgg=runs/token/pgg --out runs/token

Each ``--run NAME=DIR`` is a ``spgg train --seeds`` directory (``DIR/seed<S>/eval.json`` and
``eval_episodes.jsonl``). ``team`` (the MAC-SPGG team) is required; ``single`` (a one-agent team:
``experiments/token/single.json``), ``pgg`` (the same team under pgg) and ``centred`` (the same team
trained with ``token.algorithm=grpo_centred``: no division by the group's std) are optional. Runs of one
seed share their test problems (the splits are drawn from the seed and the sizes), which is checked
problem by problem; only the seeds every given run has are compared.

Rows: each trained policy (greedy), and from the team's run the untrained baselines (agent 1
greedy, self-consistency with as many samples as agents, the untrained team greedy) and the best
one chosen on the team run's validation problems. Differences (a - b): per seed Tango's paired 95%
interval on that seed's problems; over the seeds the same interval on all seeds' problems pooled
(each problem once per seed) and Student's t interval over the per-seed differences. Training
budgets are reported as generated tokens (the sum over steps of every agent's tokens).
Writes OUT/token_compare.json, OUT/token_compare.md and OUT/token_curves.png (each arm's training
accuracy, tokens per turn and KL to the base model over the steps).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from spgg_jax.eval.seeds import t_interval
from spgg_jax.eval.stats import paired_comparison

TRAINED = "team, trained"
#: the arms compare.py knows, with their default directories (``make token-experiment``)
ARMS = {"team": "runs/token/mac_spgg", "single": "runs/token/single", "pgg": "runs/token/pgg",
        "centred": "runs/token/centred"}
BASELINES = ("agent 1 alone, greedy", "agent 1 self-consistency", "team, untrained, greedy")


def seeds_of(run: Path) -> list[int]:
    return sorted(int(p.name[4:]) for p in run.glob("seed*") if p.name[4:].isdigit() and (p / "eval.json").exists())


def outcomes(seed_dir: Path) -> dict[str, dict[str, bool]]:
    """``{method: {problem id: correct}}`` of one evaluated run."""
    out: dict[str, dict[str, bool]] = {}
    with open(seed_dir / "eval_episodes.jsonl") as f:
        for line in f:
            r = json.loads(line)
            out.setdefault(r["method"], {})[r["id"]] = bool(r["correct"])
    return out


def training_tokens(seed_dir: Path) -> int:
    """Tokens the run generated in training: per step, every agent's mean tokens x episodes."""
    cfg = json.loads((seed_dir / "config.json").read_text())
    episodes = cfg["batch"] * cfg.get(cfg["method"], {}).get("group_size", 1)
    total = 0.0
    with open(seed_dir / "metrics.jsonl") as f:
        for line in f:
            m = json.loads(line)
            total += episodes * sum(v for k, v in m.items() if k.startswith("tokens/agent"))
    return int(round(total))


def collect(runs: dict[str, Path]) -> dict:
    seeds = sorted(set.intersection(*(set(seeds_of(d)) for d in runs.values())))
    if not seeds:
        raise SystemExit(f"no seed is evaluated in every run: {', '.join(f'{k}={d}' for k, d in runs.items())}")
    per_seed = {}
    for s in seeds:
        team_dir = runs["team"] / f"seed{s}"
        team = outcomes(team_dir)
        ids = sorted(team[TRAINED])
        cols = {f"{k}, trained": outcomes(d / f"seed{s}")[TRAINED] for k, d in runs.items()}
        cols.update({b: team[b] for b in BASELINES})
        best = json.loads((team_dir / "eval.json").read_text())["headline"]["b"]
        cols["best untrained baseline (validation)"] = team[best]
        for name, col in cols.items():
            if sorted(col) != ids:
                raise SystemExit(f"seed {s}: {name} was evaluated on other problems than the team ({len(col)} vs "
                                 f"{len(ids)} ids): the runs must share task, task_options, seed and split sizes")
        per_seed[s] = {"best": best, "n": len(ids),
                       "correct": {k: np.array([c[i] for i in ids], bool) for k, c in cols.items()},
                       "tokens": {k: training_tokens(d / f"seed{s}") for k, d in runs.items()}}
    return {"seeds": seeds, "per_seed": per_seed}


#: the training curves' panels: (title, metrics.jsonl keys averaged per step)
PANELS = (("training accuracy (final answer, batch mean)", ("accuracy",)),
          ("tokens per turn, agent 1", ("tokens/agent1",)),
          ("tokens per turn, agents 2 and 3 (mean)", ("tokens/agent2", "tokens/agent3")),
          ("KL to the base model", ("kl_ref",)))


def curves(runs: dict[str, Path], seeds: list[int], out: Path) -> Path:
    """``token_curves.png``: each arm's training curves, one thin line per seed and their mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.4), squeeze=False)
    for i, (name, d) in enumerate(runs.items()):
        color = f"C{i}"
        for ax, (title, keys) in zip(axes[0], PANELS):
            per_seed = []
            for s in seeds:
                with open(d / f"seed{s}" / "metrics.jsonl") as f:
                    rows = [json.loads(line) for line in f if line.strip()]
                if not all(k in rows[0] for k in keys):  # a one-agent run has no agents 2 and 3
                    continue
                y = np.array([np.mean([r[k] for k in keys]) for r in rows])
                per_seed.append(y)
                ax.plot(np.arange(1, len(y) + 1), y, color=color, alpha=0.25, lw=1)
            if per_seed:
                steps = min(len(y) for y in per_seed)
                mean = np.mean([y[:steps] for y in per_seed], axis=0)
                ax.plot(np.arange(1, steps + 1), mean, color=color, lw=2, label=name)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("step")
    for ax in axes[0]:
        if ax.lines:
            ax.legend(fontsize=7)
    fig.suptitle(f"token-level training, seeds {', '.join(map(str, seeds))} (thin: one seed, thick: their mean)",
                 fontsize=10)
    fig.tight_layout()
    png = out / "token_curves.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def differences(data: dict, pairs: list[tuple[str, str]]) -> list[dict]:
    out = []
    for a, b in pairs:
        per = [{"seed": s, **paired_comparison(a, d["correct"][a], b, d["correct"][b])}
               for s, d in data["per_seed"].items()]
        pooled = paired_comparison(a, np.concatenate([d["correct"][a] for d in data["per_seed"].values()]),
                                   b, np.concatenate([d["correct"][b] for d in data["per_seed"].values()]))
        t = t_interval([p["mean_diff"] for p in per])
        out.append({"a": a, "b": b, "per_seed": per, "pooled": pooled, "across_seeds": t})
    return out


def _ci(ci) -> str:
    return "n/a" if ci is None else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"


def markdown(data: dict, diffs: list[dict]) -> str:
    seeds = data["seeds"]
    names = list(next(iter(data["per_seed"].values()))["correct"])
    lines = [f"Test accuracy, {len(seeds)} seed(s) ({', '.join(map(str, seeds))}), "
             f"{sum(d['n'] for d in data['per_seed'].values())} problems in all", "",
             "| row | " + " | ".join(f"seed {s}" for s in seeds) + " | mean [t 95%] |", "|---|" + "---|" * (len(seeds) + 1)]
    for k in names:
        accs = [float(data["per_seed"][s]["correct"][k].mean()) for s in seeds]
        t = t_interval(accs)
        lines.append(f"| {k} | " + " | ".join(f"{a:.2f}" for a in accs) + f" | {t['mean']:.3f} {_ci(t['ci95'])} |")
    lines += ["", "Paired differences (a - b): per seed Tango 95%; pooled over the seeds' problems; t over seeds", "",
              "| a - b | " + " | ".join(f"seed {s}" for s in seeds) + " | pooled | t over seeds |",
              "|---|" + "---|" * (len(seeds) + 2)]
    for d in diffs:
        cells = [f"{p['mean_diff']:+.2f} {_ci(p['ci95'])} ({p['discordant']} disc.)" for p in d["per_seed"]]
        lines.append(f"| {d['a']} - {d['b']} | " + " | ".join(cells) +
                     f" | {d['pooled']['mean_diff']:+.3f} {_ci(d['pooled']['ci95'])} | "
                     f"{d['across_seeds']['mean']:+.3f} {_ci(d['across_seeds']['ci95'])} |")
    lines += ["", "Generated tokens in training: " + "; ".join(
        f"seed {s}: " + ", ".join(f"{k} {v:,}" for k, v in data["per_seed"][s]["tokens"].items()) for s in seeds),
        "Best untrained baseline chosen on validation: " + ", ".join(
        f"seed {s}: {data['per_seed'][s]['best']}" for s in seeds)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", default=[], metavar="NAME=DIR",
                   help="a spgg train --seeds directory; NAME is team (required), single, pgg or centred "
                        "(default: team=runs/token/mac_spgg single=runs/token/single pgg=runs/token/pgg "
                        "centred=runs/token/centred, each if present)")
    p.add_argument("--out", default="runs/token", help="where token_compare.json, .md and token_curves.png go (default runs/token)")
    args = p.parse_args(argv)
    runs: dict[str, Path] = {}
    for item in args.run:
        name, sep, d = item.partition("=")
        if not sep or name not in ARMS:
            p.error(f"--run must be NAME=DIR with NAME {', '.join(ARMS)}, got {item!r}")
        runs[name] = Path(d)
    if not runs:
        runs = {k: Path(d) for k, d in ARMS.items() if Path(d).is_dir()}
    if "team" not in runs:
        p.error("a team run is needed: --run team=DIR")
    runs = {"team": runs.pop("team"), **runs}
    for name, d in runs.items():
        if not seeds_of(d):
            p.error(f"{name}={d}: no evaluated seed<S>/eval.json there")
    data = collect(runs)
    pairs = [("team, trained", "best untrained baseline (validation)")]
    if "single" in runs:
        pairs = [("team, trained", "single, trained"), *pairs, ("single, trained", "agent 1 alone, greedy")]
    pairs.append(("team, trained", "team, untrained, greedy"))
    if "pgg" in runs:
        pairs.append(("pgg, trained", "team, trained"))
    if "centred" in runs:
        pairs += [("centred, trained", "team, trained"), ("centred, trained", "best untrained baseline (validation)"),
                  ("centred, trained", "agent 1 alone, greedy"), ("centred, trained", "team, untrained, greedy")]
        if "single" in runs:
            pairs.append(("centred, trained", "single, trained"))
    diffs = differences(data, pairs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(data, diffs)
    (out / "token_compare.md").write_text(text)
    plain = {"runs": {k: str(v) for k, v in runs.items()}, "seeds": data["seeds"],
             "accuracy": {str(s): {k: float(v.mean()) for k, v in d["correct"].items()}
                          for s, d in data["per_seed"].items()},
             "best_baseline": {str(s): d["best"] for s, d in data["per_seed"].items()},
             "training_tokens": {str(s): d["tokens"] for s, d in data["per_seed"].items()},
             "differences": diffs}
    (out / "token_compare.json").write_text(json.dumps(plain, indent=2))
    curves(runs, data["seeds"], out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
