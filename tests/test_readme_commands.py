"""The README's example commands stay true: every ``spgg`` command in it parses (flags, choices,
training config keys), the quick ones run (with small limits where the documented size is long), and
the LLM ones run with tiny limits in a slow test."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from spgg_jax.cli.main import main, parse_args

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[list[str]]:
    """argv (after ``spgg``) of each ``spgg`` command in the README's indented code blocks;
    backslash continuations joined, trailing ``#`` comments dropped."""
    cmds, buf = [], ""
    for line in (ROOT / "README.md").read_text().splitlines():
        if not line.startswith("    "):
            buf = ""
            continue
        text = (buf + " " + line.strip()).strip()
        if text.endswith("\\"):
            buf = text[:-1]
            continue
        buf = ""
        argv = shlex.split(text, comments=True)
        if argv and argv[0] in ("spgg", ".venv/bin/spgg"):
            cmds.append(argv[1:])
    return cmds


COMMANDS = readme_commands()


def _id(argv: list[str]) -> str:
    return " ".join(argv)[:60]


def test_readme_has_its_examples():
    heads = {tuple(a[:2]) for a in COMMANDS}
    for head in [("game", "solve"), ("game", "sweep"), ("eval", "--task"), ("train", "--config"), ("generate", "--prompt")]:
        assert head in heads, f"README lost its `spgg {' '.join(head)}` example"


def _shrink(argv: list[str], tmp_path: Path) -> list[str]:
    """The same command with small limits and outputs under ``tmp_path``."""
    argv = [str(tmp_path / "out") if i and argv[i - 1] == "--out" else a for i, a in enumerate(argv)]
    head = tuple(argv[:2])
    if head == ("game", "sweep"):
        argv = [re.sub(r":\d+$", ":3", a) for a in argv] + ["--grid", "11"]
    elif head == ("bench", "rewards"):
        argv = argv + ["--batch", "2000", "--loop-games", "100", "--grid", "11", "--sweep-points", "2"]
    elif head[0] == "generate":
        argv = argv + ["--max-new-tokens", "4"]
    elif head[0] == "eval" and "--task" in argv:
        argv = argv + ["--limit", "2", "--max-new-tokens", "4", "--no-progress", "--out", str(tmp_path / "eval")]
    return argv


#: Commands that run in seconds without an LLM (after ``_shrink``).
QUICK = {("game", "list"), ("game", "solve"), ("game", "sweep"), ("bench", "rewards")}
#: LLM commands that run with tiny limits in the slow test (training, plotting a trained run and the
#: sampler benchmark are only parsed: they take minutes or need a run directory).
LLM = {("generate",), ("eval",), ("models",)}


@pytest.mark.parametrize("argv", COMMANDS, ids=[_id(a) for a in COMMANDS])
def test_readme_command_parses(argv):
    if argv == ["--help"]:
        with pytest.raises(SystemExit) as e:
            parse_args(argv)
        assert e.value.code == 0
        return
    args = parse_args(argv)
    if argv[0] == "train":  # the overrides name real config keys with valid values
        from spgg_jax.train import load_config

        over = list(args.overrides) + ([f"run_dir={args.run_dir}"] if args.run_dir else [])
        load_config(args.config, over)


@pytest.mark.parametrize("argv", [a for a in COMMANDS if tuple(a[:2]) in QUICK],
                         ids=[_id(a) for a in COMMANDS if tuple(a[:2]) in QUICK])
def test_readme_quick_command_runs(argv, tmp_path, capsys):
    assert main(_shrink(argv, tmp_path)) == 0, capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.real_model
@pytest.mark.parametrize("argv", [a for a in COMMANDS if tuple(a[:1]) in LLM],
                         ids=[_id(a) for a in COMMANDS if tuple(a[:1]) in LLM])
def test_readme_llm_command_runs(argv, tmp_path, capsys):
    if argv[:2] == ["eval", "--run-dir"]:
        pytest.skip("needs a trained run directory")
    assert main(_shrink(argv, tmp_path)) == 0, capsys.readouterr().err
