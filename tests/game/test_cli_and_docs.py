"""The documented example, the `spgg game` commands, and the rewards benchmark (tiny sizes)."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from spgg_jax.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def test_docs_custom_reward_example_runs(capsys):
    text = (ROOT / "docs" / "game.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "docs/game.md lost its example"
    ns: dict = {}
    exec(compile(blocks[0], "docs/game.md", "exec"), ns)  # our own documentation, not model output
    eq = ns["eq"]
    assert eq.q.shape == (3,)
    from spgg_jax.game import REWARDS

    assert "mac_spgg_relative" in REWARDS


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
