"""Evaluating a trained team on held-out problems: the single agent, the team before training and
the team after training, on the same problems and with the same keys (a paired comparison).

Used at the end of ``spgg train`` and by ``spgg eval --run-dir RUN_DIR`` (which rebuilds the run from
its saved ``config.json`` and restores its latest checkpoint). The result (``eval.json``) is

    {"rows": [{"method", "accuracy", "n", "ci95": [lo, hi], "mean_reward", "free_riding",
               "tokens_generated", "llm_calls", "seconds"}, ...],
     "comparisons": [{"a", "b", "mean_diff", "ci95": [lo, hi], "n", "discordant", ...}, ...]}

with Wilson intervals for the accuracies and Tango's paired interval for differences of accuracy
(``spgg_jax.eval.stats``): trained team - untrained team, untrained team - single agent, trained
team - single agent, trained team - single agent (greedy). The single agent is the team's first
agent alone (the prompt it sees in the team, without the agents after it), once at its configured
parameters and once greedy (temperature 0: the strongest untrained single baseline).
``episode_records`` gives one JSON line per (method, problem): the prompt, every turn's output, q,
S, the rewards.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Mapping, Sequence

import jax
import numpy as np

from spgg_jax.eval.stats import accuracy_ci, paired_comparison
from spgg_jax.rollout.episode import run_episodes
from spgg_jax.rollout.scoring import episode_rewards, free_riding, score_episodes
from spgg_jax.tidy import tidy

#: salt of the evaluation key: ``fold_in(key(seed), EVAL_KEY_SALT)`` (unchanged since the first trainer)
EVAL_KEY_SALT = 10**6
SINGLE, UNTRAINED, TRAINED = "single agent (config params)", "team, untrained", "team, trained"
SINGLE_GREEDY = "single agent (greedy)"  # the same agent at temperature 0: the strongest untrained single baseline


def eval_row(label: str, batch: Any, scores: Any, rewards: Any, team: Any, seconds: float) -> dict[str, Any]:
    """One row of ``eval.json``."""
    acc = accuracy_ci(np.asarray(scores.correct_final))
    return {
        "method": label,
        "accuracy": acc["accuracy"],
        "n": acc["n"],
        "ci95": acc["ci95"],
        "mean_reward": None if rewards is None else float(np.mean(rewards)),
        "free_riding": None if rewards is None else float(np.mean(free_riding(scores, team))),
        "tokens_generated": int(np.asarray(batch.tokens_generated).sum()),
        "llm_calls": int(batch.llm_calls),
        "seconds": seconds,
    }


@dataclasses.dataclass
class EvalRun:
    """One evaluated method: its row and what produced it."""

    row: dict[str, Any]
    batch: Any
    scores: Any
    rewards: Any


def evaluate_trained(setup: Any, states: Sequence[tuple[str, Mapping[str, Any]]], key: jax.Array,
                     problems: Sequence[Any] | None = None) -> dict[str, Any]:
    """Rows for the single agent (the team's first agent alone, at its configured parameters and
    greedy) and the team under each ``(label, learner_state)`` with deterministic policies, on the
    same problems and key, plus paired comparisons (module docstring). ``"runs"`` keeps every
    method's episodes and scores (for :func:`episode_records`; not JSON)."""
    problems = list(setup.eval_problems if problems is None else problems)
    team, judge = setup.team, setup.judge
    # agent 1 alone: the same prompt it sees in the team, without the agents after it
    single = dataclasses.replace(team, agents=team.agents[:1], final="last")
    greedy = dataclasses.replace(single, agents=(dataclasses.replace(single.agents[0], temperature=0.0),))
    runs = []
    for label, one in ((SINGLE, single), (SINGLE_GREEDY, greedy)):
        t0 = time.perf_counter()
        sb = run_episodes(one, setup.bundles, problems, key)
        ss = score_episodes(sb, one, judge=judge)
        runs.append(EvalRun(eval_row(label, sb, ss, None, one, time.perf_counter() - t0), sb, ss, None))
    for label, state in states:
        t0 = time.perf_counter()
        policy = setup.learner.rollout_policy(state, deterministic=True)
        batch = run_episodes(team, setup.bundles, problems, key, **policy.episode_kwargs())
        scores = score_episodes(batch, team, judge=judge)
        r = np.asarray(episode_rewards(scores, team, setup.game_params))
        runs.append(EvalRun(eval_row(label, batch, scores, r, team, time.perf_counter() - t0), batch, scores, r))
    correct = {run.row["method"]: np.asarray(run.scores.correct_final) for run in runs}
    pairs = [(TRAINED, UNTRAINED), (UNTRAINED, SINGLE), (TRAINED, SINGLE), (TRAINED, SINGLE_GREEDY)]
    comparisons = [paired_comparison(a, correct[a], b, correct[b]) for a, b in pairs if a in correct and b in correct]
    return {"rows": [run.row for run in runs], "comparisons": comparisons, "runs": runs}


def episode_records(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One JSON-ready record per (method, problem): prompt, answer, every turn's output, q, S, rewards."""
    out = []
    for run in result["runs"]:
        b, sc = run.batch, run.scores
        for i, p in enumerate(b.problems):
            rec = {"method": run.row["method"], "id": p.id, "prompt": p.prompt, "answer": p.answer,
                   "turns": [{"agent": t.agent, "output": t.output_text[i], "tokens": int(t.lengths[i])} for t in b.turns],
                   "q": np.asarray(sc.q)[i].round(4).tolist(), "S": round(float(np.asarray(sc.S)[i]), 4),
                   "correct": bool(np.asarray(sc.correct_final)[i]),
                   "final_turn": int(np.asarray(sc.final_turn)[i])}
            if run.rewards is not None:
                rec["rewards"] = np.asarray(run.rewards)[i].round(4).tolist()
            out.append(tidy(rec))
    return out


def eval_json(result: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON part of :func:`evaluate_trained`'s result."""
    return tidy({"rows": result["rows"], "comparisons": result["comparisons"]})


def format_eval_table(result: Mapping[str, Any]) -> str:
    """The rows (accuracy with its 95% interval) and the paired comparisons, as text."""
    head = (f"{'method':30s} {'accuracy':>8s} {'95% CI':>15s} {'n':>4s} {'reward':>8s} {'free-ride':>9s} "
            f"{'tokens':>7s} {'calls':>6s} {'time s':>7s}")
    lines = [head, "-" * len(head)]
    for r in result["rows"]:
        rew = "-" if r["mean_reward"] is None else f"{r['mean_reward']:+.3f}"
        fr = "-" if r["free_riding"] is None else f"{r['free_riding']:.2f}"
        ci = f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"
        lines.append(f"{r['method']:30s} {r['accuracy']:8.3f} {ci:>15s} {r['n']:4d} {rew:>8s} {fr:>9s} "
                     f"{r['tokens_generated']:7d} {r['llm_calls']:6d} {r['seconds']:7.1f}")
    if result.get("comparisons"):
        lines.append("")
        lines.append("paired differences of accuracy (same problems, same keys; 95% interval):")
        for c in result["comparisons"]:
            verdict = "above zero" if c["ci95"][0] > 0 else ("below zero" if c["ci95"][1] < 0 else "includes zero: no difference shown")
            lines.append(f"  {c['a']} - {c['b']}: {c['mean_diff']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}] "
                         f"({c['discordant']} of {c['n']} problems differ; {verdict})")
    return "\n".join(lines)
