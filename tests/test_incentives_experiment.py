"""experiments/incentives.py at the smallest size: the tiny model, 2 agents, 3 problems x 2 samples."""

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_models import load_script

ROOT = Path(__file__).resolve().parents[1]


def _module():
    return load_script(ROOT / "experiments" / "incentives.py")


def test_number_lists_are_checked():
    mod = _module()
    assert mod.parse_numbers("1,0.5,1", "--kappas") == [0.5, 1.0]
    assert mod.parse_numbers("8,4", "--budgets", int) == [4, 8]
    with pytest.raises(ValueError, match="--kappas must be numbers > 0"):
        mod.parse_numbers("0,1", "--kappas")
    with pytest.raises(ValueError, match="comma-separated"):
        mod.parse_numbers("a", "--budgets", int)


def test_gains_of_effort_on_the_tiny_model(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """Kappa scales only the own cost, so each gain is linear in kappa and falls with it (cutting an
    agent never adds tokens); the cut binds; the chosen kappa follows the stated rule."""
    mod = _module()
    monkeypatch.chdir(ROOT)
    out = tmp_path / "inc"
    common = [f"team.model={tiny_model_dir}", "team.from=default:2", "team.agents.max_new_tokens=6",
              "team.effort=tokens", "team.agents.temperature=0.9"]
    assert mod.main(["--config", "experiments/demo.json", "--n", "3", "--samples", "2", "--budgets", "2",
                     "--kappas", "0.5,1,2", "--out", str(out), *common]) == 0
    res = json.loads((out / "incentives.json").read_text())
    assert res["n"] == 3 and res["samples"] == 2 and res["episodes"] == 6 and len(res["agents"]) == 2
    for a in res["agents"]:
        (cut,) = a["budgets"]
        assert cut["budget"] == 2 and cut["tokens"] <= 2 <= 6 and a["tokens"] <= 6
        g = [x["mean"] for x in cut["gain_of_effort"]]
        assert g[2] - g[1] == pytest.approx(2 * (g[1] - g[0]), abs=1e-5)
        assert g[0] >= g[1] - 1e-6 >= g[2] - 2e-6
        assert all(x["k"] == 3 for x in cut["gain_of_effort"])
    ok = [k for j, k in enumerate(res["kappas"])
          if all(b["gain_of_effort"][j]["mean"] > 0 for a in res["agents"] for b in a["budgets"])]
    assert res["chosen_kappa"] == (max(ok) if ok else None)
    assert "chosen kappa" in capsys.readouterr().out
    assert mod.main(["--config", "experiments/demo.json", "--budgets", "6", "--out", str(out), *common]) == 2
    assert "below the agents' max_new_tokens" in capsys.readouterr().err
