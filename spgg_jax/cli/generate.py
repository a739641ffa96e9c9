"""``spgg generate``: completions from an embedded model, an HF directory or a GGUF file.

Decoding uses the KV-cached batched sampler (``spgg_jax.sampling``): greedy by default, or sampled
with ``--temperature/--top-p/--top-k/--repetition-penalty/--presence-penalty``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence


# Equal to spgg_jax.models.weights.hub.DEFAULT_MODEL (a test checks); not imported here because importing
# spgg_jax.models pulls in JAX/Flax, and `spgg --help` should stay fast.
DEFAULT_MODEL = "smollm2-135m-instruct"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="completions for one or more prompts (greedy, or sampled with --temperature/--top-p/--top-k)",
        description="Generate completions: greedy by default (--temperature 0), sampled with --temperature > 0 "
        "and optionally --top-p, --top-k and the penalties. Prompts are wrapped in the model's chat template as a "
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
    p.add_argument("--temperature", type=float, default=0.0, help="sampling temperature; 0 = greedy (default 0)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass in (0, 1]; 1 = off (default 1)")
    p.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens; 0 = off (default 0)")
    p.add_argument("--repetition-penalty", type=float, default=1.0,
                   help="transformers-style repetition penalty > 0; 1 = off (default 1)")
    p.add_argument("--presence-penalty", type=float, default=0.0,
                   help="subtracted once from logits of already generated tokens; 0 = off (default 0)")
    p.add_argument("--seed", type=int, default=0, help="random seed for sampling (default 0)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="compute and parameter dtype (default float32)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per prompt (prompt, completion, new_tokens, finished)")
    p.set_defaults(func=cmd_generate)


def read_prompts(prompts: Sequence[str], prompts_file: str | None) -> list[str]:
    """``--prompt`` values followed by the prompts of ``--prompts-file``."""
    out = list(prompts)
    if prompts_file is not None:
        from spgg_jax.errors import read_text_file

        path = Path(prompts_file)
        if not path.exists():
            raise FileNotFoundError(f"prompts file not found: {prompts_file!r}")
        # a directory, a UTF-16 or binary file: one line naming it
        lines = [ln for ln in read_text_file(path, "prompts file").splitlines() if ln.strip()]
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


def completions(tokenizer, out, stop_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Text of each row of a ``SampleOutput`` (a final stop token is counted but not shown)."""
    import numpy as np

    from spgg_jax.sampling import FINISH_STOP

    stop = set(int(e) for e in stop_ids)
    res = []
    for row, m, fin in zip(np.asarray(out.tokens), np.asarray(out.mask), np.asarray(out.finish_reason)):
        kept = row[m].tolist()
        shown = kept[:-1] if fin == FINISH_STOP and kept and kept[-1] in stop else kept
        res.append({
            "completion": tokenizer.decode(shown, skip_special_tokens=True),
            "new_tokens": len(kept),
            "finished": bool(fin == FINISH_STOP),
        })
    return res


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
    temperature: float = 0.0,
    top_p: float = 1.0,
    top_k: int = 0,
    repetition_penalty: float = 1.0,
    presence_penalty: float = 0.0,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Completions of ``prompts`` with the fast sampler; one dict per prompt
    (prompt, completion, new_tokens, finished). Greedy unless ``temperature`` > 0.

    ``chat=None`` uses the chat template when the tokenizer has one. ``loaded``: an already loaded
    ``(cfg, params, tokenizer)`` (skips loading ``model``).
    """
    import jax

    from spgg_jax.models.weights.hub import load_model
    from spgg_jax.models.tokenizer import has_chat_template, pad_id_of
    from spgg_jax.sampling import Sampler, SamplingParams

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
    sampler = Sampler(params, cfg, pad_id=pad_id_of(tok), eos_ids=eos_ids)
    key = jax.random.key(seed)
    results: list[dict[str, Any]] = []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start:start + batch_size]
        # A chat template writes its own special tokens; raw prompts get BOS etc. as configured.
        ids = [tok(t, add_special_tokens=not chat)["input_ids"] for t in chunk]
        sp = SamplingParams.create(len(ids), temperature=temperature, top_p=top_p, top_k=top_k,
                                   max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty,
                                   presence_penalty=presence_penalty)
        out = sampler.generate(ids, sp, key=jax.random.fold_in(key, start))
        for prompt, res in zip(prompts[start:start + batch_size], completions(tok, out, eos_ids)):
            results.append({"prompt": prompt, **res})
    return results


def cmd_generate(args: argparse.Namespace) -> int:
    prompts = read_prompts(args.prompt, args.prompts_file)
    t0 = time.perf_counter()
    results = generate(
        args.model, prompts, max_new_tokens=args.max_new_tokens,
        chat=False if args.no_chat_template else None, system=args.system,
        batch_size=args.batch_size, dtype=args.dtype, temperature=args.temperature, top_p=args.top_p,
        top_k=args.top_k, repetition_penalty=args.repetition_penalty, presence_penalty=args.presence_penalty,
        seed=args.seed,
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
