"""Run evaluation methods on a task and write the results (table, JSON, CSV, per-problem JSONL)."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import jax

from spgg_jax.eval.methods import METHODS, EvalContext, MethodResult
from spgg_jax.rollout.episode import ModelBundle
from spgg_jax.rollout.team import TeamConfig
from spgg_jax.tidy import tidy

TABLE_COLUMNS = ("method", "accuracy", "score", "tokens_generated", "llm_calls", "tokens_exchanged", "wall_s")


def parse_methods(spec: str | Sequence[str]) -> list[str]:
    """``"a,b"`` or a list -> validated method names (``all`` = every registered method)."""
    names = [m.strip() for m in (spec.split(",") if isinstance(spec, str) else spec) if m.strip()]
    if names == ["all"]:
        return METHODS.names()
    if not names:
        raise ValueError("give at least one method (--method NAME[,NAME...])")
    for m in names:
        METHODS.get(m)  # KeyError listing the registered methods
    return names


def evaluate(task: str, team: TeamConfig, methods: Sequence[str], problems: Sequence[Any],
             bundles: Mapping[str, ModelBundle], key: jax.Array, options: Mapping[str, Any] | None = None,
             on_call: Callable[[str], None] | None = None,
             on_method: Callable[[MethodResult], None] | None = None) -> list[MethodResult]:
    """Run each method on the same problems; method m uses ``fold_in(key, m)``."""
    if not problems:
        raise ValueError("no problems to evaluate")
    ctx = EvalContext(team=team, bundles=bundles, task=task, options=dict(options or {}), on_call=on_call)
    out = []
    for m_i, name in enumerate(methods):
        res = METHODS.get(name)(ctx, list(problems), jax.random.fold_in(key, m_i))
        out.append(res)
        if on_method is not None:
            on_method(res)
    return out


def format_table(results: Sequence[MethodResult]) -> str:
    """A fixed-width text table of the methods' summaries."""
    head = ["method", "acc", "score", "tok gen", "LLM calls", "tok exch", "wall s"]
    rows = []
    for r in results:
        s = r.summary()
        rows.append([s["method"], f"{s['accuracy']:.3f}", f"{s['score']:.3f}", str(s["tokens_generated"]),
                     str(s["llm_calls"]), str(s["tokens_exchanged"]), f"{s['wall_s']:.1f}"])
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in rows])


def markdown_table(results: Sequence[MethodResult]) -> str:
    """The same table in Markdown."""
    out = ["| method | accuracy | score | tokens generated | LLM calls | tokens exchanged | wall s |",
           "|---|---|---|---|---|---|---|"]
    for r in results:
        s = r.summary()
        out.append(f"| {s['method']} | {s['accuracy']:.3f} | {s['score']:.3f} | {s['tokens_generated']} | "
                   f"{s['llm_calls']} | {s['tokens_exchanged']} | {s['wall_s']:.1f} |")
    return "\n".join(out)


def write_results(results: Sequence[MethodResult], out_dir: str | os.PathLike, meta: Mapping[str, Any]) -> Path:
    """``results.json`` (meta + summaries), ``results.csv`` (summaries) and ``problems_<method>.jsonl``
    (one row per problem: its prompt, the answer, every completion, scores; floats rounded by ``tidy``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summaries = tidy([r.summary() for r in results])
    with open(out / "results.json", "w", encoding="utf-8") as f:
        json.dump(tidy({**dict(meta), "written": time.strftime("%Y-%m-%dT%H:%M:%S"), "results": summaries}), f,
                  indent=2)
        f.write("\n")
    if summaries:
        with open(out / "results.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(summaries[0]))
            w.writeheader()
            w.writerows(summaries)
    for r in results:
        with open(out / f"problems_{r.method}.jsonl", "w", encoding="utf-8") as f:
            for row in r.rows():
                f.write(json.dumps(tidy(row), ensure_ascii=False, default=str) + "\n")
    return out
