"""The incentives on real rollouts, before training: at the team's start, does an agent's own reward
rise with its effort? Measured to choose the token cost (``team.reward_params.kappa``) on training
problems, never on the validation or test splits.

    python experiments/incentives.py --config experiments/demo.json --n 48 --samples 2 \\
        --budgets 8 --kappas 0.125,0.25,0.5,1 --out runs/incentives/demo [KEY=VALUE ...]

The team plays at its configured generation parameters (where the generation-parameter policies
start) on the first N problems of the config's training pool, ``--samples`` episodes per problem
(keys ``fold_in(key(seed), s)``). Then, with the same problems and keys, each agent k in turn is
limited to each budget b (``max_new_tokens``), the others as configured: a paired counterfactual (the
cut agent's first b tokens are the ones it wrote before; its successors read the cut output). For
every kappa, the gain of effort of agent k is its reward with the configured limit minus its reward
cut to b, averaged over the samples of a problem, with a t-interval over problems
(``spgg_jax.eval.seeds.t_interval``). Under mac_spgg the own cost C = kappa * effort^2 / 2 is the only
term kappa scales, so one set of rollouts answers every kappa. The chosen kappa is the largest on the grid at which every agent's
mean gain of effort is positive at every budget: effort is each agent's best response at the start,
as the game intends, with the strongest cost that keeps it so. Writes OUT/incentives.json and prints
the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np


def parse_numbers(text: str, name: str, kind=float, positive: bool = True) -> list:
    try:
        values = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{name} must be comma-separated numbers like 1,2,4, got {text!r}") from None
    if not values or (positive and min(values) <= 0):
        raise ValueError(f"{name} must be numbers > 0, got {text!r}")
    return sorted(set(values))


def _rewards(scores, team, kappas: list[float]) -> np.ndarray:
    """f32[K, B, n]: each kappa's rewards R = benefit - own_cost on ``scores``."""
    from spgg_jax.rollout.scoring import episode_rewards

    out = []
    for k in kappas:
        t = team.replace(reward_params={**dict(team.reward_params), "kappa": float(k)})
        out.append(np.asarray(episode_rewards(scores, t, t.game_params())))
    return np.stack(out)


def measure(cfg, n: int, samples: int, budgets: list[int], kappas: list[float], bundles=None, log=print) -> dict:
    """The gains of effort (module docstring) of ``cfg``'s team on ``n`` training problems."""
    import jax

    from spgg_jax.eval.seeds import t_interval
    from spgg_jax.rollout.episode import load_bundles, run_episodes
    from spgg_jax.rollout.scoring import score_episodes
    from spgg_jax.tasks import load_problems

    if n < 2 or samples < 1:
        raise ValueError(f"--n must be >= 2 and --samples >= 1, got {n} and {samples}")
    team = cfg.team
    top = min(a.max_new_tokens for a in team.agents)
    if max(budgets) >= top:
        raise ValueError(f"--budgets must be below the agents' max_new_tokens ({top}), got {budgets}")
    problems = load_problems(cfg.task, "train", n, seed=cfg.seed, generate=max(n, cfg.train_size),
                             **dict(cfg.task_options))
    if bundles is None:
        bundles = load_bundles(team, dtype=cfg.dtype)
    judge = None
    if cfg.judge:
        from spgg_jax.tasks.judge import LLMJudge

        judge = LLMJudge.load(cfg.judge, dtype=cfg.dtype)
    t0 = time.perf_counter()

    def play(t, s):
        batch = run_episodes(t, bundles, problems, jax.random.fold_in(jax.random.key(cfg.seed), s))
        return batch, score_episodes(batch, t, judge=judge)

    def run(t):
        parts = [play(t, s) for s in range(samples)]
        scores = [sc for _, sc in parts]
        rewards = np.concatenate([_rewards(sc, t, kappas) for sc in scores], axis=1)  # [K, S*n, agents]
        cat = lambda f: np.concatenate([np.asarray(f(sc)) for sc in scores])  # noqa: E731
        tokens = np.concatenate([np.asarray(b.tokens_generated)[:, : t.n] for b, _ in parts])
        return {"rewards": rewards, "own": cat(lambda sc: sc.per_agent_correct), "team": cat(lambda sc: sc.correct_final),
                "tokens": tokens}

    base = run(team)
    log(f"configured: team accuracy {base['team'].mean():.3f}, own accuracy "
        + ", ".join(f"agent {k + 1} {base['own'][:, k].mean():.3f}" for k in range(team.n)))
    agents = []
    for k in range(team.n):
        entry = {"agent": k + 1, "name": team.agents[k].name, "configured_max_new_tokens": team.agents[k].max_new_tokens,
                 "own_accuracy": float(base["own"][:, k].mean()), "tokens": float(base["tokens"][:, k].mean()),
                 "budgets": []}
        for b in budgets:
            cut_team = team.replace(agents=tuple(dataclasses.replace(a, max_new_tokens=b) if i == k else a
                                                 for i, a in enumerate(team.agents)))
            cut = run(cut_team)
            gains = []
            for j, kap in enumerate(kappas):
                d = (base["rewards"][j, :, k] - cut["rewards"][j, :, k]).reshape(samples, n).mean(axis=0)
                gains.append({"kappa": kap, **t_interval(d.tolist())})
            entry["budgets"].append({
                "budget": b, "own_accuracy": float(cut["own"][:, k].mean()),
                "team_accuracy": float(cut["team"].mean()), "tokens": float(cut["tokens"][:, k].mean()),
                "gain_of_effort": gains})
            log(f"agent {k + 1} cut to {b} tokens: own accuracy {entry['own_accuracy']:.3f} -> "
                f"{entry['budgets'][-1]['own_accuracy']:.3f}, team {base['team'].mean():.3f} -> {cut['team'].mean():.3f}")
        agents.append(entry)
    ok = [kap for j, kap in enumerate(kappas)
          if all(bb["gain_of_effort"][j]["mean"] > 0 for a in agents for bb in a["budgets"])]
    return {"task": cfg.task, "task_options": dict(cfg.task_options), "n": n, "samples": samples,
            "episodes": n * samples, "budgets": budgets, "kappas": kappas, "reward": team.reward,
            "reward_params": dict(team.reward_params), "team_accuracy": float(base["team"].mean()),
            "agents": agents, "chosen_kappa": max(ok) if ok else None,
            "rule": "the largest kappa at which every agent's mean gain of effort is positive at every budget",
            "seconds": time.perf_counter() - t0}


def format_table(result: dict) -> str:
    head = f"{'agent':>5s} {'cut to':>6s} {'own acc':>15s} {'team acc':>15s}  " + "  ".join(
        f"{'gain, kappa ' + format(k, 'g'):>24s}" for k in result["kappas"])
    lines = [f"{result['task']}: {result['n']} training problems x {result['samples']} samples, the team at its "
             f"configured parameters (team accuracy {result['team_accuracy']:.3f})", head, "-" * len(head)]
    for a in result["agents"]:
        for bb in a["budgets"]:
            cells = "  ".join(f"{g['mean']:+.3f} [{g['ci95'][0]:+.3f}, {g['ci95'][1]:+.3f}]".rjust(24)
                              for g in bb["gain_of_effort"])
            lines.append(f"{a['agent']:5d} {bb['budget']:6d} {a['own_accuracy']:6.3f} -> {bb['own_accuracy']:5.3f} "
                         f"{result['team_accuracy']:6.3f} -> {bb['team_accuracy']:5.3f}  {cells}")
    lines.append(f"gain of effort: the agent's reward at its configured limit minus cut to the budget, mean over "
                 f"problems [95% t-interval]")
    lines.append(f"chosen kappa ({result['rule']}): {result['chosen_kappa']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="training config (task, team, seed)")
    ap.add_argument("--n", type=int, default=48, help="training problems (default 48)")
    ap.add_argument("--samples", type=int, default=2, help="episodes per problem, one key each (default 2)")
    ap.add_argument("--budgets", default="8", help="comma-separated max_new_tokens to cut an agent to (default 8)")
    ap.add_argument("--kappas", default="0.125,0.25,0.5,1", help="comma-separated token costs to compare")
    ap.add_argument("--out", default="runs/incentives", help="output directory")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="spgg train config overrides")
    args = ap.parse_args(argv)
    from spgg_jax.train import load_config

    try:
        cfg = load_config(args.config, args.overrides)
        result = measure(cfg, args.n, args.samples, parse_numbers(args.budgets, "--budgets", int),
                         parse_numbers(args.kappas, "--kappas"))
    except (ValueError, KeyError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from spgg_jax.tidy import tidy

    (out / "incentives.json").write_text(json.dumps(tidy(result), indent=1))
    print(format_table(result))
    print(f"written: {out / 'incentives.json'} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
