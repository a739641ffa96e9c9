"""GGUF tokenizer metadata -> a transformers fast tokenizer (once, at conversion), without torch.

The conversion reuses transformers' own GGUF tokenizer builders
(``transformers.integrations.gguf.gguf_tokenizer_mapping``; byte-level BPE for SmolLM2, Gemma's
sentencepiece-BPE for Gemma 3) but reads the metadata with ``gguf.GGUFReader`` instead of
transformers' torch-based reader, so conversion works without torch. The result is saved as
``tokenizer.json`` + ``tokenizer_config.json`` (with the chat template) and afterwards loaded with a
plain ``AutoTokenizer.from_pretrained(dir)`` (:func:`spgg_jax.models.tokenizer.load_tokenizer`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

# GGUF tokenizer keys -> the names transformers' GGUF tokenizer builders expect.
_TOKENIZER_KEYS = {
    "tokenizer.ggml.model": "tokenizer_type",
    "tokenizer.ggml.pre": "pre_tokenizer_type",
    "tokenizer.ggml.tokens": "tokens",
    "tokenizer.ggml.scores": "scores",
    "tokenizer.ggml.token_type": "token_type",
    "tokenizer.ggml.merges": "merges",
    "tokenizer.ggml.precompiled_charsmap": "precompiled_charsmap",
    "tokenizer.ggml.bos_token_id": "bos_token_id",
    "tokenizer.ggml.eos_token_id": "eos_token_id",
    "tokenizer.ggml.unknown_token_id": "unk_token_id",
    "tokenizer.ggml.padding_token_id": "pad_token_id",
    "tokenizer.ggml.add_space_prefix": "add_prefix_space",
}
_TOKENIZER_CONFIG_KEYS = {
    "tokenizer.chat_template": "chat_template",
    "tokenizer.ggml.add_bos_token": "add_bos_token",
    "tokenizer.ggml.add_eos_token": "add_eos_token",
}
_SPECIAL_TOKENS = {
    "bos_token": "tokenizer.ggml.bos_token_id",
    "eos_token": "tokenizer.ggml.eos_token_id",
    "unk_token": "tokenizer.ggml.unknown_token_id",
    "pad_token": "tokenizer.ggml.padding_token_id",
}


def _gguf_tokenizer_parts(gguf_path: str | os.PathLike) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(architecture, tokenizer_dict, tokenizer_config)`` read from a GGUF file with ``gguf``."""
    from spgg_jax.models.weights.gguf_reader import open_reader

    reader = open_reader(gguf_path)
    fields = reader.fields
    if "general.architecture" not in fields:
        raise ValueError(f"{str(gguf_path)!r} has no 'general.architecture' metadata")
    arch = fields["general.architecture"].contents()
    if "tokenizer.ggml.tokens" not in fields:
        raise ValueError(f"{str(gguf_path)!r} carries no tokenizer (no 'tokenizer.ggml.tokens')")

    def value(key: str) -> Any:
        v = fields[key].contents()
        return v.item() if isinstance(v, np.generic) else v

    tok = {name: value(key) for key, name in _TOKENIZER_KEYS.items() if key in fields}
    tok_cfg = {name: value(key) for key, name in _TOKENIZER_CONFIG_KEYS.items() if key in fields}
    if tok.get("tokenizer_type") == "llama":
        # llama.cpp adds BOS for a sentencepiece vocabulary unless the file says otherwise.
        tok_cfg.setdefault("add_bos_token", True)
    for name, key in _SPECIAL_TOKENS.items():
        token_id = value(key) if key in fields else None
        tok_cfg[name] = tok["tokens"][token_id] if token_id is not None else None
    return arch, tok, tok_cfg


def build_tokenizer_from_gguf(gguf_path: str | os.PathLike):
    """A transformers fast tokenizer equivalent to ``AutoTokenizer.from_pretrained(dir, gguf_file=)``
    (same ids), built without torch."""
    try:
        from transformers.integrations.gguf.gguf_tokenizer_mapping import convert_gguf_tokenizer
    except ImportError as err:  # pragma: no cover - depends on the transformers version
        raise ImportError(
            "this transformers version has no transformers.integrations.gguf.gguf_tokenizer_mapping; "
            "convert GGUF models with transformers>=5.24 (the converted directory then works with older ones)"
        ) from err
    from transformers import PreTrainedTokenizerFast

    arch, tok, tok_cfg = _gguf_tokenizer_parts(gguf_path)
    backend, extra = convert_gguf_tokenizer(arch, tok)
    kwargs = {k: v for k, v in tok_cfg.items() if v is not None}
    kwargs.update(extra)
    return PreTrainedTokenizerFast(tokenizer_object=backend, **kwargs)


def save_tokenizer_from_gguf(gguf_path: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Build the GGUF file's tokenizer and save it (``tokenizer.json``, ``tokenizer_config.json``,
    chat template) into ``out_dir``."""
    tokenizer = build_tokenizer_from_gguf(gguf_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out))
    return out
