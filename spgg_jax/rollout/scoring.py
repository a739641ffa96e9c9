"""From episodes to the game: per-agent quality q, effort, the final answer, its score S, rewards.

The mapping keeps the game's incentive: R_i = benefit_i(q, S) - own_cost(effort_i) (the registered
variant's split, ``spgg_jax.game.rewards``), so at equal effort a correct contribution is never
rewarded less than a wrong one (docs/episodes.md, with a worked example).

- q_i (quality): agent i's OWN output scored on its own. Verifiable tasks (math, multiple choice,
  code) use the task scorer: correctness of the agent's extracted answer (0/1), partial credit for
  MBPP (fraction of asserts passed). Tasks without a verifiable answer (``summeval``) use an LLM
  judge (``spgg_jax.tasks.judge``) when one is given, else the task scorer's score (ROUGE-L F1).
  The score s in [0, 1] maps to q = c_min + (c_max - c_min) * s. q enters only the benefits.
- effort_i: agent i's generated tokens / the team's fixed ``effort_budget`` (``team.token_budget``,
  or the largest agent ``max_new_tokens`` when 0), clipped to [0, 1] and mapped into [c_min, c_max].
  The own-cost term is charged on it when ``team.effort == "tokens"``; ``"none"``: no own cost.
- final answer: per problem, the turn chosen by the team's rule (:func:`choose_final`: last,
  last_answer, integrator, majority, majority_integrator) from the outputs' extracted answers.
- S: the score in [0, 1] of the chosen final output, same scorer.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Callable, Sequence

import jax.numpy as jnp
import numpy as np
from flax import struct

#: scorers whose score is not a verifiable correctness signal (an LLM judge is preferred).
NON_VERIFIABLE_SCORERS = frozenset({"rouge_l"})

JudgeFn = Callable[[Sequence[Any], Sequence[str]], np.ndarray]


@struct.dataclass
class EpisodeScores:
    """Scores of a batch of episodes (all arrays)."""

    q: jnp.ndarray  # f32[B,n] quality (own output's score) in [c_min, c_max]
    S: jnp.ndarray  # f32[B] final task score in [0, 1]
    correct_final: jnp.ndarray  # bool[B]
    per_agent_correct: jnp.ndarray  # bool[B,n]
    effort: jnp.ndarray  # f32[B,n] token effort in [c_min, c_max] (tokens / fixed budget)
    agent_score: jnp.ndarray  # f32[B,n] raw per-agent scores in [0, 1]
    tokens: jnp.ndarray  # i32[B,n] tokens each agent generated
    final_turn: jnp.ndarray  # i32[B] the turn whose output is the team's answer (n = the integrator)


def is_verifiable(task: str) -> bool:
    """Whether ``task``'s scorer measures correctness (False: judged quality, e.g. summeval)."""
    from spgg_jax.tasks import get_task

    return get_task(task).scorer not in NON_VERIFIABLE_SCORERS


def to_contribution(score: Any, c_min: float, c_max: float) -> jnp.ndarray:
    """Map scores in [0, 1] linearly into [c_min, c_max] (clipped)."""
    s = jnp.clip(jnp.asarray(score, jnp.float32), 0.0, 1.0)
    return c_min + (c_max - c_min) * s


def effort_from_lengths(lengths: Any, token_budget: Any, c_min: float, c_max: float) -> jnp.ndarray:
    """Generated tokens over a FIXED token budget, clipped to [0, 1], mapped into [c_min, c_max].

    ``token_budget`` is one number for the whole team (``TeamConfig.effort_budget``), so a row's own
    chosen ``max_new_tokens`` does not change its effort and a truncated output costs what it
    generated.
    """
    budget = np.asarray(token_budget, np.float64)
    if budget.ndim != 0 or not np.isfinite(budget) or budget < 1:
        raise ValueError(f"token_budget must be one number >= 1 (tokens), got {token_budget!r}")
    frac = jnp.asarray(lengths, jnp.float32) / jnp.float32(budget)
    return to_contribution(frac, c_min, c_max)


def make_scores(agent_score: Any, agent_correct: Any, final_score: Any, final_correct: Any, lengths: Any,
                token_budget: Any, c_min: float, c_max: float, final_turn: Any = None) -> EpisodeScores:
    """Pure assembly of :class:`EpisodeScores` from per-agent / final scores and token counts.

    ``agent_score``, ``agent_correct``, ``lengths``: ``[B, n]``; ``final_score``, ``final_correct``
    and ``final_turn`` (default: the last agent, n - 1): ``[B]``; ``token_budget``: one number.
    """
    agent_score = jnp.asarray(agent_score, jnp.float32)
    if agent_score.ndim != 2:
        raise ValueError(f"agent_score must be [B, n], got shape {agent_score.shape}")
    b, n = agent_score.shape
    final_turn = np.full(b, n - 1, np.int32) if final_turn is None else final_turn
    for name, v in (("agent_correct", agent_correct), ("lengths", lengths)):
        if np.shape(v) != agent_score.shape:
            raise ValueError(f"{name} must have shape {agent_score.shape}, got {np.shape(v)}")
    for name, v in (("final_score", final_score), ("final_correct", final_correct), ("final_turn", final_turn)):
        if np.shape(v) != (b,):
            raise ValueError(f"{name} must have shape {(b,)}, got {np.shape(v)}")
    return EpisodeScores(
        q=to_contribution(agent_score, c_min, c_max),
        S=jnp.clip(jnp.asarray(final_score, jnp.float32), 0.0, 1.0),
        correct_final=jnp.asarray(final_correct, bool),
        per_agent_correct=jnp.asarray(agent_correct, bool),
        effort=effort_from_lengths(lengths, token_budget, c_min, c_max),
        agent_score=jnp.clip(agent_score, 0.0, 1.0),
        tokens=jnp.asarray(lengths, jnp.int32),
        final_turn=jnp.asarray(final_turn, jnp.int32),
    )


# ------------------------------------------------------------------------------------ final answers
def vote_key(answer: Any) -> str | None:
    """Canonical form of an extracted answer for voting (None: no answer).

    Numbers compare as exact rationals ("4", "4.0" and "8/2" are one vote); anything else by its
    stripped, lower-cased text.
    """
    if answer is None:
        return None
    s = str(answer).strip()
    if not s:
        return None
    try:
        return str(Fraction(s.replace(",", "")))
    except (ValueError, ZeroDivisionError, OverflowError):
        return s.lower()


def choose_final_one(rule: str, n: int, answers: Sequence[Any]) -> int:
    """The turn (0-based) whose output is the team's answer for ONE problem.

    ``answers[t]`` is turn t's extracted answer (None when it has none): n agent turns, plus the
    integrator's (turn n) under the integrator rules.

    - ``last``: turn n - 1. ``integrator``: turn n.
    - ``last_answer``: the latest agent turn with an answer (none has one: n - 1), so an agent that
      only verifies without answering does not erase a predecessor's answer.
    - ``majority`` (agents' turns 0..n-1) / ``majority_integrator`` (0..n): plurality vote over the
      answers (``vote_key``). Tie-break: the tied answer given MOST RECENTLY wins, represented by its
      latest turn. Reason: later turns have read more of the team's work, and with no agreement at
      all (every answer distinct) the rule then reduces to ``last`` / ``integrator``, the protocol's
      own choice; it also keeps the vote monotone: one more vote for an answer never makes it lose.
      No answer at all: the last voting turn.
    """
    from spgg_jax.rollout.team import FINALS

    if rule not in FINALS:
        raise ValueError(f"final rule must be one of {FINALS}, got {rule!r}")
    voters = n + 1 if rule in ("integrator", "majority_integrator") else n
    if len(answers) < voters:
        raise ValueError(f"final rule {rule!r} needs {voters} turns' answers for n={n}, got {len(answers)}")
    if rule in ("last", "integrator"):
        return voters - 1
    keys = [vote_key(a) for a in answers[:voters]]
    if rule == "last_answer":
        return next((t for t in range(voters - 1, -1, -1) if keys[t] is not None), voters - 1)
    counts: dict[str, int] = {}
    latest: dict[str, int] = {}
    for t, k in enumerate(keys):
        if k is not None:
            counts[k] = counts.get(k, 0) + 1
            latest[k] = t
    if not counts:
        return voters - 1
    return latest[max(counts, key=lambda k: (counts[k], latest[k]))]


def choose_final(rule: str, n: int, answers: Sequence[Sequence[Any]]) -> np.ndarray:
    """i32[B]: :func:`choose_final_one` per problem; ``answers[t][b]`` = turn t's answer on problem b."""
    b = len(answers[0]) if len(answers) else 0
    return np.asarray([choose_final_one(rule, n, [a[i] for a in answers]) for i in range(b)], np.int32)


# ------------------------------------------------------------------------------------ scoring
def score_texts_extracted(problems: Sequence[Any], texts: Sequence[str], judge: JudgeFn | None = None,
                          max_workers: int | None = None) -> tuple[np.ndarray, np.ndarray, list]:
    """``(score f32[B], correct bool[B], extracted)``: task scorer, or ``judge`` for judged tasks.

    With a judge, "correct" means judge score >= 0.5 and nothing is extracted (None).
    """
    from spgg_jax.tasks import score_batch

    if len(problems) != len(texts):
        raise ValueError(f"{len(problems)} problems but {len(texts)} texts")
    if judge is not None and not all(is_verifiable(p.task) for p in problems):
        s = np.asarray(judge(problems, texts), np.float32)
        if s.shape != (len(texts),) or not np.all((s >= 0) & (s <= 1)):
            raise ValueError(f"judge must return [B] scores in [0, 1], got shape {s.shape}")
        return s, s >= 0.5, [None] * len(texts)
    results = score_batch(list(problems), list(texts), max_workers=max_workers)
    return (np.asarray([r.score for r in results], np.float32), np.asarray([r.correct for r in results], bool),
            [r.extracted for r in results])


def score_texts(problems: Sequence[Any], texts: Sequence[str], judge: JudgeFn | None = None,
                max_workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(score f32[B], correct bool[B])`` of completions (see :func:`score_texts_extracted`)."""
    s, c, _ = score_texts_extracted(problems, texts, judge, max_workers)
    return s, c


def select_final(final_turn: Any, per_turn: Sequence[tuple[np.ndarray, np.ndarray, list]]):
    """``(score, correct, extracted)`` of each row's chosen turn from per-turn scoring results."""
    ft = np.asarray(final_turn)
    rows = np.arange(len(ft))
    sc = np.stack([p[0] for p in per_turn], 1)[rows, ft]
    ok = np.stack([p[1] for p in per_turn], 1)[rows, ft]
    ext = [per_turn[t][2][i] for i, t in enumerate(ft)]
    return sc, ok, ext


def score_episodes(batch: Any, team: Any = None, judge: JudgeFn | None = None,
                   max_workers: int | None = None) -> EpisodeScores:
    """Score every agent's own output, choose each problem's final answer by ``team.final``, score it.

    Every turn is scored once (the integrator's too under the integrator rules); S is the chosen
    turn's score (``EpisodeScores.final_turn``).
    """
    team = batch.team if team is None else team
    if len(batch.turns) != team.n_turns:
        raise ValueError(f"team final={team.final!r} plays {team.n_turns} turns, the batch has {len(batch.turns)}")
    per = [score_texts_extracted(batch.problems, t.output_text, judge, max_workers) for t in batch.turns]
    final_turn = choose_final(team.final, team.n, [p[2] for p in per])
    final_score, final_correct, _ = select_final(final_turn, per)
    agent_score = np.stack([s for s, _, _ in per[: team.n]], axis=1)
    agent_correct = np.stack([c for _, c, _ in per[: team.n]], axis=1)
    lengths = np.stack([t.lengths for t in batch.agent_turns], axis=1)
    return make_scores(agent_score, agent_correct, final_score, final_correct, lengths, team.effort_budget,
                       team.c_min, team.c_max, final_turn=final_turn)


#: an agent free-rides when it spends at most this share of the token budget (the game-level learners'
#: ``free_ride_frac`` on the contribution range)
FREE_RIDE_FRAC = 0.05


def free_riding(scores: EpisodeScores, team: Any, frac: float = FREE_RIDE_FRAC) -> np.ndarray:
    """bool[B, n]: agent i spent at most ``frac`` of the team's token budget (its effort is at the
    game's minimum contribution, whatever its answer's correctness)."""
    return np.asarray(scores.tokens) <= frac * team.effort_budget


def episode_reward_terms(scores: EpisodeScores, team: Any, params: Any = None) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(benefit, own_cost)`` f32[B, n]: R = benefit - own_cost (own_cost is 0 when effort="none")."""
    from spgg_jax.game import get_reward
    from spgg_jax.game.rewards import reward_terms_given_score

    params = team.game_params() if params is None else params
    spec = get_reward(team.reward)
    if team.effort == "tokens" and spec.per_agent is not None and spec.own_cost_name == "none":
        raise ValueError(
            f"reward {team.reward!r} declares no own-cost term (own_cost='none'), so effort='tokens' has "
            f"nothing to charge: register it with register_per_agent_reward(..., own_cost=...) or set the "
            f"team's effort to 'none'")
    benefit, cost = reward_terms_given_score(team.reward, scores.q, scores.S, params, effort=scores.effort)
    if team.effort == "none":
        cost = jnp.zeros_like(cost)
    return benefit, cost


def episode_rewards(scores: EpisodeScores, team: Any, params: Any = None) -> jnp.ndarray:
    """f32[B, n] rewards R_i = benefit_i(q, S) - own_cost(effort_i) of the team's reward variant.

    q enters only the benefits; the own cost (pgg/spgg: effort_i, mac_spgg: C(effort_i)) is charged
    on token effort when ``team.effort == "tokens"`` and dropped when ``"none"``. ``params``
    defaults to ``team.game_params()``.
    """
    benefit, cost = episode_reward_terms(scores, team, params)
    return benefit - cost
