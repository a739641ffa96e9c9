"""``spgg bench rewards``: jitted reward evaluation and exact SPNE solving.

Reports (1) rewards for a batch of games evaluated by one jitted call against a plain Python/numpy
loop over games doing the same arithmetic, in the same run (the loop runs on a subset and is
reported per game); (2) the exact solver for one game after compilation; (3) a parameter sweep
solved in one vmapped call. The ratio line comes last.
"""

from __future__ import annotations

import argparse
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reward", default="mac_spgg", help="registered reward variant (default mac_spgg)")
    p.add_argument("--agents", type=int, default=3, help="agents per game (default 3)")
    p.add_argument("--batch", type=int, default=1_000_000, help="games in the jitted reward batch (default 1e6)")
    p.add_argument("--loop-games", type=int, default=20_000, help="games run through the Python/numpy loop reference (default 20000)")
    p.add_argument("--grid", type=int, default=101, help="contribution grid for the solver (default 101)")
    p.add_argument("--sweep-points", type=int, default=1000, help="parameter points in the sweep timing (default 1000; 0 skips)")
    p.add_argument("--json", action="store_true", help="print JSON")


def numpy_loop_mac_spgg(q, p) -> "list":
    """Reference: MAC-SPGG (quadratic cost, FO, mean score) one game at a time in Python/numpy."""
    import numpy as np

    out = np.empty_like(q)
    n = q.shape[1]
    kappa, gamma, rho, pen, b, m0 = (float(p.kappa), float(p.gamma), float(p.rho), float(p.P), float(p.B), float(p.m0))
    for g in range(q.shape[0]):
        row = q[g]
        s = float(np.mean(row))
        running = 0.0
        for i in range(n):
            m = m0 if i == 0 else running / i
            out[g, i] = -0.5 * kappa * row[i] ** 2 + gamma * row[i] * m + rho / n * s - pen * (s < b)
            running += row[i]
    return out


def run(args) -> int:
    import jax
    import numpy as np

    from spgg_jax.bench.common import device_info, emit, timeit
    from spgg_jax.game.rewards import get_reward, make_params
    from spgg_jax.game.solver import solve, solve_batch
    from spgg_jax.game.sweep import stack_params

    if args.reward != "mac_spgg":
        print("note: the numpy loop reference implements mac_spgg; other rewards are timed without it")
    params = make_params(args.reward, args.agents)
    rng = np.random.default_rng(0)
    q_np = rng.uniform(float(params.c_min), float(params.c_max), size=(args.batch, args.agents)).astype(np.float32)
    q = jax.device_put(q_np)
    fn = jax.jit(get_reward(args.reward).fn)
    t0 = time.perf_counter()
    jax.block_until_ready(fn(q, params))
    compile_s = time.perf_counter() - t0
    best, _ = timeit(lambda: jax.block_until_ready(fn(q, params)), repeats=5)
    jit_rate = args.batch / best

    result = {"device": device_info(), "reward": args.reward, "agents": args.agents, "batch": args.batch,
              "jit_seconds": best, "jit_games_per_s": jit_rate, "jit_compile_s": compile_s}
    lines = [f"device: {result['device']['backend']} ({result['device']['device']})",
             f"jitted rewards: {args.batch:,} games of n={args.agents} in {best * 1e3:.1f} ms  ({jit_rate:,.0f} games/s; compile {compile_s:.2f} s)"]
    loop_rate = None
    if args.reward == "mac_spgg":
        sub = q_np[: args.loop_games]
        t0 = time.perf_counter()
        ref = numpy_loop_mac_spgg(sub, params)
        loop_s = time.perf_counter() - t0
        loop_rate = len(sub) / loop_s
        err = float(np.max(np.abs(ref - np.asarray(fn(q[: len(sub)], params)))))
        result.update(loop_games=len(sub), loop_seconds=loop_s, loop_games_per_s=loop_rate, max_abs_diff=err)
        lines.append(f"python/numpy loop: {len(sub):,} games in {loop_s:.2f} s  ({loop_rate:,.0f} games/s); max |diff| {err:.2e}")

    solve(args.reward, params, args.grid)  # compile
    best_solve, _ = timeit(lambda: jax.block_until_ready(solve(args.reward, params, args.grid)), repeats=3)
    result["solve_seconds"] = best_solve
    lines.append(f"exact SPNE, n={args.agents}, grid {args.grid}: {best_solve * 1e3:.1f} ms per game after compilation")

    if args.sweep_points > 0:
        gammas = np.linspace(0.0, 1.5, args.sweep_points)
        stacked = stack_params(params, [{"gamma": g} for g in gammas])
        methods = ["exact"] + (["markov"] if get_reward(args.reward).per_agent is not None else [])
        for method in methods:
            t0 = time.perf_counter()
            jax.block_until_ready(solve_batch(args.reward, stacked, args.grid, method))
            sweep_first = time.perf_counter() - t0
            t0 = time.perf_counter()
            jax.block_until_ready(solve_batch(args.reward, stacked, args.grid, method))
            sweep_s = time.perf_counter() - t0
            result[f"sweep_{method}_seconds"] = sweep_s
            result[f"sweep_{method}_seconds_with_compile"] = sweep_first
            what = "all histories" if method == "exact" else "running-sum lattice, exact on the grid"
            lines.append(f"sweep: {args.sweep_points} SPNE solves (grid {args.grid}, {method}: {what}) in one vmapped call: "
                         f"{sweep_s:.2f} s ({sweep_first:.2f} s incl. compile)")
        result["sweep_points"] = args.sweep_points

    ratio = f"ratio: jitted rewards are {jit_rate / loop_rate:,.0f}x the Python/numpy loop" if loop_rate else "ratio: n/a (no loop reference for this reward)"
    result["ratio"] = jit_rate / loop_rate if loop_rate else None
    emit(result, args.json, lines, ratio)
    return 0
