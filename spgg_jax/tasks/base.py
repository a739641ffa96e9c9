"""Core data model of ``spgg_jax.tasks``: problems, score results, task specs and registries."""

from __future__ import annotations

import dataclasses
import types
from typing import Any, Callable, Mapping, Optional

from spgg_jax.registry import Registry
from spgg_jax.settings import int_error

__all__ = [
    "Problem",
    "ScoreResult",
    "TaskSpec",
    "TASKS",
    "SCORERS",
    "get_task",
    "load_task",
    "task_names",
]


def _freeze(m: Optional[Mapping]) -> Mapping:
    return types.MappingProxyType(dict(m or {}))


@dataclasses.dataclass(frozen=True)
class Problem:
    """One task instance.

    Attributes:
      id: unique within its task (``"HumanEval/0"``, ``"gsm8k/test/12"``, ...).
      task: registered task name (selects the default scorer).
      prompt: the problem statement shown to agents (no answer-format instruction; see
        :attr:`TaskSpec.answer_format`).
      answer: gold answer string (number, LaTeX, option letter, reference summary) or ``None``
        for tasks graded by tests (code).
      metadata: read-only task extras: HumanEval ``test``/``entry_point``/``canonical_solution``,
        MBPP ``test_list``/``test_setup_code``, MMLU ``choices``/``subject``, SummEval source and
        annotations, reasoning-gym ``rg_entry`` for its own scorer, ...
    """

    id: str
    task: str
    prompt: str
    answer: Optional[str]
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("id", "task", "prompt"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"Problem.{name} must be a str, got {type(getattr(self, name)).__name__}")
        if self.answer is not None and not isinstance(self.answer, str):
            raise TypeError(f"Problem.answer must be a str or None, got {type(self.answer).__name__}")
        object.__setattr__(self, "metadata", _freeze(self.metadata))


@dataclasses.dataclass(frozen=True)
class ScoreResult:
    """Outcome of scoring one completion.

    Attributes:
      correct: the completion solves the problem (all tests pass / answer equivalent).
      score: in [0, 1]; partial credit where defined (MBPP fraction of asserts, ROUGE-L), else
        ``float(correct)``.
      extracted: the answer (or code) taken from the completion, ``None`` if nothing was found.
      details: scorer-specific diagnostics (extraction method, sandbox status, per-test results).
    """

    correct: bool
    score: float
    extracted: Optional[str]
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        s = float(self.score)
        if not 0.0 <= s <= 1.0:
            raise ValueError(f"ScoreResult.score must be in [0, 1], got {self.score!r}")
        object.__setattr__(self, "score", s)
        object.__setattr__(self, "correct", bool(self.correct))
        object.__setattr__(self, "details", _freeze(self.details))


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """A registered task.

    Attributes:
      name: registry key (also ``Problem.task``).
      loader: ``loader(**options) -> list[Problem]``.
      scorer: name of the default scorer in :data:`SCORERS`.
      answer_format: instruction appended to prompts so answers are extractable.
      description: one line for listings.
      generated: the loader generates problems (``size`` and ``seed`` say how many and which)
        instead of reading a fixed split.
      train_options: loader options a training run uses unless its ``task_options`` set them
        (``TrainConfig`` writes them into the effective config): MBPP grades training rewards on
        asserts its prompts do not show (``{"prompt_tests": "one"}``).
    """

    name: str
    loader: Callable[..., list[Problem]]
    scorer: str
    answer_format: str
    description: str = ""
    generated: bool = False
    train_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def load(self, **options: Any) -> list[Problem]:
        return self.loader(**options)


#: name -> TaskSpec
TASKS: Registry[TaskSpec] = Registry("task")
#: name -> ``scorer(problem, completion) -> ScoreResult``
SCORERS: Registry[Callable[..., ScoreResult]] = Registry("scorer")


def get_task(name: str) -> TaskSpec:
    """The :class:`TaskSpec` registered under ``name`` (clear ``KeyError`` listing the names)."""
    return TASKS.get(name)


def task_names() -> list[str]:
    return TASKS.names()


def load_task(name: str, **options: Any) -> list[Problem]:
    """Load the problems of task ``name``; ``options`` go to its loader (split, seed, limit, path...)."""
    return get_task(name).load(**options)


def load_problems(name: str, split: str, n: Optional[int] = None, *, seed: int = 0,
                  generate: Optional[int] = None, **options: Any) -> list[Problem]:
    """``n`` problems of ``split`` (``None``: all), the one way the trainer and ``spgg eval`` load tasks.

    File-based tasks return a ``seed``-shuffled selection of the split. Generated tasks
    (``TaskSpec.generated``: reasoning-gym) first generate ``generate`` problems (default: ``n``, at
    least 100) from ``seed`` and return the first ``n``. ``options`` go to the task's loader.
    """
    spec = get_task(name)
    err = None if n is None else int_error(f"number of {name} problems", n, ge=0)
    if err:
        raise ValueError(err)
    if spec.generated:
        size = generate if generate else max(n or 0, 100)
        limit = n if n is not None and n < size else None
        return spec.load(split=split, size=size, seed=seed, limit=limit, **options)
    return spec.load(split=split, seed=seed, limit=n, **options)
