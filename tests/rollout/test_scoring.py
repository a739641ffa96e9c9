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
    max_new = np.broadcast_to(np.asarray(max_new, np.int32), (len(texts),))
    b = len(texts)
    z = np.zeros((b, 4))
    return AgentTurn(
        turn=t, agent=t, model="m", prompt_text=[""] * b, prompt_ids=z.astype(np.int32), prompt_mask=z.astype(bool),
        tokens=z.astype(np.int32), mask=z.astype(bool), logprobs=z, model_logprobs=z,
        lengths=np.asarray(lengths, np.int32), finish_reason=np.zeros(b, np.int32), output_text=list(texts),
        sampling=SamplingParams.create(b, max_new_tokens=max_new), features=None,
        exchanged_tokens=np.zeros(b, np.int32), truncated=np.zeros(b, bool), seconds=0.0)


def _batch(team, texts=TEXTS, lengths=LENGTHS, max_new=40):
    return EpisodeBatch(problems=PROBS, turns=[_turn(t, x, l, max_new) for t, (x, l) in enumerate(zip(texts, lengths))],
                        team=team)


def test_make_scores_pure():
    s = make_scores([[0.0, 1.0], [0.5, 0.25]], [[False, True], [False, False]], [1.0, 0.0], [True, False],
                    [[0, 10], [5, 30]], 20, c_min=0.2, c_max=1.0)
    np.testing.assert_allclose(s.q, [[0.2, 1.0], [0.6, 0.4]], rtol=1e-6)
    np.testing.assert_allclose(s.effort, [[0.2, 0.6], [0.4, 1.0]], rtol=1e-6)  # 30 / 20 clipped to 1
    np.testing.assert_array_equal(s.S, [1.0, 0.0])
    np.testing.assert_array_equal(s.tokens, [[0, 10], [5, 30]])
    np.testing.assert_array_equal(s.final_turn, [1, 1])  # default: the last agent
    with pytest.raises(ValueError, match="lengths"):
        make_scores([[0.0, 1.0]], [[0, 1]], [1.0], [True], [[1, 2, 3]], 10, 0.1, 1.0)
    with pytest.raises(ValueError, match="token_budget must be one number >= 1.*0"):
        make_scores([[0.0, 1.0]], [[0, 1]], [1.0], [True], [[1, 2]], 0, 0.1, 1.0)


def test_score_episodes_last():
    team = default_team("m", n=3)
    sc = score_episodes(_batch(team), team)
    chex.assert_shape([sc.q, sc.effort, sc.per_agent_correct], (3, 3))
    want = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], bool).T  # [B, n]
    np.testing.assert_array_equal(sc.per_agent_correct, want)
    np.testing.assert_allclose(sc.q, np.where(want, team.c_max, team.c_min), rtol=1e-6)
    np.testing.assert_array_equal(sc.correct_final, want[:, 2])
    np.testing.assert_allclose(sc.S, want[:, 2].astype(np.float32))
    # default team: max_new_tokens 128 for every agent, so the budget is 128 tokens
    assert team.effort_budget == 128
    eff = team.c_min + (team.c_max - team.c_min) * np.asarray(LENGTHS, np.float32).T / 128
    np.testing.assert_allclose(sc.effort, eff, rtol=1e-6)
    np.testing.assert_array_equal(sc.tokens, np.asarray(LENGTHS).T)
    np.testing.assert_array_equal(sc.final_turn, [2, 2, 2])


def test_effort_ignores_the_rows_own_token_limit():
    """A fixed budget: a row's chosen max_new_tokens does not change its effort; truncated outputs
    (lengths == their limit) cost what they generated, not the maximum."""
    team = default_team("m", n=3).replace(token_budget=80)
    a = score_episodes(_batch(team, max_new=40), team)
    b = score_episodes(_batch(team, max_new=[40, 64, 80]), team)
    np.testing.assert_array_equal(a.effort, b.effort)
    frac = np.asarray(LENGTHS, np.float32).T / 80  # 40 of 80 tokens is effort 0.5, not 1
    np.testing.assert_allclose(a.effort, team.c_min + (team.c_max - team.c_min) * frac, rtol=1e-6)


def test_score_episodes_integrator_final_is_scored_separately():
    team = default_team("m", n=3).replace(final="integrator")
    texts = TEXTS + [["The answer is 9.", "The answer is 2.", "The answer is 4."]]
    sc = score_episodes(_batch(team, texts, LENGTHS + [[1, 1, 1]]), team)
    chex.assert_shape(sc.q, (3, 3))  # the integrator turn is no extra player
    np.testing.assert_array_equal(sc.correct_final, [False, True, True])
    np.testing.assert_array_equal(sc.per_agent_correct[:, 2], [True, False, True])


def test_episode_rewards_benefits_on_quality_cost_on_effort():
    team = default_team("m", n=3).replace(reward_params={"gamma": 0.5, "B": 0.6}, token_budget=40)
    sc = score_episodes(_batch(team), team)
    p = team.game_params()
    r = episode_rewards(sc, team)
    chex.assert_shape(r, (3, 3))
    ref = rewards_given_score("mac_spgg", sc.q, sc.S, p, effort=sc.effort)
    np.testing.assert_allclose(r, ref, rtol=1e-6)
    q, e, S = (np.asarray(x, np.float64) for x in (sc.q, sc.effort, sc.S))
    m = np.concatenate([np.full((3, 1), float(p.m0)), np.cumsum(q, 1)[:, :-1] / np.arange(1, 3)], 1)  # FO mean
    benefit = 0.5 * q * m + 1.8 / 3 * S[:, None] - 1.5 * (S[:, None] < 0.6)
    np.testing.assert_allclose(r, benefit - e**2 / 2, rtol=1e-5, atol=1e-6)  # kappa e^2 / 2 on effort
    # effort "none": benefits only
    np.testing.assert_allclose(episode_rewards(sc, team.replace(effort="none")), benefit, rtol=1e-5, atol=1e-6)
    # pgg / spgg take the same token-effort cost (linear): w0 + r/n sum q - effort_i
    for name in ("pgg", "spgg"):
        t = team.replace(reward=name, reward_params={})
        want = 1.0 + 1.8 / 3 * q.sum(1, keepdims=True) - e
        np.testing.assert_allclose(episode_rewards(sc, t), want, rtol=1e-5, atol=1e-6)
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


def test_episode_scorers_registered_and_checked():
    """team.scorer picks the text-to-(q, S) step; the reward is unchanged; bad scorer output is refused."""
    from spgg_jax.rollout.scoring import EPISODE_SCORERS, TextScores, register_episode_scorer

    team = default_team(n=3)
    base = score_episodes(_batch(team), team)
    assert team.scorer == "task" and set(EPISODE_SCORERS.names()) >= {"task", "shared_credit"}
    shared = score_episodes(_batch(team), team.replace(scorer="shared_credit"))
    np.testing.assert_allclose(shared.q, np.repeat(np.asarray(base.S)[:, None] * 0.9 + 0.1, 3, 1), rtol=1e-6)
    np.testing.assert_allclose(shared.S, base.S)

    @register_episode_scorer("test_only_length", overwrite=True)
    def by_length(problems, outputs, *, team, judge=None):
        """q_i: output length / 20 (clipped); S: 1 if the last output mentions the answer."""
        agent = np.clip([[len(o) / 20 for o in row[: team.n]] for row in outputs], 0, 1)
        final = np.asarray([float(p.answer in row[-1]) for p, row in zip(problems, outputs)])
        return TextScores(agent, final)

    custom = score_episodes(_batch(team), team.replace(scorer="test_only_length"))
    np.testing.assert_allclose(custom.agent_score[0], [16 / 20, 16 / 20, 16 / 20], rtol=1e-6)
    np.testing.assert_allclose(custom.S, [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(custom.final_turn, [2, 2, 2])
    assert episode_rewards(custom, team).shape == (3, 3)

    for bad, msg in [(lambda *a, **k: (1, 2), "must return a TextScores"),
                     (lambda p, o, **k: TextScores(np.ones((3, 2)), np.ones(3)), r"agent_score must have shape \(3, 3\)"),
                     (lambda p, o, **k: TextScores(np.ones((3, 3)), np.full(3, 1.5)), r"final_score must lie in \[0, 1\]"),
                     (lambda p, o, **k: TextScores(np.ones((3, 3)), np.ones(3), final_turn=[0, 1, 5]), "final_turn")]:
        register_episode_scorer("test_only_bad", overwrite=True)(bad)
        with pytest.raises(ValueError, match=msg):
            score_episodes(_batch(team), team.replace(scorer="test_only_bad"))
    with pytest.raises(KeyError, match="unknown episode scorer 'nope'.*--plugin"):
        score_episodes(_batch(team), team.replace(scorer="nope"))
