"""Scorers: ``scorer(problem, completion) -> ScoreResult``, registered by name in :data:`SCORERS`.

=================  ===================================================================================
scorer             rule
=================  ===================================================================================
``math``           :func:`extract_math_answer` (numeric) then :func:`math_equal` (exact rational, then
                   math-verify); score = correct
``math_latex``     same with LaTeX answers kept verbatim (MATH)
``multiple_choice``  :func:`extract_choice`; correct = letter equals the gold letter
``humaneval``      checked: official ``test`` + ``check(entry_point)`` run in a checker process (sandboxed)
                   whose entry point forwards each call to the candidate's process (sandboxed) and gets
                   plain data back, so nothing in the candidate's process can fake a pass; score =
                   correct (no partial credit). What rewards use.
``humaneval_classic``  the official HumanEval program (candidate code and tests in one process): the
                   published pass@1 convention, which an adversarial candidate can subvert
``mbpp``           checked: each assert of ``test_list`` separately in a checker process whose calls to the
                   candidate's functions go to the candidate's process and return plain data; score =
                   fraction passed, correct = all passed (``include_challenge=True`` adds
                   ``challenge_test_list``). What rewards use.
``mbpp_classic``   the same asserts in the candidate's own process (gameable from inside it)
``rouge_l``        best ROUGE-L F1 against the references (pure Python, lower-cased word tokens);
                   correct = F1 >= ``threshold`` (default 0.3, an arbitrary bar; the real quality signal
                   for SummEval is the LLM evaluator, not this)
=================  ===================================================================================

:func:`score_batch` runs code scorers in a thread pool (each sandbox is a subprocess, so threads
suffice) bounded by the number of CPU cores, and everything else in the calling thread.
"""

from __future__ import annotations

import json
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Sequence

from spgg_jax.tasks.base import SCORERS, Problem, ScoreResult, get_task
from spgg_jax.tasks.code import (build_humaneval_checked, build_humaneval_program, build_mbpp_checked,
                                 build_mbpp_program, new_nonce, parse_report)
from spgg_jax.tasks.extract import extract_choice, extract_math_answer
from spgg_jax.tasks.grading import math_equal
from spgg_jax.tasks.sandbox import SandboxLimits, run_python

__all__ = [
    "score",
    "score_batch",
    "score_math",
    "score_math_latex",
    "score_multiple_choice",
    "score_humaneval",
    "score_humaneval_classic",
    "score_mbpp",
    "score_mbpp_classic",
    "score_rouge_l",
    "rouge_l_f1",
    "CODE_SCORERS",
    "DEFAULT_CODE_LIMITS",
]

#: Scorers that run the sandbox (parallelized by :func:`score_batch`).
CODE_SCORERS = frozenset({"humaneval", "humaneval_classic", "mbpp", "mbpp_classic"})
#: Limits for code scoring: 10 s wall, 512 MiB, 8 processes/threads.
DEFAULT_CODE_LIMITS = SandboxLimits(timeout_s=10.0, memory_mb=512)


def _as_text(completion: object) -> str:
    if isinstance(completion, str):
        return completion
    return "" if completion is None else str(completion)


def _sandbox_details(r) -> dict:
    return {"status": r.status, "returncode": r.returncode, "wall_s": round(r.wall_s, 4),
            "reason": r.reason, "blocked_reason": r.blocked_reason, "stderr_tail": r.stderr[-1000:]}


@SCORERS.register("math")
def score_math(problem: Problem, completion: str) -> ScoreResult:
    """Numeric answers (GSM8K, reasoning-gym): extraction keeps signs, fractions, decimals."""
    ext = extract_math_answer(_as_text(completion), numeric=True)
    ok, det = math_equal(ext.answer, problem.answer)
    return ScoreResult(ok, float(ok), ext.answer, {"method": ext.method, **det})


@SCORERS.register("math_latex")
def score_math_latex(problem: Problem, completion: str) -> ScoreResult:
    """LaTeX answers (MATH): the boxed/phrase content is compared as written via math-verify."""
    ext = extract_math_answer(_as_text(completion), numeric=False)
    ok, det = math_equal(ext.answer, problem.answer)
    return ScoreResult(ok, float(ok), ext.answer, {"method": ext.method, **det})


@SCORERS.register("multiple_choice")
def score_multiple_choice(problem: Problem, completion: str) -> ScoreResult:
    """Option letter (MMLU)."""
    choices = problem.metadata.get("choices") or ()
    n = len(choices) or 4
    ext = extract_choice(_as_text(completion), n_choices=n, choices=choices)
    ok = ext.answer is not None and ext.answer == (problem.answer or "").strip().upper()
    return ScoreResult(ok, float(ok), ext.answer, {"method": ext.method})


def _check_humaneval_metadata(problem: Problem, who: str) -> None:
    if "entry_point" not in problem.metadata or "test" not in problem.metadata:
        raise ValueError(f"{who}: problem {problem.id!r} lacks metadata 'test'/'entry_point'")


@SCORERS.register("humaneval")
def score_humaneval(problem: Problem, completion: str, limits: Optional[SandboxLimits] = None) -> ScoreResult:
    """HumanEval functional correctness (pass@1 for one sample), checked in a separate process.

    Two sandboxed runs joined by two pipes: the candidate's program (its code, then a loop that
    answers calls) and the checker (official prompt and tests, the entry point a proxy). Correct
    only when the checker exits 0 after printing its nonce line; the candidate's own exit status
    and output are ignored.
    """
    _check_humaneval_metadata(problem, "score_humaneval")
    nonce = new_nonce()

    def build(checker_fds, candidate_fds):
        return build_humaneval_checked(problem, _as_text(completion), nonce, checker_fds=checker_fds,
                                       candidate_fds=candidate_fds)

    r, cand, code = _run_checked(build, limits or DEFAULT_CODE_LIMITS)
    ok = r.status == "passed" and parse_report(r.stdout, nonce) == "PASS"
    return ScoreResult(ok, float(ok), code or None, _checked_details(r, cand, ok))


def _run_checked(build, lim: SandboxLimits):
    """Run a checker and a candidate program (``build(checker_fds, candidate_fds) -> (checker,
    candidate, extra)``) as two sandboxed runs joined by two pipes; (checker result, candidate
    result, extra)."""
    to_cand_r, to_cand_w = os.pipe()
    to_check_r, to_check_w = os.pipe()
    try:
        checker, candidate, extra = build((to_check_r, to_cand_w), (to_cand_r, to_check_w))
    except BaseException:
        for fd in (to_cand_r, to_cand_w, to_check_r, to_check_w):
            os.close(fd)
        raise
    box: dict = {}

    def run_candidate() -> None:
        box["r"] = run_python(candidate, lim, pass_fds=[to_cand_r, to_check_w])

    t = threading.Thread(target=run_candidate, name="spgg-candidate", daemon=True)
    try:
        t.start()
    except BaseException:
        for fd in (to_cand_r, to_check_w, to_check_r, to_cand_w):
            os.close(fd)
        raise
    r = run_python(checker, lim, pass_fds=[to_check_r, to_cand_w])
    t.join()
    return r, box.get("r"), extra


def _checked_details(r, cand, ok: bool) -> dict:
    det = _sandbox_details(r)
    det["mode"] = "checked"
    if cand is not None:
        det["candidate_status"] = cand.status
        det["candidate_stderr_tail"] = cand.stderr[-1000:]
        if not ok and cand.status in ("blocked", "timeout", "memory", "error"):
            # what went wrong in the candidate's process explains the failure best
            det["status"] = cand.status
            det["blocked_reason"] = cand.blocked_reason
            det["reason"] = f"candidate: {cand.blocked_reason or cand.reason}"
    if r.status == "error":
        det["status"] = "error"
        det["reason"] = f"checker: {r.reason}"
    return det


@SCORERS.register("humaneval_classic")
def score_humaneval_classic(problem: Problem, completion: str,
                            limits: Optional[SandboxLimits] = None) -> ScoreResult:
    """HumanEval the official way (pass@1 for one sample): candidate code and tests in one program.

    Comparable with published pass@1 figures, but the comparison runs in the candidate's process,
    so a candidate built to cheat (an object equal to everything, patched builtins) can pass; use
    ``humaneval`` for rewards.
    """
    _check_humaneval_metadata(problem, "score_humaneval_classic")
    nonce = new_nonce()
    program, code = build_humaneval_program(problem, _as_text(completion), nonce)
    r = run_python(program, limits or DEFAULT_CODE_LIMITS)
    ok = r.status == "passed" and parse_report(r.stdout, nonce) == "PASS"
    det = _sandbox_details(r)
    det["mode"] = "classic"
    if r.status == "passed" and not ok:
        det["reason"] = "exited 0 before the tests reported"
    return ScoreResult(ok, float(ok), code or None, det)


def _check_mbpp_metadata(problem: Problem, who: str) -> None:
    if "test_list" not in problem.metadata:
        raise ValueError(f"{who}: problem {problem.id!r} lacks metadata 'test_list'")


def _mbpp_results(r, nonce: str, n: int) -> list[bool]:
    """Per-assert results from the run's nonce-tagged line (empty when missing or malformed)."""
    payload = parse_report(r.stdout, nonce) if r.status == "passed" else None
    if payload is not None:
        try:
            vals = json.loads(payload)
            if isinstance(vals, list) and len(vals) == n:
                return [v is True for v in vals]
        except ValueError:
            pass
    return []


def _mbpp_score(results: list[bool], n: int, code: str, det: dict) -> ScoreResult:
    """Score = fraction of asserts passed, correct = all passed; ``det["tests"]`` holds the list."""
    det["tests"] = results
    return ScoreResult(bool(results) and all(results), sum(results) / n if results else 0.0, code or None, det)


@SCORERS.register("mbpp")
def score_mbpp(problem: Problem, completion: str, limits: Optional[SandboxLimits] = None,
               include_challenge: bool = False) -> ScoreResult:
    """MBPP, checked: fraction of asserts passed (partial credit), correct when all pass.

    The asserts run in a checker process (sandboxed) whose calls to the candidate's functions are
    forwarded to the candidate's process (sandboxed) and come back as plain data, as for
    ``humaneval``; the candidate's own exit status and output are ignored. What rewards use.
    """
    _check_mbpp_metadata(problem, "score_mbpp")
    nonce = new_nonce()

    def build(checker_fds, candidate_fds):
        checker, candidate, code, n = build_mbpp_checked(
            problem, _as_text(completion), nonce, checker_fds, candidate_fds,
            include_challenge=include_challenge)
        return checker, candidate, (code, n)

    r, cand, (code, n) = _run_checked(build, limits or DEFAULT_CODE_LIMITS)
    results = _mbpp_results(r, nonce, n)
    return _mbpp_score(results, n, code, _checked_details(r, cand, bool(results) and all(results)))


@SCORERS.register("mbpp_classic")
def score_mbpp_classic(problem: Problem, completion: str, limits: Optional[SandboxLimits] = None,
                       include_challenge: bool = False) -> ScoreResult:
    """MBPP with the asserts in the candidate's own process (each separately): the usual way of
    running MBPP tests, which a candidate built to cheat can subvert; use ``mbpp`` for rewards."""
    _check_mbpp_metadata(problem, "score_mbpp_classic")
    nonce = new_nonce()
    program, code, n = build_mbpp_program(problem, _as_text(completion), nonce,
                                          include_challenge=include_challenge)
    r = run_python(program, limits or DEFAULT_CODE_LIMITS)
    det = _sandbox_details(r)
    det["mode"] = "classic"
    return _mbpp_score(_mbpp_results(r, nonce, n), n, code, det)


_TOKEN_RE = re.compile(r"\w+")


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l_f1(candidate: str, reference: str, max_tokens: int = 2000) -> float:
    """ROUGE-L F1 on lower-cased word tokens (texts cut to ``max_tokens`` tokens)."""
    c = _TOKEN_RE.findall(candidate.lower())[:max_tokens]
    r = _TOKEN_RE.findall(reference.lower())[:max_tokens]
    if not c or not r:
        return 0.0
    lcs = _lcs(c, r)
    if lcs == 0:
        return 0.0
    p, rec = lcs / len(c), lcs / len(r)
    return 2 * p * rec / (p + rec)


@SCORERS.register("rouge_l")
def score_rouge_l(problem: Problem, completion: str, threshold: float = 0.3) -> ScoreResult:
    """Best ROUGE-L F1 against the problem's references (SummEval)."""
    refs = list(problem.metadata.get("references") or ([problem.answer] if problem.answer else []))
    if not refs:
        raise ValueError(f"score_rouge_l: problem {problem.id!r} has no reference summaries")
    text = _as_text(completion).strip()
    scores = [rouge_l_f1(text, ref) for ref in refs]
    best = max(scores)
    return ScoreResult(best >= threshold, best, text or None, {"per_reference": scores, "threshold": threshold})


def _scorer_for(problem: Problem, scorer: Optional[str]) -> tuple[str, Any]:
    name = scorer or get_task(problem.task).scorer
    return name, SCORERS.get(name)


def score(problem: Problem, completion: str, scorer: Optional[str] = None, **kwargs: Any) -> ScoreResult:
    """Score one completion with ``scorer`` (default: the problem's task's scorer)."""
    if not isinstance(problem, Problem):
        raise TypeError(f"score: expected a Problem, got {type(problem).__name__}")
    _, fn = _scorer_for(problem, scorer)
    return fn(problem, completion, **kwargs)


def score_batch(problems: Sequence[Problem], completions: Sequence[str], max_workers: Optional[int] = None,
                scorer: Optional[str] = None, **kwargs: Any) -> list[ScoreResult]:
    """Score ``completions[i]`` against ``problems[i]``; results in input order.

    Code scorers run concurrently on at most ``min(max_workers, os.cpu_count())`` threads (each
    drives one sandbox subprocess); the rest run in the calling thread (math-verify's signal-based
    timeouts need the main thread).
    """
    if len(problems) != len(completions):
        raise ValueError(f"score_batch: {len(problems)} problems but {len(completions)} completions")
    cores = os.cpu_count() or 1
    workers = cores if max_workers is None else max(1, min(int(max_workers), cores))
    out: list[Optional[ScoreResult]] = [None] * len(problems)
    code_jobs = []
    for i, (p, c) in enumerate(zip(problems, completions)):
        name, fn = _scorer_for(p, scorer)
        if name in CODE_SCORERS:
            code_jobs.append((i, fn, p, c))
        else:
            out[i] = fn(p, c, **kwargs)
    if code_jobs:
        if workers == 1 or len(code_jobs) == 1:
            for i, fn, p, c in code_jobs:
                out[i] = fn(p, c, **kwargs)
        else:
            with ThreadPoolExecutor(max_workers=workers) as ex:
                futs = {ex.submit(fn, p, c, **kwargs): i for i, fn, p, c in code_jobs}
                for f, i in futs.items():
                    out[i] = f.result()
    return out  # type: ignore[return-value]
