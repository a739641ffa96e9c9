"""Shared helpers for benchmarks: timing with warm-up, device description, output."""

from __future__ import annotations

import json
import platform
import time
from typing import Any, Callable


def timeit(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> tuple[float, float]:
    """(best, median) seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs.

    ``fn`` must block until its result is ready (e.g. ``jax.block_until_ready``).
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[0], times[len(times) // 2]


def device_info() -> dict[str, Any]:
    import jax

    d = jax.devices()[0]
    return {
        "backend": jax.default_backend(),
        "device": getattr(d, "device_kind", str(d)),
        "n_devices": jax.device_count(),
        "jax": jax.__version__,
        "host": platform.processor() or platform.machine(),
    }


def emit(result: dict[str, Any], as_json: bool, lines: list[str], ratio_line: str) -> None:
    """Print human lines (or JSON) with the ratio line last, as every ``spgg bench`` does."""
    if as_json:
        print(json.dumps(result, indent=2))
        return
    for line in lines:
        print(line)
    print(ratio_line)
