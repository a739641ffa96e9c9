"""The episode-to-game mapping keeps the game's incentive (no model needed).

Property: at equal effort, flipping agent i from wrong to right (recomputing the team's final
answer, hence S, under the team's final-answer rule) never lowers R_i, for every registered
per-agent reward, every effort mode and every final rule, over many random episodes and random
game parameters (numpy draws, seeded; hypothesis is not installed).
"""

from __future__ import annotations

import numpy as np
import pytest

from spgg_jax.game import REWARDS, get_reward, rewards_given_score
from spgg_jax.rollout.scoring import choose_final, episode_rewards, make_scores
from spgg_jax.rollout.team import EFFORTS, FINALS, default_team

GOLD = "7"
POOL = np.array([None, GOLD, "3", "12", "7.0"], dtype=object)  # "7.0" is the gold answer written differently
ROWS = 48  # flipped episodes per draw
PER_AGENT = sorted(n for n in REWARDS.names() if get_reward(n).per_agent is not None)


def _random_params(rng, reward, n):
    if reward in ("pgg", "spgg"):
        return {"r": float(rng.uniform(1.05, n - 0.05)), "w0": float(rng.uniform(0, 2))}
    kw = {"gamma": float(rng.uniform(0, 1.5)), "rho": float(rng.uniform(0, 3)), "P": float(rng.uniform(0, 3)),
          "B": float(rng.uniform(0.05, 1.0)), "kappa": float(rng.uniform(0.1, 2)),
          "cost": str(rng.choice(["quadratic", "power", "exponential"]))}
    if get_reward(reward).smooth:
        kw["tau"] = float(rng.uniform(0.01, 0.3))
    return kw


def _scores(answers, lengths, team):
    """EpisodeScores of episodes given each turn's extracted answer (answers[t][b])."""
    n = team.n
    ok = np.array([[a is not None and float(a) == float(GOLD) for a in turn] for turn in answers])  # [T, B]
    ft = choose_final(team.final, n, answers)
    s = ok[ft, np.arange(len(ft))].astype(np.float32)
    return make_scores(ok[:n].T.astype(np.float32), ok[:n].T, s, s > 0.5, lengths, team.effort_budget,
                       team.c_min, team.c_max, final_turn=ft)


def _flip_episodes(rng, team, batch):
    """Random episodes and, for every wrong agent, the same episode with that agent made right."""
    n = team.n
    answers = rng.choice(POOL, size=(team.n_turns, batch))
    lengths = rng.integers(0, 2 * team.effort_budget, size=(batch, n))  # some beyond the budget
    base, flipped, who, rows = [], [], [], []
    for b in range(batch):
        for i in range(n):
            a = answers[i, b]
            if a is None or float(a) != float(GOLD):
                f = answers[:, b].copy()
                f[i] = rng.choice([GOLD, "7.0"])
                base.append(answers[:, b]), flipped.append(f), who.append(i), rows.append(b)
    keep = rng.choice(len(who), size=ROWS, replace=len(who) < ROWS)  # a fixed shape: few recompilations
    base, flipped = np.stack(base, 1)[:, keep], np.stack(flipped, 1)[:, keep]
    lens = lengths[np.asarray(rows)[keep]]  # equal effort: the flipped episode keeps every token count
    return _scores(list(base), lens, team), _scores(list(flipped), lens, team), np.asarray(who)[keep]


@pytest.mark.parametrize("reward", PER_AGENT)
def test_being_right_never_pays_less_at_equal_effort(reward):
    rng = np.random.default_rng(20260)
    checked = 0
    for draw in range(16):
        n = int(rng.integers(2, 5))
        for final in FINALS:
            team = default_team("m", n=n, max_new_tokens=int(rng.integers(16, 256))).replace(
                reward=reward, final=final, reward_params=_random_params(rng, reward, n),
                token_budget=int(rng.choice([0, 64])))
            lo, hi, who = _flip_episodes(rng, team, batch=24)
            rows = np.arange(len(who))
            assert np.all(np.asarray(hi.S) >= np.asarray(lo.S)), "a right answer lowered the team's score"
            for effort in EFFORTS:
                t = team.replace(effort=effort)
                if effort == "tokens" and get_reward(reward).own_cost_name == "none":
                    with pytest.raises(ValueError, match="declares no own-cost term"):
                        episode_rewards(lo, t)
                    continue
                r_lo = np.asarray(episode_rewards(lo, t))[rows, who]
                r_hi = np.asarray(episode_rewards(hi, t))[rows, who]
                bad = np.flatnonzero(r_hi < r_lo - 1e-6)
                assert bad.size == 0, (f"{reward} final={final} effort={effort}: right paid less than wrong, "
                                       f"e.g. {r_hi[bad[0]]} < {r_lo[bad[0]]}")
                checked += len(rows)
    assert checked >= 16 * len(FINALS) * ROWS


def test_the_old_quality_cost_violated_it_and_the_test_can_fail():
    """On the same random draws, charging C(q_i) (the removed cost="quality") lowers R_i for being
    right in many episodes: the property above is not vacuous."""
    rng = np.random.default_rng(1)
    team = default_team("m", n=3).replace(final="last")
    lo, hi, who = _flip_episodes(rng, team, batch=64)
    p = team.game_params()
    rows = np.arange(len(who))
    old_lo = np.asarray(rewards_given_score("mac_spgg", lo.q, lo.S, p))[rows, who]  # own cost on q
    old_hi = np.asarray(rewards_given_score("mac_spgg", hi.q, hi.S, p))[rows, who]
    assert np.mean(old_hi < old_lo) > 0.3


def test_issue_counterexample_is_gone():
    """Issue 11: agent 2 right while agent 1 and the final answer (agent 3) were wrong got
    R = -1.95 against -1.50 for being wrong (cost C(q) on correctness, default MAC-SPGG)."""
    team = default_team("m", n=3)  # mac_spgg, gamma .5, rho 1.8, P 1.5, B .6, kappa 1, c in [.1, 1]
    p = team.game_params()
    wrong = make_scores([[0.0, 0.0, 0.0]], [[False] * 3], [0.0], [False], [[40, 40, 40]], team.effort_budget,
                        team.c_min, team.c_max)
    right = make_scores([[0.0, 1.0, 0.0]], [[False, True, False]], [0.0], [False], [[40, 40, 40]],
                        team.effort_budget, team.c_min, team.c_max)
    # the old mapping (own cost on quality) reproduces the issue's numbers
    np.testing.assert_allclose(np.asarray(rewards_given_score("mac_spgg", right.q, right.S, p))[0, 1], -1.95, atol=1e-6)
    np.testing.assert_allclose(np.asarray(rewards_given_score("mac_spgg", wrong.q, wrong.S, p))[0, 1], -1.50, atol=1e-6)
    # the new one: equal effort, so being right gains the synergy gamma (c_max - c_min) m_2 = .5 * .9 * .1
    for effort in EFFORTS:
        t = team.replace(effort=effort)
        gain = float(np.asarray(episode_rewards(right, t))[0, 1] - np.asarray(episode_rewards(wrong, t))[0, 1])
        assert gain == pytest.approx(0.045, abs=1e-6)


def test_variant_without_own_cost_refuses_token_effort():
    from spgg_jax.game import register_per_agent_reward

    @register_per_agent_reward("test_only_whole", overwrite=True)  # default own_cost="none"
    def whole(i, q_i, m_i, total, s, p):
        """R_i = S"""
        return s * np.ones_like(q_i)

    team = default_team("m", n=2).replace(reward="test_only_whole")
    sc = make_scores([[1.0, 0.0]], [[True, False]], [1.0], [True], [[3, 4]], 8, team.c_min, team.c_max)
    with pytest.raises(ValueError, match="'test_only_whole' declares no own-cost term.*effort to 'none'"):
        episode_rewards(sc, team)
    np.testing.assert_allclose(episode_rewards(sc, team.replace(effort="none")), [[1.0, 1.0]])
