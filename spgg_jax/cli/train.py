"""``spgg train`` and ``spgg plot``: train a MAC-SPGG team; plot a run's learning curves."""

from __future__ import annotations

import argparse
import signal
import textwrap


SETTINGS_INTRO = (
    "settings: KEY=VALUE on the command line or keys of the --config file (the command line wins); dotted keys "
    "reach into sections. Shown: KEY=DEFAULT [RANGE or CHOICES]. method=X on the command line drops the config "
    "file's section of the other method. docs/training.md describes every key."
)


def settings_help(width: int) -> str:
    """Every setting of ``spgg train``, section by section, with its default and range or choices: the
    declarations of ``TrainConfig``, the team's (``TeamConfig``, ``AgentConfig``) and the method sections'
    (:mod:`spgg_jax.settings`)."""
    from spgg_jax.rl.learners import METHOD_CONFIGS
    from spgg_jax.settings import help_lines
    from spgg_jax.train.config import TrainConfig

    lines = textwrap.wrap(SETTINGS_INTRO, width) + ["", "top level:"] + help_lines(TrainConfig, "", width)
    lines += _team_lines(width)
    for method, cls in METHOD_CONFIGS.items():
        lines += ["", f"{method} (method={method}):"] + help_lines(cls, f"{method}.", width)
    return "\n".join(lines)


def _team_lines(width: int) -> list[str]:
    """The team's keys: the team spec's own (``from``, ``model``, ``reward_params.KEY``), then the declared
    fields of the team and of every agent, each heading naming where the default team differs."""
    from spgg_jax.rollout.team import AgentConfig, TeamConfig
    from spgg_jax.settings import help_entry, help_lines
    from spgg_jax.train.team_spec import DEFAULT_TEAM, resolve_team

    team = resolve_team(DEFAULT_TEAM)
    spec = [
        f"team.from={DEFAULT_TEAM['from']}: default:N (the solver / checker / finaliser team of N agents) or a team "
        "JSON file",
        f"team.model={team.agents[0].model}: every agent's model",
        "team.reward_params.KEY: one of the game's parameters (merged into the team's)",
    ]
    heading = f"team (the team and its game; docs/training.md){_differs(TeamConfig, [team])}:"
    lines = [""] + textwrap.wrap(heading, width)
    lines += [line for e in spec for line in help_entry(e, width)] + help_lines(TeamConfig, "team.", width)
    heading = ("team.agents (team.agents.KEY=VALUE sets every agent's KEY; shown: an agent's defaults in a team "
               f"file{_differs(AgentConfig, team.agents)}):")
    return lines + [""] + textwrap.wrap(heading, width) + help_lines(AgentConfig, "team.agents.", width)


def _differs(cls: type, objs: list) -> str:
    """``"; the default team's differ: KEY=VALUE; ..."`` for the declared settings of ``cls`` where the
    default team's ``objs`` (its agents, or the team) do not have the default ("" when none)."""
    from spgg_jax.settings import declared, value_text

    out = []
    for d in declared(cls):
        values: list = []
        for v in (getattr(o, d.name) for o in objs):
            v = dict(v) if d.kind == "object" else v  # a team's reward_params: a read-only mapping
            values += [v] if v not in values else []
        if values != [d.default]:
            text = value_text(values if len(values) > 1 else values[0])
            own = "each agent's own" if len(values) > 1 else "its own"
            out.append(f"{d.name}={text}" if len(text) <= 40 else f"{d.name}: {own}")
    return f"; the default team's differ: {'; '.join(out)}" if out else ""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train an LLM agent team on the MAC-SPGG reward", more_help=settings_help,
        description="Train a team of LLM agents with policy gradients on their MAC-SPGG rewards. "
        "method=gen_params trains a per-agent policy over generation parameters (the paper's method); "
        "method=token trains the LLMs themselves (GRPO/PPO over tokens, per-agent LoRA). "
        "Writes RUN_DIR/config.json, metrics.jsonl, tensorboard/, checkpoints/, learning_curves.png, eval.json.",
    )
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="training config overrides (every setting is listed below)")
    p.add_argument("--config", help="JSON file with config keys (overrides on the command line win)")
    p.add_argument("--run-dir", help="run directory (same as run_dir=...)")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its latest checkpoint")
    p.add_argument("--resume-from", help="with --resume: start from this checkpoint directory when RUN_DIR has none")
    p.add_argument("--overwrite", action="store_true", help="delete an existing RUN_DIR and start over")
    p.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation at the end")
    p.add_argument("--seeds", metavar="S,S,...",
                   help="run the configuration once per seed (e.g. 0,1,2; use at least 3) into RUN_DIR/seed<S>, then "
                   "write RUN_DIR/seeds.json and print each difference per seed and its mean across seeds with a "
                   "t-interval")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the whole configuration (reward and its parameters, scorer, team, task, models, "
                   "run directory) and print the effective configuration; trains nothing, writes nothing")
    g = p.add_argument_group(
        "multi-host", "One `spgg train` per host, same arguments; jax.distributed is initialized before anything "
        "else. On a TPU pod slice, SLURM or Open MPI nothing needs setting (JAX detects the cluster); elsewhere give "
        "all three flags (or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID). Set mesh=... to use "
        "the global devices; RUN_DIR must be on a filesystem every host sees.")
    g.add_argument("--coordinator", help="HOST:PORT of process 0's coordinator service")
    g.add_argument("--num-processes", type=int, help="number of processes (hosts) in the job")
    g.add_argument("--process-id", type=int, help="this process's index in [0, num-processes)")
    p.set_defaults(func=cmd_train)

    pp = sub.add_parser("plot", help="write PNG learning curves of a training run")
    pp.add_argument("run_dir", help="a training run directory (with metrics.jsonl)")
    pp.add_argument("--out", help="output PNG (default RUN_DIR/learning_curves.png)")
    pp.set_defaults(func=cmd_plot)


def dry_run(args) -> int:
    """``spgg train --dry-run``: every check of a run, without JAX devices, weights or writes."""
    import json
    from pathlib import Path

    from spgg_jax.train import load_config
    from spgg_jax.train.loop import check_run_dir
    from spgg_jax.train.setup import check_run

    overrides = list(args.overrides) + ([f"run_dir={args.run_dir}"] if args.run_dir else [])
    cfg = load_config(args.config, overrides)
    findings = check_run(cfg)
    run_dir = Path(cfg.run_dir)
    clear = check_run_dir(run_dir, cfg, args.resume, args.overwrite)
    state = ("would be cleared (--overwrite)" if clear else "exists: resumed" if args.resume and run_dir.exists()
             else "exists (empty or never started)" if run_dir.exists() else "does not exist yet")
    findings.append(("run dir", f"{run_dir} ({state})"))
    print("dry run: the configuration is valid; nothing was trained or written")
    for what, finding in findings:
        print(f"  {what:8s} {finding}")
    print("effective configuration:")
    print(json.dumps(cfg.to_dict(), indent=2))
    return 0


def cmd_train(args) -> int:
    if args.dry_run:
        return dry_run(args)
    from spgg_jax.parallel import initialize_distributed, is_main_process

    initialize_distributed(args.coordinator, args.num_processes, args.process_id)  # first JAX call
    say = print if is_main_process() else (lambda *a, **k: None)

    from spgg_jax.eval.trained import format_eval_table
    from spgg_jax.train import Trainer, load_config

    overrides = list(args.overrides)
    if args.run_dir:
        overrides.append(f"run_dir={args.run_dir}")
    seeds = None
    if args.seeds:
        from spgg_jax.train.seeds import parse_seeds, run_seeds

        seeds = parse_seeds(args.seeds)
    cfg = load_config(args.config, overrides)
    if seeds:
        say(f"training {cfg.team.n} agents on {cfg.task} with method={cfg.method} once per seed {seeds}; "
            f"run dirs {cfg.run_dir}/seed<S>")
        run_seeds(cfg, seeds, resume=args.resume, overwrite=args.overwrite, resume_from=args.resume_from,
                  evaluate=not args.no_eval, log=say)
        return 0
    trainer = Trainer(cfg, resume=args.resume, overwrite=args.overwrite, resume_from=args.resume_from)
    say(f"training {cfg.team.n} agents ({', '.join(cfg.team.models())}) on {cfg.task} with method={cfg.method}, "
          f"{cfg.steps} steps x {cfg.batch} problems; run dir {cfg.run_dir}")
    result = trainer.run(evaluate=not args.no_eval)
    if result.get("stopped"):
        # a graceful stop is not a finished run: say how to go on, exit 128 + the signal (143 SIGTERM,
        # 130 SIGINT) so a scheduler or a babysitter sees it
        what = (f"after step {result['steps']} of {cfg.steps}" if result["steps"] < cfg.steps
                else "before the held-out evaluation")
        say(f"stopped by {result['stopped']} {what}; checkpoint saved in {cfg.run_dir}/checkpoints. To continue:\n"
            f"  {resume_command(args)}")
        return 128 + int(result.get("signal") or signal.SIGTERM)
    say(f"done: {result['steps']} steps; metrics {cfg.run_dir}/metrics.jsonl; plot {result.get('plot', '-')}")
    if "eval" in result:
        say(f"\nheld-out evaluation on {result['eval']['rows'][0]['n']} {cfg.task} problems:")
        say(format_eval_table(result["eval"]))
    return 0


def resume_command(args) -> str:
    """The command line that continues this run: the one given, with ``--resume`` and without
    ``--overwrite`` (plugins and multi-host flags kept)."""
    import shlex

    words = [w for w in getattr(args, "command_line", None) or ["train"] if w != "--overwrite"]
    if "--resume" not in words:
        words.append("--resume")
    return shlex.join(["spgg", *words])


def cmd_plot(args) -> int:
    from spgg_jax.rl.metrics import plot_run

    print(plot_run(args.run_dir, args.out))
    return 0
