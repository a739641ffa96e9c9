"""Answer equivalence: exact numbers first, then :mod:`math_verify`, never raising on junk.

``math_verify`` guards its sympy work with ``signal.alarm`` timeouts, which only work in the main
thread. :func:`math_equal` therefore passes its timeouts only in the main thread and disables them
elsewhere; outside the main thread it relies on a length guard (``_MV_MAX_CHARS``) so that no
pathological input reaches sympy. Every exception inside ``math_verify`` counts as "not equal".
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Optional

from spgg_jax.tasks.extract import parse_number

__all__ = ["math_equal", "numbers_equal", "mv_equal"]

_MV_MAX_CHARS = 300
_MV_TIMEOUT_S = 5


def numbers_equal(pred: object, gold: object) -> Optional[bool]:
    """Exact comparison when both sides are single numbers (``None`` when either is not)."""
    a, b = parse_number(pred), parse_number(gold)
    if a is None or b is None:
        return None
    return a == b


def _as_latex(s: str) -> str:
    s = s.strip()
    if "\\boxed" in s or s.startswith("$"):
        return s
    return "\\boxed{" + s + "}"


def mv_equal(pred: str, gold: str) -> tuple[bool, dict[str, Any]]:
    """``math_verify.verify(parse(gold), parse(pred))`` with thread-safe timeouts; (equal, info)."""
    info: dict[str, Any] = {}
    if len(pred) > _MV_MAX_CHARS or len(gold) > _MV_MAX_CHARS:
        info["math_verify"] = "skipped: too long"
        return False, info
    try:
        import math_verify
        from math_verify import parse, verify
        from math_verify import grader as _grader
        from math_verify import parser as _parser

        # Silence the one-off "timeout disabled" warning we deliberately trigger off-main-thread.
        _parser.TIMEOUT_WARNING_SHOWN = True
        _grader.TIMEOUT_WARNING_SHOWN = True
        logging.getLogger("math_verify").setLevel(logging.ERROR)
        main = threading.current_thread() is threading.main_thread()
        t = _MV_TIMEOUT_S if main else None
        g = parse(_as_latex(gold), parsing_timeout=t)
        p = parse(_as_latex(pred), parsing_timeout=t)
        if not g or not p:
            info["math_verify"] = "unparsed"
            return False, info
        ok = bool(verify(g, p, timeout_seconds=t))
        info["math_verify"] = "equal" if ok else "different"
        del math_verify
        return ok, info
    except Exception as e:  # noqa: BLE001 - junk must never crash scoring
        info["math_verify"] = f"error: {type(e).__name__}"
        return False, info


def math_equal(pred: Optional[str], gold: Optional[str], *, use_math_verify: bool = True
               ) -> tuple[bool, dict[str, Any]]:
    """Whether ``pred`` and ``gold`` denote the same answer; (equal, details).

    Exact rational equality when both are single numbers (``"1,000"`` == ``"1000.0"``,
    ``"\\frac{3}{4}"`` == ``"0.75"``, ``"-3"`` != ``"3"``); otherwise (or when numbers differ)
    ``math_verify``, which also knows symbolic equivalence (``\\sqrt{8}/2`` == ``\\sqrt{2}``).
    """
    details: dict[str, Any] = {}
    if pred is None or gold is None or not str(pred).strip():
        details["reason"] = "no answer"
        return False, details
    pred, gold = str(pred), str(gold)
    num = numbers_equal(pred, gold)
    details["numeric"] = num
    if num:
        return True, details
    if num is False and not use_math_verify:
        return False, details
    if use_math_verify:
        ok, info = mv_equal(pred, gold)
        details.update(info)
        if num is False and ok:
            # math_verify rounds floats (e.g. 0.3333333 == 1/3); accept only if they agree to 1e-6.
            a, b = parse_number(pred), parse_number(gold)
            ok = a is not None and b is not None and abs(float(a - b)) <= 1e-6 * max(1.0, abs(float(b)))
            details["math_verify_rounding"] = ok
        return ok, details
    return False, details
