"""``spgg bench forward``: jitted Flax forward (logits) tokens/s vs PyTorch transformers, same weights.

    spgg bench forward --shape smollm2-135m --batch 8 --seq-len 128
    spgg bench forward --model path/to/hf_dir [--dtype bfloat16] [--json]

With ``--shape`` the PyTorch model is built from the shape's HF config with random weights and our
params are read from its state dict; with ``--model`` both load the same HF directory (a registered
name is resolved through ``spgg_jax.models.weights.hub`` when that module provides it). Each side gets
``--warmup`` untimed calls (JAX: includes compilation, reported separately) then ``--repeats`` timed
rounds that alternate JAX and PyTorch (fair on a shared machine); medians are reported. The last line is the ratio (ours / torch, > 1 means faster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="HF model directory (config.json + safetensors) or a registered model name")
    src.add_argument("--shape", help="named shape with random weights (see spgg_jax.models.shapes)")
    parser.add_argument("--batch", type=int, default=8, help="sequences per forward call")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per sequence")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                        help="parameter and compute dtype of both sides")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed calls per side before timing (JAX: the first one compiles)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds, alternating JAX and PyTorch (median)")
    parser.add_argument("--seed", type=int, default=0, help="seed for random weights (--shape) and token ids")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _resolve_model(name: str, dtype: str) -> tuple[Any, Any, Any]:
    """(cfg, params, torch_model) for a directory or a registered name."""
    import torch
    import transformers

    from spgg_jax.models.weights.hf import hf_state_dict_from_params, load_hf_dir

    tdtype = getattr(torch, dtype)
    if os.path.isdir(name):
        cfg, params = load_hf_dir(name, dtype=dtype)
        model = transformers.AutoModelForCausalLM.from_pretrained(name, dtype=tdtype)
        return cfg, params, model
    try:
        from spgg_jax.models.weights import hub  # written by another module; optional
    except ImportError:
        raise ValueError(f"--model {name!r} is not a directory and spgg_jax.models.weights.hub is not available") from None
    if hasattr(hub, "resolve_model"):
        path = hub.resolve_model(name)
        if os.path.isdir(os.fspath(path)):
            return _resolve_model(os.fspath(path), dtype)
    if hasattr(hub, "load_model"):
        loaded = hub.load_model(name)
        cfg, params = loaded[0], loaded[1]
        cfg = cfg.replace(dtype=dtype, param_dtype=dtype)
        model = _torch_from_params(cfg, hf_state_dict_from_params(cfg, params), tdtype)
        import jax

        params = jax.tree_util.tree_map(lambda x: x.astype(cfg.jnp_param_dtype), params)
        return cfg, params, model
    raise ValueError(f"cannot resolve --model {name!r}: not a directory and not a registered model")


def _torch_from_params(cfg, state: dict, tdtype) -> Any:
    import torch
    import transformers

    hf_cfg = transformers.AutoConfig.for_model(**cfg.to_hf_config())
    model = transformers.AutoModelForCausalLM.from_config(hf_cfg)
    missing, unexpected = model.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()}, strict=False)
    missing = [m for m in missing if not (cfg.tie_embeddings and m == "lm_head.weight")]
    if missing or unexpected:
        raise ValueError(f"weights do not fit the torch model: missing {missing}, unexpected {unexpected}")
    if cfg.tie_embeddings:
        model.tie_weights()
    return model.to(tdtype).eval()


def _from_shape(name: str, dtype: str, seed: int) -> tuple[Any, Any, Any]:
    import torch
    import transformers

    from spgg_jax.models.weights.hf import params_from_hf_state_dict
    from spgg_jax.models.shapes import get_shape

    cfg = get_shape(name, dtype=dtype, param_dtype=dtype)
    torch.manual_seed(seed)
    hf_cfg = transformers.AutoConfig.for_model(**cfg.to_hf_config())
    model = transformers.AutoModelForCausalLM.from_config(hf_cfg).to(getattr(torch, dtype)).eval()
    params = params_from_hf_state_dict(cfg, model.state_dict())
    return cfg, params, model


def _time_interleaved(fns: dict, warmup: int, repeats: int) -> dict[str, tuple[float, float]]:
    """name -> (first call seconds, median of ``repeats`` timed calls).

    The timed calls alternate between the contenders round by round, so a shared, noisy machine
    slows both sides alike.
    """
    first = {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        fn()
        first[name] = time.perf_counter() - t0
        for _ in range(max(warmup - 1, 0)):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: (first[name], statistics.median(times[name])) for name in fns}


def run(args: argparse.Namespace) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    from spgg_jax.models import decoder as D

    if args.batch < 1 or args.seq_len < 1 or args.repeats < 1:
        raise ValueError(f"--batch, --seq-len and --repeats must be >= 1, got {args.batch}, {args.seq_len}, {args.repeats}")
    if args.shape:
        cfg, params, model = _from_shape(args.shape, args.dtype, args.seed)
        source = f"shape {args.shape} (random weights)"
    else:
        cfg, params, model = _resolve_model(args.model, args.dtype)
        source = f"model {args.model}"
    if cfg.learned_positions and args.seq_len > cfg.max_position_embeddings:
        raise ValueError(f"--seq-len {args.seq_len} exceeds the model's {cfg.max_position_embeddings} positions")

    b, t = args.batch, args.seq_len
    tokens_np = np.random.RandomState(args.seed).randint(0, cfg.vocab_size, (b, t))
    tokens = jnp.asarray(tokens_np, jnp.int32)
    mask = jnp.ones((b, t), bool)
    positions = D.positions_from_mask(mask)
    fwd = jax.jit(lambda p, x, pos, m: D.apply(p, cfg, x, pos, m)[0])

    def run_jax():
        jax.block_until_ready(fwd(params, tokens, positions, mask))

    t_ids = torch.as_tensor(tokens_np, dtype=torch.long)
    t_mask = torch.ones((b, t), dtype=torch.long)

    def run_torch():
        with torch.inference_mode():
            model(input_ids=t_ids, attention_mask=t_mask).logits

    timed = _time_interleaved({"jax": run_jax, "torch": run_torch}, args.warmup, args.repeats)
    (jax_first, jax_med), (_, torch_med) = timed["jax"], timed["torch"]
    # Same outputs (a benchmark of a wrong model is meaningless): compare a 16-token prefix.
    n = min(t, 16)
    check = jax.jit(lambda p, x, pos, m: D.apply(p, cfg, x, pos, m)[0])
    ours = np.asarray(check(params, tokens[:1, :n], positions[:1, :n], mask[:1, :n]), np.float32)
    with torch.inference_mode():
        ref = model(input_ids=t_ids[:1, :n]).logits.float().numpy()
    max_diff = float(np.abs(ours - ref).max())
    ntok = b * t
    result = {
        "source": source,
        "family": cfg.family,
        "params": D.count_params(params),
        "batch": b,
        "seq_len": t,
        "dtype": args.dtype,
        "device": str(jax.devices()[0].platform),
        "torch_threads": torch.get_num_threads(),
        "jax_compile_s": round(jax_first, 3),
        "jax_s": jax_med,
        "torch_s": torch_med,
        "jax_tokens_per_s": ntok / jax_med,
        "torch_tokens_per_s": ntok / torch_med,
        "ratio": torch_med / jax_med,
        "logits_max_abs_diff": max_diff,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"forward {source}: {result['params'] / 1e6:.1f}M params, batch {b} x {t} tokens, {args.dtype}, "
          f"{result['device']}")
    print(f"logits max |jax - torch| on a {n}-token prefix: {max_diff:.2e}")
    print(f"jax (jit, first call incl. compile {jax_first:.2f} s): {jax_med * 1e3:.1f} ms, "
          f"{result['jax_tokens_per_s']:.0f} tokens/s")
    print(f"torch eager ({result['torch_threads']} threads): {torch_med * 1e3:.1f} ms, "
          f"{result['torch_tokens_per_s']:.0f} tokens/s")
    print(f"ratio jax/torch tokens/s: {result['ratio']:.2f}x")
    return 0
