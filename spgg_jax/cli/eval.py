"""``spgg eval``: compare baselines and the sequential MAC-SPGG protocol on a task.

    spgg eval --task basic_arithmetic --team default --method single,cot,mac_spgg_fo --limit 16

Prints a table (method, accuracy, mean score, tokens generated, LLM calls, tokens exchanged between
agents, wall time) and writes ``results.json``, ``results.csv`` and ``problems_<method>.jsonl``
(every text) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

DEFAULT_MODEL = "smollm2-135m-instruct"  # = spgg_jax.rollout.team.DEFAULT_MODEL (not imported: keep --help fast)
REASONING_GYM_TASKS = ("gsm_symbolic", "basic_arithmetic", "chain_sum")
METHOD_NAMES = "single, fewshot, cot, self_consistency, debate, mac_spgg_fo, mac_spgg_po (or all)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate baselines and the sequential protocol on a task",
        description="Run evaluation methods on the same problems and compare accuracy, tokens, LLM calls, "
        f"tokens exchanged between agents and wall time. Methods: {METHOD_NAMES}.",
    )
    p.add_argument("--task", required=True, help="task name (see docs/tasks.md), e.g. basic_arithmetic")
    p.add_argument("--team", default="default", metavar="CONFIG.json|default",
                   help="team config JSON, or 'default' (solver/checker/finaliser; 'default:N' for N agents)")
    p.add_argument("--method", default="single,mac_spgg_fo", metavar="NAME[,NAME...]",
                   help=f"methods to run, comma separated: {METHOD_NAMES} (default single,mac_spgg_fo)")
    p.add_argument("--limit", type=int, default=16, help="number of problems (default 16)")
    p.add_argument("--split", default="test", help="data split (default test)")
    p.add_argument("--seed", type=int, default=0, help="problem selection and sampling seed (default 0)")
    p.add_argument("--out", default=None, metavar="DIR", help="output directory (default runs/eval/TASK-TIME)")
    p.add_argument("--task-option", action="append", default=[], metavar="KEY=VALUE",
                   help="extra task loader option (repeatable), e.g. max_terms=2 for reasoning-gym tasks; "
                   "values are parsed as JSON when possible")
    p.add_argument("--model", default=None, metavar="NAME_OR_PATH",
                   help=f"use this model for every agent (default: the team's; default team: {DEFAULT_MODEL})")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="override every agent's max_new_tokens (default team: 96)")
    p.add_argument("--temperature", type=float, default=None, help="override every agent's temperature")
    p.add_argument("--shots", type=int, default=3, help="few-shot examples (default 3)")
    p.add_argument("--samples", type=int, default=5, help="self-consistency samples (default 5)")
    p.add_argument("--rounds", type=int, default=2, help="debate rounds (default 2)")
    p.add_argument("--judge", default=None, metavar="MODEL",
                   help="LLM judge model for tasks without a verifiable answer (summeval)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="model dtype")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    import jax

    from spgg_jax.eval.runner import evaluate, format_table, parse_methods, write_results
    from spgg_jax.rollout.episode import load_bundles
    from spgg_jax.rollout.team import load_team
    from spgg_jax.tasks import get_task, load_task

    if args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    methods = parse_methods(args.method)
    get_task(args.task)  # unknown task: error before any model is loaded
    team = load_team(args.team, model=args.model, max_new_tokens=96)
    overrides = {}
    if args.max_new_tokens is not None:
        if args.max_new_tokens < 1:
            raise ValueError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
        overrides["max_new_tokens"] = args.max_new_tokens
    if args.temperature is not None:
        overrides["temperature"] = args.temperature
    if overrides:
        team = team.with_agent_overrides(**overrides)
    load_opts = {"split": args.split, "seed": args.seed, "limit": args.limit}
    if args.task in REASONING_GYM_TASKS:  # generated on the fly: make enough of them
        load_opts["size"] = max(args.limit, 100)
    for opt in args.task_option:
        k, sep, v = opt.partition("=")
        if not sep or not k.strip():
            raise ValueError(f"--task-option must be KEY=VALUE, got {opt!r}")
        try:
            load_opts[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            load_opts[k.strip()] = v
    problems = load_task(args.task, **load_opts)
    t0 = time.perf_counter()
    bundles = load_bundles(team, dtype=args.dtype)
    load_s = time.perf_counter() - t0
    options = {"shots": args.shots, "samples": args.samples, "rounds": args.rounds, "split": args.split,
               "seed": args.seed}
    if args.judge:
        from spgg_jax.tasks.judge import LLMJudge

        options["judge"] = LLMJudge.load(args.judge, dtype=args.dtype)

    calls = {"single": 1, "cot": 1, "fewshot": 1, "self_consistency": 1, "debate": args.rounds,
             "mac_spgg_fo": team.n_turns, "mac_spgg_po": team.n_turns}
    total = sum(calls.get(m, 1) * max(1, len(team.models())) for m in methods)
    bar = None
    if not args.no_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="sampler calls", unit="call", file=sys.stderr)

    def on_call(model: str) -> None:
        if bar is not None:
            bar.update(1)

    def on_method(res) -> None:
        if bar is not None:
            bar.set_postfix_str(f"{res.method}: acc {res.summary()['accuracy']:.2f}")

    meta = {"task": args.task, "split": args.split, "limit": args.limit, "seed": args.seed, "methods": methods,
            "task_options": {k: v for k, v in load_opts.items() if k not in ("split", "seed", "limit")},
            "team": team.to_dict(), "options": {k: v for k, v in options.items() if k != "judge"},
            "judge": args.judge, "model_load_s": load_s, "device": str(jax.devices()[0])}
    results = evaluate(args.task, team, methods, problems, bundles, jax.random.key(args.seed), options,
                       on_call=on_call, on_method=on_method)
    if bar is not None:
        bar.close()
    out = args.out or f"runs/eval/{args.task}-{time.strftime('%Y%m%d-%H%M%S')}"
    write_results(results, out, meta)
    print(f"task {args.task} ({args.split}, {len(problems)} problems), team: "
          f"{', '.join(a.name + '=' + a.model for a in team.agents)}")
    print(format_table(results))
    print(f"results written to {out}/ (model load {load_s:.1f} s)")
    return 0
