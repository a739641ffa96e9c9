"""``spgg eval``: argument errors (fast) and one end-to-end run on SmolLM2-135M (real_model)."""

from __future__ import annotations

import csv
import json
import time

import pytest

from spgg_jax.cli.main import COMMAND_MODULES, main


def test_registered_and_help(capsys):
    assert "spgg_jax.cli.eval" in COMMAND_MODULES
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    out = capsys.readouterr().out
    for flag in ("--task", "--team", "--method", "--limit", "--split", "--seed", "--out", "--model"):
        assert flag in out


def test_bad_arguments(capsys, tmp_path):
    assert main(["eval", "--task", "basic_arithmetic", "--method", "single,nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["eval", "--task", "no_such_task", "--method", "single"]) == 2
    assert "no_such_task" in capsys.readouterr().err
    assert main(["eval", "--task", "basic_arithmetic", "--limit", "0"]) == 2
    assert "--limit" in capsys.readouterr().err
    bad = tmp_path / "team.json"
    bad.write_text(json.dumps({"agents": [{"name": "a", "temperature": -2}]}))
    assert main(["eval", "--task", "basic_arithmetic", "--team", str(bad)]) == 2
    assert "temperature" in capsys.readouterr().err


@pytest.mark.real_model
@pytest.mark.slow
def test_eval_smollm2_end_to_end(capsys, tmp_path):
    t0 = time.perf_counter()
    out = tmp_path / "run"
    rc = main(["eval", "--task", "basic_arithmetic", "--team", "default", "--method", "single,mac_spgg_po",
               "--limit", "4", "--max-new-tokens", "24", "--out", str(out), "--no-progress"])
    elapsed = time.perf_counter() - t0
    assert rc == 0
    text = capsys.readouterr().out
    assert "mac_spgg_po" in text and "tok exch" in text
    res = json.loads((out / "results.json").read_text())
    by = {r["method"]: r for r in res["results"]}
    assert by["single"]["llm_calls"] == 4 and by["mac_spgg_po"]["llm_calls"] == 12
    assert by["single"]["tokens_exchanged"] == 0 and by["mac_spgg_po"]["tokens_exchanged"] > 0
    assert 0 <= by["single"]["accuracy"] <= 1
    assert len(list(csv.DictReader(open(out / "results.csv")))) == 2
    rows = [json.loads(x) for x in (out / "problems_mac_spgg_po.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(len(r["turns"]) == 3 for r in rows)
    print(f"spgg eval end-to-end: {elapsed:.1f} s")
