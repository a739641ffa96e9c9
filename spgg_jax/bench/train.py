"""``spgg bench train``: the token-level update step's speed (a whole iteration: ``bench iteration``).

    spgg bench train --model smollm2-135m-instruct --batch 8 --seq-len 128 --compare-torch
    spgg bench train --shape qwen2.5-0.5b --dtype bfloat16 --batch 16 --seq-len 512

The token-level policy-gradient update step (forward + backward + AdamW on all weights, the GRPO
loss) on random tokens of shape [batch, seq-len] (a token-method config's ``batch x group_size``
rows of prompt + ``max_new_tokens``): tokens/s, model TFLOP/s (6 N per token plus attention), and
MFU on a GPU whose peak is known; with ``--compare-torch`` the same step in PyTorch (eager) on the
same weights, in the same run, and the ratio line last.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="registered model name or HF directory (real weights and tokenizer)")
    src.add_argument("--shape", help="named shape with random weights (update step only)")
    p.add_argument("--batch", type=int, default=8, help="sequences per update step (default 8)")
    p.add_argument("--seq-len", type=int, default=256,
                   help="tokens per sequence, prompt (first half) plus completion (default 256)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="parameter and compute dtype")
    p.add_argument("--repeats", type=int, default=3, help="timed update steps (median)")
    p.add_argument("--compare-torch", action="store_true", help="time the same update step in PyTorch eager")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from spgg_jax.bench.common import device_info, emit
    from spgg_jax.models.decoder import count_params, init_params
    from spgg_jax.rl.algorithms import get_algorithm
    from spgg_jax.rl.learners.token import token_loss, token_step
    from spgg_jax.rl.ppo import make_optimizer

    for name in ("batch", "seq_len", "repeats"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    info = device_info()
    result = {"device": info}
    lines = [f"device: {info['backend']} ({info['device']})"]
    if args.shape:
        from spgg_jax.models.shapes import get_shape

        cfg = get_shape(args.shape, dtype=args.dtype, param_dtype=args.dtype)
        params = init_params(cfg, jax.random.key(0))
    else:
        from spgg_jax.models.hub import load_model

        cfg, params, _ = load_model(args.model, dtype=args.dtype)
    n_params = count_params(params)
    b, t = args.batch, args.seq_len
    p_len = t // 2
    rng = np.random.default_rng(0)
    toks = rng.integers(10, min(cfg.vocab_size, 30000), size=(b, t)).astype(np.int32)
    d = {
        "prompt_ids": jnp.asarray(toks[:, :p_len]), "prompt_mask": jnp.ones((b, p_len), bool),
        "tokens": jnp.asarray(toks[:, p_len:]), "mask": jnp.ones((b, t - p_len), bool),
        "logp_old": jnp.full((b, t - p_len), -5.0), "adv": jnp.asarray(rng.normal(size=b), jnp.float32),
        "ref_lp": jnp.full((b, t - p_len), -5.0),
    }
    tx = make_optimizer(1e-5, 1.0)
    opt_state = tx.init(params)
    loss = functools.partial(token_loss, model_cfg=cfg, lora_spec=None, loss_fn=get_algorithm("grpo").loss_fn,
                             clip=0.2, kl_coef=0.04, temperature=1.0)
    update = jax.jit(functools.partial(token_step, loss, tx))

    def step(params, opt_state):
        return update(params, opt_state, params, d)

    t0 = time.perf_counter()
    out = step(params, opt_state)
    jax.block_until_ready(out)
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(step(params, opt_state))
        times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    # model FLOPs: 6 N per token (forward + backward) plus attention 12 * layers * seq * d_attn per token
    attn = 12 * cfg.n_layers * t * cfg.n_heads * cfg.head_dim
    flops = (6 * n_params + attn) * b * t
    tflops = flops / step_s / 1e12
    result.update(update_tokens_per_s=b * t / step_s, update_step_s=step_s, update_compile_s=compile_s,
                  model_tflops=tflops, params=n_params, batch=b, seq_len=t, dtype=args.dtype)
    lines.append(f"update step (full weights, GRPO loss, AdamW), {n_params / 1e6:.1f}M params, {b} x {t} tokens, {args.dtype}: "
                 f"{step_s * 1e3:.1f} ms  ->  {b * t / step_s:,.0f} tokens/s, {tflops:.2f} model TFLOP/s (compile {compile_s:.1f} s)")
    kind = str(info["device"])
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in kind), None)
    if info["backend"] == "gpu" and peak:
        result["mfu"] = tflops / peak
        lines.append(f"MFU {tflops / peak:.1%} of {peak:.0f} TFLOP/s ({kind} bf16 dense peak)")
    ratio = "ratio: n/a (run with --compare-torch)"
    if args.compare_torch:
        import torch

        from spgg_jax.bench.forward import _torch_from_params
        from spgg_jax.models.hf_loader import hf_state_dict_from_params

        model = _torch_from_params(cfg, hf_state_dict_from_params(cfg, params), getattr(torch, args.dtype)).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
        ids = torch.as_tensor(toks, dtype=torch.long)
        adv = torch.as_tensor(np.asarray(d["adv"]))

        def torch_step():
            logits = model(input_ids=ids).logits[:, p_len - 1:-1].float()
            lp = torch.log_softmax(logits, -1).gather(-1, ids[:, p_len:, None])[..., 0]
            ratio_t = torch.exp(lp - (-5.0))
            obj = torch.minimum(ratio_t * adv[:, None], torch.clamp(ratio_t, 0.8, 1.2) * adv[:, None])
            dref = -5.0 - lp
            loss = -obj.mean() + 0.04 * (torch.exp(dref) - dref - 1).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()

        torch_step()
        tt = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            torch_step()
            tt.append(time.perf_counter() - t0)
        torch_s = statistics.median(tt)
        result.update(torch_update_step_s=torch_s, ratio=torch_s / step_s)
        lines.append(f"PyTorch {torch.__version__} eager, same step and weights: {torch_s * 1e3:.1f} ms ({b * t / torch_s:,.0f} tokens/s)")
        ratio = f"ratio: {torch_s / step_s:.2f}x PyTorch eager (update-step tokens/s, same weights, same machine)"
    emit(result, args.json, lines, ratio)
    return 0
