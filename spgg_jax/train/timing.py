"""Wall-clock accounting of a training iteration: JAX compilation time, phase tokens/s.

JAX reports every compilation's tracing, lowering and backend-compile durations through
``jax.monitoring``; ``compile_seconds()`` is their running total in this process, so the
compilation inside a phase is the difference of two readings.
"""

from __future__ import annotations

import threading

import jax

_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
                   "/jax/core/compile/backend_compile_duration")
_lock = threading.Lock()
_total = [0.0]
_installed = [False]


def _listener(event: str, duration: float, **_: object) -> None:
    if event in _COMPILE_EVENTS:
        with _lock:
            _total[0] += float(duration)


def compile_seconds() -> float:
    """Seconds this process has spent compiling JAX programs (trace + lower + compile) so far."""
    with _lock:
        if not _installed[0]:
            jax.monitoring.register_event_duration_secs_listener(_listener)
            _installed[0] = True
        return _total[0]


def phase_metrics(phases: dict[str, float], prompt_tokens: int, new_tokens: int, compile_s: float) -> dict[str, float]:
    """``time/*`` metrics of one iteration from its phase seconds, with each rollout phase's tokens/s.

    ``phases`` has ``prefill``, ``policy``, ``decode``, ``rollout_host`` (the rollout's Python:
    prompts, tokenizing, texts), ``score``, ``update``; prefill tokens are the prompts' real tokens,
    decode tokens the generated ones. Compilation happens inside the phases (its total is apart).
    """
    names = {"prefill": "rollout_prefill", "decode": "rollout_decode", "policy": "policy"}
    m = {f"time/{names.get(k, k)}": float(v) for k, v in phases.items()}
    m["time/step"] = float(sum(phases.values()))
    m["time/compile"] = float(compile_s)
    m["tokens_per_s/prefill"] = prompt_tokens / max(phases.get("prefill", 0.0), 1e-9)
    m["tokens_per_s/decode"] = new_tokens / max(phases.get("decode", 0.0), 1e-9)
    return m


def step_line(step: int, steps: int, m: dict) -> str:
    """The concise step log: reward, accuracy, each phase's seconds (and tokens/s), compilation."""
    return (f"step {step}/{steps}  reward {m['reward/mean']:+.3f}  acc {m['accuracy']:.2f}  |  "
            f"prefill {m['time/rollout_prefill']:.1f}s ({m['tokens_per_s/prefill']:.0f} tok/s)  "
            f"decode {m['time/rollout_decode']:.1f}s ({m['tokens_per_s/decode']:.0f} tok/s)  "
            f"policy {m['time/policy']:.1f}s  score {m['time/score']:.1f}s  update {m['time/update']:.1f}s  "
            f"compile {m['time/compile']:.1f}s  |  step {m['time/step']:.1f}s")
