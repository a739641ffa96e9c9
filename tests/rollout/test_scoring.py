"""Episode scores and rewards on hand-made outputs (no model)."""

from __future__ import annotations

import chex
import jax.numpy as jnp
import numpy as np
import pytest

from spgg_jax.game import rewards_given_score
from spgg_jax.rollout.episode import AgentTurn, EpisodeBatch
from spgg_jax.rollout.scoring import episode_rewards, is_verifiable, make_scores, score_episodes
from spgg_jax.rollout.team import default_team
from spgg_jax.sampling import SamplingParams
from spgg_jax.tasks import Problem

PROBS = [Problem(id=f"p{i}", task="basic_arithmetic", prompt=f"{i} + {i} = ?", answer=str(2 * i)) for i in range(3)]
# texts[turn][problem]
TEXTS = [
    ["The answer is 0.", "I think 5.", "The answer is 4."],       # agent 1: right, wrong, right
    ["The answer is 1.", "The answer is 2.", "no idea"],          # agent 2: wrong, right, wrong
    ["The answer is 0.", "The answer is 7.", "The answer is 4."],  # agent 3: right, wrong, right
]
LENGTHS = [[10, 20, 40], [5, 40, 0], [40, 40, 40]]


def _turn(t, texts, lengths, max_new=40):
    b = len(texts)
    z = np.zeros((b, 4))
    return AgentTurn(
        turn=t, agent=t, model="m", prompt_text=[""] * b, prompt_ids=z.astype(np.int32), prompt_mask=z.astype(bool),
        tokens=z.astype(np.int32), mask=z.astype(bool), logprobs=z, model_logprobs=z,
        lengths=np.asarray(lengths, np.int32), finish_reason=np.zeros(b, np.int32), output_text=list(texts),
        sampling=SamplingParams.create(b, max_new_tokens=max_new), aux={}, features=None,
        exchanged_tokens=np.zeros(b, np.int32), truncated=np.zeros(b, bool), seconds=0.0)


def _batch(team, texts=TEXTS, lengths=LENGTHS):
    return EpisodeBatch(problems=PROBS, turns=[_turn(t, x, l) for t, (x, l) in enumerate(zip(texts, lengths))],
                        team=team)


def test_make_scores_pure():
    s = make_scores([[0.0, 1.0], [0.5, 0.25]], [[False, True], [False, False]], [1.0, 0.0], [True, False],
                    [[0, 10], [5, 20]], [[10, 10], [20, 20]], c_min=0.2, c_max=1.0)
    np.testing.assert_allclose(s.q, [[0.2, 1.0], [0.6, 0.4]], rtol=1e-6)
    np.testing.assert_allclose(s.effort, [[0.2, 1.0], [0.4, 1.0]], rtol=1e-6)
    np.testing.assert_array_equal(s.S, [1.0, 0.0])
    with pytest.raises(ValueError, match="lengths"):
        make_scores([[0.0, 1.0]], [[0, 1]], [1.0], [True], [[1, 2, 3]], [[1, 1]], 0.1, 1.0)


def test_score_episodes_last():
    team = default_team("m", n=3)
    sc = score_episodes(_batch(team), team)
    chex.assert_shape([sc.q, sc.effort, sc.per_agent_correct], (3, 3))
    want = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], bool).T  # [B, n]
    np.testing.assert_array_equal(sc.per_agent_correct, want)
    np.testing.assert_allclose(sc.q, np.where(want, team.c_max, team.c_min), rtol=1e-6)
    np.testing.assert_array_equal(sc.correct_final, want[:, 2])
    np.testing.assert_allclose(sc.S, want[:, 2].astype(np.float32))
    eff = team.c_min + (team.c_max - team.c_min) * np.asarray(LENGTHS, np.float32).T / 40
    np.testing.assert_allclose(sc.effort, eff, rtol=1e-6)


def test_score_episodes_integrator_final_is_scored_separately():
    team = default_team("m", n=3).replace(final="integrator")
    texts = TEXTS + [["The answer is 9.", "The answer is 2.", "The answer is 4."]]
    sc = score_episodes(_batch(team, texts, LENGTHS + [[1, 1, 1]]), team)
    chex.assert_shape(sc.q, (3, 3))  # the integrator turn is no extra player
    np.testing.assert_array_equal(sc.correct_final, [False, True, True])
    np.testing.assert_array_equal(sc.per_agent_correct[:, 2], [True, False, True])


def test_episode_rewards_match_game_and_token_cost():
    team = default_team("m", n=3).replace(reward_params={"gamma": 0.5, "B": 0.6})
    sc = score_episodes(_batch(team), team)
    r = episode_rewards(sc, team)
    ref = rewards_given_score("mac_spgg", sc.q, sc.S, team.game_params())
    chex.assert_shape(r, (3, 3))
    np.testing.assert_allclose(r, ref, rtol=1e-6)
    tok_team = team.replace(cost="tokens")
    r_tok = episode_rewards(sc, tok_team)
    kappa = float(team.game_params().kappa)
    # quadratic cost kappa q^2/2 replaced by kappa e^2/2
    np.testing.assert_allclose(r_tok - r, kappa * (np.asarray(sc.q) ** 2 - np.asarray(sc.effort) ** 2) / 2,
                               rtol=1e-5, atol=1e-6)
    # a correct final answer is worth more to everyone than a wrong one (all else equal)
    hi = sc.replace(S=jnp.ones(3))
    lo = sc.replace(S=jnp.zeros(3))
    assert np.all(np.asarray(episode_rewards(hi, team)) > np.asarray(episode_rewards(lo, team)))


def test_judge_used_for_non_verifiable_tasks():
    assert is_verifiable("basic_arithmetic") and not is_verifiable("summeval")
    probs = [Problem(id=f"s{i}", task="summeval", prompt="Summarize.", answer="ref summary",
                     metadata={"source": "article"}) for i in range(2)]
    texts = [["short", "a much longer summary"], ["x", "yy"]]
    team = default_team("m", n=2)
    batch = EpisodeBatch(problems=probs, turns=[_turn(t, x, [1, 2]) for t, x in enumerate(texts)], team=team)
    judge = lambda ps, ts: np.asarray([min(len(t) / 20, 1.0) for t in ts], np.float32)  # noqa: E731
    sc = score_episodes(batch, team, judge=judge)
    want = np.array([[0.25, 0.05], [1.0, 0.1]], np.float32)
    np.testing.assert_allclose(sc.q, team.c_min + (team.c_max - team.c_min) * want, rtol=1e-6)
    np.testing.assert_allclose(sc.S, want[:, 1], rtol=1e-6)
    bad = lambda ps, ts: np.full(len(ts), 2.0)  # noqa: E731
    with pytest.raises(ValueError, match="judge"):
        score_episodes(batch, team, judge=bad)
