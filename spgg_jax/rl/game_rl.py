"""Policy-gradient learners in the public-goods games, PureJaxRL style.

n small Flax actor-critics, one per position, play the sequential game: agent i observes what the
game lets it observe of its predecessors (the running mean of q_1..q_{i-1} under FO, q_{i-1} under
PO; the constant m0 for agent 1; nothing in simultaneous games) and its position, and draws a
contribution q_i in [c_min, c_max] (a Beta on the unit interval mapped affinely, or a categorical
over the contribution grid). Rewards come from the registered pure reward function. Each agent
maximises its OWN reward with REINFORCE or PPO and a learned state-value baseline; each agent has
its own optimizer state (gradient clipping does not couple agents).

``make_train(cfg)`` returns a pure ``train(rng, game_params) -> (policy_params, metrics)``: the whole
training run is one ``lax.scan`` over steps, so ::

    train = make_train(GameRLConfig(reward="mac_spgg", n=3))
    runs = jax.jit(jax.vmap(train, in_axes=(0, 0)))(rngs, stacked_params)

trains many seeds x reward parameters in one call (``stacked_params`` from
:func:`spgg_jax.game.sweep.stack_params`; use ``in_axes=(0, None)`` for seeds only). ``metrics`` is
a dict of arrays with a leading ``steps`` axis (see :data:`METRIC_NAMES`).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from spgg_jax.game.params import GameParams
from spgg_jax.game.rewards import THRESHOLD_TOL, get_reward, validate_for
from spgg_jax.game.scores import final_score
from spgg_jax.game.sweep import stack_params
from spgg_jax.rl.algorithms import get_algorithm
from spgg_jax.rl.gen_policy import EPS as BETA_EPS
from spgg_jax.rl.gen_policy import beta_entropy, beta_log_prob
from spgg_jax.rl.losses import value_loss
from spgg_jax.rl.ppo import make_optimizer, ppo_update
from spgg_jax.tidy import tidy

#: the algorithms game-level learners run (both use a learned value baseline: ``spgg_jax.rl.algorithms``)
ALGORITHMS = ("reinforce", "ppo")
ACTIONS = ("beta", "grid")
OBSERVES = ("game", "full")

#: Per-step metrics returned by ``train`` (shapes per step; ``[n]`` is per position).
METRIC_NAMES = {
    "q_mean": "[n] mean sampled contribution per position",
    "q_std": "[n] std of sampled contributions per position",
    "q_det": "[n] deterministic path: each agent plays its policy's mean action given its predecessors'",
    "reward_mean": "[n] mean reward per position",
    "welfare": "[] mean of sum_i R_i",
    "score": "[] mean final score S",
    "threshold_rate": "[] fraction of episodes with S >= B",
    "free_ride_rate": "[] fraction of (episode, agent) contributions within free_ride_frac of c_min",
    "free_ride_by_pos": "[n] the same per position",
    "entropy": "[n] policy entropy per position (nats; Beta in unit space, categorical over the grid)",
    "value_loss": "[n] critic loss per position",
    "approx_kl": "[n] approximate KL between the sampling and the updated policy",
}


@dataclasses.dataclass(frozen=True)
class GameRLConfig:
    """Configuration of a learning run (all static: changing it recompiles).

    ``actions``: "beta" (Beta(alpha, beta) on (0, 1), alpha = exp(a), beta = exp(b), so a
    zero-initialised head is exactly uniform on [c_min, c_max]) or "grid" (categorical over
    ``grid_size`` evenly spaced contributions, uniform at initialisation).
    ``observe``: "game" gives agent i the predecessor quality m_i the game defines (FO running mean
    / PO last); "full" adds the running mean of all predecessors (the perfect-information view the
    exact solver assumes; identical to "game" under FO).
    ``free_ride_frac``: a contribution counts as free riding when q_i <= c_min + free_ride_frac *
    (c_max - c_min) (continuous draws never equal c_min exactly).
    ``max_concentration``: Beta concentrations are kept in [1/M, M]. An interior policy thus keeps a
    standard deviation of at least about sqrt(m (1 - m) / 2M) of the range (a trembling hand), so
    later agents keep seeing, and learning their best responses to, off-path predecessor
    contributions; without that floor the learners drift towards the Nash equilibria in which
    followers do not respond (see docs/game.md). Corner policies (mean at c_min or c_max) can
    still concentrate there (alpha or beta -> 1/M).
    """

    reward: str = "mac_spgg"
    n: int = 3
    steps: int = 1000
    batch: int = 256
    lr: float = 3e-3
    algorithm: str = "ppo"
    actions: str = "beta"
    grid_size: int = 101
    hidden: tuple[int, ...] = (32, 32)
    entropy_coef: float = 0.0
    vf_coef: float = 0.5
    clip_eps: float = 0.2
    ppo_epochs: int = 4
    max_grad_norm: float = 1.0
    observe: str = "game"
    normalize_advantages: bool = True
    free_ride_frac: float = 0.05
    max_concentration: float = 100.0

    def __post_init__(self):
        hidden = (self.hidden,) if isinstance(self.hidden, int) else tuple(self.hidden)
        object.__setattr__(self, "hidden", hidden)  # accept an int or a list; store a hashable tuple
        get_reward(self.reward)  # raises naming the unknown reward and the registered ones
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        if self.actions not in ACTIONS:
            raise ValueError(f"actions must be one of {ACTIONS}, got {self.actions!r}")
        if self.observe not in OBSERVES:
            raise ValueError(f"observe must be one of {OBSERVES}, got {self.observe!r}")
        if not isinstance(self.n, int) or self.n < 2:
            raise ValueError(f"n (number of agents) must be an integer >= 2, got {self.n!r}")
        for name in ("steps", "batch", "ppo_epochs", "grid_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.batch < 2:
            raise ValueError(f"batch must be >= 2 (advantages are normalised over it), got {self.batch}")
        if self.grid_size < 2:
            raise ValueError(f"grid_size must be >= 2, got {self.grid_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not self.hidden or any((not isinstance(h, int)) or h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be a non-empty tuple of positive layer widths, got {self.hidden!r}")
        for name in ("entropy_coef", "vf_coef", "clip_eps", "max_grad_norm"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not self.max_concentration > 1:
            raise ValueError(f"max_concentration must be > 1, got {self.max_concentration!r}")
        if not 0 <= self.free_ride_frac < 1:
            raise ValueError(f"free_ride_frac must lie in [0, 1), got {self.free_ride_frac!r}")

    @property
    def head_size(self) -> int:
        return 2 if self.actions == "beta" else self.grid_size

    @property
    def obs_size(self) -> int:
        return (2 if self.observe == "full" else 1) + self.n


class AgentNet(nn.Module):
    """Separate MLP torsos for the policy head (zero-initialised: uniform start) and the value."""

    hidden: Sequence[int]
    head_size: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = obs
        for h in self.hidden:
            x = jnp.tanh(nn.Dense(h)(x))
        logits = nn.Dense(self.head_size, kernel_init=nn.initializers.zeros, bias_init=nn.initializers.zeros)(x)
        v = obs
        for h in self.hidden:
            v = jnp.tanh(nn.Dense(h)(v))
        value = nn.Dense(1)(v)[..., 0]
        return logits, value


# ------------------------------------------------------------------------------------------------
# Action distributions (unit space for Beta, grid indices for the categorical)
# ------------------------------------------------------------------------------------------------

def _beta_ab(cfg: GameRLConfig, head):
    """Beta concentrations exp(head) within [1 / max_concentration, max_concentration]."""
    lim = math.log(cfg.max_concentration)
    a = jnp.exp(jnp.clip(head[..., 0], -lim, lim))
    b = jnp.exp(jnp.clip(head[..., 1], -lim, lim))
    return a, b


def _sample(cfg: GameRLConfig, head, key):
    """Draw an action; returns (action, unit-interval position u in [0, 1])."""
    if cfg.actions == "beta":
        a, b = _beta_ab(cfg, head)
        u = jnp.clip(jax.random.beta(key, a, b), BETA_EPS, 1.0 - BETA_EPS)
        return u, u
    idx = jax.random.categorical(key, head)
    return idx, idx.astype(jnp.float32) / (cfg.grid_size - 1)


def _log_prob(cfg: GameRLConfig, head, action):
    if cfg.actions == "beta":
        a, b = _beta_ab(cfg, head)
        return beta_log_prob(action, a, b)
    logp = jax.nn.log_softmax(head)
    return jnp.take_along_axis(logp, action[..., None].astype(jnp.int32), axis=-1)[..., 0]


def _entropy(cfg: GameRLConfig, head):
    if cfg.actions == "beta":
        return beta_entropy(*_beta_ab(cfg, head))
    logp = jax.nn.log_softmax(head)
    return -jnp.sum(jnp.exp(logp) * logp, axis=-1)


def _mean_unit(cfg: GameRLConfig, head):
    """The policy's mean action, in unit space."""
    if cfg.actions == "beta":
        a, b = _beta_ab(cfg, head)
        return a / (a + b)
    probs = jax.nn.softmax(head)
    return probs @ (jnp.arange(cfg.grid_size, dtype=jnp.float32) / (cfg.grid_size - 1))


# ------------------------------------------------------------------------------------------------
# Rollouts
# ------------------------------------------------------------------------------------------------


def _observation(cfg: GameRLConfig, gp: GameParams, i, total, last, simultaneous: bool):
    """Features of agent i (0-based) given the sum and the last of its predecessors' contributions."""
    batch = total.shape
    span = gp.c_max - gp.c_min
    scale = lambda q: 2.0 * (q - gp.c_min) / span - 1.0  # noqa: E731  [c_min, c_max] -> [-1, 1]
    m0 = jnp.broadcast_to(gp.m0, batch)
    mean_prev = jnp.where(i > 0, total / jnp.maximum(i, 1).astype(jnp.float32), m0)
    last_prev = jnp.where(i > 0, last, m0)
    m = last_prev if gp.observation == "po" else mean_prev
    feats = [scale(m)]
    if cfg.observe == "full":
        feats.append(scale(mean_prev))
    if simultaneous:  # nobody observes anybody in a simultaneous game
        feats = [jnp.zeros(batch) for _ in feats]
    pos = jnp.broadcast_to(jax.nn.one_hot(i, cfg.n), batch + (cfg.n,))
    return jnp.concatenate([jnp.stack(feats, axis=-1), pos], axis=-1)


def _rollout(cfg, net, simultaneous, agent_params, gp: GameParams, key, batch: int, deterministic: bool = False):
    """Play ``batch`` episodes in order 1..n. Returns q [B, n] and per-agent arrays with a leading n axis."""
    keys = jax.random.split(key, cfg.n)
    span = gp.c_max - gp.c_min

    def agent_step(carry, xs):
        total, last = carry
        p_i, i, k = xs
        obs = _observation(cfg, gp, i, total, last, simultaneous)
        head, value = net.apply(p_i, obs)
        if deterministic:
            u = _mean_unit(cfg, head)
            action = u
        else:
            action, u = _sample(cfg, head, k)
        logp = _log_prob(cfg, head, action) if not deterministic else jnp.zeros(total.shape)
        q = gp.c_min + span * u
        return (total + q, q), (q, action, logp, value, obs)

    init = (jnp.zeros((batch,)), jnp.zeros((batch,)))
    idx = jnp.arange(cfg.n, dtype=jnp.int32)
    _, (q, action, logp, value, obs) = jax.lax.scan(agent_step, init, (agent_params, idx, keys))
    return q.T, action, logp, value, obs  # q [B, n]; the rest [n, B, ...]


def init_agents(cfg: GameRLConfig, key) -> Any:
    """Stacked parameters of the n agents (leading axis n)."""
    net = AgentNet(tuple(cfg.hidden), cfg.head_size)
    dummy = jnp.zeros((1, cfg.obs_size))
    return jax.vmap(lambda k: net.init(k, dummy))(jax.random.split(key, cfg.n))


def greedy_path(cfg: GameRLConfig, agent_params, game_params: GameParams) -> jax.Array:
    """Contributions f32[n] when every agent plays its policy's mean action (no sampling)."""
    net = AgentNet(tuple(cfg.hidden), cfg.head_size)
    simultaneous = get_reward(cfg.reward).timing == "simultaneous"
    q, *_ = _rollout(cfg, net, simultaneous, agent_params, game_params, jax.random.key(0), 1, deterministic=True)
    return q[0]


def make_train(cfg: GameRLConfig) -> Callable[[jax.Array, GameParams], tuple[Any, dict[str, jax.Array]]]:
    """Return the pure ``train(rng, game_params) -> (agent_params, metrics)`` for ``cfg``.

    ``rng`` is a JAX key (typed or raw uint32[2]); ``game_params`` a (possibly traced) ``GameParams``
    with ``n == cfg.n``. Vmap it over both for sweeps.
    """
    spec = get_reward(cfg.reward)
    reward_fn = spec.fn
    simultaneous = spec.timing == "simultaneous"
    net = AgentNet(tuple(cfg.hidden), cfg.head_size)
    tx = make_optimizer(cfg.lr, cfg.max_grad_norm)
    algo = get_algorithm(cfg.algorithm)
    pg_loss = algo.loss_fn
    epochs = algo.epochs(cfg.ppo_epochs)

    def agent_loss(p_i, d):
        head, value = net.apply(p_i, d["obs"])
        logp = _log_prob(cfg, head, d["action"])
        mask = jnp.ones_like(logp, bool)
        loss, m = pg_loss(logp, d["logp_old"], d["adv"], mask, clip_eps=cfg.clip_eps)
        ent = jnp.mean(_entropy(cfg, head))
        vl = value_loss(value, d["ret"])
        total = loss - cfg.entropy_coef * ent + cfg.vf_coef * vl
        return total, {"entropy": ent, "value_loss": vl, "approx_kl": m["approx_kl"]}

    def train(rng, game_params: GameParams):
        if game_params.n != cfg.n:
            raise ValueError(f"game_params.n={game_params.n} does not match the config's n={cfg.n}")
        if not jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key):
            rng = jax.random.wrap_key_data(jnp.asarray(rng, jnp.uint32))
        init_key, rng = jax.random.split(rng)
        agent_params = init_agents(cfg, init_key)
        opt_state = jax.vmap(tx.init)(agent_params)
        span = game_params.c_max - game_params.c_min

        def step(carry, _):
            params, opt_state, key = carry
            key, k_roll = jax.random.split(key)
            q, action, logp_old, value, obs = _rollout(cfg, net, simultaneous, params, game_params, k_roll, cfg.batch)
            r = reward_fn(q, game_params)  # [B, n]
            ret = r.T  # [n, B]: one decision per agent per episode, so the return is the reward
            if cfg.normalize_advantages:
                adv = jax.vmap(lambda rr, v: algo.advantages(rr, values=v))(ret, value)
            else:
                adv = ret - value
            adv = jax.lax.stop_gradient(adv)
            batch = {"obs": obs, "action": action, "logp_old": logp_old, "adv": adv, "ret": ret}
            params, opt_state, out = ppo_update(agent_loss, tx, params, opt_state, batch, key, epochs=epochs)
            aux = jax.tree_util.tree_map(lambda x: x[:, 0], out["grad"])  # [epochs, n]: one step per epoch
            s = final_score(q, game_params)
            free = q <= game_params.c_min + cfg.free_ride_frac * span + 1e-6
            metrics = {
                "q_mean": jnp.mean(q, axis=0),
                "q_std": jnp.std(q, axis=0),
                "q_det": greedy_path(cfg, params, game_params),
                "reward_mean": jnp.mean(r, axis=0),
                "welfare": jnp.mean(jnp.sum(r, axis=-1)),
                "score": jnp.mean(s),
                "threshold_rate": jnp.mean((s >= game_params.B - THRESHOLD_TOL).astype(jnp.float32)),
                "free_ride_rate": jnp.mean(free.astype(jnp.float32)),
                "free_ride_by_pos": jnp.mean(free.astype(jnp.float32), axis=0),
                "entropy": aux["entropy"][0],
                "value_loss": aux["value_loss"][0],
                "approx_kl": aux["approx_kl"][-1],
            }
            return (params, opt_state, key), metrics

        (agent_params, _, _), metrics = jax.lax.scan(step, (agent_params, opt_state, rng), None, length=cfg.steps)
        return agent_params, metrics

    return train


def seed_keys(seeds: Sequence[int] | jax.Array) -> jax.Array:
    """Raw uint32[S, 2] keys for integer seeds (vmappable, and the same as ``jax.random.PRNGKey``)."""
    return jnp.stack([jax.random.key_data(jax.random.key(int(s))) for s in seeds])


# ------------------------------------------------------------------------------------------------
# Sweeps and reports (host side; used by `spgg game learn`)
# ------------------------------------------------------------------------------------------------


def learn_points(cfg: GameRLConfig, base: GameParams, points: Sequence[dict], seeds: Sequence[int]):
    """Train every (parameter point, seed) pair in ONE jitted vmapped call.

    Returns ``(runs, metrics)``: ``runs`` a list of dicts (point values and ``seed``) in run order,
    ``metrics`` a dict of numpy arrays with leading axes [runs, steps].
    """
    points = [dict(p) for p in points] or [{}]
    runs = [dict(p, seed=int(s)) for p in points for s in seeds]
    stacked = stack_params(base, [{k: v for k, v in r.items() if k != "seed"} for r in runs])
    validate_for(cfg.reward, stacked)
    keys = seed_keys([r["seed"] for r in runs])
    _, metrics = jax.jit(jax.vmap(make_train(cfg)))(keys, stacked)
    return runs, {k: np.asarray(v) for k, v in jax.device_get(metrics).items()}


def write_learning_report(out_dir, cfg: GameRLConfig, runs, metrics, spne_rows, axes: Sequence[str],
                          log_every: int = 10, extra: dict | None = None) -> dict[str, str]:
    """Write ``learning.csv`` (every ``log_every`` steps), ``final.csv`` (last 10% of steps vs the
    SPNE), ``summary.json`` and ``learning_curves.png``; returns {name: path}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n, steps = cfg.n, cfg.steps
    pos = lambda name: [f"{name}_{i + 1}" for i in range(n)]  # noqa: E731
    with open(out / "learning.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", *axes, "seed", "step", *pos("q"), *pos("q_det"), *pos("R"), "welfare", "score",
                    "threshold_rate", "free_ride_rate"])
        for j, r in enumerate(runs):
            for t in list(range(0, steps, max(1, log_every))) + ([steps - 1] if (steps - 1) % max(1, log_every) else []):
                w.writerow([j, *[r[a] for a in axes], r["seed"], t, *metrics["q_mean"][j, t], *metrics["q_det"][j, t],
                            *metrics["reward_mean"][j, t], metrics["welfare"][j, t], metrics["score"][j, t],
                            metrics["threshold_rate"][j, t], metrics["free_ride_rate"][j, t]])
    k = max(1, steps // 10)
    final = []
    for j, r in enumerate(runs):
        q = metrics["q_mean"][j, -k:].mean(0)
        spne = np.asarray(spne_rows[j]["q"])
        final.append({"run": j, **{a: r[a] for a in axes}, "seed": r["seed"],
                      **dict(zip(pos("q"), q.tolist())), **dict(zip(pos("spne_q"), spne.tolist())),
                      "max_abs_gap": float(np.max(np.abs(q - spne))),
                      "welfare": float(metrics["welfare"][j, -k:].mean()),
                      "spne_welfare": float(spne_rows[j]["welfare"]),
                      "threshold_rate": float(metrics["threshold_rate"][j, -k:].mean()),
                      "free_ride_rate": float(metrics["free_ride_rate"][j, -k:].mean())})
    with open(out / "final.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(final[0]))
        w.writeheader()
        w.writerows(final)
    summary = {"config": dataclasses.asdict(cfg), "axes": list(axes), "runs": len(runs),
               "mean_max_abs_gap": float(np.mean([r["max_abs_gap"] for r in final])), "final": final, **(extra or {})}
    with open(out / "summary.json", "w") as f:
        json.dump(tidy(summary), f, indent=2)
    files = {"learning": str(out / "learning.csv"), "final": str(out / "final.csv"), "summary": str(out / "summary.json")}
    png = _plot_learning(out / "learning_curves.png", cfg, runs, metrics, spne_rows, axes)
    if png:
        files["plot"] = str(png)
    return files


def _plot_learning(path, cfg, runs, metrics, spne_rows, axes, max_panels: int = 6):
    """Contribution by position over training (mean over seeds, min-max band) vs the SPNE (dashed)."""
    import matplotlib  # noqa: PLC0415  (plotting only: keeps imports light)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple, list[int]] = {}
    for j, r in enumerate(runs):
        groups.setdefault(tuple(r[a] for a in axes), []).append(j)
    keys = list(groups)
    if len(keys) > max_panels:
        keys = [keys[i] for i in np.linspace(0, len(keys) - 1, max_panels).round().astype(int)]
    fig, axs = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.8), squeeze=False, sharey=True)
    steps = np.arange(cfg.steps)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, key in zip(axs[0], keys):
        idx = groups[key]
        q = metrics["q_mean"][idx]  # [seeds, steps, n]
        for i in range(cfg.n):
            c = colors[i % len(colors)]
            ax.plot(steps, q[:, :, i].mean(0), color=c, label=f"agent {i + 1}")
            ax.fill_between(steps, q[:, :, i].min(0), q[:, :, i].max(0), color=c, alpha=0.2, lw=0)
            # interleaved dashes: equal equilibrium contributions stay visible in every agent's colour
            ax.axhline(spne_rows[idx[0]]["q"][i], color=c, lw=1.2, ls=(3 * i, (3, 3 * (cfg.n - 1))))
        title = ", ".join(f"{a}={v:g}" for a, v in zip(axes, key)) or "base parameters"
        ax.set_title(f"{title} ({len(idx)} seeds)", fontsize=10)
        ax.set_xlabel("training step")
        ax.xaxis.get_major_locator().set_params(integer=True)
    axs[0][0].set_ylabel("mean contribution q_i")
    handles, _ = axs[0][0].get_legend_handles_labels()
    handles += [plt.Line2D([], [], color="gray", lw=1.2, ls="--", label="equilibrium (SPNE)"),
                plt.Rectangle((0, 0), 1, 1, color="gray", alpha=0.2, lw=0, label="min-max over seeds")]
    axs[0][0].legend(handles=handles, loc="best", fontsize=8)
    fig.suptitle(f"{cfg.reward}, n={cfg.n}: {cfg.algorithm}/{cfg.actions} learners vs the equilibrium "
                 f"({cfg.steps} steps x {cfg.batch} episodes, lr {cfg.lr:g})", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
