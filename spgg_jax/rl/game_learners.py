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

Sweeps of these runs (``spgg game learn``) are in :mod:`spgg_jax.rl.game_sweep`, their files and
figures in :mod:`spgg_jax.rl.game_report`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from spgg_jax.game.params import GameParams
from spgg_jax.game.rewards import THRESHOLD_TOL, get_reward
from spgg_jax.game.scores import final_score
from spgg_jax.rl.algorithms import get_algorithm
from spgg_jax.rl.gen_policy import EPS as BETA_EPS
from spgg_jax.rl.gen_policy import beta_entropy, beta_log_prob
from spgg_jax.rl.losses import value_loss
from spgg_jax.rl.ppo import make_optimizer, ppo_update

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
