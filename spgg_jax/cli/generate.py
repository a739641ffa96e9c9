"""``spgg generate``: greedy completions from an embedded model, an HF directory or a GGUF file.

The decoding call is isolated in :func:`run_sampler`, so moving to the fast sampler
(``spgg_jax.sampling``) is a one-function change.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence


# Equal to spgg_jax.models.hub.DEFAULT_MODEL (a test checks); not imported here because importing
# spgg_jax.models pulls in JAX/Flax, and `spgg --help` should stay fast.
DEFAULT_MODEL = "smollm2-135m-instruct"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="greedy completions for one or more prompts",
        description="Generate greedy completions. Prompts are wrapped in the model's chat template as a "
        "single user message unless --no-chat-template is given (base models without a template get "
        "the raw prompt).",
    )
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME_OR_PATH",
                   help=f"registered model name, HF model directory or .gguf file (default {DEFAULT_MODEL})")
    p.add_argument("--prompt", action="append", default=[], metavar="TEXT",
                   help="a prompt (repeat for several; they are batched)")
    p.add_argument("--prompts-file", default=None, metavar="FILE",
                   help="prompts from a file: one per line, or JSONL with a \"prompt\" field (.jsonl, or every "
                   "line a JSON object)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="new tokens per prompt at most (default 64)")
    p.add_argument("--no-chat-template", action="store_true",
                   help="feed prompts as raw text instead of a chat-template user turn")
    p.add_argument("--system", default=None, metavar="TEXT",
                   help="system message placed before each prompt (chat template only)")
    p.add_argument("--batch-size", type=int, default=8, help="prompts decoded together (default 8)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="compute and parameter dtype (default float32)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per prompt (prompt, completion, new_tokens, finished)")
    p.set_defaults(func=cmd_generate)


def read_prompts(prompts: Sequence[str], prompts_file: str | None) -> list[str]:
    """``--prompt`` values followed by the prompts of ``--prompts-file``."""
    out = list(prompts)
    if prompts_file is not None:
        path = Path(prompts_file)
        if not path.is_file():
            raise FileNotFoundError(f"prompts file not found: {prompts_file!r}")
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        jsonl = path.suffix.lower() == ".jsonl" or (lines and all(ln.lstrip().startswith("{") for ln in lines))
        for i, ln in enumerate(lines, 1):
            if not jsonl:
                out.append(ln)
                continue
            try:
                obj = json.loads(ln)
            except json.JSONDecodeError as err:
                raise ValueError(f"{prompts_file}: line {i} is not valid JSON ({err.msg})") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str):
                raise ValueError(f"{prompts_file}: line {i} needs a string \"prompt\" field, got {ln[:80]!r}")
            out.append(obj["prompt"])
    if not out:
        raise ValueError("no prompts: give --prompt TEXT and/or --prompts-file FILE")
    return out


def format_prompts(tokenizer, prompts: Sequence[str], chat: bool, system: str | None = None) -> list[str]:
    """Render prompts as chat-template user turns (``chat``) or leave them as raw text."""
    from spgg_jax.models.tokenizer import apply_chat_template

    if not chat:
        return list(prompts)
    pre = [{"role": "system", "content": system}] if system else []
    return [apply_chat_template(tokenizer, pre + [{"role": "user", "content": p}]) for p in prompts]


def run_sampler(params, cfg, ids, mask, max_new_tokens: int, eos_ids: Sequence[int], pad_id: int):
    """The one decoding call: greedy for now; swap for ``spgg_jax.sampling`` when it lands.

    Returns int32 ``[B, max_new_tokens]`` new tokens (the EOS kept, later slots ``pad_id``).
    """
    from spgg_jax.models.generate import greedy_generate

    return greedy_generate(params, cfg, ids, mask, max_new_tokens, eos_ids=eos_ids, pad_id=pad_id)


def completions(tokenizer, tokens, eos_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Text and length of each row of new tokens, cut at the first EOS (which is not shown)."""
    import numpy as np

    eos = set(int(e) for e in eos_ids)
    out = []
    for row in np.asarray(tokens).tolist():
        n = next((i for i, t in enumerate(row) if t in eos), None)
        kept = row if n is None else row[:n]
        out.append({
            "completion": tokenizer.decode(kept, skip_special_tokens=True),
            "new_tokens": len(kept) + (0 if n is None else 1),
            "finished": n is not None,
        })
    return out


def generate(
    model: str,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 64,
    chat: bool | None = None,
    system: str | None = None,
    batch_size: int = 8,
    dtype: str = "float32",
    loaded: tuple | None = None,
) -> list[dict[str, Any]]:
    """Greedy completions of ``prompts``; one dict per prompt (prompt, completion, new_tokens, finished).

    ``chat=None`` uses the chat template when the tokenizer has one. ``loaded``: an already loaded
    ``(cfg, params, tokenizer)`` (skips loading ``model``).
    """
    from spgg_jax.models.hub import load_model
    from spgg_jax.models.tokenizer import encode_batch, has_chat_template, pad_id_of

    if max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    cfg, params, tok = loaded if loaded is not None else load_model(model, dtype=dtype)
    if chat is None:
        chat = has_chat_template(tok)
    elif chat and not has_chat_template(tok):
        raise ValueError(f"model {model!r} has no chat template (a base model); use --no-chat-template")
    texts = format_prompts(tok, prompts, chat, system)
    eos_ids = tuple(cfg.eos_token_ids) or ((tok.eos_token_id,) if tok.eos_token_id is not None else ())
    results: list[dict[str, Any]] = []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start:start + batch_size]
        # A chat template writes its own special tokens; raw prompts get BOS etc. as configured.
        ids, mask = encode_batch(tok, chunk, add_special_tokens=not chat, pad_to_multiple_of=16)
        new = run_sampler(params, cfg, ids, mask, max_new_tokens, eos_ids, pad_id_of(tok))
        for prompt, res in zip(prompts[start:start + batch_size], completions(tok, new, eos_ids)):
            results.append({"prompt": prompt, **res})
    return results


def cmd_generate(args: argparse.Namespace) -> int:
    prompts = read_prompts(args.prompt, args.prompts_file)
    t0 = time.perf_counter()
    results = generate(
        args.model, prompts, max_new_tokens=args.max_new_tokens,
        chat=False if args.no_chat_template else None, system=args.system,
        batch_size=args.batch_size, dtype=args.dtype,
    )
    elapsed = time.perf_counter() - t0
    for i, r in enumerate(results):
        if args.json:
            print(json.dumps(r, ensure_ascii=False))
        else:
            if len(results) > 1:
                print(f"### [{i}] {r['prompt']}")
            print(r["completion"])
    n_new = sum(r["new_tokens"] for r in results)
    print(f"[spgg generate] {len(results)} prompt(s), {n_new} new tokens in {elapsed:.1f} s "
          "(including model load and compilation)", file=sys.stderr)
    return 0
