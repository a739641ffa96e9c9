"""``spgg bench train``: the token-level update step's speed (a whole iteration: ``bench iteration``).

    spgg bench train --model smollm2-135m-instruct --batch 48 --seq-len 160 --new-tokens 32 --train-layers 2
    spgg bench train --model smollm2-135m-instruct --batch 8 --seq-len 128 --full-finetune
    spgg bench train --shape qwen2.5-0.5b --dtype bfloat16 --batch 16 --seq-len 512 --no-torch

The update step of ``method=token`` (``spgg_jax.rl.learners.token.token_step``: the GRPO loss, its
gradient, global-norm clipping and Adam) on random tokens of shape [batch, seq-len], of which the
last ``--new-tokens`` are the generated continuation (a token config's ``batch x group_size`` rows
of prompt + generated tokens). By default LoRA adapters (rank ``--lora-rank``) on the top
``--train-layers`` layers, timed two ways: from the captured trunk (the residual stream entering the
first trained layer given, as the rollout hands it to the trainer) and with the trunk's forward
before it (a forward-only program over the layers below, as the learner runs it when a rollout kept
no trunk). ``--full-finetune`` times the step on every weight instead.

PyTorch runs the same step in the same process on the same weights, adapters and shapes (eager
transformers: LoRA modules on the same kernels of the same layers, every base weight frozen, the
continuation's logits only, the same loss, clipping and Adam); the calls alternate between the
contenders so a shared machine slows each alike. The first step's loss of each is printed as a
check that both compute the same thing. Without PyTorch installed that part is skipped with a
message. The ratio line (last) is PyTorch's step time over ours.
"""

from __future__ import annotations

import argparse
import functools

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}
#: LoRA target kernel -> (HF submodule, linear) of a Llama-style decoder layer
TORCH_MODULES = {
    "q_proj_kernel": ("self_attn", "q_proj"), "k_proj_kernel": ("self_attn", "k_proj"),
    "v_proj_kernel": ("self_attn", "v_proj"), "o_proj_kernel": ("self_attn", "o_proj"),
    "gate_proj_kernel": ("mlp", "gate_proj"), "up_proj_kernel": ("mlp", "up_proj"),
    "down_proj_kernel": ("mlp", "down_proj"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="registered model name or HF directory (real weights and tokenizer)")
    src.add_argument("--shape", help="named shape with random weights (update step only)")
    p.add_argument("--batch", type=int, default=8, help="sequences per update step (default 8)")
    p.add_argument("--seq-len", type=int, default=256, help="tokens per sequence (prompt + new) (default 256)")
    p.add_argument("--new-tokens", type=int, default=None,
                   help="generated tokens per sequence (the log-probs the loss reads; default half of --seq-len)")
    p.add_argument("--train-layers", type=int, default=2,
                   help="adapters on the top K layers (token.train_layers; 0 = every layer; default 2)")
    p.add_argument("--lora-rank", type=int, default=8, help="LoRA rank (token.lora_rank; default 8)")
    p.add_argument("--full-finetune", action="store_true", help="train every weight instead of adapters")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="parameter and compute dtype")
    p.add_argument("--repeats", type=int, default=3, help="timed update steps of each contender (median)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch step")
    p.add_argument("--json", action="store_true", help="print JSON")


def _torch_lora(model, cfg, lora, targets, start: int, scale: float):
    """Freeze ``model`` and put LoRA modules with the adapters ``lora`` on layers ``start..`` (Llama names)."""
    import numpy as np
    import torch

    class LoRALinear(torch.nn.Module):
        def __init__(self, base, a, b):
            super().__init__()
            self.base = base
            self.a = torch.nn.Parameter(torch.as_tensor(np.asarray(a, np.float32)).to(base.weight.dtype))
            self.b = torch.nn.Parameter(torch.as_tensor(np.asarray(b, np.float32)).to(base.weight.dtype))

        def forward(self, x):
            return self.base(x) + (x @ self.a) @ self.b * scale

    for p in model.parameters():
        p.requires_grad_(False)
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None or not hasattr(layers[0], "self_attn"):
        raise ValueError(f"the PyTorch LoRA step knows Llama-style module names, not the {cfg.family} family's")
    trained = []
    for name in targets:
        group, linear = TORCH_MODULES[name]
        node = lora["layers"]["attn" if group == "self_attn" else "mlp"][name]
        for i in range(start, cfg.n_layers):
            parent = getattr(layers[i], group)
            module = LoRALinear(getattr(parent, linear), node["a"][i - start], node["b"][i - start])
            setattr(parent, linear, module)
            trained += [module.a, module.b]
    return trained


def _torch_step(model, trained, toks, p_len: int, d, lr: float, grad_clip: float, clip: float, kl_coef: float):
    """The same update in PyTorch: returns a function doing one step (and giving its loss)."""
    import numpy as np
    import torch

    opt = torch.optim.Adam(trained, lr=lr)
    ids = torch.as_tensor(toks, dtype=torch.long)
    adv = torch.as_tensor(np.asarray(d["adv"]))[:, None]
    old = torch.as_tensor(np.asarray(d["logp_old"]))
    ref = torch.as_tensor(np.asarray(d["ref_lp"]))
    new = toks.shape[1] - p_len

    def step() -> float:
        # logits of the positions that predict the continuation only (as ours), not of the whole prompt
        logits = model(input_ids=ids, logits_to_keep=new + 1).logits[:, :-1].float()
        lp = torch.log_softmax(logits, -1).gather(-1, ids[:, p_len:, None])[..., 0]
        ratio = torch.exp(lp - old)
        obj = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - clip, 1 + clip) * adv)
        dref = ref - lp
        loss = -obj.mean() + kl_coef * (torch.exp(dref) - dref - 1).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, grad_clip)
        opt.step()
        return float(loss.detach())

    return step


def run(args) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from spgg_jax.bench.common import device_info, emit
    from spgg_jax.bench.forward import _time_interleaved
    from spgg_jax.models.decoder import count_params, init_params
    from spgg_jax.rl.algorithms import get_algorithm
    from spgg_jax.rl.learners.token import TokenConfig, token_loss, token_step
    from spgg_jax.rl.lora import init_lora
    from spgg_jax.rl.ppo import make_optimizer
    from spgg_jax.sampling import trunk_states

    for name in ("batch", "seq_len", "repeats", "lora_rank"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    new = args.seq_len // 2 if args.new_tokens is None else args.new_tokens
    if not 1 <= new < args.seq_len:
        raise ValueError(f"--new-tokens must be in [1, {args.seq_len - 1}] (the rest is the prompt), got {new}")
    tcfg = TokenConfig(lora_rank=args.lora_rank, full_finetune=args.full_finetune,
                       train_layers=0 if args.full_finetune else args.train_layers)
    errors = tcfg.errors()
    if errors:
        raise ValueError("; ".join(e.replace("token.", "--").replace("_", "-") for e in errors))
    info = device_info()
    result = {"device": info}
    lines = [f"device: {info['backend']} ({info['device']})"]
    if args.shape:
        from spgg_jax.models.shapes import get_shape

        cfg = get_shape(args.shape, dtype=args.dtype, param_dtype=args.dtype)
        params = init_params(cfg, jax.random.key(0))
    else:
        from spgg_jax.models.weights.hub import load_model

        cfg, params, _ = load_model(args.model, dtype=args.dtype)
    start = tcfg.first_trained_layer(cfg.n_layers)
    n_params = count_params(params)
    b, t = args.batch, args.seq_len
    p_len = t - new
    rng = np.random.default_rng(0)
    toks = rng.integers(10, min(cfg.vocab_size, 30000), size=(b, t)).astype(np.int32)
    d = {
        "prompt_ids": jnp.asarray(toks[:, :p_len]), "prompt_mask": jnp.ones((b, p_len), bool),
        "tokens": jnp.asarray(toks[:, p_len:]), "mask": jnp.ones((b, new), bool),
        "logp_old": jnp.full((b, new), -5.0), "adv": jnp.asarray(rng.normal(size=b), jnp.float32),
        "ref_lp": jnp.full((b, new), -5.0),
    }
    lr, grad_clip, clip, kl_coef = 1e-5, 1.0, 0.2, 0.04
    tx = make_optimizer(lr, grad_clip)
    lora_spec = None if args.full_finetune else (tcfg.lora_alpha, tcfg.lora_rank)
    if args.full_finetune:
        trainable = params
    else:  # B small and non-zero, so both factors carry gradient (a fresh adapter has B = 0)
        lora = init_lora(jax.random.key(1), params, tcfg.lora_rank, tcfg.lora_targets,
                         top_layers=cfg.n_layers - start if start else 0)
        trainable = jax.tree_util.tree_map_with_path(
            lambda path, x: 0.01 * jax.random.normal(jax.random.key(2), x.shape, x.dtype) if path[-1].key == "b" else x,
            lora)
    opt_state = tx.init(trainable)
    loss = functools.partial(token_loss, model_cfg=cfg, lora_spec=lora_spec, loss_fn=get_algorithm("grpo").loss_fn,
                             clip=clip, kl_coef=kl_coef, temperature=1.0, start=start)
    update = jax.jit(functools.partial(token_step, loss, tx))
    first_loss: dict[str, float] = {}

    def jax_step(data, name):
        def go():
            out = jax.block_until_ready(update(trainable, opt_state, params, data()))
            first_loss.setdefault(name, float(out[2]["loss"]))
        return go

    contenders = {}
    if args.full_finetune:
        contenders["jax"] = jax_step(lambda: d, "jax")
    else:
        trunk = jax.jit(trunk_states, static_argnums=(1, 6))

        def with_trunk():  # the learner's path when the rollout kept no trunk: its forward, then the step
            x = trunk(params, cfg, d["prompt_ids"], d["prompt_mask"], d["tokens"], d["mask"], start)
            return {**d, "trunk": jax.block_until_ready(x)}

        captured = with_trunk()
        contenders["jax_captured"] = jax_step(lambda: captured, "jax_captured")
        contenders["jax_trunk"] = jax_step(with_trunk, "jax_trunk")
    torch_note = None
    if args.no_torch:
        torch_note = "PyTorch skipped (--no-torch)"
    else:
        try:
            import torch
        except ImportError:
            torch_note = "PyTorch skipped: torch is not installed (pip install torch, or the test extras)"
    if torch_note is None:
        from spgg_jax.bench.forward import _torch_from_params
        from spgg_jax.models.weights.hf import hf_state_dict_from_params

        model = _torch_from_params(cfg, hf_state_dict_from_params(cfg, params), getattr(torch, args.dtype)).train()
        if args.full_finetune:
            trained = list(model.parameters())
        else:
            trained = _torch_lora(model, cfg, trainable, tcfg.lora_targets, start, tcfg.lora_alpha / tcfg.lora_rank)
        step = _torch_step(model, trained, toks, p_len, d, lr, grad_clip, clip, kl_coef)

        def torch_go():
            first_loss.setdefault("torch", step())

        contenders["torch"] = torch_go
    timed = _time_interleaved(contenders, warmup=1, repeats=args.repeats)
    tokens = b * t
    what = ("every weight" if args.full_finetune else
            f"LoRA r{tcfg.lora_rank} on {'every layer' if not start else f'the top {cfg.n_layers - start} of {cfg.n_layers} layers'}"
            f" ({', '.join(k.replace('_kernel', '') for k in tcfg.lora_targets)})")
    result.update(params=n_params, batch=b, seq_len=t, new_tokens=new, dtype=args.dtype, trained=what,
                  first_trained_layer=start, first_loss=first_loss)
    lines.append(f"update step (GRPO loss, clipping, Adam) of {what}; {n_params / 1e6:.1f}M params, "
                 f"{b} x {t} tokens ({p_len} prompt + {new} generated), {args.dtype}")
    labels = {"jax": "ours", "jax_captured": "ours, from the captured trunk", "jax_trunk": "ours, with the trunk's forward first",
              "torch": "PyTorch eager"}
    for name, (first, med) in timed.items():
        result[f"{name}_step_s"] = med
        result[f"{name}_first_call_s"] = first
        extra = f" (first call {first:.1f} s: compilation)" if name != "torch" else ""
        lines.append(f"{labels[name]}: {med:.2f} s per step, {tokens / med:,.0f} tokens/s{extra}")
    if args.full_finetune:  # model FLOPs: 6 N per token (forward + backward) plus attention
        attn = 12 * cfg.n_layers * t * cfg.n_heads * cfg.head_dim
        tflops = (6 * n_params + attn) * tokens / timed["jax"][1] / 1e12
        result["model_tflops"] = tflops
        lines.append(f"model FLOPs of the full step: {tflops:.2f} TFLOP/s")
        kind = str(info["device"])
        peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in kind), None)
        if info["backend"] == "gpu" and peak:
            result["mfu"] = tflops / peak
            lines.append(f"MFU {tflops / peak:.1%} of {peak:.0f} TFLOP/s ({kind} bf16 dense peak)")
    if first_loss:
        lines.append("first step's loss (same weights and data): " +
                     ", ".join(f"{labels[k]} {v:.6f}" for k, v in first_loss.items()))
    if torch_note is not None:
        lines.append(torch_note)
        ratio = f"ratio: n/a ({torch_note})"
    else:
        torch_s = timed["torch"][1]
        lines.append(f"PyTorch {torch.__version__} eager, the same step on the same weights, adapters and shapes")
        if args.full_finetune:
            result["ratio"] = torch_s / timed["jax"][1]
            ratio = f"ratio: {result['ratio']:.2f}x PyTorch eager (update step time, same weights, same machine)"
        else:
            result["ratio"] = torch_s / timed["jax_captured"][1]
            result["ratio_with_trunk"] = torch_s / timed["jax_trunk"][1]
            lines.append(f"with the trunk's forward (which PyTorch's step runs too): {result['ratio_with_trunk']:.2f}x PyTorch")
            ratio = (f"ratio: {result['ratio']:.2f}x PyTorch eager (update step time; ours from the captured trunk, "
                     "as the trainer runs it; same weights, same machine)")
    emit(result, args.json, lines, ratio)
    return 0
