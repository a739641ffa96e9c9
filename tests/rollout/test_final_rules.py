"""Final-answer rules on fake texts (no model): which turn's output is the team's answer."""

from __future__ import annotations

import numpy as np
import pytest

from spgg_jax.rollout.episode import EpisodeBatch
from spgg_jax.rollout.scoring import choose_final, choose_final_one, score_episodes, vote_key
from spgg_jax.rollout.team import default_team
from tests.rollout.test_scoring import _turn
from spgg_jax.tasks import Problem

N = 3


def test_vote_key_canonical():
    assert vote_key("4") == vote_key(" 4.0 ") == vote_key("8/2") == "4"
    assert vote_key("1,250") == "1250"
    assert vote_key("B") == vote_key(" b") == "b"
    assert vote_key(None) is None and vote_key("  ") is None


@pytest.mark.parametrize("answers,want", [
    (["4", "5", "6"], {"last": 2, "last_answer": 2, "majority": 2}),        # no agreement: the latest
    (["4", "4", "6"], {"last": 2, "last_answer": 2, "majority": 1}),        # clear majority, latest "4"
    (["4", "5", None], {"last": 2, "last_answer": 1, "majority": 1}),       # tie 1-1: most recent answer
    (["4", None, None], {"last": 2, "last_answer": 0, "majority": 0}),      # verifiers did not answer
    ([None, None, None], {"last": 2, "last_answer": 2, "majority": 2}),     # nothing to vote on
    (["4", "5", "4.0"], {"last": 2, "last_answer": 2, "majority": 2}),      # "4.0" votes with "4"
    (["5", "4", "4"], {"last": 2, "last_answer": 2, "majority": 2}),
])
def test_agent_rules(answers, want):
    for rule, t in want.items():
        assert choose_final_one(rule, N, answers) == t, rule


@pytest.mark.parametrize("answers,want", [
    (["4", "5", "6", "7"], {"integrator": 3, "majority_integrator": 3}),    # no agreement: the integrator
    (["4", "4", "6", "6"], {"integrator": 3, "majority_integrator": 3}),    # tie 2-2: most recent (integrator)
    (["6", "6", "4", "4"], {"integrator": 3, "majority_integrator": 3}),
    (["4", "4", "4", "6"], {"integrator": 3, "majority_integrator": 2}),    # agents outvote the integrator
    (["4", "5", "5", None], {"integrator": 3, "majority_integrator": 2}),   # integrator gave no answer
    (["4", "5", None, "4"], {"integrator": 3, "majority_integrator": 3}),
])
def test_integrator_rules(answers, want):
    for rule, t in want.items():
        assert choose_final_one(rule, N, answers) == t, rule


def test_one_more_vote_never_makes_an_answer_lose():
    """The tie-break keeps the vote monotone (what the incentive property needs), checked exhaustively
    for n = 3 over answers in {None, 4, 5, 6}."""
    import itertools

    pool = [None, "4", "5", "6"]
    for rule, voters in (("majority", 3), ("majority_integrator", 4), ("last_answer", 3)):
        for ans in itertools.product(pool, repeat=voters):
            won = vote_key(ans[choose_final_one(rule, N, list(ans))])
            if won is None:
                continue
            for i in range(min(voters, N)):  # agents only: the integrator is not a player
                a = list(ans)
                a[i] = won
                assert vote_key(a[choose_final_one(rule, N, a)]) == won, (rule, ans, i)


def test_errors_name_the_bad_value():
    with pytest.raises(ValueError, match="final rule must be one of .*'first'"):
        choose_final_one("first", N, ["1", "2", "3"])
    with pytest.raises(ValueError, match="needs 4 turns' answers for n=3, got 3"):
        choose_final_one("majority_integrator", N, ["1", "2", "3"])
    np.testing.assert_array_equal(choose_final("majority", 2, [["1", "2"], ["1", "3"]]), [1, 1])


PROBS = [Problem(id=f"p{i}", task="basic_arithmetic", prompt=f"{i} + {i} = ?", answer=str(2 * i)) for i in range(1, 4)]
# texts[turn][problem]; answers 2, 4, 6
TEXTS = [
    ["The answer is 2.", "The answer is 4.", "The answer is 7."],
    ["The answer is 3.", "The answer is 5.", "The answer is 7."],
    ["I agree with the previous agent.", "The answer is 4.", "The answer is 6."],
]
INTEGRATOR = ["The answer is 3.", "The answer is 5.", "The answer is 6."]


def _batch(team, texts):
    return EpisodeBatch(problems=PROBS, turns=[_turn(t, x, [5, 5, 5]) for t, x in enumerate(texts)], team=team)


@pytest.mark.parametrize("final,turns,want_turn,want_correct", [
    ("last", TEXTS, [2, 2, 2], [False, True, True]),
    ("last_answer", TEXTS, [1, 2, 2], [False, True, True]),       # problem 1: agent 3 only agreed
    ("majority", TEXTS, [1, 2, 1], [False, True, False]),          # p1 tie 2/3 -> latest (3); p3 7,7,6 -> 7
    ("integrator", TEXTS + [INTEGRATOR], [3, 3, 3], [False, False, True]),
    ("majority_integrator", TEXTS + [INTEGRATOR], [3, 3, 3], [False, False, True]),
])
def test_score_episodes_uses_the_rule(final, turns, want_turn, want_correct):
    team = default_team("m", n=3).replace(final=final)
    sc = score_episodes(_batch(team, turns), team)
    np.testing.assert_array_equal(sc.final_turn, want_turn)
    np.testing.assert_array_equal(sc.correct_final, want_correct)
    np.testing.assert_array_equal(sc.S, np.asarray(want_correct, np.float32))
    # per-agent quality never depends on the rule
    np.testing.assert_array_equal(sc.per_agent_correct, [[True, False, False], [True, False, True], [False, False, True]])


def test_score_episodes_checks_the_number_of_turns():
    team = default_team("m", n=3).replace(final="majority_integrator")
    with pytest.raises(ValueError, match="plays 4 turns, the batch has 3"):
        score_episodes(_batch(team, TEXTS), team)
