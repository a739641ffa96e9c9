"""spgg_jax.tasks: data sets, answer extraction, scorers and the code sandbox.

No LLM code lives here. Public API::

    Problem, ScoreResult, TaskSpec            data model (frozen dataclasses)
    TASKS, SCORERS                            registries (spgg_jax.registry.Registry)
    get_task(name), load_task(name, **opts), load_problems(name, split, n, seed=), task_names()
    score(problem, completion), score_batch(problems, completions, max_workers)
    extract_math_answer, extract_choice, ...  (spgg_jax.tasks.extract)
    math_equal                                (spgg_jax.tasks.grading)
    run_python, SandboxLimits, SandboxResult  (spgg_jax.tasks.sandbox)

See docs/tasks.md.
"""

from spgg_jax.tasks.base import (SCORERS, TASKS, Problem, ScoreResult, TaskSpec, get_task, load_problems, load_task,
                                 task_names)
from spgg_jax.tasks import data as _data  # noqa: F401  (registers the tasks)
from spgg_jax.tasks.data import (
    load_gsm8k,
    load_humaneval,
    load_math,
    load_mbpp,
    load_mmlu,
    load_reasoning_gym,
    load_summeval,
)
from spgg_jax.tasks.extract import (
    Extraction,
    extract_boxed,
    extract_choice,
    extract_hash_answer,
    extract_math_answer,
    last_number,
    normalize_number,
    parse_number,
)
from spgg_jax.tasks.grading import math_equal
from spgg_jax.tasks.sandbox import SandboxLimits, SandboxResult, run_python, sandbox_capabilities
from spgg_jax.tasks.scorers import rouge_l_f1, score, score_batch

__all__ = [
    "Problem", "ScoreResult", "TaskSpec", "TASKS", "SCORERS", "get_task", "load_problems", "load_task", "task_names",
    "load_humaneval", "load_reasoning_gym", "load_gsm8k", "load_math", "load_mmlu", "load_mbpp",
    "load_summeval",
    "Extraction", "extract_math_answer", "extract_choice", "extract_boxed", "extract_hash_answer",
    "last_number", "normalize_number", "parse_number", "math_equal",
    "SandboxLimits", "SandboxResult", "run_python", "sandbox_capabilities",
    "score", "score_batch", "rouge_l_f1",
]
