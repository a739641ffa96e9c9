"""``spgg episodes``: read a run's evaluated episodes back.

    spgg episodes runs/demo/train
    spgg episodes runs/demo/train --against runs/demo/ablation

prints the paired comparisons (the run's trained team against its untrained team and its single
agent; with ``--against``, against the other run's trained team on the same problems and keys),
each agent's reward fitted on being right, tokens spent and the team's score over the trained
team's episodes (the incentives the reward had on these real rollouts), and how often later agents
keep, lose or repair the first agent's answer (``spgg_jax.eval.episodes``).
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "episodes",
        help="paired comparisons, incentives on real rollouts and answer flow of a run's evaluated episodes",
        description="Read RUN_DIR/eval_episodes.jsonl (written by spgg train and spgg eval --run-dir) and report "
        "paired comparisons with 95% intervals, each agent's reward fitted on being right, tokens and the team "
        "score (bootstrap intervals), and how later agents keep, lose or repair the first agent's answer.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (or its eval_episodes.jsonl)")
    p.add_argument("--against", metavar="RUN_DIR",
                   help="another run evaluated on the same problems (e.g. the shuffled-reward ablation): compare "
                   "this run's --method with that run's --method")
    p.add_argument("--method", default="team, trained",
                   help="the method whose episodes are analysed (default 'team, trained')")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=cmd_episodes)


def cmd_episodes(args: argparse.Namespace) -> int:
    from spgg_jax.eval.episodes import (answer_flow, compare_runs, format_report, has_rewards, incentive_fit, methods,
                                        read_episodes)

    rows = read_episodes(args.run_dir)
    names = methods(rows)
    if args.method not in names:
        raise ValueError(f"--method {args.method!r}: not in {args.run_dir} (methods there: {', '.join(names)})")
    comps = [compare_runs(rows, args.method, rows, other) for other in names if other != args.method]
    if args.against:
        other = read_episodes(args.against)
        comps.append(compare_runs(rows, args.method, other, args.method, name_a=f"{args.method} ({args.run_dir})",
                                  name_b=f"{args.method} ({args.against})"))
    if args.json:
        out = {"comparisons": comps, "incentives": incentive_fit(rows, args.method) if has_rewards(rows, args.method)
               else None,
               "answer_flow": answer_flow(rows, args.method)}
        print(json.dumps(out, indent=1))
    else:
        print(format_report(rows, args.method, comps))
    return 0
