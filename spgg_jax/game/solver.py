"""Exact equilibria of the public-goods games on a contribution grid, in JAX.

Three solvers, all jitted and ``vmap``-able over stacked ``GameParams`` (a sweep is one call):

- :func:`solve_exact`: subgame-perfect equilibrium (SPNE) by backward induction over *every*
  history (q_1..q_{i-1}) of grid indices, for any registered reward. Cost ~ G^n reward
  evaluations, so it is meant for n <= 4 (G^n must fit in int32).
- :func:`solve_markov`: SPNE for per-agent rewards (``register_per_agent_reward``) whose dependence
  on the history goes through the state (running sum of contributions, last contribution). On a
  grid the running sum lives on an integer lattice, so the state space is finite and the solution
  is exact, not an approximation; cost ~ n * (n G) * G (* G under PO). Scales to n = 16 and beyond.
- :func:`solve_nash`: pure-strategy Nash equilibria of the simultaneous game by enumerating every
  profile (G^n), for simultaneous variants such as the classic PGG.

Uniqueness is checked, not assumed: at every decision node (on and off the equilibrium path) the
mover's best response must beat its runner-up by more than ``tol``; nodes that fail are counted in
``n_ties`` and reported rather than broken silently (ties are broken towards the lower index only
to produce *a* path).

``path_unique`` says the equilibrium *path* is the same under every tie-break (every selection of
best responses within ``tol`` at every node, on and off the path). Backward induction carries, for
every node, bounds on what any such selection can lead to: the exact solver the [min, max] of each
player's reward, the scalable solver the [min, max] of the final (running-sum, last) state. A mover
may pick an action when its upper bound reaches the best lower bound minus ``tol``; ``path_unique``
holds when at every on-path node the selected action's lower bound beats every alternative's upper
bound by more than ``tol``. This is sufficient (``path_unique`` implies a single SPNE path) and
exact for two movers (the exact solver); with more movers the bounds can be loose, so a game with a
single SPNE path may still be reported ``False``. ``unique`` implies ``path_unique``.
"""

from __future__ import annotations

import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from spgg_jax.game.params import GameParams
from spgg_jax.game.rewards import THRESHOLD_TOL, RewardSpec, check_params, get_reward
from spgg_jax.game.scores import final_score

DEFAULT_TOL = 1e-6
EXACT_MAX_PROFILES = 2**31 - 1


@struct.dataclass
class Equilibrium:
    """An equilibrium outcome. With a leading batch axis when solved for stacked params."""

    q: jax.Array  # f32[n] contributions on the equilibrium path
    index: jax.Array  # i32[n] their grid indices
    rewards: jax.Array  # f32[n] per-agent rewards
    welfare: jax.Array  # f32[] sum of rewards
    final_score: jax.Array  # f32[] S(q)
    threshold_met: jax.Array  # bool[] S >= B
    free_riders: jax.Array  # bool[n] q_i == c_min
    unique: jax.Array  # bool[] every decision node strict (Nash: exactly one strict NE)
    # bool[] the equilibrium PATH is the same under every tie-break (any best response within tol
    # at any node, on or off the path): at each on-path decision the selected action's worst case
    # beats every alternative's best case by more than tol (module doc; a sufficient condition,
    # exact for two movers). Nash: exactly one pure equilibrium (within tol).
    path_unique: jax.Array
    min_margin: jax.Array  # f32[] smallest best-minus-runner-up gap over all decision nodes
    n_ties: jax.Array  # i32[] decision nodes whose gap is <= tol (Nash: extra or weak equilibria)
    path_margins: jax.Array  # f32[n] the gap at each on-path decision (given the solver's tie-break)
    # f32[n] the gap at each on-path decision against every tie-break: the selected action's lower
    # bound minus the best upper bound of the alternatives (<= path_margins; -inf when unbounded)
    path_robust_margins: jax.Array

    @property
    def any_free_rider(self):
        return jnp.any(self.free_riders, axis=-1)


def contribution_grid(params: GameParams, grid_size: int) -> jax.Array:
    """G evenly spaced contribution levels from c_min to c_max (both included)."""
    t = jnp.linspace(0.0, 1.0, grid_size, dtype=jnp.float32)
    return params.c_min + (params.c_max - params.c_min) * t


def _top2_margin(payoff: jax.Array) -> tuple[jax.Array, jax.Array]:
    """argmax over the last axis and the gap between the best and the second best value."""
    best = jnp.argmax(payoff, axis=-1)
    top2 = jax.lax.top_k(payoff, 2)[0]
    return best.astype(jnp.int32), top2[..., 0] - top2[..., 1]


def _robust_pick(lo, hi, best, tol):
    """Bounds over every tie-break at one node (last axis = the mover's actions).

    ``lo``/``hi`` bound the mover's payoff of each action over every selection below. Returns the
    actions some selection can make the mover pick (``hi`` reaches the best ``lo`` minus ``tol``)
    and the robust margin of ``best``: its ``lo`` minus the largest ``hi`` of the other actions.
    """
    possible = hi >= jnp.max(lo, axis=-1, keepdims=True) - tol
    g = lo.shape[-1]
    is_best = jnp.arange(g, dtype=jnp.int32) == best[..., None]
    rival = jnp.max(jnp.where(is_best, -jnp.inf, hi), axis=-1)
    mine = jnp.take_along_axis(lo, best[..., None], axis=-1)[..., 0]
    robust = mine - rival
    return possible, jnp.where(jnp.isnan(robust), -jnp.inf, robust)


def _summarise(spec: RewardSpec, params: GameParams, grid, index, margins_all, path_margins, path_robust, tol,
               n_ties=None, path_unique=None):
    q = grid[index]
    r = spec.fn(q, params)
    s = final_score(q, params)
    if n_ties is None:
        n_ties = jnp.sum(margins_all <= tol).astype(jnp.int32)
    return Equilibrium(
        q=q,
        index=index,
        rewards=r,
        welfare=jnp.sum(r),
        final_score=s,
        threshold_met=s >= params.B - THRESHOLD_TOL,
        path_unique=jnp.all(path_robust > tol) if path_unique is None else path_unique,
        free_riders=index == 0,
        unique=n_ties == 0,
        min_margin=jnp.min(margins_all),
        n_ties=n_ties,
        path_margins=path_margins,
        path_robust_margins=path_robust,
    )


# ------------------------------------------------------------------------------------------------
# Exact backward induction over all histories
# ------------------------------------------------------------------------------------------------


def _digits(h, count: int, base: int):
    """Base-``base`` digits (most significant first) of flat history indices ``h``."""
    if count == 0:
        return jnp.zeros(h.shape + (0,), jnp.int32)
    powers = base ** np.arange(count - 1, -1, -1, dtype=np.int64)
    return ((h[..., None] // jnp.asarray(powers, jnp.int32)) % base).astype(jnp.int32)


def solve_exact(
    reward: str | RewardSpec,
    params: GameParams,
    grid_size: int = 101,
    tol: float = DEFAULT_TOL,
    batch_size: int = 1024,
) -> Equilibrium:
    """SPNE by backward induction over every history of grid indices (any registered reward)."""
    spec = get_reward(reward) if isinstance(reward, str) else reward
    n, g = params.n, grid_size
    if g ** n > EXACT_MAX_PROFILES:
        raise ValueError(
            f"exact solver: grid_size**n = {g}**{n} profiles exceed int32; use a smaller grid or "
            "method='markov' (for per-agent rewards)"
        )
    grid = contribution_grid(params, g)
    actions = jnp.arange(g, dtype=jnp.int32)
    cont = jnp.zeros((g**n, 0), jnp.int32)  # continuation actions after the last agent: none
    # [min, max] of every player's reward over every tie-break in the subgame after each history
    lo_c = hi_c = None  # (the last mover's children are terminal: their rewards are exact)
    margins = [None] * n
    robust = [None] * n
    for i in range(n, 0, -1):  # agent i (1-based) moves after histories of length i-1
        n_hist = g ** (i - 1)

        def node(h, cont=cont, lo_c=lo_c, hi_c=hi_c, i=i):
            prefix = _digits(h, i - 1, g)  # [i-1]
            suffix = cont[h * g + actions]  # [G, n-i]
            idx = jnp.concatenate(
                [jnp.broadcast_to(prefix, (g, i - 1)), actions[:, None], suffix], axis=-1
            )
            vals = spec.fn(grid[idx], params)  # [G, n]
            payoff = vals[:, i - 1]
            best, margin = _top2_margin(payoff)
            if i == n:
                lo, hi = vals, vals
            else:
                lo, hi = lo_c[h * g + actions], hi_c[h * g + actions]  # [G, n]
            possible, rob = _robust_pick(lo[:, i - 1], hi[:, i - 1], best, tol)
            node_lo = jnp.min(jnp.where(possible[:, None], lo, jnp.inf), axis=0)
            node_hi = jnp.max(jnp.where(possible[:, None], hi, -jnp.inf), axis=0)
            return (jnp.concatenate([best[None], suffix[best]]), node_lo, node_hi), (margin, rob)

        hist = jnp.arange(n_hist, dtype=jnp.int32)
        (cont, lo_c, hi_c), (margins[i - 1], robust[i - 1]) = jax.lax.map(
            lambda h: node(h), hist, batch_size=min(batch_size, n_hist))
    index = cont[0]  # [n]
    # history index of each on-path decision node
    path_h = [jnp.int32(0)]
    for i in range(1, n):
        path_h.append(path_h[-1] * g + index[i - 1])
    path_margins = jnp.stack([margins[i][path_h[i]] for i in range(n)])
    path_robust = jnp.stack([robust[i][path_h[i]] for i in range(n)])
    all_margins = jnp.concatenate(margins)
    return _summarise(spec, params, grid, index, all_margins, path_margins, path_robust, tol)


# ------------------------------------------------------------------------------------------------
# Scalable solver: state = (running-sum lattice index, last contribution index)
# ------------------------------------------------------------------------------------------------


def _check_markov(spec: RewardSpec, params: GameParams) -> None:
    if spec.per_agent is None:
        raise ValueError(
            f"reward {spec.name!r} has no per-agent form; the scalable solver needs one "
            "(register it with register_per_agent_reward) - use method='exact' for n <= 4"
        )
    if params.score == "mean":
        w = np.asarray(params.weights)
        if not np.allclose(w, 1.0 / params.n, atol=1e-6):
            raise ValueError(
                "the scalable solver needs equal final-score weights (S = mean q); "
                f"got weights {w.tolist()}: use method='exact' (n <= 4)"
            )


def solve_markov(
    reward: str | RewardSpec,
    params: GameParams,
    grid_size: int = 101,
    tol: float = DEFAULT_TOL,
) -> Equilibrium:
    """SPNE by backward induction over the finite state (sum index, last index).

    Exact on the grid for per-agent rewards with equal score weights (checked by
    :func:`solve` before tracing). Agents at the same state face identical subgames, so checking
    every reachable state checks every decision node.
    """
    spec = get_reward(reward) if isinstance(reward, str) else reward
    n, g = params.n, grid_size
    grid = contribution_grid(params, g)
    h = (params.c_max - params.c_min) / (g - 1)
    k_size = n * (g - 1) + 1  # running-sum lattice: sum of j contributions = j*c_min + k*h
    need_last = params.observation == "po" or params.score == "last"
    l_size = g if need_last else 1
    ks = jnp.arange(k_size, dtype=jnp.int32)[:, None, None]  # [K,1,1]
    ls = jnp.arange(l_size, dtype=jnp.int32)[None, :, None]  # [1,L,1]
    acts = jnp.arange(g, dtype=jnp.int32)[None, None, :]  # [1,1,G]

    fin_k0 = jnp.broadcast_to(ks[:, :, 0], (k_size, l_size))
    fin_l0 = jnp.broadcast_to(ls[:, :, 0], (k_size, l_size))

    monotone = spec.outcome_monotone

    def level(carry, i):
        # final (sum, last) reached from each state after agent i acts (solver's tie-break), and
        # its [min, max] over every tie-break
        fin_k, fin_l, kmin, kmax, lmin, lmax = carry
        nk = jnp.minimum(ks + acts, k_size - 1)  # [K,1,G]
        nl = acts if need_last else jnp.zeros_like(acts)
        fk = fin_k[nk, nl]  # [K,L,G]
        fl = fin_l[nk, nl]
        q_i = grid[acts]
        i_f = i.astype(jnp.float32)
        if params.observation == "po":
            m_i = jnp.where(i == 1, params.m0, grid[ls])
        else:
            m_i = jnp.where(i == 1, params.m0, params.c_min + ks * h / jnp.maximum(i_f - 1, 1.0))

        def pay(fk, fl):
            total = n * params.c_min + fk * h
            s = total / n if params.score == "mean" else grid[fl]
            return jnp.broadcast_to(spec.per_agent(i, q_i, m_i, total, s, params), full)

        full = (k_size, l_size, g)
        payoff = pay(fk, fl)
        fk, fl = jnp.broadcast_to(fk, full), jnp.broadcast_to(fl, full)
        best, margin = _top2_margin(payoff)  # [K,L]
        ckmin, ckmax = (jnp.broadcast_to(t[nk, nl], full) for t in (kmin, kmax))
        clmin, clmax = (jnp.broadcast_to(t[nk, nl], full) for t in (lmin, lmax))
        if monotone:  # the mover's reward is non-decreasing in the final (sum, last): corners bound it
            lo, hi = pay(ckmin, clmin), pay(ckmax, clmax)
        else:  # no bound unless every tie-break reaches the same final state
            settled = (ckmin == ckmax) & (clmin == clmax)
            lo = jnp.where(settled, payoff, -jnp.inf)
            hi = jnp.where(settled, payoff, jnp.inf)
        possible, robust = _robust_pick(lo, hi, best, tol)
        big = jnp.int32(2**30)
        new_bounds = (jnp.min(jnp.where(possible, ckmin, big), axis=-1),
                      jnp.max(jnp.where(possible, ckmax, -1), axis=-1),
                      jnp.min(jnp.where(possible, clmin, big), axis=-1),
                      jnp.max(jnp.where(possible, clmax, -1), axis=-1))
        # valid states before agent i: sum of i-1 contributions, last one consistent with it
        k2 = ks[:, :, 0]
        l2 = ls[:, :, 0]
        if need_last:
            valid = jnp.where(
                i == 1,
                (k2 == 0) & (l2 == 0),
                (k2 >= l2) & (k2 - l2 <= (i - 2) * (g - 1)),
            )
        else:
            valid = k2 <= (i - 1) * (g - 1)
        n_ties = jnp.sum(valid & (margin <= tol))
        min_margin = jnp.min(jnp.where(valid, margin, jnp.inf))
        take = lambda t: jnp.take_along_axis(t, best[..., None], axis=-1)[..., 0]  # noqa: E731
        return (take(fk), take(fl)) + new_bounds, (best, margin, robust, n_ties, min_margin)

    levels = jnp.arange(n, 0, -1, dtype=jnp.int32)
    init = (fin_k0, fin_l0, fin_k0, fin_k0, fin_l0, fin_l0)
    _, (policy, margin, robust, ties, mins) = jax.lax.scan(level, init, levels)
    # policy[j] is agent n-j's choice; walk forward from the empty history
    def step(state, j):
        k, l = state
        a = policy[n - 1 - j][k, l]
        pm = margin[n - 1 - j][k, l]
        pr = robust[n - 1 - j][k, l]
        return (k + a, a if need_last else jnp.int32(0)), (a, pm, pr)

    _, (index, path_margins, path_robust) = jax.lax.scan(
        step, (jnp.int32(0), jnp.int32(0)), jnp.arange(n))
    n_ties = jnp.sum(ties).astype(jnp.int32)
    return _summarise(spec, params, grid, index, jnp.min(mins)[None], path_margins, path_robust, tol,
                      n_ties=n_ties)


# ------------------------------------------------------------------------------------------------
# Simultaneous game: all pure Nash equilibria
# ------------------------------------------------------------------------------------------------


def solve_nash(
    reward: str | RewardSpec,
    params: GameParams,
    grid_size: int = 101,
    tol: float = DEFAULT_TOL,
) -> Equilibrium:
    """Pure Nash equilibria of the simultaneous game by enumerating every profile (G^n).

    ``unique`` means exactly one equilibrium and it is strict (every player's action beats its
    best deviation by more than ``tol``); ``path_unique`` means exactly one equilibrium, possibly
    weak; ``n_ties`` counts the extra equilibria plus one if the first one is weak.
    """
    spec = get_reward(reward) if isinstance(reward, str) else reward
    n, g = params.n, grid_size
    grid = contribution_grid(params, g)
    idx = jnp.stack(jnp.meshgrid(*[jnp.arange(g)] * n, indexing="ij"), axis=-1)  # [G]*n + [n]
    r = spec.fn(grid[idx], params)
    is_ne = jnp.ones((g,) * n, bool)
    strict = jnp.ones((g,) * n, jnp.float32) * jnp.inf
    for i in range(n):
        ri = r[..., i]
        best = jnp.max(ri, axis=i, keepdims=True)
        is_ne &= ri >= best - tol
        # gap between the played action and the best deviation of player i
        others = jnp.where(jnp.eye(g, dtype=bool).reshape((1,) * i + (g, g) + (1,) * (n - i - 1)), -jnp.inf,
                           jnp.expand_dims(ri, i))
        best_dev = jnp.max(others, axis=i + 1)
        strict = jnp.minimum(strict, ri - best_dev)
    count = jnp.sum(is_ne)
    flat = jnp.argmax(is_ne.reshape(-1))
    index = _digits(flat.astype(jnp.int32), n, g)
    margin = strict.reshape(-1)[flat]
    n_ties = (count - 1 + (margin <= tol).astype(count.dtype)).astype(jnp.int32)
    n_ties = jnp.where(count == 0, jnp.int32(1), n_ties)
    path_margins = jnp.full((n,), margin)
    # one pure equilibrium (within tol): every tie-break gives the same profile
    path_robust = jnp.where(count == 1, path_margins, -jnp.inf)
    return _summarise(spec, params, grid, index, margin[None], path_margins, path_robust, tol, n_ties=n_ties,
                      path_unique=count == 1)


# ------------------------------------------------------------------------------------------------
# Front door
# ------------------------------------------------------------------------------------------------

METHODS = ("auto", "exact", "markov", "nash")


def _memory_budget_bytes() -> int:
    """Half the machine's physical memory (the solvers run on the host CPU or one device)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2)
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 1024**3


def estimate_bytes(method: str, n: int, grid_size: int, need_last: bool = True) -> int:
    """Rough peak memory of one solve (float32/int32 arrays, several alive at once; errs high).

    exact: every history of grid indices (``G**n`` profiles, payoffs for n agents); markov: the
    (sum, last, action) tables, ``(n(G-1)+1) * G * G`` (``* 1 * G`` without the last-contribution
    state); nash: every profile, ``G**n * n``.
    """
    g = int(grid_size)
    if method == "exact":
        return 4 * 6 * n * g**n
    if method == "nash":
        return 4 * 6 * n * g**n
    k = n * (g - 1) + 1
    return 4 * 10 * k * (g if need_last else 1) * g


def _largest_grid(method: str, n: int, need_last: bool, budget: int) -> int:
    lo, hi = 1, 2
    while estimate_bytes(method, n, hi, need_last) <= budget and hi < 10**9:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if estimate_bytes(method, n, mid, need_last) <= budget:
            lo = mid
        else:
            hi = mid
    return lo


def check_tol(tol: float) -> float:
    """``tol`` as a float, or a ValueError naming it (must be finite and >= 0)."""
    try:
        t = float(tol)
    except (TypeError, ValueError):
        raise ValueError(f"tol must be a number >= 0, got {tol!r}") from None
    if not math.isfinite(t) or t < 0:
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    return t


#: The most (profile, agent) payoffs the simultaneous-game (nash) enumeration evaluates.
NASH_MAX_ENTRIES = 2 * 10**8


def choose_method(spec: RewardSpec, params: GameParams, grid_size: int, method: str = "auto",
                  memory_budget: int | None = None) -> str:
    """Resolve ``method='auto'`` and check that the chosen solver can handle this game: the
    grid, and the memory the solve would need (refused, naming a grid that fits, when it would
    take more than ``memory_budget`` bytes; default half the physical memory)."""
    if method not in METHODS:
        raise ValueError(f"unknown solver method {method!r}; choose from {METHODS}")
    if isinstance(grid_size, bool) or not isinstance(grid_size, (int, np.integer)):
        raise ValueError(f"grid_size must be an integer >= 2, got {grid_size!r}")
    if grid_size < 2:
        raise ValueError(f"grid_size must be >= 2, got {grid_size}")
    if method == "auto":
        if spec.timing == "simultaneous":
            method = "nash"
        elif params.n <= 4 and grid_size**params.n <= 2 * 10**8:
            method = "exact"
        else:
            method = "markov"
    if method == "nash" and grid_size**params.n * params.n > NASH_MAX_ENTRIES:
        fit = 2
        while (fit + 1) ** params.n * params.n <= NASH_MAX_ENTRIES:
            fit += 1
        raise ValueError(f"nash enumeration of {grid_size}**{params.n} profiles is too large; "
                         f"use --grid {fit} or smaller")
    if method == "markov":
        _check_markov(spec, params)
    if method == "exact" and grid_size**params.n > EXACT_MAX_PROFILES:
        raise ValueError(f"exact solver: {grid_size}**{params.n} histories overflow; use method='markov'")
    budget = _memory_budget_bytes() if memory_budget is None else int(memory_budget)
    need_last = params.observation == "po" or params.score == "last"
    need = estimate_bytes(method, params.n, grid_size, need_last)
    if need > budget:
        fit = _largest_grid(method, params.n, need_last, budget)
        raise ValueError(
            f"grid {grid_size} with n={params.n} ({method} solver) needs about {need / 1024**3:.3g} GiB, "
            f"more than the {budget / 1024**3:.3g} GiB allowed here; use --grid {fit} or smaller")
    return method


_SOLVERS = {"exact": solve_exact, "markov": solve_markov, "nash": solve_nash}


@functools.partial(jax.jit, static_argnames=("reward", "grid_size", "method", "tol"))
def _solve_jit(params, reward, grid_size, method, tol):
    return _SOLVERS[method](reward, params, grid_size, tol)


def solve(
    reward: str,
    params: GameParams,
    grid_size: int = 101,
    method: str = "auto",
    tol: float = DEFAULT_TOL,
) -> Equilibrium:
    """Solve one game (jitted). ``method``: auto | exact | markov | nash."""
    spec = get_reward(reward)
    check_params(spec, params)
    tol = check_tol(tol)
    method = choose_method(spec, params, grid_size, method)
    return _solve_jit(params, reward, grid_size, method, tol)


@functools.partial(jax.jit, static_argnames=("reward", "grid_size", "method", "tol", "chunk"))
def _solve_batch_jit(params, reward, grid_size, method, tol, chunk):
    fn = functools.partial(_SOLVERS[method], reward, grid_size=grid_size, tol=tol)
    return jax.lax.map(fn, params, batch_size=chunk)


def solve_batch(
    reward: str,
    params: GameParams,
    grid_size: int = 101,
    method: str = "auto",
    tol: float = DEFAULT_TOL,
    chunk: int = 64,
) -> Equilibrium:
    """Solve a stack of games (every numeric leaf has a leading batch axis) in one jitted call.

    Games are vmapped ``chunk`` at a time (``lax.map`` with ``batch_size``) to bound memory.
    """
    spec = get_reward(reward)
    check_params(spec, params)
    tol = check_tol(tol)
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be an integer >= 1, got {chunk!r}")
    batch = jax.tree_util.tree_leaves(params)[0].shape[0]
    first = jax.tree_util.tree_map(lambda x: x[0], params)
    method = choose_method(spec, first, grid_size, method)
    if method == "markov" and params.score == "mean":
        w = np.asarray(params.weights)
        if not np.allclose(w, 1.0 / params.n, atol=1e-6):
            raise ValueError("the scalable solver needs equal final-score weights in every game of the batch")
    return _solve_batch_jit(params, reward, grid_size, method, tol, int(min(chunk, batch)))
