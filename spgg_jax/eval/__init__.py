"""spgg_jax.eval: baselines (single, few-shot, CoT, self-consistency, debate) and the sequential
MAC-SPGG protocol as evaluation methods, and the runner behind ``spgg eval``. See docs/episodes.md.
"""

from spgg_jax.eval.methods import (
    METHODS,
    EvalContext,
    MethodResult,
    Row,
    fewshot_examples,
    generate_rows,
    majority_vote,
    worked_answer,
)
from spgg_jax.eval.runner import evaluate, format_table, markdown_table, parse_methods, write_results

__all__ = [
    "METHODS", "EvalContext", "MethodResult", "Row", "evaluate", "fewshot_examples", "format_table",
    "generate_rows", "majority_vote", "markdown_table", "parse_methods", "worked_answer", "write_results",
]
