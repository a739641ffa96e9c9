"""Opening GGUF files (shared by the converter, ``spgg_jax.models.weights.gguf``, and the tokenizer
builder, ``spgg_jax.models.weights.gguf_tokenizer``, which must not import each other)."""

from __future__ import annotations

import os
from pathlib import Path


class GGUFConversionError(ValueError):
    """The GGUF file cannot be converted (unsupported architecture/type, or inconsistent)."""


def open_reader(path: str | os.PathLike):
    import gguf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {str(path)!r}")
    try:
        return gguf.GGUFReader(str(path))
    except Exception as err:  # gguf raises ValueError/struct errors for non-GGUF input
        raise GGUFConversionError(f"{str(path)!r} is not a readable GGUF file: {err}") from err
