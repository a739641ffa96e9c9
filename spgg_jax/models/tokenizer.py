"""Tokenizers: loaded from HF directories and batch-encoded with LEFT padding for the sampler.

GGUF files carry their tokenizer as metadata; :mod:`spgg_jax.models.weights.gguf_tokenizer` turns it
into ``tokenizer.json`` + ``tokenizer_config.json`` (with the chat template) once, at conversion, so
every tokenizer here loads with a plain ``AutoTokenizer.from_pretrained(dir)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np


def load_tokenizer(path: str | os.PathLike):
    """Load the tokenizer of an HF (or tokenizer-only) directory. Registered model names and
    ``.gguf`` files resolve to one with ``spgg_jax.models.weights.hub.resolve_model``
    (``hub.load_model`` does both)."""
    from transformers import AutoTokenizer

    path = Path(os.fspath(path)).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{str(path)!r} is not a directory; resolve a model name or .gguf file with "
                                "spgg_jax.models.weights.hub.resolve_model first")
    if not (path / "tokenizer.json").is_file() and not (path / "tokenizer_config.json").is_file():
        raise FileNotFoundError(f"no tokenizer files (tokenizer.json / tokenizer_config.json) in {str(path)!r}")
    return AutoTokenizer.from_pretrained(str(path))


def has_chat_template(tokenizer) -> bool:
    """Whether the tokenizer carries a chat template (base models such as Gemma 3 270M do not)."""
    return bool(getattr(tokenizer, "chat_template", None))


def apply_chat_template(
    tokenizer, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True
) -> str:
    """Render ``messages`` (``[{"role": ..., "content": ...}, ...]``) with the tokenizer's chat
    template and return the prompt text (encode it with ``add_special_tokens=False``)."""
    if not has_chat_template(tokenizer):
        raise ValueError(
            "this model's tokenizer has no chat template (a base model); pass plain prompts "
            "(e.g. `spgg generate --no-chat-template`)"
        )
    if not messages:
        raise ValueError("messages must be a non-empty list of {'role', 'content'} dicts")
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise ValueError(f"message {i} must be a dict with 'role' and 'content', got {m!r}")
    text = tokenizer.apply_chat_template(
        [dict(m) for m in messages], add_generation_prompt=add_generation_prompt, tokenize=False
    )
    if not isinstance(text, str):  # pragma: no cover - defensive: transformers API drift
        raise TypeError(f"apply_chat_template returned {type(text).__name__}, expected str")
    return text


def pad_id_of(tokenizer) -> int:
    """The id used to fill padding positions: the pad token, else EOS, else 0."""
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    return 0


def encode_batch(
    tokenizer,
    texts: Sequence[str],
    *,
    add_special_tokens: bool = True,
    max_length: int | None = None,
    pad_to_multiple_of: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Encode ``texts`` into LEFT-padded arrays.

    Args:
        tokenizer: a transformers tokenizer.
        texts: the prompts (non-empty list of strings).
        add_special_tokens: add BOS etc. as the tokenizer is configured to (use False for text
            already rendered by a chat template).
        max_length: keep at most the LAST ``max_length`` tokens of each text (prompt truncation
            from the left keeps the end of the prompt, where the question is).
        pad_to_multiple_of: round the padded length up (fewer distinct shapes -> fewer compiles).

    Returns:
        ``(ids, mask)``: ``int32[B, T]`` token ids and ``bool[B, T]``, True on real tokens, with the
        padding on the left so every row ends at column ``T - 1``.
    """
    if isinstance(texts, str) or not isinstance(texts, Sequence) or len(texts) == 0:
        raise ValueError(f"texts must be a non-empty list of strings, got {texts!r:.80}")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"texts[{i}] must be a string, got {type(t).__name__}")
    if max_length is not None and max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    if pad_to_multiple_of < 1:
        raise ValueError(f"pad_to_multiple_of must be >= 1, got {pad_to_multiple_of}")
    rows = [tokenizer(t, add_special_tokens=add_special_tokens)["input_ids"] for t in texts]
    if max_length is not None:
        rows = [r[-max_length:] for r in rows]
    empty = [i for i, r in enumerate(rows) if len(r) == 0]
    if empty:
        raise ValueError(f"texts {empty} encode to zero tokens; every prompt needs at least one token")
    length = max(len(r) for r in rows)
    length = -(-length // pad_to_multiple_of) * pad_to_multiple_of
    ids = np.full((len(rows), length), pad_id_of(tokenizer), dtype=np.int32)
    mask = np.zeros((len(rows), length), dtype=bool)
    for i, r in enumerate(rows):
        ids[i, length - len(r):] = np.asarray(r, dtype=np.int32)
        mask[i, length - len(r):] = True
    return ids, mask


def decode_batch(tokenizer, ids: Any, mask: Any | None = None, *, skip_special_tokens: bool = True) -> list[str]:
    """Decode each row of ``ids`` (``[B, T]``), keeping only positions where ``mask`` is True."""
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"ids must be 2-D [batch, length], got shape {ids.shape}")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != ids.shape:
            raise ValueError(f"mask shape {mask.shape} differs from ids shape {ids.shape}")
    out = []
    for i in range(ids.shape[0]):
        row = ids[i] if mask is None else ids[i][mask[i]]
        out.append(tokenizer.decode(row.tolist(), skip_special_tokens=skip_special_tokens))
    return out
