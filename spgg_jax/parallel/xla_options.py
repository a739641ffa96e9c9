"""Per-program XLA options: the matmul-heavy programs compiled without YNNPACK's dot fusions on CPU.

XLA's CPU backend (jaxlib 0.10) hands dots to YNNPACK by default. On the 2-core VM (AMD EPYC,
AVX-512) that is the faster choice for the decode step (48 rows: one token each), and the slower
one for programs whose dots have many rows: a prompt prefill of 48 x 128 tokens of SmolLM2-135M took
10.5 s with YNNPACK and 8.5 s with XLA's own dot emitter (three runs each, one process, the same
inputs), and the token-level update of 12 problems x 4 rollouts x 3 agents 48.9 s and 45.3 s a step
(``spgg bench iteration`` on a token config; docs/training.md). So the prefill and the training passes are compiled with
:data:`DENSE_CPU_OPTIONS`, the decode with the defaults. Other backends get no options; set
``SPGG_XLA_CPU_DEFAULTS=1`` to compile every program with XLA's defaults (to compare, or on a CPU
where the defaults win).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import jax

#: the XLA CPU options of the matmul-heavy programs (an empty fusion list: XLA emits the dots itself)
DENSE_CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}
#: set to "1" to compile every program with XLA's defaults
DEFAULTS_ENV = "SPGG_XLA_CPU_DEFAULTS"


def dense_options() -> dict[str, str] | None:
    """The compiler options of a matmul-heavy program on the current backend (None: the defaults).

    Reads the backend, so call it when the program is first compiled, not at import."""
    if os.environ.get(DEFAULTS_ENV, "") == "1" or jax.default_backend() != "cpu":
        return None
    return dict(DENSE_CPU_OPTIONS)


class dense_jit:  # noqa: N801 (used like jax.jit)
    """``jax.jit(fn, **jit_kwargs)`` compiled with :func:`dense_options`, chosen at the first call
    (importing a module that defines one starts no backend)."""

    def __init__(self, fn: Callable, **jit_kwargs: Any):
        self.fn = fn
        self.jit_kwargs = jit_kwargs
        self._jitted = None

    @property
    def jitted(self):
        if self._jitted is None:
            self._jitted = jax.jit(self.fn, compiler_options=dense_options(), **self.jit_kwargs)
        return self._jitted

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.jitted(*args, **kwargs)

    def lower(self, *args: Any, **kwargs: Any) -> Any:
        return self.jitted.lower(*args, **kwargs)
