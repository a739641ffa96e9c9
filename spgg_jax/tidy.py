"""Numbers for JSON files and ``--json`` output that read and diff well.

Values computed in float32 carry noise when printed as Python floats (``0.10000000149011612``);
``tidy`` rounds every float to ``SIGNIFICANT`` significant digits (float32 holds about 7), turns NumPy
and JAX scalars and arrays into plain Python values, and non-finite floats into ``None`` (JSON has no
NaN). The same input always gives the same text.
"""

from __future__ import annotations

import math
from typing import Any

SIGNIFICANT = 6


def tidy(obj: Any, digits: int = SIGNIFICANT) -> Any:
    """``obj`` with every float rounded to ``digits`` significant digits, recursively (dicts, lists,
    tuples, NumPy/JAX values); other values unchanged."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, float):
        if not math.isfinite(obj):
            return None
        return float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {k: tidy(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [tidy(v, digits) for v in obj]
    if hasattr(obj, "tolist"):  # NumPy / JAX scalars and arrays
        return tidy(obj.tolist(), digits)
    return obj
