"""Per-agent greedy accuracy against the token budget, before any training: on this task and prompt,
does more effort (more tokens) make an agent more often right? Free riding can only cost something
where it does, so measure this before choosing the free-riding experiment's task.

    python experiments/free_riding/budget_curve.py --config experiments/free_riding/cpu.json --n 40 \\
        --out runs/free_riding/budget_curve [KEY=VALUE ...]

The team plays greedily (every agent at temperature 0) on the first N problems of the config's
training pool. For each budget b (default 1, 2, 4, ... below the team's largest max_new_tokens, and
that maximum) and each agent k: ``--vary each`` (default) limits agent k to b tokens with the other
agents at their configured limits (one team run per agent and budget); ``--vary all`` limits every
agent to b (one team run per budget). Reported per agent and budget: the agent's own accuracy (its
own answer right), the team's accuracy, the agent's mean generated tokens and its share of turns that
contribute nothing (empty, no answer, or a bare copy of a predecessor's answer). Writes
OUT/budget_curve.json and OUT/budget_curve.png and prints the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def default_budgets(top: int) -> list[int]:
    """1, 2, 4, ... below ``top``, then ``top``."""
    out, b = [], 1
    while b < top:
        out.append(b)
        b *= 2
    return out + [top]


def parse_budgets(text: str) -> list[int]:
    try:
        budgets = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--budgets must be comma-separated integers like 1,2,4,8, got {text!r}") from None
    if not budgets or min(budgets) < 1:
        raise ValueError(f"--budgets must be integers >= 1, got {text!r}")
    return sorted(set(budgets))


def measure(cfg, n: int, budgets: list[int], vary: str = "each", bundles=None, log=print) -> dict:
    """The curves (module docstring) of ``cfg``'s team and task on ``n`` training problems."""
    import jax

    from spgg_jax.eval.trained import greedy_team
    from spgg_jax.rollout.episode import load_bundles, run_episodes
    from spgg_jax.rollout.scoring import batch_contributes_nothing, score_episodes
    from spgg_jax.tasks import load_problems

    if vary not in ("each", "all"):
        raise ValueError(f"--vary must be each or all, got {vary!r}")
    if n < 1:
        raise ValueError(f"--n must be >= 1, got {n}")
    team = greedy_team(cfg.team)
    problems = load_problems(cfg.task, "train", n, seed=cfg.seed, generate=max(n, cfg.train_size),
                             **dict(cfg.task_options))
    if bundles is None:
        bundles = load_bundles(team, dtype=cfg.dtype, min_gen_bucket=max(budgets))
    judge = None
    if cfg.judge:
        from spgg_jax.tasks.judge import LLMJudge

        judge = LLMJudge.load(cfg.judge, dtype=cfg.dtype)
    key = jax.random.key(cfg.seed)  # greedy: the key does not matter
    agents = [{"agent": k + 1, "name": a.name, "configured_max_new_tokens": a.max_new_tokens, "accuracy": [],
               "team_accuracy": [], "tokens": [], "nothing": []} for k, a in enumerate(team.agents)]
    t0 = time.perf_counter()
    for b in budgets:
        runs = ([(k, team.replace(agents=tuple(dataclasses.replace(a, max_new_tokens=b) if i == k else a
                                              for i, a in enumerate(team.agents)))) for k in range(team.n)]
                if vary == "each" else [(None, team.with_agent_overrides(max_new_tokens=b))])
        for k, t in runs:
            batch = run_episodes(t, bundles, problems, key)
            scores = score_episodes(batch, t, judge=judge)
            right = np.asarray(scores.per_agent_correct)
            tokens = np.asarray(batch.tokens_generated)[:, : t.n]
            nothing = batch_contributes_nothing(batch)
            team_acc = float(np.mean(np.asarray(scores.correct_final)))
            for a in ([k] if k is not None else range(t.n)):
                agents[a]["accuracy"].append(float(right[:, a].mean()))
                agents[a]["team_accuracy"].append(team_acc)
                agents[a]["tokens"].append(float(tokens[:, a].mean()))
                agents[a]["nothing"].append(float(nothing[:, a].mean()))
        log(f"budget {b}: " + ", ".join(f"agent {a['agent']} {a['accuracy'][-1]:.2f}" for a in agents))
    return {"task": cfg.task, "task_options": dict(cfg.task_options), "n": len(problems), "budgets": budgets,
            "vary": vary, "team": cfg.team.to_dict(), "agents": agents, "seconds": time.perf_counter() - t0}


def plot(result: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4), squeeze=False)
    b = result["budgets"]
    for a in result["agents"]:
        label = f"agent {a['agent']} ({a['name']})"
        axes[0][0].plot(b, a["accuracy"], marker="o", label=label)
        axes[0][1].plot(b, a["team_accuracy"], marker="o", label=label)
        axes[0][2].plot(b, a["nothing"], marker="o", label=label)
    varied = "that agent's budget (the others at their limits)" if result["vary"] == "each" else "every agent's budget"
    for ax, title in zip(axes[0], ("the agent's own accuracy", "team accuracy (final answer)",
                                   "share of turns contributing nothing")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(b, [str(x) for x in b])
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel(f"max_new_tokens: {varied}")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle(f"Greedy accuracy against the token budget before training: {result['task']}, "
                 f"{result['n']} training problems", fontsize=11)
    fig.tight_layout()
    png = out / "budget_curve.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def format_table(result: dict) -> str:
    b = result["budgets"]
    lines = [f"{'agent':24s} " + " ".join(f"{x:>6d}" for x in b) + "   (max_new_tokens; own accuracy / tokens)"]
    for a in result["agents"]:
        name = f"{a['agent']} {a['name']}"
        lines.append(f"{name + ' accuracy':24s} " + " ".join(f"{v:6.2f}" for v in a["accuracy"]))
        lines.append(f"{name + ' tokens':24s} " + " ".join(f"{v:6.1f}" for v in a["tokens"]))
        lines.append(f"{name + ' team accuracy':24s} " + " ".join(f"{v:6.2f}" for v in a["team_accuracy"]))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(HERE / "cpu.json"), help="training config (task, team; default cpu.json)")
    ap.add_argument("--n", type=int, default=40, help="training problems (default 40)")
    ap.add_argument("--budgets", default=None,
                    help="comma-separated max_new_tokens (default 1, 2, 4, ... up to the team's largest limit)")
    ap.add_argument("--vary", default="each", choices=("each", "all"),
                    help="each: one agent's budget at a time, the others at their limits (default); all: every agent's")
    ap.add_argument("--out", default="runs/free_riding/budget_curve", help="output directory")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="spgg train config overrides")
    args = ap.parse_args(argv)
    from spgg_jax.train import load_config

    try:
        cfg = load_config(args.config, args.overrides)
        top = max(a.max_new_tokens for a in cfg.team.agents)
        budgets = parse_budgets(args.budgets) if args.budgets else default_budgets(top)
        result = measure(cfg, args.n, budgets, args.vary)
    except (ValueError, KeyError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from spgg_jax.tidy import tidy

    (out / "budget_curve.json").write_text(json.dumps(tidy(result), indent=1))
    png = plot(result, out)
    print(format_table(result))
    print(f"written: {out / 'budget_curve.json'}, {png} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
