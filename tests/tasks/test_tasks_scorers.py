"""Scorers: math, multiple choice, code (sandboxed, partial credit), ROUGE-L, batch API."""

from pathlib import Path

import pytest

from spgg_jax.tasks import ScoreResult, load_task, score, score_batch
from spgg_jax.tasks.scorers import rouge_l_f1

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "tasks"


def test_gsm8k_scoring_signs_fractions_commas():
    ps = load_task("gsm8k", path=FIX / "gsm8k")
    good = ["3 trays... 36 - 30 = 6\nThe answer is 6.", "150 - 200 = -50. The answer is -50 dollars.",
            "That is 15,000 eggs.\n#### 15,000", "Each gets \\boxed{\\frac{3}{4}} of a pizza"]
    bad = ["The answer is 7.", "The answer is 50.", "#### 1500", "Each gets 4/3"]
    for p, g, b in zip(ps, good, bad):
        r = score(p, g)
        assert isinstance(r, ScoreResult) and r.correct and r.score == 1.0, (p.id, r)
        r = score(p, b)
        assert not r.correct and r.score == 0.0, (p.id, r)


def test_math_latex_scoring():
    ps = load_task("math", path=FIX / "math")
    assert score(ps[0], "so \\boxed{0.75}").correct
    assert score(ps[1], "The answer is $\\sqrt{8}$.").correct
    assert not score(ps[1], "\\boxed{\\sqrt{2}}").correct
    assert score(ps[2], "x = \\boxed{-3}").correct
    assert not score(ps[2], "x = \\boxed{3}").correct
    assert score(ps[3], "\\boxed{\\{2,-2\\}}").correct


def test_multiple_choice_scoring():
    ps = load_task("mmlu", path=FIX / "mmlu")
    assert score(ps[0], "Sodium is Na. The answer is (B).").correct
    assert not score(ps[0], "The answer is (A).").correct
    assert score(ps[1], "It is Mercury.").correct  # option text fallback
    r = score(ps[2], "no idea")
    assert not r.correct and r.extracted is None


def test_mbpp_partial_credit_and_early_exit():
    ps = load_task("mbpp", path=FIX / "mbpp")
    canon = score_batch(ps, ["```python\n" + p.metadata["code"] + "\n```" for p in ps], max_workers=2)
    assert all(r.correct and r.score == 1.0 for r in canon), canon
    partial = score(ps[0], "def sum_squares(nums):\n    return 14")
    assert not partial.correct and partial.score == pytest.approx(1 / 3)
    assert list(partial.details["tests"]) == [True, False, False]
    for cheat in ("import sys\nsys.exit(0)", "import os\nos._exit(0)",
                  "print('SPGG-0000 [true, true, true]')\nimport sys\nsys.exit(0)"):
        r = score(ps[0], cheat)
        assert not r.correct and r.score == 0.0, (cheat, r)
    hang = score(ps[0], "def sum_squares(nums):\n    if not nums:\n        while True: pass\n    return sum(n*n for n in nums)")
    assert hang.score == pytest.approx(2 / 3)  # the hanging test alone times out
    chal = score(ps[1], ps[1].metadata["code"], include_challenge=True)
    assert chal.correct and len(chal.details["tests"]) == 4


def test_humaneval_scoring_completion_styles():
    p = load_task("humaneval", limit=1)[0]  # has_close_elements
    body = p.metadata["canonical_solution"]
    assert score(p, body).correct
    full = "Here you go:\n```python\nfrom typing import List\n\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n" + body + "```\n"
    assert score(p, full).correct
    wrong = score(p, "    return False\n")
    assert not wrong.correct and wrong.details["status"] == "failed"
    bomb = score(p, "    import os\n    os.fork()\n    return False\n")
    assert not bomb.correct and bomb.details["status"] == "blocked"
    early = score(p, "    return True\nimport sys\nsys.exit(0)\n")
    assert not early.correct


def test_rouge_l():
    assert rouge_l_f1("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
    assert rouge_l_f1("", "x") == 0.0
    assert 0 < rouge_l_f1("the cat sat", "the cat sat on the mat") < 1
    ps = load_task("summeval", path=FIX / "summeval")
    good = score(ps[0], ps[0].metadata["references"][0])
    assert good.correct and good.score == pytest.approx(1.0)
    bad = score(ps[0], "Bananas are yellow.")
    assert not bad.correct and bad.score < 0.1


def test_score_batch_order_mixed_tasks_and_validation():
    gsm = load_task("gsm8k", path=FIX / "gsm8k")
    mbpp = load_task("mbpp", path=FIX / "mbpp")
    probs = [mbpp[0], gsm[0], mbpp[1], gsm[1], mbpp[2]]
    comps = [mbpp[0].metadata["code"], "#### 6", "def is_pal(s): return False", "#### 50", mbpp[2].metadata["code"]]
    rs = score_batch(probs, comps, max_workers=2)
    assert [r.correct for r in rs] == [True, True, False, False, True]
    assert rs[2].score == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="2 problems but 1 completions"):
        score_batch(probs[:2], comps[:1])
    with pytest.raises(KeyError, match="unknown scorer"):
        score(gsm[0], "6", scorer="nope")


# ---------------------------------------------------------------------------------------------
# The grader cannot be gamed from inside the candidate's process (issue 14).
# ---------------------------------------------------------------------------------------------
_ALWAYS_EQUAL = (
    "class _E:\n    def __eq__(self, o): return True\n    def __ne__(self, o): return False\n"
    "    def __bool__(self): return True\n    __hash__ = object.__hash__\n")

CHEATS = {
    "always_equal": _ALWAYS_EQUAL + "def {f}(*a, **k):\n    return _E()\n",
    "int_subclass": "class _I(int):\n    def __eq__(self, o): return True\n    __hash__ = int.__hash__\n"
                    "def {f}(*a, **k):\n    return _I(0)\n",
    "list_subclass": "class _L(list):\n    def __eq__(self, o): return True\n"
                     "def {f}(*a, **k):\n    return _L()\n",
    "patched_builtins": "import builtins\nbuiltins.isinstance = lambda *a: True\nbuiltins.abs = lambda x: 0\n"
                        "builtins.all = lambda x: True\nbuiltins.AssertionError = type('X', (Exception,), {{}})\n"
                        "def {f}(*a, **k):\n    return None\n",
    "exit_before_tests": "import sys\nsys.exit(0)\ndef {f}(*a, **k):\n    return None\n",
    "os_exit_in_call": "import os\ndef {f}(*a, **k):\n    os._exit(0)\n",
    "fake_report": "import sys, re\nprint(open(sys.argv[0]).read()[:0] + 'PASS')\n"
                   "for l in open(sys.argv[0]):\n    m = re.search(r\"(SPGG-[0-9a-f]+)\", l)\n"
                   "    if m: print(m.group(1) + ' PASS')\n"
                   "def {f}(*a, **k):\n    return None\n",
    "systemexit_in_call": "def {f}(*a, **k):\n    raise SystemExit(0)\n",
    "deep_nesting": "def {f}(*a, **k):\n    x = []\n    for _ in range(5000):\n        x = [x]\n    return x\n",
}


@pytest.mark.parametrize("cheat", sorted(CHEATS))
def test_humaneval_cheats_do_not_pass(cheat):
    ps = load_task("humaneval", limit=3)
    for p in ps:
        f = p.metadata["entry_point"]
        comp = "```python\n" + CHEATS[cheat].format(f=f) + "```"
        r = score(p, comp)
        assert not r.correct and r.score == 0.0, (cheat, p.id, r.details)
        assert r.details["mode"] == "checked"


def test_humaneval_classic_is_the_official_program_and_can_be_gamed():
    """The classic scorer stays available for published pass@1 numbers: it passes the canonical
    solution and (documented) is fooled by an object equal to everything, unlike ``humaneval``."""
    p = load_task("humaneval", limit=1)[0]
    assert score(p, p.metadata["canonical_solution"], scorer="humaneval_classic").correct
    cheat = "```python\n" + CHEATS["always_equal"].format(f=p.metadata["entry_point"]) + "```"
    assert score(p, cheat, scorer="humaneval_classic").correct
    assert not score(p, cheat).correct


def test_checked_humaneval_passes_honest_values_of_every_plain_type():
    """Return values of each supported type cross the process boundary intact."""
    from spgg_jax.tasks.base import Problem

    values = [None, True, 0, -(10 ** 40), 1.5, float("inf"), -0.0, 2 + 3j, "é\n", b"\x00\xff",
              [1, [2]], (1, (2,)), {"a": (1, 2), 3: None}, {1, 2}, frozenset({"x"})]
    test = "from math import inf\n\ndef check(candidate):\n" + "".join(
        f"    v = candidate({i})\n    assert v == {v!r} and type(v) is type({v!r})\n"
        for i, v in enumerate(values))
    p = Problem(id="t/0", task="humaneval", prompt="from math import inf\n\ndef f(i):\n    \"\"\"value i\"\"\"\n", answer=None,
                metadata={"entry_point": "f", "test": test})
    body = "    return " + repr(values) + "[i]\n"
    r = score(p, body)
    assert r.correct, r.details
    nan = Problem(id="t/1", task="humaneval", prompt="def f():\n    \"\"\"nan\"\"\"\n", answer=None,
                  metadata={"entry_point": "f", "test": "import math\ndef check(c):\n    assert math.isnan(c())\n"})
    assert score(nan, "    return float('nan')\n").correct


# MBPP rows as in google-research-datasets/mbpp (full config; tasks 2, 17, 57 plus one with setup
# code), canonical solutions included.
_MBPP_ROWS = [
    dict(task_id=2, text="Write a function to find the similar elements from the given two tuple lists.",
         code="def similar_elements(test_tup1, test_tup2):\r\n  res = tuple(set(test_tup1) & set(test_tup2))\r\n  return (res) ",
         test_list=["assert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)",
                    "assert similar_elements((1, 2, 3, 4),(5, 4, 3, 7)) == (3, 4)",
                    "assert similar_elements((11, 12, 14, 13),(17, 15, 14, 13)) == (13, 14)"],
         test_setup_code="", challenge_test_list=[]),
    dict(task_id=17, text="Write a function to find the perimeter of a square.",
         code="def square_perimeter(a):\r\n  perimeter=4*a\r\n  return perimeter",
         test_list=["assert square_perimeter(10)==40", "assert square_perimeter(5)==20",
                    "assert square_perimeter(4)==16"],
         test_setup_code="", challenge_test_list=[]),
    dict(task_id=57, text="Write a python function to find the largest number that can be formed with the given digits.",
         code="def find_Max_Num(arr,n) : \r\n    arr.sort(reverse = True) \r\n    num = arr[0] \r\n    for i in range(1,n) : \r\n        num = num * 10 + arr[i] \r\n    return num ",
         test_list=["assert find_Max_Num([1,2,3],3) == 321", "assert find_Max_Num([4,5,6,1],4) == 6541",
                    "assert find_Max_Num([1,2,3,9],4) == 9321"],
         test_setup_code="", challenge_test_list=[]),
    dict(task_id=904, text="Write a function to compute the mean of a list, as a float close to math.fsum/len.",
         code="import math\r\ndef mean_of(xs):\r\n    return math.fsum(xs) / len(xs)",
         test_list=["assert math.isclose(mean_of([1, 2, 3, 4]), 2.5)",
                    "assert isinstance(mean_of([1]), float)",
                    "assert set(map(round, [mean_of([0.4, 0.6])])) == {round(0.5)}"],
         test_setup_code="import math", challenge_test_list=[]),
]


def _mbpp_problems():
    from spgg_jax.tasks.base import Problem

    out = []
    for row in _MBPP_ROWS:
        md = dict(row)
        out.append(Problem(id=f"mbpp/{row['task_id']}", task="mbpp", prompt=row["text"], answer=None, metadata=md))
    return out


MBPP_CHEATS = dict(CHEATS)
MBPP_CHEATS.update({
    "tuple_subclass": "class _T(tuple):\n    def __eq__(self, o): return True\n    __hash__ = tuple.__hash__\n"
                      "def {f}(*a, **k):\n    return _T()\n",
    "patched_assert_helpers": "import builtins, math\nmath.isclose = lambda *a, **k: True\n"
                              "builtins.set = lambda *a: _S()\nclass _S:\n    def __eq__(self, o): return True\n"
                              "builtins.isinstance = lambda *a: True\nbuiltins.round = lambda *a: 0\n"
                              "def {f}(*a, **k):\n    return None\n",
    "fake_report_list": "import sys, re\nfor l in open(sys.argv[0]):\n    m = re.search(r\"(SPGG-[0-9a-f]+)\", l)\n"
                        "    if m: print(m.group(1) + ' [true, true, true]')\n"
                        "def {f}(*a, **k):\n    return None\n",
    "exit_in_call": "import sys\ndef {f}(*a, **k):\n    sys.exit(0)\n",
})


def _mbpp_entry(p):
    import re

    return re.search(r"def (\w+)", p.metadata["code"]).group(1)


def test_mbpp_checked_canonical_solutions_pass():
    ps = _mbpp_problems() + load_task("mbpp", path=FIX / "mbpp")
    rs = score_batch(ps, ["```python\n" + p.metadata["code"] + "\n```" for p in ps], max_workers=2)
    for p, r in zip(ps, rs):
        assert r.correct and r.score == 1.0 and r.details["mode"] == "checked", (p.id, r.details)


@pytest.mark.parametrize("cheat", sorted(MBPP_CHEATS))
def test_mbpp_cheats_do_not_pass(cheat):
    ps = _mbpp_problems()
    comps = ["```python\n" + MBPP_CHEATS[cheat].format(f=_mbpp_entry(p)) + "```" for p in ps]
    for p, r in zip(ps, score_batch(ps, comps, max_workers=2)):
        assert r.score == 0.0 and not r.correct, (cheat, p.id, r.details)
        assert r.details["mode"] == "checked"


def test_mbpp_classic_runs_in_process_and_can_be_gamed():
    """The classic scorer (asserts in the candidate's process) is fooled by an always-equal
    object; the checked one is not, and both agree on honest code."""
    p = _mbpp_problems()[0]
    cheat = "```python\n" + CHEATS["always_equal"].format(f="similar_elements") + "```"
    assert score(p, cheat, scorer="mbpp_classic").score == 1.0
    assert score(p, cheat).score == 0.0
    assert score(p, p.metadata["code"], scorer="mbpp_classic").correct
    half = "def similar_elements(a, b):\n    return (4, 5)\n"
    assert score(p, half, scorer="mbpp_classic").score == score(p, half).score == pytest.approx(1 / 3)


def test_mbpp_checked_timeout_in_one_test_does_not_shift_answers():
    """A call abandoned by its test's time budget answers late; the next test must not take that
    late answer for its own."""
    p = _mbpp_problems()[1]
    comp = ("import time\ndef square_perimeter(a):\n    if a == 10:\n        time.sleep(2.5)\n        return 20\n"
            "    return 4 * a\n")
    r = score(p, comp)
    assert r.details["tests"] == [False, True, True], r.details
