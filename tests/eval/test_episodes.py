"""Reading evaluated episodes back: comparisons across runs, the incentive fit, the answer flow."""

import json

import numpy as np
import pytest

from spgg_jax.cli.main import main
from spgg_jax.eval.episodes import answer_flow, compare_runs, incentive_fit, read_episodes

C_MIN = 0.1


def _episodes(n=200, seed=0, method="team, trained", coef=(0.3, -0.6, 2.0)):
    """Synthetic team episodes whose rewards follow a known linear law in (right, tokens/32, S)."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        right = rng.random(3) < [0.6, 0.4, 0.5]
        tokens = rng.integers(4, 33, 3)
        s = float(rng.random() < 0.5)
        rewards = coef[0] * right + coef[1] * tokens / 32 + coef[2] * s + rng.normal(0, 0.01, 3)
        rows.append({"method": method, "id": f"p{k}", "turns": [{"agent": i, "tokens": int(t)} for i, t in enumerate(tokens)],
                     "q": [1.0 if r else C_MIN for r in right], "S": s, "correct": bool(s), "rewards": rewards.tolist()})
    return rows


def test_incentive_fit_recovers_the_law_with_intervals():
    fit = incentive_fit(_episodes(), n_boot=300)
    assert [f["agent"] for f in fit] == [1, 2, 3]
    for f in fit:
        for key, want in (("right", 0.3), ("tokens", -0.6), ("S", 2.0)):
            lo, hi = f[key]["ci95"]
            assert abs(f[key]["coef"] - want) < 0.01 and lo < f[key]["coef"] < hi and hi - lo < 0.02, (key, f)


def test_incentive_fit_names_constant_terms_and_missing_rewards():
    rows = _episodes(50)
    for r in rows:
        r["q"][0] = 1.0  # agent 1 always right: its 'right' term cannot be estimated
    assert incentive_fit(rows, n_boot=50)[0]["right"] is None
    with pytest.raises(ValueError, match="no episodes of 'team, untrained' with rewards"):
        incentive_fit(rows, "team, untrained")


def test_compare_runs_pairs_by_problem_id():
    a = [{"method": "m", "id": f"p{k}", "correct": k < 30} for k in range(40)]
    b = [{"method": "m", "id": f"p{k}", "correct": k < 10} for k in reversed(range(40))]  # other order
    c = compare_runs(a, "m", b, "m", name_a="A", name_b="B")
    assert (c["a"], c["b"], c["n"], c["a_only"], c["b_only"]) == ("A", "B", 40, 20, 0)
    assert c["mean_diff"] == pytest.approx(0.5) and c["ci95"][0] > 0
    with pytest.raises(ValueError, match="share no problem ids"):
        compare_runs(a, "m", [{"method": "m", "id": "other", "correct": True}], "m")
    with pytest.raises(ValueError, match="no episodes of method 'x'"):
        compare_runs(a, "x", b, "m")


def test_answer_flow_counts():
    rows = [{"method": "t", "q": q, "correct": c} for q, c in [
        ([1.0, 1.0, C_MIN], True), ([1.0, C_MIN, C_MIN], False), ([C_MIN, 1.0, 1.0], True), ([C_MIN, C_MIN, C_MIN], False)]]
    f = answer_flow(rows, "t")
    assert f == {"n": 4, "first_right": 2, "first_right_final_wrong": 1, "first_wrong": 2,
                 "first_wrong_final_right": 1, "agent_right": [2, 2, 1]}


def test_cli_reports_and_errors(tmp_path, capsys):
    run, other = tmp_path / "run", tmp_path / "other"
    run.mkdir(), other.mkdir()
    rows = _episodes(60) + [dict(r, method="team, untrained", correct=False) for r in _episodes(60)]
    (run / "eval_episodes.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (other / "eval_episodes.jsonl").write_text("\n".join(json.dumps(r) for r in _episodes(60, seed=1)))
    assert main(["episodes", str(run), "--against", str(other), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [c["b"] for c in out["comparisons"]] == ["team, untrained", f"team, trained ({other})"]
    assert len(out["incentives"]) == 3 and out["answer_flow"]["n"] == 60
    assert main(["episodes", str(run)]) == 0
    text = capsys.readouterr().out
    assert "team, trained - team, untrained" in text and "per 32 tokens" in text and "answer flow" in text
    assert main(["episodes", str(tmp_path)]) == 2
    assert "no evaluated episodes here" in capsys.readouterr().err
    assert main(["episodes", str(run), "--method", "nope"]) == 2
    assert "methods there: team, trained, team, untrained" in capsys.readouterr().err
    (run / "eval_episodes.jsonl").write_text('{"method": "m"}\n{broken')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        read_episodes(run)
