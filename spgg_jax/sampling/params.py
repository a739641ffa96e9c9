"""``SamplingParams``: per-row generation parameters as traced arrays.

Every field is an array with one entry per batch row, so a policy can choose them per example and
the sampler never recompiles when their values change (Tunix makes temperature/top_p static; we do
not). Neutral values switch a feature off: temperature 0 is greedy, top_p 1, top_k 0,
repetition_penalty 1, presence_penalty 0.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import struct

# Ranges accepted at the boundary (the generation-parameter policy maps into these).
RANGES = {
    "temperature": (0.0, 10.0),
    "top_p": (0.0, 1.0),  # (0, 1]
    "top_k": (0, 1 << 30),
    "max_new_tokens": (1, 1 << 20),
    "repetition_penalty": (0.0, 10.0),  # > 0
    "presence_penalty": (-10.0, 10.0),
}
#: the six generation parameters, in the order every module uses (policies, configs, metrics)
PARAM_NAMES = tuple(RANGES)


@struct.dataclass
class SamplingParams:
    temperature: jnp.ndarray  # f32[B]; <= 0 means greedy
    top_p: jnp.ndarray  # f32[B] in (0, 1]
    top_k: jnp.ndarray  # i32[B]; 0 means no top-k
    max_new_tokens: jnp.ndarray  # i32[B] >= 1
    repetition_penalty: jnp.ndarray  # f32[B] > 0 (transformers' definition; 1 = off)
    presence_penalty: jnp.ndarray  # f32[B] (OpenAI/vLLM definition on generated tokens; 0 = off)

    @property
    def batch(self) -> int:
        return int(self.temperature.shape[0])

    @classmethod
    def create(
        cls,
        batch: int,
        temperature: Any = 1.0,
        top_p: Any = 1.0,
        top_k: Any = 0,
        max_new_tokens: Any = 64,
        repetition_penalty: Any = 1.0,
        presence_penalty: Any = 0.0,
    ) -> "SamplingParams":
        """Broadcast scalars or per-row sequences to ``[batch]`` arrays and validate them."""
        vals = dict(temperature=temperature, top_p=top_p, top_k=top_k, max_new_tokens=max_new_tokens,
                    repetition_penalty=repetition_penalty, presence_penalty=presence_penalty)
        out = {}
        for name, v in vals.items():
            dtype = np.int32 if name in ("top_k", "max_new_tokens") else np.float32
            arr = np.asarray(v, dtype=np.float64)
            if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != batch):
                raise ValueError(f"sampling parameter {name} must be a scalar or have shape [{batch}], got {arr.shape}")
            arr = np.broadcast_to(arr, (batch,))
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"sampling parameter {name} must be finite, got {arr.tolist()}")
            out[name] = arr.astype(dtype)
        params = cls(**{k: jnp.asarray(v) for k, v in out.items()})
        validate(params)
        return params

    @classmethod
    def greedy(cls, batch: int, max_new_tokens: Any = 64) -> "SamplingParams":
        return cls.create(batch, temperature=0.0, max_new_tokens=max_new_tokens)


def validate(p: SamplingParams) -> None:
    """Raise ``ValueError`` naming the bad field and values (concrete arrays only)."""
    checks = {
        "temperature": lambda a: a >= 0,
        "top_p": lambda a: (a > 0) & (a <= 1),
        "top_k": lambda a: a >= 0,
        "max_new_tokens": lambda a: a >= 1,
        "repetition_penalty": lambda a: a > 0,
        "presence_penalty": lambda a: np.isfinite(a),
    }
    rules = {"temperature": ">= 0", "top_p": "in (0, 1]", "top_k": ">= 0", "max_new_tokens": ">= 1",
             "repetition_penalty": "> 0", "presence_penalty": "finite"}
    for name, ok in checks.items():
        a = np.asarray(getattr(p, name))
        bad = ~ok(a)
        if bad.any():
            raise ValueError(f"sampling parameter {name} must be {rules[name]}, got {a[bad][:4].tolist()}")
