"""Entry point of the ``spgg`` console script.

Every command group is a module in ``spgg_jax.cli`` exposing ``register(subparsers)``; the module
adds its sub-parser and sets ``func`` (called with the parsed ``argparse.Namespace``) on it. Heavy
imports (JAX, transformers) happen inside the command functions so that ``spgg --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# transformers prints "PyTorch was not found. Models won't be available ..." on import when torch is
# absent: that is this package's normal install (JAX models; torch only for the tests' parity
# references), so the advice is noise. Advisory warnings only; real warnings still print.
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

from spgg_jax.cli.parser import PARSER_ATTR, SpggParser

# Command-group modules, in the order they appear in ``spgg --help``.
COMMAND_MODULES = [
    "spgg_jax.cli.game",
    "spgg_jax.cli.train",
    "spgg_jax.cli.bench",
    "spgg_jax.cli.models",
    "spgg_jax.cli.generate",
    "spgg_jax.cli.parallel",
    "spgg_jax.cli.eval",
    "spgg_jax.cli.episodes",
]


class CliError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = SpggParser(
        prog="spgg",
        description="MAC-SPGG in JAX: game analysis, LLM agent teams, training and benchmarks.",
    )
    parser.add_argument(
        "--plugin", action="append", default=[], metavar="FILE_OR_MODULE",
        help="load a plugin (reward variants, episode scorers) before the command; repeatable, allowed anywhere "
        "on the line. Also loaded: SPGG_PLUGINS (':'-separated) and installed 'spgg_jax.plugins' entry points "
        "(docs/game.md)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def is_override(arg: str) -> bool:
    """A ``KEY=VALUE`` config override (not a flag)."""
    return "=" in arg and not arg.startswith("-")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The parsed command line; a usage error exits with status 2, naming the subcommand."""
    args, extra = build_parser().parse_known_args(argv)
    # KEY=VALUE overrides may come after flags (argparse stops collecting a positional list at a flag)
    if hasattr(args, "overrides"):
        args.overrides = list(args.overrides) + [x for x in extra if is_override(x)]
        extra = [x for x in extra if not is_override(x)]
    if extra:
        getattr(args, PARSER_ATTR).error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    from spgg_jax.plugins import PluginError, load_plugins, split_plugin_args

    given = list(sys.argv[1:] if argv is None else argv)
    try:  # plugins first: they register the names the command's arguments refer to
        plugins, argv = split_plugin_args(given)
        load_plugins(plugins)
    except PluginError as err:
        print(f"spgg: error: {err}", file=sys.stderr)
        return 2
    args = parse_args(argv)
    args.command_line = given  # the words after ``spgg`` as given (``spgg train`` repeats them to resume)
    command = getattr(args, PARSER_ATTR)  # the innermost parser: errors name the full subcommand
    from spgg_jax.errors import CheckpointError, RunError, os_error_line

    try:
        result = args.func(args)
    except (CliError, ValueError, KeyError, FileNotFoundError, CheckpointError) as err:
        # what the user gave cannot be used: one line, status 2
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"{command.prog}: error: {_one_line(msg)}", file=sys.stderr)
        return 2
    except RunError as err:  # stopped by its surroundings (a full disk): one line, status 1
        print(f"{command.prog}: error: {_one_line(err)}", file=sys.stderr)
        return 1
    except OSError as err:  # any other failed read or write: one line naming the path, status 1
        print(f"{command.prog}: error: {os_error_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C (the first stops training gracefully)
        print(f"{command.prog}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


def _one_line(msg: object) -> str:
    """An error message on one line (the lines of a message that spans several, joined)."""
    return " ".join(line.strip() for line in str(msg).strip().splitlines() if line.strip())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
