"""Choose the token-level team's sampling temperature on TRAINING problems, before any training.

    python experiments/token/temperature.py                                  # T in 0.3,0.5,0.7,1.0
    python experiments/token/temperature.py --temperatures 0.5,0.7 --batches 3 --out runs/token/temperature.json

A group-baseline update (GRPO) learns only from groups whose rollouts differ: a group where all
``group_size`` episodes get the same reward has zero advantages. With the untrained team (LoRA
adapters at zero: the base model) this samples the run's first ``--batches`` training batches
(drawn as the trainer draws them: ``(seed, step)``) at each temperature and reports, per
temperature, the team's accuracy, each agent's own correctness, and the share of groups that
carry a correctness signal (some episodes right and some wrong: the final answer, or agent K's own
answer). No validation or test problem is read. The temperature with the largest share of
informative groups (final answer) is printed as the choice.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import numpy as np

from spgg_jax.rollout.episode import run_episodes
from spgg_jax.rollout.scoring import episode_rewards, score_episodes
from spgg_jax.train.config import load_config
from spgg_jax.train.loop import draw_batch, step_keys
from spgg_jax.train.setup import build_setup

HERE = Path(__file__).resolve().parent


def informative(correct: np.ndarray, group: int) -> float:
    """Share of groups (consecutive ``group`` rows) holding both a right and a wrong episode."""
    g = np.asarray(correct, bool).reshape(-1, group)
    return float(np.mean(g.any(axis=1) & ~g.all(axis=1)))


def probe(cfg, setup, batches: int) -> dict:
    """Rollouts of the untrained team at ``cfg``'s temperature on the first training batches."""
    learner = setup.learner
    state = learner.init(jax.random.key(cfg.seed))
    k = learner.samples_per_problem
    rows = {"final": [], **{f"agent{i + 1}": [] for i in range(setup.team.n)}, "reward": []}
    for step in range(batches):
        problems = draw_batch(setup.train_problems, cfg.seed, step, cfg.batch, k)  # the trainer's draw
        key, _ = step_keys(cfg.seed, step)  # Trainer.train_step's rollout key
        batch = run_episodes(setup.team, setup.bundles, problems, key, **learner.rollout_policy(state).episode_kwargs())
        scores = score_episodes(batch, setup.team)
        rows["final"].append(np.asarray(scores.correct_final, bool))
        for i in range(setup.team.n):
            rows[f"agent{i + 1}"].append(np.asarray(scores.per_agent_correct, bool)[:, i])
        rows["reward"].append(np.asarray(episode_rewards(scores, setup.team, setup.game_params)))
    out = {"temperature": cfg.method_cfg.temperature, "episodes": int(sum(len(r) for r in rows["final"]))}
    for name in ["final"] + [f"agent{i + 1}" for i in range(setup.team.n)]:
        c = np.concatenate(rows[name])
        out[f"accuracy/{name}"] = float(c.mean())
        out[f"informative/{name}"] = informative(c, k)
    r = np.concatenate(rows["reward"])
    out["reward/mean"] = float(r.mean())
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(HERE / "team.json"), help="token-level training config (default "
                   "experiments/token/team.json)")
    p.add_argument("--temperatures", default="0.3,0.5,0.7,1.0", help="comma-separated temperatures to probe")
    p.add_argument("--batches", type=int, default=2, help="training batches per temperature (default 2)")
    p.add_argument("--out", default=None, help="write the table as JSON here")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, as for spgg train")
    args = p.parse_args(argv)
    temps = [float(t) for t in args.temperatures.split(",") if t.strip()]
    if not temps or min(temps) <= 0:
        p.error(f"--temperatures must be positive numbers, got {args.temperatures!r}")
    if args.batches < 1:
        p.error(f"--batches must be >= 1, got {args.batches}")
    bundles, table = None, []
    for t in temps:
        cfg = load_config(args.config, [*args.overrides, f"token.temperature={t}", "eval_size=0"])
        if cfg.method != "token":
            p.error(f"{args.config} is a method={cfg.method} config; this probe is for method=token")
        setup = build_setup(cfg, bundles)
        bundles = setup.bundles
        row = probe(cfg, setup, args.batches)
        table.append(row)
        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    best = max(table, key=lambda r: (r["informative/final"], r["accuracy/final"]))
    print(f"choice (most informative groups, final answer): token.temperature={best['temperature']:g}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"config": args.config, "overrides": args.overrides,
                                              "batches": args.batches, "table": table,
                                              "choice": best["temperature"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
