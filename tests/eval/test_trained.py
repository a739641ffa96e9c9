"""The evaluation of a trained run: the baseline rows, the best baseline chosen on validation only,
the headline and the table (``spgg_jax.eval.trained``). The rows on a real rollout are checked end
to end in tests/rl/test_trainer.py (``spgg eval --run-dir``) and below on the tiny model."""

import types

import numpy as np
import pytest

from spgg_jax.eval import trained as tr
from spgg_jax.eval.trained import (BASELINES, SELF_CONSISTENCY, SINGLE, SINGLE_GREEDY, TRAINED, UNTRAINED,
                                   UNTRAINED_GREEDY, EvalRun, best_baseline, eval_json, evaluate_trained,
                                   format_eval_table)


def _run(method, correct, tokens=10):
    correct = np.asarray(correct, bool)
    row = {"method": method, "setting": "", "accuracy": float(correct.mean()), "n": int(correct.size),
           "ci95": [0.0, 1.0], "mean_reward": None, "free_riding": None, "tokens_generated": tokens,
           "llm_calls": int(correct.size), "seconds": 0.0}
    return EvalRun(row, correct, records=[])


class _FakeEval:
    """Baselines whose outcomes depend on the problem set: on validation SINGLE_GREEDY is best, on the
    test problems UNTRAINED_GREEDY is (so a choice made on test would differ)."""

    def __init__(self, val, test, trained):
        self.val, self.test, self.trained, self.calls = val, test, trained, []

    def baselines(self, setup, problems, key):
        self.calls.append(tuple(problems))
        table = self.val if tuple(problems) == tuple(setup.val_problems) else self.test
        return [_run(m, table[m][0], table[m][1]) for m in BASELINES]

    def team(self, setup, label, team, problems, key, *, game=True, policy=None, setting=None):
        assert label == TRAINED and policy == "policy"
        return _run(TRAINED, self.trained)


def _setup(val_n=6, test_n=8):
    learner = types.SimpleNamespace(rollout_policy=lambda state, deterministic: "policy")
    return types.SimpleNamespace(val_problems=[f"v{i}" for i in range(val_n)],
                                 eval_problems=[f"t{i}" for i in range(test_n)], learner=learner,
                                 team=None, splits={}, cfg=None)


VAL = {SINGLE_GREEDY: ([1, 1, 1, 1, 0, 0], 50), SINGLE: ([1, 0, 0, 0, 0, 0], 50),
       SELF_CONSISTENCY: ([1, 1, 0, 0, 0, 0], 150), UNTRAINED: ([0, 0, 0, 0, 0, 0], 150),
       UNTRAINED_GREEDY: ([1, 1, 1, 0, 0, 0], 150)}
TEST = {SINGLE_GREEDY: ([1, 1, 0, 0, 0, 0, 0, 0], 60), SINGLE: ([0] * 8, 60), SELF_CONSISTENCY: ([1] + [0] * 7, 180),
        UNTRAINED: ([0] * 8, 180), UNTRAINED_GREEDY: ([1, 1, 1, 1, 1, 0, 0, 0], 180)}
TRAINED_TEST = [1, 1, 1, 1, 0, 0, 0, 0]


def test_the_best_baseline_is_chosen_on_validation_and_the_headline_is_on_test(monkeypatch):
    fake = _FakeEval(VAL, TEST, TRAINED_TEST)
    monkeypatch.setattr(tr, "run_baselines", fake.baselines)
    monkeypatch.setattr(tr, "run_team", fake.team)
    setup = _setup()
    out = evaluate_trained(setup, {}, key=None)
    assert [r["method"] for r in out["rows"]] == [*BASELINES, TRAINED]
    assert all(r["n"] == 8 for r in out["rows"])  # the rows are the test problems
    assert out["validation"]["best"] == SINGLE_GREEDY  # best on validation, not UNTRAINED_GREEDY (best on test)
    assert [r["accuracy"] for r in out["validation"]["rows"]] == pytest.approx([4 / 6, 1 / 6, 2 / 6, 0, 3 / 6])
    h = out["headline"]
    assert (h["a"], h["b"]) == (TRAINED, SINGLE_GREEDY)
    assert h["mean_diff"] == pytest.approx(4 / 8 - 2 / 8) and h["mean_diff"] > 0  # trained better on test
    assert h["a_only"] == 2 and h["b_only"] == 0 and h["ci95"][0] <= h["mean_diff"] <= h["ci95"][1]
    # trained minus every row; against the test's best row the difference is negative
    diffs = {c["b"]: c["mean_diff"] for c in out["comparisons"]}
    assert set(diffs) == set(BASELINES) and diffs[UNTRAINED_GREEDY] == pytest.approx(-1 / 8)
    # the validation problems were only used for the untrained rows
    assert fake.calls == [tuple(setup.eval_problems), tuple(setup.val_problems)]
    js = eval_json(out)
    assert set(js) == {"split", "splits", "rows", "validation", "headline", "comparisons"}
    text = format_eval_table(out)
    assert f"best untrained baseline on validation (highest validation accuracy; ties: fewer tokens): {SINGLE_GREEDY}" \
        in text
    assert f"headline (same problems, same keys; 95% interval): {TRAINED} - {SINGLE_GREEDY}: +0.250" in text
    assert text.count(f"  {TRAINED} - ") == len(BASELINES)


def test_without_validation_there_is_no_headline_and_every_comparison_counts(monkeypatch):
    fake = _FakeEval(VAL, TEST, TRAINED_TEST)
    monkeypatch.setattr(tr, "run_baselines", fake.baselines)
    monkeypatch.setattr(tr, "run_team", fake.team)
    out = evaluate_trained(_setup(val_n=0), {}, key=None)
    assert out["validation"] is None and out["headline"] is None and len(out["comparisons"]) == len(BASELINES)
    assert "no validation split (val_size=0)" in format_eval_table(out)
    with pytest.raises(ValueError, match="split must be 'test' or 'val'"):
        evaluate_trained(_setup(), {}, key=None, split="train")


def test_on_the_validation_split_the_rows_are_reused_for_the_choice_and_marked(monkeypatch):
    fake = _FakeEval(VAL, TEST, [1, 1, 1, 1, 1, 0])
    monkeypatch.setattr(tr, "run_baselines", fake.baselines)
    monkeypatch.setattr(tr, "run_team", fake.team)
    setup = _setup()
    out = evaluate_trained(setup, {}, key=None, split="val")
    assert fake.calls == [tuple(setup.val_problems)]  # the untrained rows ran once, on validation
    assert out["split"] == "val" and out["validation"]["best"] == SINGLE_GREEDY
    assert "not a held-out result" in format_eval_table(out)


def test_best_baseline_ties_go_to_fewer_tokens():
    rows = [{"method": "a", "accuracy": 0.5, "tokens_generated": 30}, {"method": "b", "accuracy": 0.5,
                                                                        "tokens_generated": 20},
            {"method": "c", "accuracy": 0.4, "tokens_generated": 1}]
    assert best_baseline(rows) == "b"
    assert best_baseline(rows[:1] + [dict(rows[0], method="d")]) == "a"  # full tie: table order
    with pytest.raises(ValueError, match="no baseline rows"):
        best_baseline([])


def test_rows_on_the_tiny_model_have_tokens_and_calls(tiny_model_dir, tmp_path):
    """Every row on real rollouts: one call per problem and turn (self-consistency: n per problem),
    the tokens those calls generated, and self-consistency's samples in the episode records."""
    from spgg_jax.train import Trainer, load_config
    from tiny_models import tiny_train_overrides

    t = Trainer(load_config(None, tiny_train_overrides(tiny_model_dir, tmp_path / "r", 1, eval_size=3,
                                                       sc_temperature=0.9)))
    out = t.evaluate()
    n, b = t.n, 3
    calls = {r["method"]: r["llm_calls"] for r in out["rows"]}
    assert calls == {SINGLE_GREEDY: b, SINGLE: b, SELF_CONSISTENCY: n * b, UNTRAINED: n * b, UNTRAINED_GREEDY: n * b,
                     TRAINED: n * b}
    for run in out["runs"]:
        if run.batch is not None:
            assert run.row["tokens_generated"] == int(np.asarray(run.batch.tokens_generated).sum())
        assert 0 <= run.row["tokens_generated"] <= run.row["llm_calls"] * 10  # max_new_tokens 10
    sc = next(r for r in out["runs"] if r.row["method"] == SELF_CONSISTENCY)
    assert sc.row["tokens_generated"] == sum(turn["tokens"] for rec in sc.records for turn in rec["turns"])
    assert "at T 0.9" in sc.row["setting"] and all(len(rec["turns"]) == n for rec in sc.records)
    assert out["rows"][0]["setting"].startswith("greedy") and out["validation"]["n"] == 3
    records = tr.episode_records(out)
    assert len(records) == 6 * b and {r["method"] for r in records} == {*BASELINES, TRAINED}


def test_rows_read_off_the_team_equal_the_rows_run_alone(tiny_model_dir, tmp_path):
    """The two ``agent 1 alone`` rows are agent 1's turn of the untrained team rows, and the first
    self-consistency sample is the configured one: each equals generating it on its own (texts,
    lengths, correctness), and a different sc_temperature generates its own sample 0."""
    import jax

    from spgg_jax.train import Trainer, load_config
    from tiny_models import tiny_train_overrides

    t = Trainer(load_config(None, tiny_train_overrides(tiny_model_dir, tmp_path / "r", 1, eval_size=4,
                                                       **{"team.agents.temperature": 0.9},
                                                       sc_temperature=0.9)))
    setup, problems, key = t.setup, list(t.setup.eval_problems), jax.random.key(3)
    runs = {r.row["method"]: r for r in tr.run_baselines(setup, problems, key)}
    single = tr.single_team(setup.team)
    for label, team in ((SINGLE, single), (SINGLE_GREEDY, tr.greedy_team(single))):
        alone = tr.run_team(setup, label, team, problems, key, game=False)
        read = runs[label]
        assert read.batch.turns[0].output_text == alone.batch.turns[0].output_text
        np.testing.assert_array_equal(read.batch.turns[0].lengths, alone.batch.turns[0].lengths)
        np.testing.assert_array_equal(read.correct, alone.correct)
        assert {k: v for k, v in read.row.items() if k != "seconds"} == \
            {k: v for k, v in alone.row.items() if k != "seconds"}
    sc = runs[SELF_CONSISTENCY]
    assert [rec["turns"][0]["output"] for rec in sc.records] == runs[SINGLE].batch.turns[0].output_text
    fresh = tr.run_self_consistency(setup, problems, key, t.n, 0.9)
    assert [rec["turns"] for rec in fresh.records] == [rec["turns"] for rec in sc.records]
    other = tr.run_self_consistency(setup, problems, key, t.n, 0.5, first=runs[SINGLE])
    assert [rec["turns"] for rec in other.records] == \
        [rec["turns"] for rec in tr.run_self_consistency(setup, problems, key, t.n, 0.5).records]
    assert [rec["turns"][0] for rec in other.records] != [rec["turns"][0] for rec in sc.records]
