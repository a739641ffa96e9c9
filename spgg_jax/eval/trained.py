"""Evaluating a trained team on held-out problems: the single agent, the team before training and
the team after training, on the same problems and with the same keys (a paired comparison).

Used at the end of ``spgg train`` and by ``spgg eval --run-dir RUN_DIR`` (which rebuilds the run from
its saved ``config.json`` and restores its latest checkpoint).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Mapping, Sequence

import jax
import numpy as np

from spgg_jax.rollout.episode import run_episodes
from spgg_jax.rollout.scoring import episode_rewards, score_episodes

#: salt of the evaluation key: ``fold_in(key(seed), EVAL_KEY_SALT)`` (unchanged since the first trainer)
EVAL_KEY_SALT = 10**6
SINGLE, UNTRAINED, TRAINED = "single agent (config params)", "team, untrained", "team, trained"


def eval_row(label: str, batch: Any, scores: Any, rewards: Any, c_min: float, seconds: float) -> dict[str, Any]:
    """One row of ``eval.json``."""
    return {
        "method": label,
        "accuracy": float(np.mean(np.asarray(scores.correct_final))),
        "n": len(batch.problems),
        "mean_reward": None if rewards is None else float(np.mean(rewards)),
        "free_riding": None if rewards is None else float(np.mean(np.isclose(np.asarray(scores.q), c_min))),
        "tokens_generated": int(np.asarray(batch.tokens_generated).sum()),
        "llm_calls": int(batch.llm_calls),
        "seconds": seconds,
    }


def evaluate_trained(setup: Any, states: Sequence[tuple[str, Mapping[str, Any]]], key: jax.Array,
                     problems: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    """Rows for the single agent (the team's last agent alone, its configured parameters) and the team
    under each ``(label, learner_state)`` with deterministic policies, on the same problems and key."""
    problems = list(setup.eval_problems if problems is None else problems)
    team, judge = setup.team, setup.judge
    single = dataclasses.replace(team, agents=team.agents[-1:], final="last")
    t0 = time.perf_counter()
    sb = run_episodes(single, setup.bundles, problems, key)
    rows = [eval_row(SINGLE, sb, score_episodes(sb, single, judge=judge), None, team.c_min, time.perf_counter() - t0)]
    for label, state in states:
        t0 = time.perf_counter()
        policy = setup.learner.rollout_policy(state, deterministic=True)
        batch = run_episodes(team, setup.bundles, problems, key, **policy.episode_kwargs())
        scores = score_episodes(batch, team, judge=judge)
        r = np.asarray(episode_rewards(scores, team, setup.game_params))
        rows.append(eval_row(label, batch, scores, r, team.c_min, time.perf_counter() - t0))
    return rows


def format_eval_table(rows: Sequence[Mapping[str, Any]]) -> str:
    head = (f"{'method':34s} {'accuracy':>9s} {'n':>4s} {'reward':>8s} {'free-ride':>9s} {'tokens':>8s} "
            f"{'calls':>6s} {'time s':>7s}")
    lines = [head, "-" * len(head)]
    for r in rows:
        rew = "-" if r["mean_reward"] is None else f"{r['mean_reward']:+.3f}"
        fr = "-" if r["free_riding"] is None else f"{r['free_riding']:.2f}"
        lines.append(f"{r['method']:34s} {r['accuracy']:9.3f} {r['n']:4d} {rew:>8s} {fr:>9s} {r['tokens_generated']:8d} "
                     f"{r['llm_calls']:6d} {r['seconds']:7.1f}")
    return "\n".join(lines)
