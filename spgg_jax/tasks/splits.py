"""Training, validation and test problems that share no problem text.

``load_splits(task, train_size=, val_size=, test_size=, seed=, options=)`` is how a training run gets
its problems (``spgg_jax.train.setup``):

- **Generated tasks** (reasoning-gym): the training pool is ``train_size`` draws from the ``train``
  seed base (duplicates allowed: it is a pool to sample batches from). Validation and test
  candidates come from their own seed bases (``val``, ``test``: disjoint item seeds,
  ``spgg_jax.tasks.data.load_reasoning_gym``), in order; a candidate is dropped when its text occurs
  in the training pool (``in_train``), for the test split also when it occurs in the validation split
  (``in_val``), and when it repeats a text already kept in its own split (``repeat``). More
  candidates are drawn until the size is reached; a problem space too small to fill the splits is an
  error that names the task and its options.
- **File-based tasks** (GSM8K, MATH, MMLU, ...): the validation split is carved out of the task's
  ``train`` split (its first ``val_size`` distinct texts after the seeded shuffle), the training pool
  is the rest without those texts, and the test split is the task's ``test`` split (seeded shuffle,
  at most ``test_size``) without texts of the other two.

``Splits.summary`` records the sizes, the distinct texts and what was dropped and why; a run logs it
and writes it into ``eval.json``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

from spgg_jax.settings import int_error
from spgg_jax.tasks.base import get_task, load_problems

#: how each reason for dropping a candidate reads in messages
REASONS = {"in_train": "in train", "in_val": "in val", "repeat": "repeated"}
#: candidates drawn for a generated split before giving up: at least this many, else 20 per problem asked
MIN_CANDIDATES = 1000
CANDIDATES_PER_PROBLEM = 20


@dataclasses.dataclass(frozen=True)
class Splits:
    """Problems of a run: ``train`` (the pool training batches are drawn from), ``val`` (choosing the
    best baseline), ``test`` (the reported comparison), and ``summary`` (module docstring)."""

    train: list
    val: list
    test: list
    summary: dict


def _options_text(task: str, options: Mapping[str, Any]) -> str:
    opts = ", ".join(f"{k}={v!r}" for k, v in sorted(options.items())) or "none (the generator's defaults)"
    return f"task {task!r} with task_options {opts}"


def _filter(candidates: list, need: int, excluded: Mapping[str, str]) -> tuple[list, dict[str, int], int]:
    """The first ``need`` candidates whose text is not in ``excluded`` (text -> reason) and not a repeat;
    returns (kept, dropped counts by reason, candidates examined)."""
    kept: list = []
    seen: set[str] = set()
    dropped = {reason: 0 for reason in dict.fromkeys(list(excluded.values()) + ["repeat"])}
    examined = 0
    for p in candidates:
        if len(kept) == need:
            break
        examined += 1
        if p.prompt in excluded:
            dropped[excluded[p.prompt]] += 1
        elif p.prompt in seen:
            dropped["repeat"] += 1
        else:
            seen.add(p.prompt)
            kept.append(p)
    return kept, dropped, examined


def _generated_split(task: str, split: str, need: int, excluded: Mapping[str, str], seed: int,
                     options: Mapping[str, Any], sizes: str) -> tuple[list, dict[str, int], int]:
    """``need`` problems of a generated task's ``split`` with texts outside ``excluded`` (see module)."""
    cap = max(MIN_CANDIDATES, CANDIDATES_PER_PROBLEM * need)
    size = need
    while True:
        # item i depends only on the split's seed base + i, so a larger size extends the same list
        candidates = load_problems(task, split, seed=seed, generate=size, **options)
        kept, dropped, examined = _filter(candidates, need, excluded)
        if len(kept) == need:
            return kept, dropped, examined
        if size >= cap:
            reasons = ", ".join(f"{v} {REASONS[k]}" for k, v in dropped.items() if v) or "none"
            raise ValueError(
                f"{_options_text(task, options)}: only {len(kept)} of the {need} {split} problems asked for have "
                f"texts unseen in the other splits ({size} candidates drawn; dropped: {reasons}); the problem space "
                f"is too small for {sizes}: lower them, or widen the task's problem space with task_options "
                f"(e.g. more digits or terms)")
        size = min(cap, 2 * size)


def load_splits(task: str, *, train_size: int, val_size: int, test_size: int, seed: int = 0,
                options: Optional[Mapping[str, Any]] = None) -> Splits:
    """The run's training pool, validation and test problems, disjoint by problem text (module docstring).

    ``val_size`` / ``test_size`` 0 give empty splits. Raises ``ValueError`` naming the task and its
    options when the problem space cannot fill the splits.
    """
    for name, v, low in (("train_size", train_size, 1), ("val_size", val_size, 0), ("test_size", test_size, 0)):
        err = int_error(name, v, ge=low)
        if err:
            raise ValueError(err)
    options = dict(options or {})
    spec = get_task(task)
    sizes = f"train_size={train_size}, val_size={val_size}, eval_size={test_size}"
    dropped: dict[str, dict[str, int]] = {}
    examined: dict[str, int] = {}
    if spec.generated:
        train = load_problems(task, "train", seed=seed, generate=train_size, **options)
        excluded = {p.prompt: "in_train" for p in train}
        val: list = []
        if val_size:
            val, dropped["val"], examined["val"] = _generated_split(task, "val", val_size, excluded, seed, options, sizes)
        excluded.update({p.prompt: "in_val" for p in val if p.prompt not in excluded})
        test: list = []
        if test_size:
            test, dropped["test"], examined["test"] = _generated_split(task, "test", test_size, excluded, seed, options,
                                                                       sizes)
    else:
        pool = load_problems(task, "train", seed=seed, **options)
        val, dropped["val"], examined["val"] = _filter(pool, val_size, {})
        val_texts = {p.prompt for p in val}
        train = [p for p in pool if p.prompt not in val_texts]
        dropped["train"] = {"in_val": len(pool) - len(train) - len(val)}
        if not train:
            raise ValueError(f"{_options_text(task, options)}: its train split has {len(pool)} problems "
                             f"({len({p.prompt for p in pool})} distinct texts) and val_size={val_size} leaves none "
                             f"for training: lower val_size")
        test = []
        if test_size:
            excluded = {p.prompt: "in_train" for p in train}
            excluded.update({p.prompt: "in_val" for p in val})
            candidates = load_problems(task, "test", seed=seed, **options)
            test, dropped["test"], examined["test"] = _filter(candidates, test_size, excluded)
            if not test:
                raise ValueError(f"{_options_text(task, options)}: none of its {len(candidates)} test problems has a "
                                 f"text unseen in the train and validation splits")
    summary = {
        "task": task,
        "generated": spec.generated,
        "sizes": {"train": len(train), "val": len(val), "test": len(test)},
        "distinct_texts": {"train": len({p.prompt for p in train}), "val": len(val), "test": len(test)},
        "candidates": examined,
        "dropped": dropped,
    }
    return Splits(list(train), list(val), list(test), summary)


def format_summary(summary: Mapping[str, Any]) -> str:
    """One line: the splits' sizes and what was dropped to keep them disjoint."""
    s = summary["sizes"]
    parts = [f"train {s['train']} ({summary['distinct_texts']['train']} distinct texts)", f"val {s['val']}",
             f"test {s['test']}"]
    drops = []
    for split, reasons in summary.get("dropped", {}).items():
        shown = ", ".join(f"{n} {REASONS.get(r, r)}" for r, n in reasons.items() if n)
        if shown:
            drops.append(f"{split}: {shown} (of {summary.get('candidates', {}).get(split, '?')} candidates)"
                         if split in summary.get("candidates", {}) else f"{split}: {shown}")
    line = "splits: " + ", ".join(parts)
    return line + ("; dropped to keep them disjoint by text: " + "; ".join(drops) if drops else "; nothing dropped")


__all__ = ["Splits", "load_splits", "format_summary"]
