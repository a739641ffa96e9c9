"""``spgg eval``: compare baselines and the sequential MAC-SPGG protocol on a task.

    spgg eval --task basic_arithmetic --team default --method single,cot,mac_spgg_fo --limit 16

Prints a table (method, accuracy, mean score, tokens generated, LLM calls, tokens exchanged between
agents, wall time) and writes ``results.json``, ``results.csv`` and ``problems_<method>.jsonl``
(one row per problem: its prompt, every completion, the scores) into ``--out``; ``--json`` prints
``results.json`` instead of the table.

    spgg eval --run-dir runs/my_run

evaluates a trained run instead: its saved configuration is rebuilt (``spgg_jax.train.build_setup``),
its latest checkpoint restored, and the trained team is compared with the untrained baselines (agent
1 alone greedy and configured, self-consistency, the untrained team configured and greedy) on the
run's test problems, the best baseline chosen on its validation split (``spgg_jax.eval.trained``);
the table is printed and written to ``RUN_DIR/eval.json`` (or ``--out``). ``--split val`` evaluates
on the validation split instead (``eval_val.json``): for tuning without looking at the test problems.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DEFAULT_MODEL = "smollm2-135m-instruct"  # = spgg_jax.rollout.team.DEFAULT_MODEL (not imported: keep --help fast)
METHOD_NAMES = "single, fewshot, cot, self_consistency, debate, mac_spgg_fo, mac_spgg_po (or all)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate baselines and the sequential protocol on a task",
        description="Run evaluation methods on the same problems and compare accuracy, tokens, LLM calls, "
        f"tokens exchanged between agents and wall time. Methods: {METHOD_NAMES}.",
    )
    p.add_argument("--task", help="task name (see docs/tasks.md), e.g. basic_arithmetic (required unless --run-dir)")
    p.add_argument("--run-dir", metavar="DIR",
                   help="evaluate this training run (its config and latest checkpoint): the trained team against "
                   "the untrained baselines on its test problems (--split val: its validation problems, written to "
                   "eval_val.json); --limit caps their number")
    p.add_argument("--team", default="default", metavar="CONFIG.json|default",
                   help="team config JSON, or 'default' (solver/checker/finaliser; 'default:N' for N agents)")
    p.add_argument("--method", default="single,mac_spgg_fo", metavar="NAME[,NAME...]",
                   help=f"methods to run, comma separated: {METHOD_NAMES} (default single,mac_spgg_fo)")
    p.add_argument("--limit", type=int, default=None, help="number of problems (default 16; with --run-dir: the run's eval_size)")
    p.add_argument("--split", default="test",
                   help="data split (default test); with --run-dir: test or val (the run's validation split)")
    p.add_argument("--seed", type=int, default=0, help="problem selection and sampling seed (default 0)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output directory (default runs/eval/TASK-TIME; with --run-dir: RUN_DIR)")
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
    p.add_argument("--json", action="store_true",
                   help="print the results as one JSON object (what results.json / eval.json hold) instead of a table")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    if args.run_dir:
        return cmd_eval_run(args)
    import jax

    from spgg_jax.eval.runner import evaluate, format_table, parse_methods, write_results
    from spgg_jax.rollout.episode import load_bundles
    from spgg_jax.rollout.team import load_team
    from spgg_jax.tasks import get_task, load_problems

    if not args.task:
        raise ValueError("give --task NAME (or --run-dir DIR to evaluate a training run)")
    if args.out:
        from spgg_jax.errors import check_writable_dir

        check_writable_dir(args.out, "--out")  # before any model is loaded
    limit = 16 if args.limit is None else args.limit
    if limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
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
    task_opts = _task_options(args.task_option)
    problems = load_problems(args.task, args.split, limit, seed=args.seed, **task_opts)
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

    meta = {"task": args.task, "split": args.split, "limit": limit, "seed": args.seed, "methods": methods,
            "task_options": task_opts,
            "team": team.to_dict(), "options": {k: v for k, v in options.items() if k != "judge"},
            "judge": args.judge, "model_load_s": load_s, "device": str(jax.devices()[0])}
    results = evaluate(args.task, team, methods, problems, bundles, jax.random.key(args.seed), options,
                       on_call=on_call, on_method=on_method)
    if bar is not None:
        bar.close()
    out = args.out or f"runs/eval/{args.task}-{time.strftime('%Y%m%d-%H%M%S')}"
    write_results(results, out, meta)
    if args.json:
        print((Path(out) / "results.json").read_text().rstrip())
        return 0
    print(f"task {args.task} ({args.split}, {len(problems)} problems), team: "
          f"{', '.join(a.name + '=' + a.model for a in team.agents)}")
    print(format_table(results))
    print(f"results written to {out}/ (model load {load_s:.1f} s)")
    return 0


def _task_options(items: list[str]) -> dict:
    opts = {}
    for opt in items:
        k, sep, v = opt.partition("=")
        if not sep or not k.strip():
            raise ValueError(f"--task-option must be KEY=VALUE, got {opt!r}")
        try:
            opts[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            opts[k.strip()] = v
    return opts


def cmd_eval_run(args: argparse.Namespace) -> int:
    """``spgg eval --run-dir``: rebuild the run, restore its latest checkpoint, compare on held-out problems."""
    import jax

    from spgg_jax.checkpoint import Checkpointer
    from spgg_jax.eval.trained import EVAL_KEY_SALT, eval_json, evaluate_trained, format_eval_table
    from spgg_jax.train import TrainConfig, build_setup
    from spgg_jax.train.loop import write_eval

    from spgg_jax.errors import check_writable_dir, read_json_object

    run = Path(args.run_dir)
    cfg_path = run / "config.json"
    if run.exists() and not run.is_dir():
        raise ValueError(f"--run-dir {run} is a file, not a training run directory")
    if not cfg_path.exists():
        raise FileNotFoundError(f"{run} has no config.json: not a training run directory (see `spgg train`)")
    if args.split not in ("test", "val"):
        raise ValueError(f"--split with --run-dir must be test or val (the run's validation split), got {args.split!r}")
    cfg = TrainConfig.from_dict(read_json_object(cfg_path, "run config"))
    # where eval.json goes must be writable before anything is computed
    check_writable_dir(Path(args.out) if args.out else run, "--out" if args.out else "run directory")
    size_key = "eval_size" if args.split == "test" else "val_size"
    if args.limit is not None:
        if args.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {args.limit}")
        cfg = cfg.replace(**{size_key: args.limit})
    if getattr(cfg, size_key) < 1:
        raise ValueError(f"the run has {size_key}={getattr(cfg, size_key)}; pass --limit N to evaluate N "
                         f"{args.split} problems")
    setup = build_setup(cfg, train=False, split=args.split)
    key = jax.random.key(cfg.seed)
    init = setup.learner.init(key)
    ck = Checkpointer(run / "checkpoints")
    step = ck.latest_step()
    if step is None:
        raise FileNotFoundError(f"{run}/checkpoints holds no checkpoint to evaluate")
    state, _, step = ck.restore({**init, "step": jax.numpy.int32(0)}, step)
    ck.close()
    trained = {k: v for k, v in state.items() if k != "step"}
    result = evaluate_trained(setup, trained, jax.random.fold_in(key, EVAL_KEY_SALT), split=args.split)
    out = Path(args.out) if args.out else run
    name = "eval" if args.split == "test" else "eval_val"
    path = write_eval(out, result, name)
    if args.json:
        print(json.dumps({"run_dir": str(run), "step": int(step), **eval_json(result)}, indent=2))
        return 0
    n = len(setup.eval_problems if args.split == "test" else setup.val_problems)
    print(f"run {run} at step {step}: {n} {args.split} {cfg.task} problems")
    print(format_eval_table(result))
    print(f"written to {path} and {path.with_name(name + '_episodes.jsonl')}")
    return 0
