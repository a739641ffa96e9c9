"""``spgg bench sweep``: many learning runs in one jitted, vmapped call vs a loop of jitted runs.

R = seeds x reward-parameter values training runs of the policy-gradient learners
(:mod:`spgg_jax.rl.game_learners`). The vectorised side is ``jax.jit(jax.vmap(train))`` over all R runs in
one call; the reference is a Python loop calling ``jax.jit(train)`` once per run (the same runs,
same keys and parameters). Compilation is excluded from both timings and reported separately. The
ratio line comes last.
"""

from __future__ import annotations

import argparse
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reward", default="mac_spgg", help="registered reward variant (default mac_spgg)")
    p.add_argument("--agents", type=int, default=3, help="agents per game (default 3)")
    p.add_argument("--runs", type=int, default=64, help="training runs R = seeds x parameter values (default 64)")
    p.add_argument("--param-name", default="gamma", help="reward parameter varied across runs (default gamma)")
    p.add_argument("--param-values", default="0.3,0.5,0.7,0.9",
                   help="comma-separated values of --param-name; R must be a multiple of their count (default 0.3,0.5,0.7,0.9)")
    p.add_argument("--steps", type=int, default=200, help="training steps per run (default 200)")
    p.add_argument("--batch", type=int, default=64, help="episodes per step (default 64)")
    p.add_argument("--algorithm", default="ppo", choices=["ppo", "reinforce"], help="default ppo")
    p.add_argument("--actions", default="beta", choices=["beta", "grid"], help="default beta")
    p.add_argument("--hidden", type=int, default=16, help="hidden width of the one-layer agent MLPs (default 16)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of the vmapped call (best is reported; default 3)")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    import jax
    import numpy as np

    from spgg_jax.bench.common import device_info, emit, timeit
    from spgg_jax.game.rewards import make_params
    from spgg_jax.game.sweep import stack_params
    from spgg_jax.rl.game_learners import GameRLConfig, make_train, seed_keys

    values = [float(v) for v in args.param_values.split(",") if v.strip()]
    if args.runs < 1 or not values or args.runs % len(values):
        raise SystemExit(f"--runs ({args.runs}) must be a positive multiple of the number of --param-values ({len(values)})")
    n_seeds = args.runs // len(values)
    cfg = GameRLConfig(reward=args.reward, n=args.agents, steps=args.steps, batch=args.batch,
                       algorithm=args.algorithm, actions=args.actions, hidden=(args.hidden,))
    base = make_params(args.reward, args.agents)
    points = [{args.param_name: v} for v in values for _ in range(n_seeds)]
    stacked = stack_params(base, points)
    keys = seed_keys([s for _ in values for s in range(n_seeds)])
    train = make_train(cfg)

    vmapped = jax.jit(jax.vmap(train))
    t0 = time.perf_counter()
    vm_compiled = vmapped.lower(keys, stacked).compile()
    vm_compile_s = time.perf_counter() - t0
    out_v = {}

    def call_vmapped():
        out_v["m"] = jax.block_until_ready(vm_compiled(keys, stacked))[1]

    vm_s, _ = timeit(call_vmapped, repeats=args.repeats, warmup=1)

    single = jax.jit(train)
    run_params = [jax.tree.map(lambda x, j=j: x[j], stacked) for j in range(args.runs)]
    t0 = time.perf_counter()
    single_compiled = single.lower(keys[0], run_params[0]).compile()
    loop_compile_s = time.perf_counter() - t0
    jax.block_until_ready(single_compiled(keys[0], run_params[0]))  # warm-up
    t0 = time.perf_counter()
    finals = []
    for j in range(args.runs):
        _, m = single_compiled(keys[j], run_params[j])
        finals.append(jax.block_until_ready(m["q_mean"][-1]))
    loop_s = time.perf_counter() - t0
    # Same keys and params, so the runs agree up to float32 reduction order (batched vs single
    # matmuls); over hundreds of steps a few sampled actions flip and single runs drift apart.
    absdiff = np.abs(np.asarray(out_v["m"]["q_mean"][:, -1]) - np.stack([np.asarray(f) for f in finals]))
    diff, diff_median = float(np.max(absdiff)), float(np.median(absdiff))

    episodes = args.runs * args.steps * args.batch
    result = {
        "device": device_info(), "reward": args.reward, "agents": args.agents, "runs": args.runs,
        "seeds": n_seeds, "param": args.param_name, "values": values, "steps": args.steps, "batch": args.batch,
        "algorithm": args.algorithm, "actions": args.actions,
        "vmapped_seconds": vm_s, "vmapped_compile_s": vm_compile_s,
        "loop_seconds": loop_s, "loop_compile_s": loop_compile_s,
        "vmapped_episodes_per_s": episodes / vm_s, "loop_episodes_per_s": episodes / loop_s,
        "max_abs_diff_final_q": diff, "median_abs_diff_final_q": diff_median, "speedup": loop_s / vm_s,
    }
    lines = [
        f"device: {result['device']['backend']} ({result['device']['device']})",
        f"{args.runs} runs = {n_seeds} seeds x {args.param_name} in {values}; {args.reward} n={args.agents}, "
        f"{args.steps} steps x {args.batch} episodes, {args.algorithm}/{args.actions}",
        f"one vmapped call: {vm_s:.2f} s ({episodes / vm_s:,.0f} episodes/s; compile {vm_compile_s:.1f} s)",
        f"python loop of jitted runs: {loop_s:.2f} s ({episodes / loop_s:,.0f} episodes/s; compile {loop_compile_s:.1f} s)",
        f"|final q_mean(vmapped) - q_mean(loop)| over runs and positions: median {diff_median:.1e}, max {diff:.1e}",
    ]
    emit(result, args.json, lines, f"ratio: one vmapped call is {loop_s / vm_s:.1f}x the loop of jitted runs")
    return 0
