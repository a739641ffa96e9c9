"""Baselines and the sequential protocol on a tiny random model: batching and exact accounting."""

from __future__ import annotations

import csv
import json

import jax
import numpy as np
import pytest

from spgg_jax.eval import METHODS, EvalContext, evaluate, format_table, majority_vote, parse_methods, write_results
from spgg_jax.eval.methods import worked_answer
from spgg_jax.rollout.team import default_team
from spgg_jax.rollout.testing import tiny_bundle
from spgg_jax.tasks import Problem, load_task

B, N, K, R, MAX_NEW = 3, 3, 4, 2, 6


@pytest.fixture(scope="module")
def setup():
    bundle = tiny_bundle("tiny", seed=0)
    calls = []
    orig = bundle.sampler.prefill  # every rollout turn prefills once, then decodes

    def spy(prompts, *a, **kw):
        calls.append(len(prompts))
        return orig(prompts, *a, **kw)

    bundle.sampler.prefill = spy
    team = default_team("tiny", n=N, max_new_tokens=MAX_NEW, temperature=1.0)
    problems = load_task("basic_arithmetic", split="test", limit=B)
    ctx = EvalContext(team=team, bundles={"tiny": bundle}, task="basic_arithmetic",
                      options={"samples": K, "rounds": R, "shots": 2})
    return ctx, problems, calls, bundle.tokenizer


def _count(tok, text):
    return len(tok(text.strip(), add_special_tokens=False)["input_ids"])


def test_majority_vote():
    assert majority_vote(["3", "4", "4", None]) == 1
    assert majority_vote(["5", "6"]) == 0  # tie: first seen
    assert majority_vote([None, " 7 ", "7"]) == 1
    assert majority_vote([None, None]) == 0


def test_registry_and_parse():
    assert set(METHODS.names()) == {"single", "fewshot", "cot", "self_consistency", "debate", "mac_spgg_fo",
                                    "mac_spgg_po"}
    assert parse_methods("single, cot") == ["single", "cot"] and parse_methods("all") == METHODS.names()
    with pytest.raises(KeyError, match="debate"):
        parse_methods("single,nope")


EXPECT = {  # method -> (LLM calls per problem, sampler calls, rows per sampler call)
    "single": (1, 1, B), "cot": (1, 1, B), "fewshot": (1, 1, B), "self_consistency": (K, 1, B * K),
    "debate": (N * R, R, B * N), "mac_spgg_fo": (N, N, B), "mac_spgg_po": (N, N, B),
}


@pytest.mark.parametrize("method", list(EXPECT))
def test_method_accounting(setup, method):
    ctx, problems, calls, tok = setup
    calls.clear()
    res = METHODS.get(method)(ctx, problems, jax.random.key(0))
    per_problem, n_calls, rows = EXPECT[method]
    assert calls == [rows] * n_calls  # batched across problems (and agents), never one row at a time
    np.testing.assert_array_equal(res.llm_calls, per_problem)
    assert len(res.final_text) == B and res.correct.shape == (B,) and res.score.shape == (B,)
    assert np.all(res.tokens_generated >= per_problem) and np.all(res.tokens_generated <= per_problem * MAX_NEW)
    assert res.seconds > 0
    s = res.summary()
    assert s["llm_calls"] == per_problem * B and 0 <= s["accuracy"] <= 1
    if method == "debate":
        for i, d in enumerate(res.details):
            first = d["rounds"][0]
            want = sum(_count(tok, first[o]) for a in range(N) for o in range(N) if o != a)
            assert res.tokens_exchanged[i] == want
            assert res.final_text[i] in d["rounds"][-1]
    elif method.startswith("mac_spgg"):
        for i, d in enumerate(res.details):
            t0, t1, t2 = d["turns"]
            want = 2 * _count(tok, t0) + _count(tok, t1) if method.endswith("fo") else _count(tok, t0) + _count(tok, t1)
            assert res.tokens_exchanged[i] == want
            assert res.final_text[i] == t2
    else:
        np.testing.assert_array_equal(res.tokens_exchanged, 0)
    if method == "self_consistency":
        for i, d in enumerate(res.details):
            assert len(d["samples"]) == K and res.final_text[i] in d["samples"]
    if method == "fewshot":
        assert all(len(d["shots"]) == 2 and all("/train/" in x for x in d["shots"]) for d in res.details)


def test_worked_answers():
    p = Problem(id="g", task="gsm8k", prompt="q", answer="18", metadata={"solution": "3 * 6 = 18\n#### 18"})
    assert worked_answer(p) == "3 * 6 = 18\nThe answer is 18."
    mc = Problem(id="m", task="mmlu", prompt="q", answer="B")
    assert worked_answer(mc) == "The answer is (B)."
    he = Problem(id="h", task="humaneval", prompt="def f():\n", answer=None,
                 metadata={"canonical_solution": "    return 1\n", "test": "", "entry_point": "f"})
    assert worked_answer(he) == "```python\ndef f():\n    return 1\n```"


def test_evaluate_and_write(setup, tmp_path):
    ctx, problems, _, _ = setup
    res = evaluate("basic_arithmetic", ctx.team, ["single", "mac_spgg_po"], problems, ctx.bundles,
                   jax.random.key(1), ctx.options)
    assert [r.method for r in res] == ["single", "mac_spgg_po"]
    table = format_table(res)
    assert "mac_spgg_po" in table and "tok exch" in table
    out = write_results(res, tmp_path / "run", {"task": "basic_arithmetic"})
    meta = json.loads((out / "results.json").read_text())
    assert meta["task"] == "basic_arithmetic" and [r["method"] for r in meta["results"]] == ["single", "mac_spgg_po"]
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["method"] for r in rows] == ["single", "mac_spgg_po"] and int(rows[1]["llm_calls"]) == N * B
    lines = (out / "problems_mac_spgg_po.jsonl").read_text().splitlines()
    assert len(lines) == B and len(json.loads(lines[0])["turns"]) == N
