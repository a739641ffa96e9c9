"""``spgg bench sample``: KV-cached sampler throughput vs transformers ``generate``, same weights.

    spgg bench sample --shape smollm2-135m --batch 8 --prompt-len 32 --new-tokens 64 --compare-hf
    spgg bench sample --model smollm2-135m-instruct --batch 8 --new-tokens 64 --compare-hf
    spgg bench sample --shape qwen2.5-0.5b --dtype bfloat16 --batch 128 --prompt-len 128 --new-tokens 256

Every row generates exactly ``--new-tokens`` tokens (no stop tokens), greedy on both sides. Reports
new tokens/s, ms per decode step, prefill and compile time; on a GPU also the memory-bandwidth
utilisation (MBU): bytes of weights and KV cache read per decode step over the bandwidth measured
in the same run by a device copy. With ``--compare-hf`` the ratio line (ours / transformers) is last.
"""

from __future__ import annotations

import argparse
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="registered model name or HF directory (real weights)")
    src.add_argument("--shape", help="named shape with random weights (qwen2.5-0.5b, smollm2-135m, llama-3.1-8b, ...)")
    p.add_argument("--batch", type=int, default=8, help="rows generated together (default 8)")
    p.add_argument("--prompt-len", type=int, default=32, help="prompt tokens per row (default 32)")
    p.add_argument("--new-tokens", type=int, default=64, help="tokens generated per row (default 64)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="parameter and compute dtype")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of ours (median; default 3)")
    p.add_argument("--compare-hf", action="store_true", help="also time transformers generate (PyTorch) on the same weights")
    p.add_argument("--seed", type=int, default=0, help="seed for random weights and prompts")
    p.add_argument("--json", action="store_true", help="print JSON")


def _bandwidth_gbs() -> float:
    """Device memory bandwidth (GB/s) measured by a jitted copy of a 1 GiB buffer (read + write)."""
    import jax
    import jax.numpy as jnp

    from spgg_jax.bench.common import timeit

    x = jnp.ones((256 * 1024 * 1024,), jnp.float32)
    f = jax.jit(lambda a: a + 1.0)
    best, _ = timeit(lambda: jax.block_until_ready(f(x)), repeats=5)
    return 2 * x.nbytes / best / 1e9


def run(args) -> int:
    import statistics

    import jax
    import jax.numpy as jnp
    import numpy as np

    from spgg_jax.bench.common import device_info, emit
    from spgg_jax.models.decoder import count_params, forward, init_cache, init_params, positions_from_mask
    from spgg_jax.sampling import Sampler, SamplingParams

    for name in ("batch", "prompt_len", "new_tokens", "repeats"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    torch_model = None
    if args.compare_hf:
        from spgg_jax.bench.forward import _from_shape, _resolve_model

        cfg, params, torch_model = (_from_shape(args.shape, args.dtype, args.seed) if args.shape
                                    else _resolve_model(args.model, args.dtype))
        params = jax.tree_util.tree_map(jnp.asarray, params)
    elif args.shape:
        from spgg_jax.models.shapes import get_shape

        cfg = get_shape(args.shape, dtype=args.dtype, param_dtype=args.dtype)
        params = init_params(cfg, jax.random.key(args.seed))
    else:
        from spgg_jax.models.weights.hub import load_model

        cfg, params, _ = load_model(args.model, dtype=args.dtype)
    b, p_len, t_len = args.batch, args.prompt_len, args.new_tokens
    rng = np.random.default_rng(args.seed)
    prompts = rng.integers(10, min(cfg.vocab_size, 30000), size=(b, p_len)).tolist()
    sampler = Sampler(params, cfg, min_bucket=1)
    sp = SamplingParams.greedy(b, t_len)
    nostop = [[]] * b

    def ours():
        out = sampler.generate(prompts, sp, stop_tokens=nostop)
        jax.block_until_ready(out.tokens)
        return out

    t0 = time.perf_counter()
    out = ours()
    first = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        out = ours()
        times.append(time.perf_counter() - t0)
    total = statistics.median(times)
    assert int(np.min(np.asarray(out.lengths))) == t_len

    # prefill alone (same bucketed prompt shape), to split prefill from decode
    ids = jnp.asarray(np.asarray(prompts, np.int32))
    mask = jnp.ones_like(ids, dtype=bool)
    cache_len = out.tokens.shape[1] + ids.shape[1]

    @jax.jit
    def prefill(params, ids, mask):
        return forward(params, cfg, ids, positions_from_mask(mask), mask, init_cache(cfg, b, cache_len))[0]

    jax.block_until_ready(prefill(params, ids, mask))
    pre = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(prefill(params, ids, mask))
        pre.append(time.perf_counter() - t0)
    prefill_s = statistics.median(pre)
    decode_s = max(total - prefill_s, 1e-9)
    step_ms = decode_s / max(t_len - 1, 1) * 1e3
    tok_s = b * t_len / total

    info = device_info()
    n_params = count_params(params)
    bytes_per = jnp.dtype(cfg.param_dtype).itemsize
    result = {
        "device": info, "model": args.model or args.shape, "dtype": args.dtype, "params": n_params,
        "batch": b, "prompt_len": p_len, "new_tokens": t_len, "new_tokens_per_s": tok_s,
        "seconds": total, "prefill_s": prefill_s, "decode_ms_per_step": step_ms,
        "compile_and_first_run_s": first,
    }
    lines = [
        f"device: {info['backend']} ({info['device']}), model {result['model']} ({n_params / 1e6:.1f}M params, {args.dtype})",
        f"batch {b}, prompt {p_len}, {t_len} new tokens/row: {total:.3f} s  ->  {tok_s:,.1f} new tokens/s",
        f"prefill {prefill_s * 1e3:.1f} ms, decode {step_ms:.2f} ms/step, compile + first run {first:.1f} s",
    ]
    if info["backend"] == "gpu":
        bw = _bandwidth_gbs()
        kv_bytes = 2 * cfg.n_layers * b * cache_len * cfg.n_kv_heads * cfg.head_dim * jnp.dtype(cfg.dtype).itemsize
        step_bytes = n_params * bytes_per + kv_bytes
        mbu = step_bytes / (step_ms / 1e3) / (bw * 1e9)
        result.update(bandwidth_gbs=bw, bytes_per_step=step_bytes, mbu=mbu)
        lines.append(f"MBU {mbu:.1%}: {step_bytes / 1e9:.2f} GB read per step (weights + KV cache) at measured {bw:,.0f} GB/s")
    ratio_line = "ratio: n/a (run with --compare-hf)"
    if torch_model is not None:
        import torch

        tids = torch.tensor(prompts)
        attn = torch.ones_like(tids)

        def hf():
            with torch.no_grad():
                return torch_model.generate(tids, attention_mask=attn, max_new_tokens=t_len, min_new_tokens=t_len,
                                            do_sample=False, eos_token_id=None, pad_token_id=0)

        with torch.no_grad():
            torch_model.generate(tids, attention_mask=attn, max_new_tokens=2, do_sample=False, pad_token_id=0)
        t0 = time.perf_counter()
        ref = hf()
        hf_s = time.perf_counter() - t0
        hf_tok_s = b * t_len / hf_s
        same = float(np.mean(np.asarray(ref[:, p_len:]) == np.asarray(out.tokens[:, :t_len])))
        result.update(hf_seconds=hf_s, hf_new_tokens_per_s=hf_tok_s, ratio=tok_s / hf_tok_s, token_agreement=same)
        lines.append(f"transformers generate (PyTorch {torch.__version__}, eager): {hf_s:.2f} s  ->  {hf_tok_s:,.1f} new tokens/s; "
                     f"greedy tokens identical: {same:.1%}")
        ratio_line = f"ratio: {tok_s / hf_tok_s:.2f}x transformers generate (new tokens/s, same weights, same machine)"
    emit(result, args.json, lines, ratio_line)
    return 0
