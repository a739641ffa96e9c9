"""``spgg bench iteration``: one training iteration of a real config, phase by phase.

    spgg bench iteration --config experiments/demo.json
    spgg bench iteration --config experiments/demo.json batch=32 --steps 3 --compare-torch

Runs the trainer itself (``TrainConfig`` from ``--config`` plus ``KEY=VALUE`` overrides, in a
temporary run directory, no evaluation) for ``--steps`` iterations and reports the last one split
into its phases: prefill (the prompts through the model once: KV cache and the policy's features),
policy (choosing generation parameters), decode, rollout host work (prompts, tokenizing, texts),
scoring, update; with tokens/s for prefill and decode and the compilation of the first iteration.
With ``--compare-torch`` the same phases run in PyTorch on the same weights and the same padded
prompts of each turn: the prefill as one ``model(...)`` forward, the decode as transformers
``generate`` (greedy, as many new tokens as the turn's longest row) minus that forward; the ratio
lines compare prefill tokens/s and decode milliseconds per step.
"""

from __future__ import annotations

import argparse
import tempfile
import time

PHASES = ("rollout_prefill", "policy", "rollout_decode", "rollout_host", "score", "update")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="experiments/demo.json",
                   help="training config JSON (default experiments/demo.json)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, as for spgg train")
    p.add_argument("--steps", type=int, default=2,
                   help="iterations to run; the last is reported, the first includes compilation (default 2)")
    p.add_argument("--compare-torch", action="store_true",
                   help="time the same prefill and decode in PyTorch transformers (same weights and prompts)")
    p.add_argument("--json", action="store_true", help="print JSON")


def _torch_reference(bundle, turns, dtype: str) -> dict[str, float]:
    """PyTorch prefill and decode on each turn's prompts: totals over the turns."""
    import numpy as np
    import torch

    from spgg_jax.bench.forward import _torch_from_params
    from spgg_jax.models.weights.hf import hf_state_dict_from_params

    model = _torch_from_params(bundle.cfg, hf_state_dict_from_params(bundle.cfg, bundle.params), getattr(torch, dtype))
    pad = int(bundle.sampler.pad_id)
    prefill_s = decode_s = 0.0
    steps = 0
    for t in turns:
        ids = torch.as_tensor(np.asarray(t.prompt_ids), dtype=torch.long)
        attn = torch.as_tensor(np.asarray(t.prompt_mask), dtype=torch.long)
        new = int(np.max(t.lengths))
        with torch.no_grad():
            model(input_ids=ids[:, :16], attention_mask=attn[:, :16])  # warm-up
            t0 = time.perf_counter()
            model(input_ids=ids, attention_mask=attn, logits_to_keep=1)
            pf = time.perf_counter() - t0
            t0 = time.perf_counter()
            model.generate(ids, attention_mask=attn, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                           eos_token_id=None, pad_token_id=pad)
            gen = time.perf_counter() - t0
        prefill_s += pf
        decode_s += max(gen - pf, 1e-9)
        steps += max(new - 1, 1)
    return {"prefill_s": prefill_s, "decode_s": decode_s, "decode_steps": steps}


def run(args) -> int:
    import numpy as np

    from spgg_jax.bench.common import device_info, emit
    from spgg_jax.train import Trainer, load_config
    from spgg_jax.train.timing import compile_seconds

    if args.steps < 2:
        raise ValueError(f"--steps must be >= 2 (the first iteration compiles), got {args.steps}")
    info = device_info()
    with tempfile.TemporaryDirectory() as d:
        cfg = load_config(args.config, list(args.overrides) + [f"run_dir={d}/run", f"steps={args.steps}",
                                                              "eval_size=0", "progress=false"])
        tr = Trainer(cfg, log=lambda *a: None)
        c0 = compile_seconds()
        rows = [tr.train_step(step) for step in range(args.steps)]
        compile_total = compile_seconds() - c0
        batch = tr.last_batch
        tr.ckpt.close()
    last, first = rows[-1], rows[0]
    turns = batch.turns
    prompt_tokens = batch.prompt_tokens
    padded = sum(int(np.prod(np.shape(t.prompt_ids))) for t in turns)  # rows x the encoder's width
    new_tokens = int(np.sum(batch.tokens_generated))
    decode_steps = int(sum(int(np.max(t.lengths)) for t in turns))
    result = {
        "device": info, "config": args.config, "overrides": list(args.overrides), "batch": cfg.batch,
        "agents": cfg.team.n, "turns": len(turns), "steps": args.steps,
        "phases_s": {k: last[f"time/{k}"] for k in PHASES}, "step_s": last["time/step"],
        "compile_s_first_step": first["time/compile"], "compile_s_total": compile_total,
        "compile_s_last_step": last["time/compile"], "first_step_s": first["time/step"],
        "prompt_tokens": prompt_tokens, "new_tokens": new_tokens, "decode_steps": decode_steps,
        "prefill_tokens_per_s": last["tokens_per_s/prefill"], "decode_tokens_per_s": last["tokens_per_s/decode"],
        "decode_ms_per_step": last["time/rollout_decode"] / max(decode_steps, 1) * 1e3,
        "prompt_rows_x_len": [list(np.shape(t.prompt_ids)) for t in turns],
    }
    tot = last["time/step"]
    split = ", ".join(f"{k} {last[f'time/{k}']:.2f} s ({last[f'time/{k}'] / tot:.0%})" for k in PHASES)
    lines = [
        f"device: {info['backend']} ({info['device']})",
        f"iteration of {args.config} {' '.join(args.overrides)}: {cfg.batch} problems x {len(turns)} turns, "
        f"prompts {' / '.join('x'.join(map(str, s)) for s in result['prompt_rows_x_len'])} (rows x tokens, before bucketing)",
        f"last iteration {tot:.2f} s: {split}",
        f"prefill {prompt_tokens} prompt tokens ({padded} with padding): {result['prefill_tokens_per_s']:.0f} tokens/s; "
        f"decode {new_tokens} new tokens in {decode_steps} steps: {result['decode_tokens_per_s']:.1f} tokens/s, "
        f"{result['decode_ms_per_step']:.0f} ms/step",
        f"first iteration {first['time/step']:.1f} s, of which compilation {first['time/compile']:.1f} s; "
        f"compilation in the last iteration {last['time/compile']:.1f} s",
    ]
    ratio = "ratio: n/a (run with --compare-torch)"
    if args.compare_torch:
        import torch

        models = {t.model for t in turns}
        ref = {"prefill_s": 0.0, "decode_s": 0.0, "decode_steps": 0}
        for name in sorted(models):
            part = _torch_reference(tr.setup.bundles[name], [t for t in turns if t.model == name], cfg.dtype)
            ref = {k: ref[k] + part[k] for k in ref}
        t_pf = ref["prefill_s"]
        t_dec_ms = ref["decode_s"] / max(ref["decode_steps"], 1) * 1e3
        r_pf = t_pf / max(last["time/rollout_prefill"], 1e-9)
        r_dec = t_dec_ms / max(result["decode_ms_per_step"], 1e-9)
        result.update(torch_prefill_s=t_pf, torch_decode_ms_per_step=t_dec_ms, prefill_ratio=r_pf, decode_ratio=r_dec,
                      ratio=r_pf)
        lines.append(f"PyTorch {torch.__version__} eager, same weights and padded prompts: prefill {t_pf:.2f} s "
                     f"({prompt_tokens / t_pf:.0f} tokens/s), decode {t_dec_ms:.0f} ms/step (transformers generate)")
        lines.append(f"decode ratio: {r_dec:.2f}x transformers (ms per step, same batch and prompts)")
        ratio = f"ratio: prefill {r_pf:.2f}x PyTorch forward (tokens/s, same weights, same machine)"
    emit(result, args.json, lines, ratio)
    return 0
