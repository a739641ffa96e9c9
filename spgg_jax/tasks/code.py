"""Code tasks: pull code out of completions and build the test programs run in the sandbox.

The programs print a success line tagged with a random per-run nonce only after the tests ran, so
a completion that exits early (``sys.exit(0)``, ``os._exit(0)``) or prints "passed" never counts.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Optional, Sequence

from spgg_jax.tasks.base import Problem

__all__ = [
    "extract_code",
    "build_humaneval_program",
    "build_mbpp_program",
    "parse_report",
    "new_nonce",
]

_FENCE_RE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def new_nonce() -> str:
    return "SPGG-" + secrets.token_hex(12)


def extract_code(completion: object, entry_point: Optional[str] = None) -> str:
    """The code in a completion.

    Fenced blocks (```` ```python ```` or bare ```` ``` ````; an unclosed final fence runs to the end)
    win: the first block defining ``entry_point`` if given, else the first Python/untagged block,
    else the first block. Without fences the completion itself (trailing whitespace removed).
    """
    text = completion if isinstance(completion, str) else ("" if completion is None else str(completion))
    blocks = [(m.group(1).lower(), m.group(2)) for m in _FENCE_RE.finditer(text)]
    if not blocks:
        return text.rstrip()
    if entry_point:
        pat = re.compile(rf"^\s*(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", re.M)
        for _, body in blocks:
            if pat.search(body):
                return body.rstrip()
    for lang, body in blocks:
        if lang in ("python", "py", "python3", ""):
            return body.rstrip()
    return blocks[0][1].rstrip()


def build_humaneval_program(problem: Problem, completion: str, nonce: str) -> tuple[str, str]:
    """(program, code) for a HumanEval completion.

    If the extracted code defines ``entry_point`` it is appended after the official prompt (so the
    prompt's imports and helper functions stay available and the model's definition wins);
    otherwise it is treated as the function body continuing the prompt (the official
    ``prompt + completion`` convention). Then the official ``test`` and ``check(entry_point)``.
    """
    md = problem.metadata
    entry = md["entry_point"]
    code = extract_code(completion, entry)
    if re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(entry)}\s*\(", code, re.M):
        body = problem.prompt + "\n    pass\n\n" + code
    else:
        body = problem.prompt + code
    program = (f"{body}\n\n\n{md['test']}\n\n"
               f"check({entry})\n"
               f"print({nonce!r} + ' PASS')\n")
    return program, code


def build_mbpp_program(problem: Problem, completion: str, nonce: str, *, include_challenge: bool = False,
                       per_test_timeout_s: float = 2.0) -> tuple[str, str, int]:
    """(program, code, n_tests) for an MBPP completion: setup code, the model's code, then each
    assert run separately (an exception or a per-test ``SIGALRM`` timeout fails only that test);
    the result list is printed as JSON on a nonce-tagged line."""
    md = problem.metadata
    code = extract_code(completion)
    tests: Sequence[str] = list(md["test_list"]) + (list(md.get("challenge_test_list") or ())
                                                    if include_challenge else [])
    harness = f"""

def __spgg_harness():
    import json as _json, signal as _signal
    class _TestTimeout(BaseException):
        pass
    def _alarm(signum, frame):
        raise _TestTimeout()
    _signal.signal(_signal.SIGALRM, _alarm)
    results = []
    for src in {json.dumps(list(tests))}:
        ok = False
        try:
            _signal.setitimer(_signal.ITIMER_REAL, {float(per_test_timeout_s)!r})
            exec(src, globals())
            ok = True
        except BaseException:
            ok = False
        finally:
            _signal.setitimer(_signal.ITIMER_REAL, 0)
        results.append(ok)
    print({nonce!r} + ' ' + _json.dumps(results))

__spgg_harness()
"""
    setup = md.get("test_setup_code") or ""
    program = (setup + "\n\n" if setup else "") + code + "\n" + harness
    return program, code, len(tests)


def parse_report(stdout: str, nonce: str) -> Optional[str]:
    """The payload of the last line starting with ``nonce`` (``None`` when absent)."""
    payload = None
    for line in stdout.splitlines():
        if line.startswith(nonce):
            payload = line[len(nonce):].strip()
    return payload
