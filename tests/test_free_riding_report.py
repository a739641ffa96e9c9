"""experiments/free_riding/run.py's report (table, CSV, plot) from metrics files, with and without
seeds (no training here: the end-to-end run is tests/test_experiment_configs.py)."""

import csv
import json
from pathlib import Path

import pytest
from tiny_models import load_script

ROOT = Path(__file__).resolve().parents[1]


def _module():
    return load_script(ROOT / "experiments" / "free_riding" / "run.py", "free_riding_run")


def _write(run: Path, tokens: float, nothing: float, steps: int = 4):
    run.mkdir(parents=True)
    rows = []
    for step in range(1, steps + 1):
        r = {"step": step, "accuracy": 0.5}
        for a in (1, 2):
            r.update({f"tokens/agent{a}": tokens * a, f"nothing/agent{a}": nothing, f"correct/agent{a}": 0.5,
                      f"mode/max_new_tokens/agent{a}": 8.0, f"own_cost/agent{a}": 0.1, f"reward/agent{a}": 0.0,
                      f"free_riding/agent{a}": 0.0})
        rows.append(r)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_report_across_seeds(tmp_path, capsys):
    mod = _module()
    for reward, base in (("pgg", 10.0), ("mac_spgg", 20.0)):
        for seed, bump in ((0, 0.0), (1, 2.0), (2, 4.0)):
            _write(tmp_path / reward / f"seed{seed}", base + bump, 0.1 * seed)
    assert mod.main(["--out", str(tmp_path), "--rewards", "pgg,mac_spgg", "--seeds", "0,1,2", "--report-only"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "free_riding.csv")))
    row = next(r for r in rows if r["variant"] == "pgg" and r["window"] == "last" and r["agent"] == "2")
    assert row["seeds"] == "3" and float(row["tokens"]) == pytest.approx(24.0)  # agent 2: 2 x (10, 12, 14)
    lo, hi = float(row["tokens_lo"]), float(row["tokens_hi"])
    assert lo < 24.0 < hi and hi - 24.0 == pytest.approx(4.302653 * 4.0 / 3 ** 0.5, rel=1e-4)
    assert float(row["nothing"]) == pytest.approx(0.1)
    assert (tmp_path / "free_riding.png").stat().st_size > 1000
    assert "mean over 3 seeds" in capsys.readouterr().out


def test_report_of_single_runs(tmp_path):
    mod = _module()
    _write(tmp_path / "pgg", 10.0, 0.25)
    assert mod.main(["--out", str(tmp_path), "--rewards", "pgg", "--report-only"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "free_riding.csv")))
    assert len(rows) == 4 and "tokens_lo" not in rows[0] and float(rows[0]["nothing"]) == 0.25
    assert mod.main(["--out", str(tmp_path / "none"), "--report-only"]) == 2
