"""From episodes to the game: per-agent contributions q, final score S, effort, and rewards.

- q_i: agent i's OWN output scored on its own. Verifiable tasks (math, multiple choice, code) use
  the task scorer: correctness of the agent's extracted answer (0/1), partial credit for MBPP
  (fraction of asserts passed). Tasks without a verifiable answer (``summeval``) use an LLM judge
  (``spgg_jax.tasks.judge``) when one is given, else the task scorer's score (ROUGE-L F1).
  The score s in [0, 1] maps to q = c_min + (c_max - c_min) * s.
- S: the score in [0, 1] of the team's final answer (last agent or integrator), same scorer.
- effort_i: generated tokens / that row's max_new_tokens, mapped into [c_min, c_max]; it replaces
  C(q_i) in the reward when ``team.cost == "tokens"``.
"""

from __future__ import annotations

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

    q: jnp.ndarray  # f32[B,n] contributions in [c_min, c_max]
    S: jnp.ndarray  # f32[B] final task score in [0, 1]
    correct_final: jnp.ndarray  # bool[B]
    per_agent_correct: jnp.ndarray  # bool[B,n]
    effort: jnp.ndarray  # f32[B,n] in [c_min, c_max]
    agent_score: jnp.ndarray  # f32[B,n] raw per-agent scores in [0, 1]


def is_verifiable(task: str) -> bool:
    """Whether ``task``'s scorer measures correctness (False: judged quality, e.g. summeval)."""
    from spgg_jax.tasks import get_task

    return get_task(task).scorer not in NON_VERIFIABLE_SCORERS


def to_contribution(score: Any, c_min: float, c_max: float) -> jnp.ndarray:
    """Map scores in [0, 1] linearly into [c_min, c_max] (clipped)."""
    s = jnp.clip(jnp.asarray(score, jnp.float32), 0.0, 1.0)
    return c_min + (c_max - c_min) * s


def effort_from_lengths(lengths: Any, max_new_tokens: Any, c_min: float, c_max: float) -> jnp.ndarray:
    """Generated tokens over the allowed maximum, mapped into [c_min, c_max]."""
    frac = jnp.asarray(lengths, jnp.float32) / jnp.maximum(jnp.asarray(max_new_tokens, jnp.float32), 1.0)
    return to_contribution(frac, c_min, c_max)


def make_scores(agent_score: Any, agent_correct: Any, final_score: Any, final_correct: Any, lengths: Any,
                max_new_tokens: Any, c_min: float, c_max: float) -> EpisodeScores:
    """Pure assembly of :class:`EpisodeScores` from per-agent / final scores and token counts.

    ``agent_score``, ``agent_correct``, ``lengths``, ``max_new_tokens``: ``[B, n]``;
    ``final_score``, ``final_correct``: ``[B]``.
    """
    agent_score = jnp.asarray(agent_score, jnp.float32)
    if agent_score.ndim != 2:
        raise ValueError(f"agent_score must be [B, n], got shape {agent_score.shape}")
    for name, v in (("agent_correct", agent_correct), ("lengths", lengths), ("max_new_tokens", max_new_tokens)):
        if np.shape(v) != agent_score.shape:
            raise ValueError(f"{name} must have shape {agent_score.shape}, got {np.shape(v)}")
    for name, v in (("final_score", final_score), ("final_correct", final_correct)):
        if np.shape(v) != agent_score.shape[:1]:
            raise ValueError(f"{name} must have shape {agent_score.shape[:1]}, got {np.shape(v)}")
    return EpisodeScores(
        q=to_contribution(agent_score, c_min, c_max),
        S=jnp.clip(jnp.asarray(final_score, jnp.float32), 0.0, 1.0),
        correct_final=jnp.asarray(final_correct, bool),
        per_agent_correct=jnp.asarray(agent_correct, bool),
        effort=effort_from_lengths(lengths, max_new_tokens, c_min, c_max),
        agent_score=jnp.clip(agent_score, 0.0, 1.0),
    )


def score_texts(problems: Sequence[Any], texts: Sequence[str], judge: JudgeFn | None = None,
                max_workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(score f32[B], correct bool[B])`` of completions: task scorer, or ``judge`` for judged tasks.

    With a judge, "correct" means judge score >= 0.5.
    """
    from spgg_jax.tasks import score_batch

    if len(problems) != len(texts):
        raise ValueError(f"{len(problems)} problems but {len(texts)} texts")
    if judge is not None and not all(is_verifiable(p.task) for p in problems):
        s = np.asarray(judge(problems, texts), np.float32)
        if s.shape != (len(texts),) or not np.all((s >= 0) & (s <= 1)):
            raise ValueError(f"judge must return [B] scores in [0, 1], got shape {s.shape}")
        return s, s >= 0.5
    results = score_batch(list(problems), list(texts), max_workers=max_workers)
    return (np.asarray([r.score for r in results], np.float32), np.asarray([r.correct for r in results], bool))


def score_episodes(batch: Any, team: Any = None, judge: JudgeFn | None = None,
                   max_workers: int | None = None) -> EpisodeScores:
    """Score every agent's own output and the final answer of an :class:`EpisodeBatch`."""
    team = batch.team if team is None else team
    per = [score_texts(batch.problems, t.output_text, judge, max_workers) for t in batch.agent_turns]
    agent_score = np.stack([s for s, _ in per], axis=1)
    agent_correct = np.stack([c for _, c in per], axis=1)
    if len(batch.turns) == team.n:  # final = last agent: reuse its score (code runs are costly)
        final_score, final_correct = agent_score[:, -1], agent_correct[:, -1]
    else:
        final_score, final_correct = score_texts(batch.problems, batch.final_text, judge, max_workers)
    lengths = np.stack([t.lengths for t in batch.agent_turns], axis=1)
    max_new = np.stack([np.asarray(t.sampling.max_new_tokens) for t in batch.agent_turns], axis=1)
    return make_scores(agent_score, agent_correct, final_score, final_correct, lengths, max_new,
                       team.c_min, team.c_max)


def episode_rewards(scores: EpisodeScores, team: Any, params: Any = None) -> jnp.ndarray:
    """f32[B, n] rewards: ``rewards_given_score(team.reward, q, S, params, effort)``.

    The effort cost replaces the quality cost when ``team.cost == "tokens"``. ``params`` defaults to
    ``team.game_params()``.
    """
    from spgg_jax.game import rewards_given_score

    params = team.game_params() if params is None else params
    effort = scores.effort if team.cost == "tokens" else None
    return rewards_given_score(team.reward, scores.q, scores.S, params, effort=effort)
