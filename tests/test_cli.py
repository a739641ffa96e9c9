"""The ``spgg`` parser: errors name the subcommand and suggest fixes, flags are exact, --help is complete."""

from __future__ import annotations

import argparse
import os
import json
import re

import pytest

from spgg_jax.cli.main import build_parser, main, parse_args
from spgg_jax.cli.parser import walk
from spgg_jax.registry import did_you_mean, unknown_names


def _error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("argv,prog,hint", [
    (["game", "solve", "--rewrd", "mac_spgg"], "spgg game solve", "(did you mean '--reward'?)"),
    (["game", "solve", "--agent", "3"], "spgg game solve", "(did you mean '--agents'?)"),  # no prefix matching
    (["game", "sweep", "--out", "x", "--swep=gamma=0,1"], "spgg game sweep", "(did you mean '--sweep'?)"),
    (["game", "solv"], "spgg game", "(did you mean 'solve'?)"),
    (["gmae", "list"], "spgg", "(did you mean 'game'?)"),
    (["game", "solve", "--method", "nsh"], "spgg game solve", "(did you mean 'nash'?)"),
    (["eval", "--task", "x", "--dtype", "bfloat"], "spgg eval", "(did you mean 'bfloat16'?)"),
])
def test_parser_errors_name_the_subcommand_and_suggest(capsys, argv, prog, hint):
    err = _error(capsys, argv)
    assert err.startswith(f"{prog}: error: ") and err.endswith(hint), err


def test_several_unknown_flags_each_get_a_suggestion(capsys):
    err = _error(capsys, ["game", "solve", "--rewrd", "pgg", "--agnts", "3", "--zzzz"])
    assert "'--reward' for '--rewrd'" in err and "'--agents' for '--agnts'" in err and "--zzzz" in err


@pytest.mark.parametrize("argv,prog,hint", [
    (["game", "solve", "--reward", "mac_spg"], "spgg game solve", "unknown reward 'mac_spg' (did you mean 'mac_spgg'?)"),
    (["game", "solve", "--param", "gama=0.5"], "spgg game solve", "unknown game parameter 'gama' of reward 'mac_spgg' (did you mean 'gamma'?)"),
    (["eval", "--task", "basic_arithmetc"], "spgg eval", "(did you mean 'basic_arithmetic'?)"),
    (["eval", "--task", "basic_arithmetic", "--method", "single,mac_spgg_f"], "spgg eval",
     "(did you mean 'mac_spgg_fo'?)"),
    # overrides after a flag still reach the config (here: a typo in one of them)
    (["train", "steps=1", "--no-eval", "stpes=2"], "spgg train", "unknown training config key(s) ['stpes'] "
     "(did you mean 'steps'?)"),
    (["train", "--no-eval", "gen_params.l=0.1"], "spgg train", "(did you mean 'lr'?)"),
])
def test_runtime_errors_suggest_registered_names_and_config_keys(capsys, argv, prog, hint):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{prog}: error: ") and hint in err and "Traceback" not in err, err


def test_overrides_split_by_a_flag_all_arrive():
    args = parse_args(["train", "--config", "c.json", "steps=1", "--no-eval", "run_dir=x", "--resume", "batch=2"])
    assert args.overrides == ["steps=1", "run_dir=x", "batch=2"] and args.no_eval and args.resume


def test_did_you_mean():
    assert did_you_mean("stpes", ["steps", "seed"]) == " (did you mean 'steps'?)"
    assert did_you_mean("qqqq", ["steps", "seed"]) == ""
    assert unknown_names("key(s)", ["bach"], ["batch", "seed"]) == \
        "unknown key(s) ['bach'] (did you mean 'batch'?); known: ['batch', 'seed']"


def test_every_command_has_a_description_and_every_flag_help_with_its_default():
    problems = []
    for p in walk(build_parser()):
        assert not p.allow_abbrev, p.prog
        if not p.description or "%%" in p.description:
            problems.append(f"{p.prog}: description {p.description!r}")
        fmt = p._get_formatter()
        for a in p._actions:
            if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            name = "/".join(a.option_strings) or a.dest
            if not a.help:
                problems.append(f"{p.prog} {name}: no help")
            elif a.default not in (None, False, []) and "default" not in fmt._get_help_string(a).lower():
                problems.append(f"{p.prog} {name}: default {a.default!r} not shown")
    assert not problems, "\n".join(problems)


def test_help_shows_defaults_and_plain_percent(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "train", "--help"])
    out = capsys.readouterr().out
    assert "(default 8)" in out and "(default 256)" in out
    with pytest.raises(SystemExit):
        main(["game", "learn", "--help"])
    out = capsys.readouterr().out
    assert "last 10% of steps" in out and "%%" not in out


def test_train_help_lists_every_setting_in_80_columns(capsys, monkeypatch):
    """``spgg train --help`` is built from the settings' declarations: every key of the top level, of the
    team and its agents and of each method section with its default, the algorithms the registry holds,
    lines within 80 columns."""
    from spgg_jax.rl.algorithms import ALGORITHMS
    from spgg_jax.rl.learners import METHOD_CONFIGS
    from spgg_jax.rollout.team import AgentConfig, TeamConfig
    from spgg_jax.settings import declared
    from spgg_jax.train.config import TrainConfig

    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert all(len(line) <= 80 for line in out.splitlines()), max(out.splitlines(), key=len)
    assert "%%" not in out
    words, flat = set(out.split()), " " + " ".join(out.split())
    sections = [("", TrainConfig), ("team.", TeamConfig), ("team.agents.", AgentConfig)]
    sections += [(f"{m}.", cls) for m, cls in METHOD_CONFIGS.items()]
    missing = [f"{p}{d.name}={d.default_text()}" for p, cls in sections for d in declared(cls)
               if not re.search(rf" {re.escape(f'{p}{d.name}={d.default_text()}')}[ :]", flat)]
    assert not missing, missing
    assert "gen_params.group_size=1" in words and "token.train_layers=2" in words
    assert f"[{', '.join(ALGORITHMS.names())}]:" in " ".join(out.split())
    assert "team.from=default:3:" in words and "team.observation=fo" in words
    assert "team.agents.top_p=0.95 [in (0, 1]]:" in flat and " max_new_tokens=64" in flat  # the default team's


def test_commands_that_print_results_have_json():
    """Every leaf command that prints results offers --json (train prints progress and its eval
    table, plot a path)."""
    exempt = {"spgg train", "spgg plot", "spgg models fetch"}
    missing = []
    for p in walk(build_parser()):
        leaf = not any(isinstance(a, argparse._SubParsersAction) for a in p._actions)
        if leaf and p.prog not in exempt and "--json" not in p._option_string_actions:
            missing.append(p.prog)
    assert not missing, missing


def test_game_list_json(capsys):
    assert main(["game", "list", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    names = {r["name"]: r for r in out["rewards"]}
    assert names["mac_spgg"]["threshold"] and not names["pgg"]["threshold"]
    assert "quadratic" in out["costs"] and "mean" in out["scores"]


_NO_TORCH = """
import importlib.util, sys
real = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a, **k: None if name == "torch" or name.startswith("torch.") else real(name, *a, **k)
if {cli}:
    import spgg_jax.cli.main  # noqa: F401
import transformers  # noqa: F401
"""


@pytest.mark.parametrize("cli", [False, True])
def test_no_pytorch_advice_where_nothing_is_wrong(cli):
    """The core install has no torch (JAX models); transformers' "PyTorch was not found" advice is
    noise there, so the CLI turns advisory warnings off. The control (without the CLI) shows that the
    simulated missing torch does produce the message, so the test can fail."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRANSFORMERS_NO_ADVISORY_WARNINGS"}
    r = subprocess.run([sys.executable, "-c", _NO_TORCH.format(cli=cli)], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert ("PyTorch was not found" in r.stderr) is (not cli), r.stderr
