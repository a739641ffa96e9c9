"""experiments/free_riding/budget_curve.py at the smallest size: the tiny model, 2 problems, 2 budgets."""

import json
from pathlib import Path

import pytest
from tiny_models import load_script

ROOT = Path(__file__).resolve().parents[1]


def _module():
    return load_script(ROOT / "experiments" / "free_riding" / "budget_curve.py")


def test_default_budgets_and_errors():
    mod = _module()
    assert mod.default_budgets(96) == [1, 2, 4, 8, 16, 32, 64, 96]
    assert mod.default_budgets(32) == [1, 2, 4, 8, 16, 32] and mod.default_budgets(1) == [1]
    assert mod.parse_budgets("8,1,8") == [1, 8]
    with pytest.raises(ValueError, match="integers >= 1"):
        mod.parse_budgets("0,4")


def test_budget_curve_runs_on_the_tiny_model(tiny_model_dir, tmp_path, monkeypatch, capsys):
    mod = _module()
    monkeypatch.chdir(ROOT)
    out = tmp_path / "bc"
    assert mod.main(["--n", "2", "--budgets", "1,6", "--out", str(out), f"team.model={tiny_model_dir}",
                     "team.from=default:2", "team.agents.max_new_tokens=6"]) == 0
    res = json.loads((out / "budget_curve.json").read_text())
    assert res["budgets"] == [1, 6] and res["n"] == 2 and res["vary"] == "each" and len(res["agents"]) == 2
    for a in res["agents"]:
        for key in ("accuracy", "team_accuracy", "tokens", "nothing"):
            assert len(a[key]) == 2
        assert all(0 <= v <= 1 for v in a["accuracy"] + a["team_accuracy"] + a["nothing"])
        assert a["tokens"][0] <= 1 and a["tokens"][1] <= 6  # the budget binds
    assert (out / "budget_curve.png").stat().st_size > 1000
    assert "1 solver accuracy" in capsys.readouterr().out
    assert mod.main(["--n", "0", "--out", str(out), f"team.model={tiny_model_dir}"]) == 2
