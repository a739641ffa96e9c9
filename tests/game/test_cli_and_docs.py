"""The documented example, the `spgg game` commands, and the rewards benchmark (tiny sizes)."""

import csv
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spgg_jax.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    return re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)


@pytest.mark.slow
def test_every_code_block_of_docs_game_md_runs(tmp_path, monkeypatch, capsys):
    """docs/game.md walks from a reward function to a pod sweep: every fenced block is run here
    (python: executed; sh: each `spgg` line through the CLI, each `tpu_scripts/` line in bash), and
    there is no other kind of code block."""
    text = (ROOT / "docs" / "game.md").read_text()
    lines, fence = text.splitlines(), False
    for i, line in enumerate(lines):  # no indented (unfenced, so unrun) code blocks
        fence ^= line.startswith("```")
        assert fence or line.startswith("```") or not (line.startswith("    ") and not lines[i - 1].strip()), \
            f"docs/game.md:{i + 1} is an indented code block; fence it so it is run"
    blocks = _fenced_blocks(text)
    assert {lang for lang, _ in blocks} == {"python", "sh"} and len(blocks) >= 6, blocks
    for name in ("experiments", "tpu_scripts"):  # relative paths as from the project root, outputs in tmp
        (tmp_path / name).symlink_to(ROOT / name)
    monkeypatch.chdir(tmp_path)
    env = {"PYTHONPATH": str(ROOT), "SPGG_PYTHON": sys.executable}
    for lang, body in blocks:
        if lang == "python":
            exec(compile(body, "docs/game.md", "exec"), {})  # our own documentation, not model output
            continue
        for line in body.strip().splitlines():
            argv = shlex.split(line)
            if argv[0] == "export":
                key, value = argv[1].split("=", 1)
                env[key] = value
                monkeypatch.setenv(key, value)
            elif argv[0] == "spgg":
                assert main(argv[1:]) == 0, (line, capsys.readouterr().err)
            else:
                assert argv[0].startswith("tpu_scripts/"), line
                out = subprocess.run(["bash", *argv], capture_output=True, text=True, timeout=120,
                                     env={**os.environ, **env})
                assert out.returncode == 0, (line, out.stderr)
                assert "relative_reward.py" in out.stdout, out.stdout
    out = capsys.readouterr().out
    assert "mac_spgg_relative" in out and "alpha" in out and "dry run: the configuration is valid" in out
    rows = list(csv.DictReader(open(tmp_path / "runs" / "relative_map" / "sweep.csv")))
    assert len(rows) == 10 and {r["alpha"] for r in rows} == {"0.0", "0.25", "0.5", "0.75", "1.0"}
    assert not (tmp_path / "runs" / "train").exists()  # the dry run wrote nothing


def test_solve_json(capsys):
    assert main(["game", "solve", "--reward", "mac_spgg", "--agents", "3", "--grid", "101", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "exact" and len(out["q"]) == 3
    assert out["unique"] and out["threshold_met"] and not any(out["free_riders"])
    np.testing.assert_allclose(sum(out["rewards"]), out["welfare"], rtol=1e-5)


def test_solve_table_and_bad_input(capsys):
    assert main(["game", "solve", "--reward", "pgg", "--param", "r=2", "--grid", "21"]) == 0
    text = capsys.readouterr().out
    assert "method=nash" in text and "unique" in text
    assert main(["game", "solve", "--param", "kappa=-1"]) == 2
    assert "kappa must be >= 0" in capsys.readouterr().err
    assert main(["game", "solve", "--reward", "nope"]) == 2
    assert "unknown reward 'nope'" in capsys.readouterr().err


def test_sweep_writes_csv_and_plots(tmp_path, capsys):
    out = tmp_path / "sw"
    rc = main(["game", "sweep", "--grid", "21", "--sweep", "gamma=0:1:3", "--sweep", "rho=1,2", "--out", str(out)])
    assert rc == 0
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert len(rows) == 6
    assert {r["gamma"] for r in rows} == {"0.0", "0.5", "1.0"}
    assert (out / "equilibrium_maps.png").stat().st_size > 1000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["points"] == 6


def test_sweep_over_n_and_one_axis(tmp_path):
    out = tmp_path / "n"
    assert main(["game", "sweep", "--grid", "11", "--sweep", "n=2,3", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert [r["n"] for r in rows] == ["2", "3"] and rows[0]["q_3"] == ""
    assert (out / "welfare_vs_params.png").exists()


def test_sweep_axis_errors(capsys):
    assert main(["game", "sweep", "--sweep", "colour=1,2", "--out", "/tmp/x"]) == 2
    assert "cannot sweep 'colour'" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_rewards_prints_ratio_last(capsys):
    rc = main(["bench", "rewards", "--batch", "20000", "--loop-games", "500", "--grid", "21", "--sweep-points", "8"])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("ratio: jitted rewards are")
    assert any("max |diff|" in line for line in lines)


# Bad inputs at the boundary (issue 14): exit 2 with one line naming the value, never a
# traceback, and nothing written.
BAD_INPUTS = [
    (["solve", "--agents", "0"], "--agents must be >= 2", "got 0"),
    (["solve", "--agents", "-3"], "--agents must be >= 2", "got -3"),
    (["solve", "--grid", "100000"], "grid 100000 with n=3", "use --grid "),
    (["solve", "--grid", "1"], "--grid must be >= 2", "got 1"),
    (["solve", "--tol", "nan"], "--tol must be a finite number", "nan"),
    (["solve", "--tol", "-1"], "--tol must be a finite number", "-1"),
    (["solve", "--tol", "inf"], "--tol must be a finite number", "inf"),
    (["solve", "--param", "B=abc"], "game parameter B must be a number", "'abc'"),
    (["solve", "--param", "n=x"], "game parameter n must be an integer", "'x'"),
    (["solve", "--param", "n=1"], "game parameter n must be an integer >= 2", "'1'"),
    (["solve", "--param", "weights=a,b,c"], "game parameter weights", "'a,b,c'"),
    (["solve", "--param", "gamma=inf"], "game parameter gamma must be finite", "'inf'"),
    (["sweep", "--out", "OUT", "--sweep", "gamma=nan"], "sweep axis 'gamma=nan'", "finite"),
    (["sweep", "--out", "OUT", "--sweep", "gamma=0:1:-5"], "sweep axis 'gamma=0:1:-5'", "got -5"),
    (["sweep", "--out", "OUT", "--sweep", "gamma=0:1:100000000"], "count must be 1..", "100000000"),
    (["sweep", "--out", "OUT", "--sweep", "n=1,2"], "sweep axis 'n=1,2'", "integers >= 2"),
    (["sweep", "--out", "OUT", "--chunk", "0", "--sweep", "gamma=0,1"], "--chunk must be >= 1", "got 0"),
    (["sweep", "--out", "OUT", "--agents", "0", "--sweep", "gamma=0,1"], "--agents must be >= 2", "got 0"),
    (["learn", "--out", "OUT", "--steps", "0"], "--steps must be >= 1", "got 0"),
    (["learn", "--out", "OUT", "--batch", "-1"], "--batch must be >= 1", "got -1"),
    (["learn", "--out", "OUT", "--lr", "nan"], "--lr must be a finite number > 0", "nan"),
    (["learn", "--out", "OUT", "--hidden", "3,a"], "--hidden must be comma-separated", "'3,a'"),
    (["learn", "--out", "OUT", "--seeds", "0"], "--seeds must be >= 1", "got 0"),
    (["learn", "--out", "OUT", "--log-every", "0"], "--log-every must be >= 1", "got 0"),
    (["learn", "--out", "OUT", "--entropy-coef", "-1"], "--entropy-coef", "-1"),
]


@pytest.mark.parametrize("argv,what,value", BAD_INPUTS, ids=[" ".join(a[0]).replace("OUT", "") for a in BAD_INPUTS])
def test_bad_game_inputs_are_one_line_errors(tmp_path, capsys, argv, what, value):
    out = tmp_path / "out"
    argv = [str(out) if a == "OUT" else a for a in argv]
    assert main(["game"] + argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert err.startswith(f"spgg game {argv[0]}: error: ") and what in err and value in err, err
    assert not out.exists()


def test_memory_estimate_names_a_grid_that_fits():
    from spgg_jax.game import get_reward
    from spgg_jax.game.rewards import make_params
    from spgg_jax.game.solver import choose_method, estimate_bytes

    params = make_params("mac_spgg", 3)
    spec = get_reward("mac_spgg")
    budget = 2 * 1024**3
    with pytest.raises(ValueError, match=r"use --grid (\d+) or smaller") as e:
        choose_method(spec, params, 20000, "markov", memory_budget=budget)
    fit = int(re.search(r"--grid (\d+)", str(e.value)).group(1))
    assert choose_method(spec, params, fit, "markov", memory_budget=budget) == "markov"
    need_last = params.observation == "po" or params.score == "last"
    assert estimate_bytes("markov", 3, fit + 1, need_last) > budget
