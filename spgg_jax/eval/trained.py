"""Evaluating a trained team against the strongest untrained baselines at equal compute, on problems
unseen in training, with the best baseline chosen on a validation split.

Used at the end of ``spgg train`` and by ``spgg eval --run-dir RUN_DIR [--split val]`` (which rebuilds
the run from its saved ``config.json`` and restores its latest checkpoint). Rows, all on the same
problems and keys (a paired comparison), each with accuracy, tokens and LLM calls:

- ``agent 1 alone, greedy``: the team's first agent alone (the prompt it sees in the team, without
  the agents after it) at temperature 0;
- ``agent 1 alone, configured``: the same at the team's configured generation parameters;
- ``agent 1 self-consistency``: the same agent sampled n times (n = the team's agents, so as many
  calls as the team) at ``sc_temperature``, the majority vote of the extracted answers (ties: the
  answer given most recently, as the team's ``majority`` rule);
- ``team, untrained, configured``: the team at its configured generation parameters and untrained
  weights (no policy: what the team file says, not where a policy starts);
- ``team, untrained, greedy``: the same at temperature 0;
- ``team, trained``: the trained policy (the generation-parameter policies at their modes, or the
  trained weights).

Agent 1's turn in a team does not depend on the agents after it, so the two ``agent 1 alone``
rows are that turn of the two untrained team rows (the same prompt, program and key, scored alone;
a test checks this against running them), and the first self-consistency sample is the configured
row's turn when ``sc_temperature`` is agent 1's temperature: 14 calls per problem become 11.

The five untrained rows are also run on the validation split; the best of them there (highest
accuracy; ties: fewer tokens) is the *baseline* of the headline: ``team, trained`` minus that row on
the evaluated problems, with Tango's paired 95% interval (``spgg_jax.eval.stats``). The test problems
never take part in that choice. Every ``team, trained - row`` difference is reported too. Without a
validation split (``val_size=0``) there is no headline, only the comparisons. ``eval.json``:

    {"split": "test", "splits": {...sizes, dropped candidates...},
     "rows": [{"method", "setting", "accuracy", "n", "ci95", "mean_reward", "free_riding",
               "tokens_generated", "llm_calls", "seconds"}, ...],
     "validation": {"n", "rows": [...], "best", "rule"} or null,
     "headline": {"a", "b", "mean_diff", "ci95", "n", "discordant", ...} or null,
     "comparisons": [{"a": "team, trained", "b": ROW, ...}, ...]}

``episode_records`` gives one JSON line per (method, problem): the prompt, every turn's output, q,
S, the rewards (self-consistency: every sample and the votes).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Mapping, Optional, Sequence

import jax
import numpy as np

from spgg_jax.eval.stats import accuracy_ci, paired_comparison
from spgg_jax.rollout.episode import run_episodes
from spgg_jax.rollout.scoring import (choose_final_one, episode_rewards, free_riding, score_episodes,
                                      score_texts_extracted)
from spgg_jax.tidy import tidy

#: salt of the evaluation key: ``fold_in(key(seed), EVAL_KEY_SALT)`` (unchanged since the first trainer)
EVAL_KEY_SALT = 10**6
SINGLE_GREEDY = "agent 1 alone, greedy"
SINGLE = "agent 1 alone, configured"
SELF_CONSISTENCY = "agent 1 self-consistency"
UNTRAINED = "team, untrained, configured"
UNTRAINED_GREEDY = "team, untrained, greedy"
TRAINED = "team, trained"
#: the untrained rows, in table order: the candidates for the best baseline
BASELINES = (SINGLE_GREEDY, SINGLE, SELF_CONSISTENCY, UNTRAINED, UNTRAINED_GREEDY)
BEST_RULE = "highest validation accuracy; ties: fewer tokens"


@dataclasses.dataclass
class EvalRun:
    """One evaluated method: its row, its per-problem outcomes and what produced them."""

    row: dict[str, Any]
    correct: np.ndarray  # bool[B]
    batch: Any = None
    scores: Any = None
    rewards: Any = None
    records: Optional[list] = None  # episode records when they are not one team episode per problem


def _accuracy_fields(correct: np.ndarray) -> dict[str, Any]:
    acc = accuracy_ci(np.asarray(correct))
    return {"accuracy": acc["accuracy"], "n": acc["n"], "ci95": acc["ci95"]}


def _setting(team: Any) -> str:
    """The generation parameters a row ran with, in a few words."""
    def one(name):
        vals = [getattr(a, name) for a in team.agents]
        return "/".join(f"{v:g}" for v in vals) if len(set(vals)) > 1 else f"{vals[0]:g}"
    if all(a.temperature == 0 for a in team.agents):
        return f"greedy, max_new_tokens {one('max_new_tokens')}"
    return f"T {one('temperature')}, top-p {one('top_p')}, max_new_tokens {one('max_new_tokens')}"


def eval_row(label: str, batch: Any, scores: Any, rewards: Any, team: Any, seconds: float,
             setting: str = "") -> dict[str, Any]:
    """One row of ``eval.json`` for a method that plays one episode per problem."""
    return {
        "method": label,
        "setting": setting,
        **_accuracy_fields(np.asarray(scores.correct_final)),
        "mean_reward": None if rewards is None else float(np.mean(rewards)),
        "free_riding": None if rewards is None else float(np.mean(free_riding(scores, team))),
        "tokens_generated": int(np.asarray(batch.tokens_generated).sum()),
        "llm_calls": int(batch.llm_calls),
        "seconds": seconds,
    }


def single_team(team: Any) -> Any:
    """Agent 1 alone: the same prompt it sees in the team, without the agents after it."""
    return dataclasses.replace(team, agents=team.agents[:1], final="last")


def greedy_team(team: Any) -> Any:
    """Every agent at temperature 0 (the other parameters as configured)."""
    return team.with_agent_overrides(temperature=0.0)


def run_team(setup: Any, label: str, team: Any, problems: Sequence[Any], key: jax.Array, *, game: bool = True,
             policy: Any = None, setting: str | None = None) -> EvalRun:
    """``team`` on ``problems`` (under ``policy``'s choices or weights when given); game rewards when ``game``."""
    t0 = time.perf_counter()
    batch = run_episodes(team, setup.bundles, problems, key, **(policy.episode_kwargs() if policy is not None else {}))
    scores = score_episodes(batch, team, judge=setup.judge)
    rewards = np.asarray(episode_rewards(scores, team, setup.game_params)) if game else None
    row = eval_row(label, batch, scores, rewards, team, time.perf_counter() - t0,
                   _setting(team) if setting is None else setting)
    return EvalRun(row, np.asarray(scores.correct_final), batch, scores, rewards)


def first_agent_run(setup: Any, label: str, team_run: EvalRun) -> EvalRun:
    """Agent 1 alone, read off a team row: the team's first turn scored as a one-agent team.

    Agent 1's prompt, parameters and key (``fold_in(key, 0)``) in a team are those of
    :func:`single_team` with the same episode key, so this is the row ``run_team`` would give for
    ``single_team(team_run.batch.team)`` without generating again; ``seconds`` is the turn's."""
    t0 = time.perf_counter()
    team = single_team(team_run.batch.team)
    first = team_run.batch.turns[0]
    batch = dataclasses.replace(team_run.batch, turns=[first], team=team)
    scores = score_episodes(batch, team, judge=setup.judge)
    row = eval_row(label, batch, scores, None, team, first.seconds + time.perf_counter() - t0, _setting(team))
    return EvalRun(row, np.asarray(scores.correct_final), batch, scores, None)


def run_self_consistency(setup: Any, problems: Sequence[Any], key: jax.Array, samples: int,
                         temperature: float, first: EvalRun | None = None) -> EvalRun:
    """Agent 1 alone sampled ``samples`` times per problem at ``temperature``; the team's ``majority``
    rule over the samples' extracted answers picks the answer.

    Sample 0 is the episode with ``key`` itself, samples j >= 1 with ``fold_in(key, j)``. ``first``: a
    one-agent run with ``key`` (:func:`first_agent_run`), taken as sample 0 when its agent is the
    sampled one (same parameters), instead of generating it again."""
    if samples < 1:
        raise ValueError(f"self-consistency needs samples >= 1, got {samples}")
    t0 = time.perf_counter()
    one = single_team(setup.team).with_agent_overrides(temperature=float(temperature))
    reuse = first is not None and first.batch is not None and first.batch.team.agents == one.agents
    texts, ok, extracted, tokens, calls = [], [], [], [], 0
    for j in range(samples):  # one batch of the problems per sample (the memory of one single-agent row)
        if j == 0 and reuse:
            batch = first.batch
        else:
            batch = run_episodes(one, setup.bundles, problems, key if j == 0 else jax.random.fold_in(key, j))
        out = batch.turns[0].output_text
        _, c, e = score_texts_extracted(problems, out, setup.judge)
        texts.append(out), ok.append(np.asarray(c)), extracted.append(e)
        tokens.append(np.asarray(batch.turns[0].lengths))
        calls += batch.llm_calls
    tokens = np.stack(tokens, 1)  # [B, samples]
    correct, records = np.zeros(len(problems), bool), []
    for i, p in enumerate(problems):
        votes = [extracted[j][i] for j in range(samples)]
        pick = choose_final_one("majority", samples, votes)
        correct[i] = bool(ok[pick][i])
        records.append(tidy({"method": SELF_CONSISTENCY, "id": p.id, "prompt": p.prompt, "answer": p.answer,
                             "turns": [{"agent": 0, "output": texts[j][i], "tokens": int(tokens[i, j])}
                                       for j in range(samples)],
                             "votes": [None if e is None else str(e) for e in votes], "final_turn": pick,
                             "correct": bool(correct[i])}))
    row = {"method": SELF_CONSISTENCY,
           "setting": f"{samples} samples at T {temperature:g}, majority vote, max_new_tokens "
                      f"{one.agents[0].max_new_tokens}",
           **_accuracy_fields(correct), "mean_reward": None, "free_riding": None,
           "tokens_generated": int(tokens.sum()), "llm_calls": int(calls),
           "seconds": time.perf_counter() - t0 + (first.row["seconds"] if reuse else 0.0)}
    return EvalRun(row, correct, None, None, None, records)


def run_baselines(setup: Any, problems: Sequence[Any], key: jax.Array) -> list[EvalRun]:
    """The five untrained rows (:data:`BASELINES`) on ``problems`` with ``key``."""
    team = setup.team
    sc_temperature = float(getattr(setup.cfg, "sc_temperature", 0.7))
    untrained = run_team(setup, UNTRAINED, team, problems, key)
    untrained_greedy = run_team(setup, UNTRAINED_GREEDY, greedy_team(team), problems, key)
    single = first_agent_run(setup, SINGLE, untrained)
    return [
        first_agent_run(setup, SINGLE_GREEDY, untrained_greedy),
        single,
        run_self_consistency(setup, problems, key, team.n, sc_temperature, first=single),
        untrained,
        untrained_greedy,
    ]


def best_baseline(rows: Sequence[Mapping[str, Any]]) -> str:
    """The method of the row with the highest accuracy; ties: fewer tokens, then table order."""
    if not rows:
        raise ValueError("no baseline rows to choose from")
    return max(enumerate(rows), key=lambda ir: (ir[1]["accuracy"], -ir[1]["tokens_generated"], -ir[0]))[1]["method"]


def evaluate_trained(setup: Any, trained_state: Mapping[str, Any], key: jax.Array,
                     problems: Sequence[Any] | None = None, split: str = "test") -> dict[str, Any]:
    """Every row on the evaluated problems (``split``'s, or ``problems``), the untrained rows on the
    validation split, the best baseline chosen there, the headline and the comparisons (module
    docstring). ``"runs"`` keeps every method's episodes (for :func:`episode_records`; not JSON)."""
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    if problems is None:
        problems = setup.eval_problems if split == "test" else setup.val_problems
    problems = list(problems)
    if not problems:
        raise ValueError(f"no {split} problems to evaluate (eval_size / val_size is 0)")
    runs = run_baselines(setup, problems, key)
    policy = setup.learner.rollout_policy(trained_state, deterministic=True)
    trained = run_team(setup, TRAINED, setup.team, problems, key, policy=policy,
                       setting=getattr(setup.learner, "eval_setting", "the trained policy"))
    runs.append(trained)
    validation = headline = None
    val = list(setup.val_problems)
    if val:
        val_runs = runs[: len(BASELINES)] if split == "val" else run_baselines(setup, val, key)
        best = best_baseline([r.row for r in val_runs])
        validation = {"n": len(val), "split": "val", "rows": [r.row for r in val_runs], "best": best,
                      "rule": BEST_RULE}
        if split == "val":
            validation["note"] = "the evaluated problems are the validation split: for tuning, not a held-out result"
        base = next(r for r in runs if r.row["method"] == best)
        headline = paired_comparison(TRAINED, trained.correct, best, base.correct)
    comparisons = [paired_comparison(TRAINED, trained.correct, r.row["method"], r.correct) for r in runs[:-1]]
    return {"split": split, "splits": dict(getattr(setup, "splits", {}) or {}), "rows": [r.row for r in runs],
            "validation": validation, "headline": headline, "comparisons": comparisons, "runs": runs}


def episode_records(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One JSON-ready record per (method, problem): prompt, answer, every turn's output, q, S, rewards."""
    out = []
    for run in result["runs"]:
        if run.records is not None:
            out.extend(run.records)
            continue
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
    return tidy({k: result.get(k) for k in ("split", "splits", "rows", "validation", "headline", "comparisons")})


def _verdict(c: Mapping[str, Any]) -> str:
    lo, hi = c["ci95"]
    return "above zero" if lo > 0 else ("below zero" if hi < 0 else "includes zero: no difference shown")


def _diff(c: Mapping[str, Any]) -> str:
    return (f"{c['a']} - {c['b']}: {c['mean_diff']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}] "
            f"({c['discordant']} of {c['n']} problems differ; {_verdict(c)})")


def format_eval_table(result: Mapping[str, Any]) -> str:
    """The rows (accuracy with its 95% interval, tokens, calls), the validation choice, the headline
    and the paired comparisons, as text."""
    head = (f"{'method':28s} {'accuracy':>8s} {'95% CI':>15s} {'n':>4s} {'reward':>8s} {'free-ride':>9s} "
            f"{'tokens':>7s} {'calls':>6s} {'time s':>7s}  setting")
    lines = []
    split = result.get("split", "test")
    if result.get("splits"):
        from spgg_jax.tasks.splits import format_summary

        lines.append(format_summary(result["splits"]))
    lines += [f"evaluated on the {split} split:", head, "-" * len(head)]
    for r in result["rows"]:
        rew = "-" if r.get("mean_reward") is None else f"{r['mean_reward']:+.3f}"
        fr = "-" if r.get("free_riding") is None else f"{r['free_riding']:.2f}"
        ci = f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"
        lines.append(f"{r['method']:28s} {r['accuracy']:8.3f} {ci:>15s} {r['n']:4d} {rew:>8s} {fr:>9s} "
                     f"{r['tokens_generated']:7d} {r['llm_calls']:6d} {r['seconds']:7.1f}  {r.get('setting', '')}")
    v = result.get("validation")
    lines.append("")
    if v:
        accs = ", ".join(f"{r['method']} {r['accuracy']:.3f}" for r in v["rows"])
        lines.append(f"validation ({v['n']} problems, texts unseen in training): {accs}")
        lines.append(f"best untrained baseline on validation ({v['rule']}): {v['best']}")
        if v.get("note"):
            lines.append(f"note: {v['note']}")
        lines.append(f"headline (same problems, same keys; 95% interval): {_diff(result['headline'])}")
    else:
        lines.append("no validation split (val_size=0): no best baseline is chosen; every comparison below counts")
    if result.get("comparisons"):
        lines.append("paired differences of accuracy against every row (same problems, same keys; 95% interval):")
        for c in result["comparisons"]:
            lines.append("  " + _diff(c))
    return "\n".join(lines)
