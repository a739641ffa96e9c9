"""Reading evaluated episodes (``eval_episodes.jsonl``) back: what the team did, and whether the
reward had the incentives the game intends on them.

Pure numpy over the rows the evaluation writes (one JSON object per episode: ``method``, ``id``,
``turns`` with each agent's ``output`` and ``tokens``, per-agent ``q``, the team's ``S``,
``correct`` and, for teams, per-agent ``rewards``). Three questions a researcher asks of a run:

- :func:`compare_runs`: is method a of one run better than method b of another on the same
  problems and keys (for example the reward-trained team against the shuffled-reward team)?
- :func:`incentive_fit`: on these real rollouts, what does being right, spending tokens and the
  team's success do to each agent's reward (least squares with a bootstrap interval per term)?
- :func:`answer_flow`: how often later agents keep, repair or lose the first agent's answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np

from spgg_jax.eval.stats import paired_comparison

__all__ = ["read_episodes", "methods", "has_rewards", "compare_runs", "incentive_fit", "answer_flow", "format_report"]

TRAINED = "team, trained"


def read_episodes(path: str | Path) -> list[dict[str, Any]]:
    """Rows of an ``eval_episodes.jsonl`` (a run directory is accepted: its file is read)."""
    p = Path(path)
    if p.is_dir():
        p = p / "eval_episodes.jsonl"
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no evaluated episodes here (a run writes eval_episodes.jsonl at its end; "
                                f"`spgg eval --run-dir RUN_DIR` writes it for a run that has none)")
    rows = []
    for i, line in enumerate(p.read_text().splitlines()):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}: line {i + 1} is not JSON ({e.msg})") from None
    return rows


def methods(rows: Iterable[dict[str, Any]]) -> list[str]:
    """The method names in the order they first appear."""
    return list(dict.fromkeys(r["method"] for r in rows))


def has_rewards(rows: Iterable[dict[str, Any]], method: str) -> bool:
    """Whether ``method``'s episodes carry per-agent rewards (teams do, the single agent does not)."""
    return any(r["method"] == method and r.get("rewards") is not None for r in rows)


def _agent_right(q: np.ndarray) -> np.ndarray:
    """Whether each agent's own answer was right: q at its top (c_max) over these episodes; all
    False when q never varies (nothing to tell apart)."""
    return q >= q.max() - 1e-9 if q.max() > q.min() else np.zeros(q.shape, bool)


def _by_problem(rows: list[dict[str, Any]], method: str, where: str) -> dict[str, dict[str, Any]]:
    out = {r["id"]: r for r in rows if r["method"] == method}
    if not out:
        raise ValueError(f"{where}: no episodes of method {method!r} (methods: {', '.join(methods(rows))})")
    return out


def compare_runs(rows_a: list[dict[str, Any]], method_a: str, rows_b: list[dict[str, Any]], method_b: str,
                 *, name_a: Optional[str] = None, name_b: Optional[str] = None) -> dict[str, Any]:
    """Paired comparison of ``method_a`` in ``rows_a`` against ``method_b`` in ``rows_b`` on the
    problems both evaluated (matched by problem id; the evaluation draws the same keys per problem
    in every run with the same seed). Returns :func:`~spgg_jax.eval.stats.paired_comparison`'s dict."""
    a = _by_problem(rows_a, method_a, name_a or "a")
    b = _by_problem(rows_b, method_b, name_b or "b")
    ids = [i for i in a if i in b]
    if not ids:
        raise ValueError(f"{name_a or 'a'} and {name_b or 'b'} share no problem ids: not the same evaluation")
    return paired_comparison(name_a or method_a, [float(a[i]["correct"]) for i in ids],
                             name_b or method_b, [float(b[i]["correct"]) for i in ids])


def _lstsq_terms(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(x, y, rcond=None)[0]


def incentive_fit(rows: list[dict[str, Any]], method: str = TRAINED, *, token_unit: float = 32.0,
                  n_boot: int = 2000, seed: int = 0) -> list[dict[str, Any]]:
    """Per agent, least squares of its reward on [1, right, tokens / token_unit, S] over the
    method's episodes, with percentile intervals from resampling episodes.

    ``right`` is whether the agent's own answer was right (q at its top), ``S`` the team's score.
    The game intends ``right`` >= 0 (a correct contribution never pays less at equal effort and
    S), ``tokens`` < 0 (effort costs) and ``S`` > 0. A term whose regressor never varies (an agent
    always right, say) is reported as None.
    """
    eps = [r for r in rows if r["method"] == method and r.get("rewards") is not None]
    if not eps:
        raise ValueError(f"no episodes of {method!r} with rewards (methods: {', '.join(methods(rows))})")
    n_agents = len(eps[0]["rewards"])
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_agents):
        right = _agent_right(np.array([e["q"][i] for e in eps], float)).astype(float)
        tokens = np.array([e["turns"][i]["tokens"] for e in eps], float) / token_unit
        s = np.array([e["S"] for e in eps], float)
        y = np.array([e["rewards"][i] for e in eps], float)
        cols = {"right": right, "tokens": tokens, "S": s}
        used = [k for k, c in cols.items() if np.ptp(c) > 0]
        x = np.column_stack([np.ones_like(y)] + [cols[k] for k in used])
        coef = _lstsq_terms(x, y)
        boot = np.empty((n_boot, len(used)))
        for b in range(n_boot):
            idx = rng.integers(0, len(y), len(y))
            boot[b] = _lstsq_terms(x[idx], y[idx])[1:]
        row: dict[str, Any] = {"agent": i + 1, "n": len(y), "right_rate": float(right.mean()),
                               "mean_tokens": float(tokens.mean() * token_unit)}
        for k in cols:
            if k in used:
                j = used.index(k)
                lo, hi = np.percentile(boot[:, j], [2.5, 97.5])
                row[k] = {"coef": float(coef[1 + j]), "ci95": [float(lo), float(hi)]}
            else:
                row[k] = None
        out.append(row)
    return out


def answer_flow(rows: list[dict[str, Any]], method: str = TRAINED) -> dict[str, Any]:
    """How the first agent's answer fares: of the episodes where agent 1 was right, how many
    ended wrong (lost); of those where it was wrong, how many ended right (repaired); and per later
    agent, how often its own answer was right when agent 1's was."""
    eps = [r for r in rows if r["method"] == method]
    if not eps:
        raise ValueError(f"no episodes of {method!r} (methods: {', '.join(methods(rows))})")
    right = _agent_right(np.array([e["q"] for e in eps], float))
    final = np.array([bool(e["correct"]) for e in eps])
    first = right[:, 0]
    return {"n": len(eps), "first_right": int(first.sum()), "first_right_final_wrong": int((first & ~final).sum()),
            "first_wrong": int((~first).sum()), "first_wrong_final_right": int((~first & final).sum()),
            "agent_right": [int(c) for c in right.sum(0)]}


def _fmt_ci(d: Optional[dict[str, Any]]) -> str:
    if d is None:
        return "        (constant)"
    return f"{d['coef']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]"


def format_report(rows: list[dict[str, Any]], method: str = TRAINED,
                  comparisons: Iterable[dict[str, Any]] = ()) -> str:
    """Text for a terminal: comparisons, the incentive fit and the answer flow of ``method``."""
    lines = []
    for c in comparisons:
        lines.append(f"{c['a']} - {c['b']}: {c['mean_diff']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}] "
                     f"({c['discordant']} of {c['n']} problems differ: {c['a_only']} / {c['b_only']})")
    if has_rewards(rows, method):
        lines.append(f"reward of each agent fitted on its episodes of {method!r} (95% bootstrap intervals):")
        lines.append("agent    n  right  tokens   being right at equal tokens and S   per 32 tokens              team score S")
        for f in incentive_fit(rows, method):
            lines.append(f"{f['agent']:>5} {f['n']:>4}  {f['right_rate']:.2f}  {f['mean_tokens']:6.1f}   "
                         f"{_fmt_ci(f['right']):>32}   {_fmt_ci(f['tokens']):>24}   {_fmt_ci(f['S']):>24}")
    flow = answer_flow(rows, method)
    lines.append(f"answer flow in {method!r}: agent 1 right {flow['first_right']} of {flow['n']}, then the final "
                 f"answer wrong {flow['first_right_final_wrong']}; agent 1 wrong {flow['first_wrong']}, then "
                 f"repaired {flow['first_wrong_final_right']}; right per agent {flow['agent_right']}")
    return "\n".join(lines)
