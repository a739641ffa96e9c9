"""Prompt construction: who sees what (FO / PO / integrator), ordering, budgets and truncation."""

from __future__ import annotations

import pytest

from spgg_jax.rollout.prompts import (
    INTEGRATOR_ROLE,
    PREDECESSOR_HEADER,
    TRUNCATION_MARKER,
    Contribution,
    TokenCounter,
    agent_turn_prompts,
    build_messages,
    render_messages,
    share_budget,
    turn_prompt,
    visible_turns,
)
from spgg_jax.rollout.team import default_team
from spgg_jax.rollout.testing import tiny_tokenizer
from spgg_jax.tasks import Problem


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def test_visible_turns():
    assert visible_turns(0, 3, "fo") == ()
    assert visible_turns(2, 3, "fo") == (0, 1)
    assert visible_turns(2, 3, "po") == (1,)
    assert visible_turns(1, 3, "po") == (0,)
    assert visible_turns(3, 3, "po", "integrator") == (0, 1, 2)
    assert visible_turns(3, 3, "po", "majority_integrator") == (0, 1, 2)
    for final in ("last_answer", "majority"):
        with pytest.raises(ValueError, match="turn must be in"):
            visible_turns(3, 3, "fo", final)
    with pytest.raises(ValueError, match="turn"):
        visible_turns(3, 3, "fo", "last")
    with pytest.raises(ValueError, match="observation"):
        visible_turns(0, 3, "full")


def test_message_order():
    msgs = build_messages("ROLE", "TASK?", "FORMAT.", [Contribution("A1", "out one"), Contribution("A2", "out two")])
    assert msgs[0] == {"role": "system", "content": "ROLE"}
    u = msgs[1]["content"]
    # predecessors first, so the question and the answer format are the last thing the agent reads
    order = [u.index(x) for x in (PREDECESSOR_HEADER, "[A1]\nout one", "[A2]\nout two", "TASK?", "FORMAT.")]
    assert order == sorted(order)
    assert PREDECESSOR_HEADER not in build_messages("R", "T", "F")[1]["content"]


def test_render_chat_and_plain(tok):
    msgs = build_messages("ROLE", "TASK", "FMT")
    text, special = render_messages(tok, msgs)
    assert text.startswith("<|im_start|>system\nROLE") and text.endswith("<|im_start|>assistant\n") and not special
    plain = tiny_tokenizer(chat=False)
    text, special = render_messages(plain, msgs)
    assert special and text == "ROLE\n\nTASK\n\nFMT\n\nResponse:\n"


def _problems(n=2):
    return [Problem(id=f"p{i}", task="basic_arithmetic", prompt=f"What is {i} + {i}?", answer=str(2 * i))
            for i in range(n)]


@pytest.mark.parametrize("obs", ["fo", "po"])
def test_agent_turn_prompts_fo_po(tok, obs):
    team = default_team("tiny", n=3, observation=obs)
    probs = _problems(2)
    outputs = [[f"out-{t}-{b}" for b in range(2)] for t in range(2)]
    p2 = agent_turn_prompts(tok, team, 2, probs, outputs, "FMT")
    for b, tp in enumerate(p2):
        assert probs[b].prompt in tp.text and team.agents[2].role in tp.text
        assert f"[Agent 2 (checker)]\nout-1-{b}" in tp.text
        assert (f"[Agent 1 (solver)]\nout-0-{b}" in tp.text) == (obs == "fo")
        other = 1 - b
        assert f"out-1-{other}" not in tp.text and f"out-0-{other}" not in tp.text
        expect = [f"out-1-{b}"] if obs == "po" else [f"out-0-{b}", f"out-1-{b}"]
        assert list(tp.contribution_texts) == expect
        assert tp.contribution_tokens == sum(len(tok(e, add_special_tokens=False)["input_ids"]) for e in expect)
        assert not tp.truncated
    p0 = agent_turn_prompts(tok, team, 0, probs, [], "FMT")
    assert all(tp.contribution_tokens == 0 and PREDECESSOR_HEADER not in tp.text for tp in p0)


def test_integrator_prompt(tok):
    team = default_team("tiny", n=3, observation="po").replace(final="integrator")
    probs = _problems(1)
    outputs = [[f"out-{t}"] for t in range(3)]
    (tp,) = agent_turn_prompts(tok, team, 3, probs, outputs, "FMT")
    assert INTEGRATOR_ROLE in tp.text and team.agents[0].role not in tp.text
    for t in range(3):
        assert f"out-{t}" in tp.text
    with pytest.raises(ValueError, match="outputs of turns"):
        agent_turn_prompts(tok, team, 3, probs, outputs[:2], "FMT")


def test_share_budget():
    assert share_budget([10, 100, 100], 110) == [10, 50, 50]
    assert share_budget([10, 20], 100) == [10, 20]
    assert share_budget([30, 30, 30], 10) == [3, 3, 4]  # the remainder goes to the last
    assert sum(share_budget([7, 1000, 55, 3], 123)) <= 123


def test_truncation_fits_budget_and_keeps_task_and_ends(tok):
    task = "TASK: compute 12 + 30. " * 3
    long_a = "alpha " * 300 + "ENDA"
    long_b = "beta " * 400 + "ENDB"
    short = "short answer 7"
    contribs = [Contribution("A1", long_a), Contribution("A2", short), Contribution("A3", long_b)]
    full = turn_prompt(tok, "ROLE", task, "FMT", contribs, 100_000)
    assert not full.truncated
    budget = 700
    tp = turn_prompt(tok, "ROLE", task, "FMT", contribs, budget)
    assert tp.truncated and tp.n_tokens <= budget < full.n_tokens
    assert tp.n_tokens == len(tok(tp.text, add_special_tokens=False)["input_ids"])
    assert task.strip() in tp.text  # the task is never truncated
    a, s, b = tp.contribution_texts
    assert s == short  # short outputs stay whole (water-filling)
    for cut, orig, end in ((a, long_a, "ENDA"), (b, long_b, "ENDB")):
        assert cut.startswith(TRUNCATION_MARKER) and cut.endswith(end)
        assert orig.endswith(cut[len(TRUNCATION_MARKER):])
    # the budget is well used: the prompt is close to the limit
    assert tp.n_tokens >= budget - 20


def test_task_over_budget_is_an_error(tok):
    with pytest.raises(ValueError, match="context_budget"):
        turn_prompt(tok, "ROLE", "x" * 500, "FMT", [Contribution("A", "y")], 100)


def test_char_counter_without_tokenizer():
    c = TokenCounter(None)
    assert c.count("hello") == 5
    cut = c.keep_end("abcdefghijklmnopqrstuvwxyz", 10)
    assert cut == TRUNCATION_MARKER + "wxyz" and c.count(cut) == 10
