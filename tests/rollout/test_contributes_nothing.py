"""Turns that contribute nothing (``spgg_jax.rollout.scoring.contributes_nothing``): empty output, no
answer, or a bare copy of a predecessor's answer."""

import numpy as np
import pytest

from spgg_jax.rollout.scoring import answer_text, contributes_nothing, is_bare_answer
from spgg_jax.tasks import Problem

MATH = Problem(id="m", task="basic_arithmetic", prompt="Calculate 3 + 9.", answer="12")
CHOICE = Problem(id="c", task="mmlu", prompt="Q?\nA. x\nB. y\nC. z\nD. w", answer="B",
                 metadata={"choices": ("x", "y", "z", "w")})


@pytest.mark.parametrize("texts, want", [
    # agent 1 works it out; agent 2 only restates it; agent 3 says nothing
    (["3 + 9 = 12. The answer is 12.", "The answer is 12.", "   \n"], [False, True, True]),
    # a bare number and a boxed copy are copies; an agent that shows its own check contributes
    (["The answer is 12.", "12", "I checked: 3 + 9 = 12. The answer is 12."], [False, True, False]),
    # no answer at all (a 1-token cut) is nothing; the first stated answer is not a copy, even when bare
    (["Hmm", "So the final answer is 12.0.", "\\boxed{12}"], [True, False, True]),
    # a copy of an earlier (not only the previous) agent's wrong answer; a different bare answer is not a copy
    (["The answer is 11.", "Answer: 12", "The answer is 11."], [False, False, True]),
    # the same answer written differently ("12.0" = "12") is still the same answer
    (["The answer is 12.", "The answer is 12.0", "Answer: 13"], [False, True, False]),
])
def test_math_turns(texts, want):
    np.testing.assert_array_equal(contributes_nothing([MATH], [texts]), [want])


def test_choice_and_shapes():
    out = contributes_nothing([CHOICE, MATH], [["The answer is (B).", "(B)", "Because y fits, the answer is B."],
                                               ["", "", ""]])
    np.testing.assert_array_equal(out, [[False, True, False], [True, True, True]])
    assert out.dtype == bool and out.shape == (2, 3)
    assert contributes_nothing([MATH], [["12", "12", "extra"]], n=2).shape == (1, 2)  # only the agents' turns
    with pytest.raises(ValueError, match="1 problems but 2 rows"):
        contributes_nothing([MATH], [["a"], ["b"]])


def test_answer_text_and_bare_answers():
    assert answer_text(MATH, "so 3 + 9 = 12") == "12" and answer_text(MATH, "no idea") is None
    assert answer_text(CHOICE, "I pick (C)") == "C"
    assert is_bare_answer("**Answer:** 12", "12") and is_bare_answer("#### 12", "12")
    assert not is_bare_answer("120 - 108 = 12, the answer is 12", "12")  # other work is content
    assert not is_bare_answer("The answer is 12", None)
    assert is_bare_answer("The answer is (B).", "B") and not is_bare_answer("B because y fits", "B")
