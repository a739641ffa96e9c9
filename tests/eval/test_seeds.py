"""Several seeds of one configuration: per-seed differences with their within-run intervals, the mean
across seeds with a t-interval (``spgg_jax.eval.seeds``), and ``spgg train --seeds`` end to end."""

import json
import math

import numpy as np
import pytest

from spgg_jax.eval.seeds import HEADLINE, aggregate, format_seeds, t_interval
from spgg_jax.eval.trained import BASELINES, TRAINED
from spgg_jax.train.seeds import parse_seeds


def _eval(diffs, best, acc):
    comps = [{"a": TRAINED, "b": b, "mean_diff": d, "ci95": [d - 0.1, d + 0.1], "n": 10} for b, d in zip(BASELINES, diffs)]
    head = next(c for c in comps if c["b"] == best)
    rows = [{"method": m, "accuracy": a, "tokens_generated": 100} for m, a in zip([*BASELINES, TRAINED], acc)]
    return {"rows": rows, "comparisons": comps, "headline": dict(head), "validation": {"best": best}}


def test_t_interval_is_students():
    out = t_interval([0.1, 0.3, 0.2])
    sd = float(np.std([0.1, 0.3, 0.2], ddof=1))
    assert out["mean"] == pytest.approx(0.2) and out["sd"] == pytest.approx(sd)
    assert out["ci95"] == pytest.approx([0.2 - 4.302653 * sd / math.sqrt(3), 0.2 + 4.302653 * sd / math.sqrt(3)],
                                        rel=1e-6)
    assert t_interval([0.5])["ci95"] is None
    with pytest.raises(ValueError, match="non-empty list of finite numbers"):
        t_interval([])


def test_aggregate_reports_each_difference_per_seed_and_across_seeds():
    results = {2: _eval([0.2, 0.4, 0.1, 0.5, 0.3], BASELINES[0], [0.3, 0.1, 0.4, 0.0, 0.2, 0.5]),
               0: _eval([0.0, 0.2, 0.1, 0.3, 0.1], BASELINES[2], [0.4, 0.2, 0.3, 0.1, 0.3, 0.4]),
               1: _eval([0.1, 0.3, -0.1, 0.4, 0.2], BASELINES[0], [0.35, 0.15, 0.5, 0.05, 0.25, 0.45])}
    agg = aggregate(results)
    assert agg["seeds"] == [0, 1, 2] and agg["k"] == 3
    head = agg["differences"][0]
    assert head["name"] == HEADLINE and [p["b"] for p in head["per_seed"]] == [BASELINES[2], BASELINES[0], BASELINES[0]]
    assert [p["mean_diff"] for p in head["per_seed"]] == [0.1, 0.1, 0.2]
    assert head["mean"] == pytest.approx(0.4 / 3) and head["ci95"] == pytest.approx(t_interval([0.1, 0.1, 0.2])["ci95"])
    first = agg["differences"][1]
    assert (first["a"], first["b"]) == (TRAINED, BASELINES[0]) and first["mean"] == pytest.approx(0.1)
    assert [p["ci95"] for p in first["per_seed"]] == [[-0.1, 0.1], [0.0, 0.2], [0.1, 0.30000000000000004]]
    assert len(agg["differences"]) == 1 + len(BASELINES)
    assert [r["method"] for r in agg["rows"]] == [*BASELINES, TRAINED]
    assert agg["rows"][-1]["mean"] == pytest.approx(0.45)
    text = format_seeds(agg)
    assert "seed 0" in text and "seed 2" in text and f"seed 0: {BASELINES[2]}" in text and "+0.133 [" in text
    assert "use at least 3" not in text
    assert "use at least 3" in format_seeds(aggregate({0: results[0], 1: results[1]}))
    with pytest.raises(ValueError, match="no evaluated seeds"):
        aggregate({})


@pytest.mark.parametrize("text, match", [("0,x", "comma-separated integers"), ("1,1", "twice"), (",", "at least one")])
def test_parse_seeds_errors(text, match):
    with pytest.raises(ValueError, match=match):
        parse_seeds(text)
    assert parse_seeds(" 3, 1 ,2") == [3, 1, 2]


@pytest.mark.slow
def test_spgg_train_seeds_runs_each_seed_and_writes_the_table(tiny_model_dir, tmp_path, capsys):
    """2 seeds x 1 step at the smallest shapes (for speed; real use takes at least 3 seeds)."""
    from spgg_jax.cli.main import main
    from tiny_models import tiny_train_overrides

    run = tmp_path / "seeds"
    assert main(["train", "--seeds", "0,1", *tiny_train_overrides(tiny_model_dir, run, 1, eval_size=2)]) == 0
    out = json.loads((run / "seeds.json").read_text())
    assert out["seeds"] == [0, 1] and out["runs"]["1"]["run_dir"] == str(run / "seed1")
    evals = {s: json.loads((run / f"seed{s}" / "eval.json").read_text()) for s in (0, 1)}
    for s in (0, 1):
        assert json.loads((run / f"seed{s}" / "config.json").read_text())["seed"] == s
    agg = out["aggregate"]
    head = agg["differences"][0]
    assert [p["mean_diff"] for p in head["per_seed"]] == [evals[s]["headline"]["mean_diff"] for s in (0, 1)]
    assert [p["b"] for p in head["per_seed"]] == [evals[s]["validation"]["best"] for s in (0, 1)]
    assert head["mean"] == pytest.approx(np.mean([evals[s]["headline"]["mean_diff"] for s in (0, 1)]), abs=1e-6)
    printed = capsys.readouterr().out
    assert "mean across seeds (t 95%)" in printed and "use at least 3" in printed
    assert main(["train", "--seeds", "0,0", *tiny_train_overrides(tiny_model_dir, run, 1)]) == 2
