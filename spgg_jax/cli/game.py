"""``spgg game``: solve and sweep the public-goods games (no LLMs involved)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

PARAM_HELP = (
    "override a game parameter, repeatable: key=value (e.g. gamma=0.5, B=0.7, observation=po, "
    "cost=power, score=last, weights=0.2,0.3,0.5). Shared: c_min c_max kappa cost_power cost_alpha B m0 "
    "weights observation cost score; each variant's own parameters: `spgg game list`; see docs/game.md"
)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reward", default="mac_spgg", help="registered reward variant (see `spgg game list`); default mac_spgg")
    p.add_argument("--agents", "-n", type=int, default=3, help="number of agents n >= 2 (default 3)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help=PARAM_HELP)
    p.add_argument("--grid", type=int, default=101, help="contribution grid points from c_min to c_max (default 101)")
    p.add_argument(
        "--method", default="auto", choices=["auto", "exact", "markov", "nash"],
        help="solver: exact backward induction over all histories (n <= 4), markov (state = running sum "
        "and last contribution; scales to large n), nash (simultaneous games); auto picks (default)",
    )
    p.add_argument("--tol", type=float, default=1e-6, help="best response must beat the runner-up by more than this to count as unique (default 1e-6)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "game", help="solve and sweep the public-goods games (equilibria, welfare)",
        description="The public-goods games alone, no LLMs: list the reward variants, solve one game exactly, "
        "sweep parameters (CSV + PNG), or train small game-level learners against the equilibrium.",
    )
    gsub = p.add_subparsers(dest="game_command", metavar="ACTION")
    gsub.required = True

    lp = gsub.add_parser("list", help="list registered reward variants (with their own parameters), costs and final scores")
    lp.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    lp.set_defaults(func=cmd_list)

    sp = gsub.add_parser("solve", help="print the equilibrium of one game", description="Solve one game exactly on a contribution grid and print the equilibrium path, rewards, welfare, final score, threshold, free riders and uniqueness.")
    _common(sp)
    sp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sp.set_defaults(func=cmd_solve)

    wp = gsub.add_parser(
        "sweep",
        help="sweep parameters in one vmapped call; write CSV and PNG plots",
        description="Without --sweep: the default analysis (one-at-a-time sweeps of gamma, rho, P, B, kappa; "
        "maps over (gamma, rho) and (P, B); n = 2, 3, 4). With --sweep: the Cartesian product of the given axes.",
    )
    _common(wp)
    wp.add_argument("--sweep", action="append", default=[], metavar="NAME=SPEC",
                    help="an axis: name=start:stop:count or name=v1,v2,... (repeat for a grid; n is allowed)")
    wp.add_argument("--out", required=True, help="output directory for sweep.csv, summary.json and PNG plots")
    wp.add_argument("--chunk", type=int, default=64, help="games vmapped together per step (memory bound; default 64)")
    wp.add_argument("--json", action="store_true", help="print summary.json (fractions, files) instead of text")
    wp.set_defaults(func=cmd_sweep)

    lnp = gsub.add_parser(
        "learn",
        help="train policy-gradient learners over seeds (x a parameter sweep) in one vmapped call; CSV + PNG",
        description="n small policies (one per position) learn contributions by REINFORCE/PPO in the game; "
        "every (seed, parameter point) run is trained in ONE jitted vmapped call. Writes learning.csv, "
        "final.csv (last 10% of steps vs the exact equilibrium), summary.json and learning_curves.png.",
    )
    _common(lnp)
    lnp.add_argument("--seeds", type=int, default=4, help="seeds per parameter point (default 4)")
    lnp.add_argument("--sweep", action="append", default=[], metavar="NAME=SPEC",
                     help="parameter axis name=start:stop:count or name=v1,v2,... (repeatable: Cartesian product; not n)")
    lnp.add_argument("--steps", type=int, default=500, help="training steps (default 500)")
    lnp.add_argument("--batch", type=int, default=128, help="episodes per step (default 128)")
    lnp.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 3e-3)")
    lnp.add_argument("--algorithm", default="ppo", choices=["ppo", "reinforce"], help="default ppo")
    lnp.add_argument("--actions", default="beta", choices=["beta", "grid"],
                     help="beta: continuous Beta policy; grid: categorical over --grid contributions (default beta)")
    lnp.add_argument("--hidden", default="32", help="hidden layer widths, comma-separated (default 32)")
    lnp.add_argument("--entropy-coef", type=float, default=0.0, help="entropy bonus (default 0)")
    lnp.add_argument("--max-concentration", type=float, default=100.0, help="Beta concentration cap (exploration floor; default 100)")
    lnp.add_argument("--log-every", type=int, default=10, help="steps between rows of learning.csv (default 10)")
    lnp.add_argument("--out", required=True, help="output directory")
    lnp.add_argument("--json", action="store_true",
                     help="print summary.json (config, learned vs equilibrium per run, files) instead of text")
    lnp.set_defaults(func=cmd_learn)


def _check_args(args) -> None:
    """One-line errors naming the bad value, before anything is built (never a traceback)."""
    import math

    from spgg_jax.game.solver import check_tol

    if args.agents < 2:
        raise ValueError(f"--agents must be >= 2 (the games need at least two players), got {args.agents}")
    if args.grid < 2:
        raise ValueError(f"--grid must be >= 2 contribution points, got {args.grid}")
    try:
        check_tol(args.tol)
    except ValueError:
        raise ValueError(f"--tol must be a finite number >= 0, got {args.tol!r}") from None
    positive_ints = ["chunk", "seeds", "steps", "batch", "log_every"]
    for name in positive_ints:
        v = getattr(args, name, None)
        if v is not None and v < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    for name in ("lr", "max_concentration"):
        v = getattr(args, name, None)
        if v is not None and not (math.isfinite(v) and v > 0):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number > 0, got {v!r}")
    v = getattr(args, "entropy_coef", None)
    if v is not None and not (math.isfinite(v) and v >= 0):
        raise ValueError(f"--entropy-coef must be a finite number >= 0, got {v!r}")
    hidden = getattr(args, "hidden", None)
    if hidden is not None:
        parts = hidden.split(",")
        if not all(p.strip().isdigit() and int(p) > 0 for p in parts):
            raise ValueError(f"--hidden must be comma-separated positive integers, got {hidden!r}")


def _params(args):
    from spgg_jax.game.params import parse_overrides
    from spgg_jax.game.rewards import get_reward, make_params

    _check_args(args)
    over = parse_overrides(args.param, get_reward(args.reward).params.names(), args.reward)
    n = int(over.pop("n", args.agents))
    return make_params(args.reward, n, **over)


def _progress(args, line: str) -> None:
    """A progress line: on stdout, or on stderr when stdout is --json."""
    print(line, file=sys.stderr if getattr(args, "json", False) else sys.stdout)


def cmd_list(args) -> int:
    from spgg_jax.game.costs import COSTS
    from spgg_jax.game.params import GameParams, shared_ranges
    from spgg_jax.game.rewards import REWARDS
    from spgg_jax.game.scores import SCORES

    shared = {k: v for k, v in GameParams.create().to_dict().items() if k not in ("n", "reward", "weights")}
    variants = []
    for name in REWARDS:
        spec = REWARDS.get(name)
        flags = [spec.timing] + (["smooth"] if spec.smooth else []) + (["per-agent/scalable"] if spec.per_agent else [])
        variants.append({"name": name, "timing": spec.timing, "smooth": spec.smooth,
                         "per_agent": spec.per_agent is not None, "threshold": spec.has_threshold, "flags": flags,
                         "own_cost": spec.own_cost_name, "doc": spec.doc, "params": spec.params.describe()})
    if args.json:
        print(json.dumps({"rewards": variants, "shared_params": shared, "shared_ranges": shared_ranges(),
                          "costs": COSTS.names(), "scores": SCORES.names()}, indent=2, default=str))
        return 0
    print("reward variants (own parameters: default, range):")
    for v in variants:
        print(f"  {v['name']:18s} [{', '.join(v['flags'])}] {v['doc'].splitlines()[0] if v['doc'] else ''}")
        for p in v["params"]:
            rng = f" ({p['range']})" if p["range"] else ""
            print(f"      {p['name']} = {p['default']:g}{rng}  {p['doc']}")
    ranges = shared_ranges()
    print("shared parameters (default, range):", ", ".join(
        (f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}") + (f" ({ranges[k]})" if k in ranges else "")
        for k, v in shared.items()))
    print("costs:  ", ", ".join(COSTS.names()))
    print("scores: ", ", ".join(SCORES.names()))
    return 0


#: Scalar game parameters shown by ``game solve`` when the reward depends on them (c_min, c_max always).
def params_in_use(reward: str, params, samples: int = 32) -> list[str]:
    """The numeric parameters (shared and the variant's own) that change ``reward``'s payoffs, probed
    on random profiles, so a variant's report leaves out what it does not use (pgg has no threshold B)."""
    import numpy as np

    from spgg_jax.game.rewards import rewards

    lo, hi = float(params.c_min), float(params.c_max)
    q = np.random.default_rng(0).uniform(lo, hi, (samples, params.n))
    q[0], q[1] = lo, hi  # the corners too
    base = np.asarray(rewards(reward, q, params))
    used = []
    for name in params.param_names():
        if name in ("c_min", "c_max") or np.ndim(getattr(params, name)) != 0:  # weights: a vector
            continue
        v = float(getattr(params, name))
        moved = params.replace(**{name: v * 1.37 + 0.11})
        if not np.allclose(np.asarray(rewards(reward, q, moved)), base, rtol=1e-6, atol=1e-7):
            used.append(name)
    return used


def cmd_solve(args) -> int:
    import jax

    from spgg_jax.game.rewards import get_reward
    from spgg_jax.game.solver import choose_method, solve
    from spgg_jax.tidy import tidy

    params = _params(args)
    spec = get_reward(args.reward)
    method = choose_method(spec, params, args.grid, args.method)
    t0 = time.perf_counter()
    eq = jax.device_get(solve(args.reward, params, args.grid, method, args.tol))
    elapsed = time.perf_counter() - t0
    out = tidy({
        "reward": args.reward,
        "method": method,
        "grid": args.grid,
        "params": params.to_dict(),
        "params_in_use": params_in_use(args.reward, params),
        "q": eq.q,
        "rewards": eq.rewards,
        "welfare": eq.welfare,
        "final_score": eq.final_score,
        "threshold_met": bool(eq.threshold_met) if spec.has_threshold else None,
        "free_riders": eq.free_riders,
        "unique": bool(eq.unique),
        "path_unique": bool(eq.path_unique),
        "n_ties": int(eq.n_ties),
        "min_margin": eq.min_margin,
        "path_margins": eq.path_margins,
        "seconds": elapsed,
    })
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    p = params
    print(f"{args.reward}  n={p.n}  observation={p.observation}  cost={p.cost}  score={p.score}  grid={args.grid}  method={method}")
    print(f"params: c=[{float(p.c_min):g}, {float(p.c_max):g}] "
          + " ".join(f"{k}={float(getattr(p, k)):g}" for k in out["params_in_use"]))
    print(f"{'agent':>5} {'q_i':>8} {'R_i':>9} {'margin':>10}  free-rider")
    for i in range(p.n):
        print(f"{i + 1:>5} {out['q'][i]:8.4f} {out['rewards'][i]:9.4f} {out['path_margins'][i]:10.3g}  {'yes' if out['free_riders'][i] else 'no'}")
    score = f"final score S = {out['final_score']:.4f}"
    if spec.has_threshold:
        score += f"   threshold S >= B: {'met' if out['threshold_met'] else 'NOT met'}"
    print(score)
    print(f"welfare W = {out['welfare']:.4f}")
    uniq = "unique" if out["unique"] else (
        f"NOT unique ({out['n_ties']} tied decision nodes; the equilibrium path itself is "
        f"{'strict' if out['path_unique'] else 'also tied'})")
    print(f"equilibrium: {uniq}; smallest best-vs-runner-up margin over all decision nodes {out['min_margin']:.3g} (tol {args.tol:g})")
    return 0


def cmd_sweep(args) -> int:
    from spgg_jax.errors import check_writable_dir
    from spgg_jax.game import report, sweep

    check_writable_dir(args.out, "--out")  # a file, too long a name, read-only: before the solve
    base = _params(args)
    t0 = time.perf_counter()
    if args.sweep:
        axes = dict(sweep.parse_axis(s, args.reward) for s in args.sweep)
        points = sweep.cartesian(axes)
        _progress(args, f"sweeping {len(points)} games ({' x '.join(f'{k}[{len(v)}]' for k, v in axes.items())}), grid {args.grid}")
        rows = sweep.solve_points(args.reward, base, points, args.grid, args.method, args.chunk)
        names = list(axes)
        if len(names) == 1:
            groups = {f"1d_{names[0]}": rows}
        elif len(names) == 2:
            groups = {f"map_{names[0]}_{names[1]}": rows}
        else:
            groups = {"grid": rows}
        for r in rows:
            r["analysis"] = next(iter(groups))
    else:
        _progress(args, f"default analysis of {args.reward} around the base parameters (grid {args.grid}); this takes a few minutes on 2 CPU cores")
        groups = sweep.run_preset(args.reward, base, args.grid, args.method)
    elapsed = time.perf_counter() - t0
    files = report.write_report(
        groups, Path(args.out), {"reward": args.reward, "grid": args.grid, "base": base.to_dict(), "seconds": elapsed}
    )
    if args.json:
        print(Path(files["summary"]).read_text().rstrip())
        return 0
    rows = sweep.flatten(groups)
    good = sum(r["good"] for r in rows)
    print(f"solved {len(rows)} games in {elapsed:.1f} s")
    print(f"unique: {sum(r['unique'] for r in rows)}/{len(rows)}  threshold met: {sum(r['threshold_met'] for r in rows)}/{len(rows)}  "
          f"someone at c_min: {sum(r['any_free_rider'] for r in rows)}/{len(rows)}  unique & all > c_min & S >= B: {good}/{len(rows)}")
    for k, v in files.items():
        print(f"  {k:9s} {v}")
    return 0


def cmd_learn(args) -> int:
    from spgg_jax.errors import check_writable_dir
    from spgg_jax.game import get_reward, sweep
    from spgg_jax.rl.game_learners import GameRLConfig
    from spgg_jax.rl.game_report import write_learning_report
    from spgg_jax.rl.game_sweep import learn_points

    check_writable_dir(args.out, "--out")  # before the training runs
    base = _params(args)
    axes = dict(sweep.parse_axis(a, args.reward) for a in args.sweep)
    if "n" in axes:
        raise ValueError("n cannot be swept (it changes shapes); run once per --agents")
    cfg = GameRLConfig(reward=args.reward, n=base.n, steps=args.steps, batch=args.batch, lr=args.lr,
                       algorithm=args.algorithm, actions=args.actions, grid_size=args.grid,
                       hidden=tuple(int(h) for h in args.hidden.split(",")), entropy_coef=args.entropy_coef,
                       max_concentration=args.max_concentration)
    points = sweep.cartesian(axes) if axes else [{}]
    _progress(args, f"training {len(points) * args.seeds} runs ({len(points)} parameter points x {args.seeds} "
              f"seeds) of {args.reward} n={base.n}, {args.steps} steps x {args.batch} episodes, {args.algorithm}/{args.actions}")
    eq_rows = sweep.solve_points(args.reward, base, points, args.grid, args.method)  # fail fast, before training
    t0 = time.perf_counter()
    runs, metrics = learn_points(cfg, base, points, range(args.seeds))
    elapsed = time.perf_counter() - t0
    spne_rows = [eq_rows[j // args.seeds] for j in range(len(runs))]
    files = write_learning_report(args.out, cfg, runs, metrics, spne_rows, list(axes), args.log_every,
                                  {"reward": args.reward, "base": base.to_dict(), "grid": args.grid, "seconds": elapsed})
    if args.json:
        print(Path(files["summary"]).read_text().rstrip())
        return 0
    print(f"trained in {elapsed:.1f} s (one jitted vmapped call, compile included)")
    k = max(1, args.steps // 10)
    has_threshold = get_reward(args.reward).has_threshold
    for p_i, point in enumerate(points):
        idx = slice(p_i * args.seeds, (p_i + 1) * args.seeds)
        q = metrics["q_mean"][idx, -k:].mean((0, 1))
        label = ", ".join(f"{a}={v:g}" for a, v in point.items()) or "base"
        thr = f"  threshold rate {metrics['threshold_rate'][idx, -k:].mean():.2f}" if has_threshold else ""
        print(f"  {label}: learned q = {[round(float(x), 3) for x in q]}  equilibrium q = "
              f"{[round(x, 3) for x in eq_rows[p_i]['q']]}{thr}  free-ride rate {metrics['free_ride_rate'][idx, -k:].mean():.2f}")
    for name, path in files.items():
        print(f"  {name:9s} {path}")
    return 0
