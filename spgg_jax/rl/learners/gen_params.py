"""The generation-parameter learner (the paper's method): per-agent Beta policies over the six
generation parameters, trained with a policy-gradient algorithm on the agents' game rewards.

Each agent has a small actor-critic (``spgg_jax.rl.gen_policy``) whose input is its model's pooled
hidden states of the prompt (plus its one-hot id and position). At every agent turn the policy
samples unit draws u, mapped into the ranges of the generation parameters; the draws, their
log-probs, the values and the policy's input come back as the turn's :class:`GenParamsRecord`
(``AgentTurn.policy``, this learner's declared ``record_type``). The update is the
shared PPO core (``spgg_jax.rl.ppo``) over all agents at once, on advantages from the
algorithm's estimator: ``critic`` (ppo, reinforce: normalised R - V) or ``group`` (grpo,
reinforce_group: each agent's reward against the mean of the ``group_size`` episodes of the same
problem, which removes the problem's difficulty from the signal). The value head is trained
either way.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from spgg_jax.parallel import to_host
from spgg_jax.parallel.placement import StatePlacement
from spgg_jax.rl import gen_policy as gp
from spgg_jax.rl.algorithms import ALGORITHMS, algorithm_names, get_algorithm
from spgg_jax.rl.learners.base import LEARNERS, RolloutPolicy, policy_records
from spgg_jax.rl.losses import value_loss
from spgg_jax.rl.ppo import make_optimizer, ppo_update
from spgg_jax.sampling.params import PARAM_NAMES
from spgg_jax.settings import setting, setting_errors

#: salt folded into the run key for the initial policies (unchanged since the first trainer: same seed, same start)
INIT_KEY_SALT = -1 & 0x7FFFFFFF


@struct.dataclass
class GenParamsRecord:
    """What the policy keeps of one agent turn, over the batch's B rows (host arrays): its
    ``sampling_fn`` returns it, the rollout carries it as ``AgentTurn.policy``, the update learns
    from it. A pytree: the update stacks the agents' records field by field ([n, B, ...])."""

    features: Any  # f32[B, F]: the policy's input (pooled prompt hidden states, agent one-hot, position)
    u: Any  # f32[B, P]: the unit draws, one per controlled parameter (PARAM_NAMES order)
    logp: Any  # f32[B]: their log-prob under the acting policy
    value: Any  # f32[B]: the critic's value of the turn


@dataclasses.dataclass(frozen=True)
class GenParamsConfig:
    """Hyperparameters of ``method=gen_params`` (defaults: the paper's released config)."""

    algorithm: str = setting("ppo", choices=ALGORITHMS, doc="the policy-gradient algorithm (spgg_jax.rl.algorithms); "
                             "a group-baseline one needs group_size >= 2")
    lr: float = setting(5e-4, gt=0, doc="learning rate")
    epochs: int = setting(4, ge=1, doc="passes over each batch (multi-epoch algorithms)")
    minibatch: int = setting(16, ge=1, doc="episodes per gradient step (the whole batch when smaller)")
    clip_eps: float = setting(0.2, gt=0, doc="clip range of the surrogate objective")
    target_kl: float = setting(0.015, gt=0, doc="a batch's epochs stop once one ends with approx KL above 1.5 x this")
    value_coef: float = setting(0.5, ge=0, doc="weight of the value loss")
    entropy_coef: float = setting(0.02, ge=0, doc="weight of the entropy bonus")
    grad_clip: float = setting(0.5, gt=0, doc="global gradient-norm clip")
    hidden: tuple[int, ...] = setting((128, 128), ge=1, doc="layer widths of each agent's policy network")
    controls: tuple[str, ...] = setting(("temperature", "top_p", "max_new_tokens"), choices=PARAM_NAMES,
                                        doc="the generation parameters the policy chooses (the others keep each "
                                        "agent's configured values)")
    init_concentration: float = setting(6.0, gt=0, doc="Beta a + b - 2 at the start: how widely the policy explores")
    group_size: int = setting(1, ge=1, doc="episodes per problem in a training batch; group-baseline algorithms "
                              "compare within them")
    min_new_tokens: int = setting(8, ge=1, doc="the smallest max_new_tokens the policy can choose (capped at half the "
                                  "agents' largest limit; 1 makes contributing nothing an action)")
    start: Mapping[str, float] = setting(default_factory=dict, doc="where the policy's modes start, per controlled "
                                         "parameter (e.g. gen_params.start.temperature=1.0); the rest start at each "
                                         "agent's configured value, which the evaluation's baselines keep")

    def errors(self) -> list[str]:
        """Each setting checked against its declaration, then the checks across settings."""
        return setting_errors(self, "gen_params") or self._cross_errors()

    def _cross_errors(self) -> list[str]:
        out = []
        if not get_algorithm(self.algorithm).needs_critic and self.group_size < 2:
            out.append(f"gen_params.algorithm {self.algorithm!r} compares episodes of the same problem: set "
                       f"gen_params.group_size >= 2 (got {self.group_size}), or use an algorithm with a critic "
                       f"({' / '.join(algorithm_names(critic=True))})")
        for k, v in self.start.items():
            if k not in self.controls:
                out.append(f"gen_params.start.{k}: only a parameter the policy controls has a start "
                           f"(gen_params.controls: {list(self.controls)})")
            elif isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                out.append(f"gen_params.start.{k} must be a finite number, got {v!r}")
        return out


def gen_param_ranges(team: Any, min_new_tokens: int = 8) -> gp.GenParamRanges:
    """The policy's ranges for a team: max_new_tokens in [min(min_new_tokens, M/2), M], M the agents'
    largest limit."""
    top = float(max(a.max_new_tokens for a in team.agents))
    return gp.GenParamRanges(max_new_tokens=(min(float(min_new_tokens), top / 2), top))


class GenParamsLearner:
    """Built once per run: its jitted functions close over the config, team size and ranges."""

    #: what its rollout keeps of each agent turn (``AgentTurn.policy``)
    record_type = GenParamsRecord

    def __init__(self, cfg: GenParamsConfig, team: Any, feature_dim: int, placement: StatePlacement | None = None):
        self.cfg = cfg
        self.samples_per_problem = cfg.group_size  # consecutive rows of a batch: one problem's episodes
        self.team = team
        self.n = team.n
        self.placement = placement or StatePlacement()
        self.ranges = gen_param_ranges(team, cfg.min_new_tokens)
        for name, v in cfg.start.items():
            lo, hi = getattr(self.ranges, name)
            if not lo <= v <= hi:
                raise ValueError(f"gen_params.start.{name}={v!r} lies outside the policy's range [{lo:g}, {hi:g}]")
        self.algo = get_algorithm(cfg.algorithm)
        self.feature_dim = feature_dim + self.n + 1  # pooled hidden states + agent one-hot + position
        self.tx = make_optimizer(cfg.lr, cfg.grad_clip)
        # the controlled parameters in PARAM_NAMES order; every agent's configured values for the rest
        self.controls = tuple(c for c in PARAM_NAMES if c in cfg.controls)
        self.fixed = np.asarray([[float(a.sampling_kwargs()[p]) for p in PARAM_NAMES] for a in team.agents], np.float32)
        hidden, n = tuple(cfg.hidden), self.n

        def act(policy, pooled, key, agent):
            params = jax.tree_util.tree_map(lambda x: x[agent], policy)  # every agent's policy is stacked
            feats = gp.policy_features(pooled, agent, n)
            u, logp, v = gp.act(params, feats, key, hidden)
            return GenParamsRecord(features=feats, u=u, logp=logp, value=v)

        def mode(policy, pooled, agent):
            params = jax.tree_util.tree_map(lambda x: x[agent], policy)
            return gp.mode(params, gp.policy_features(pooled, agent, n), hidden)

        self._act = jax.jit(act, static_argnames=("agent",))
        self._mode = jax.jit(mode, static_argnames=("agent",))
        self._update = None  # jitted on the first update, pinned to the layout of the state it gets

    # ------------------------------------------------------------------------------ protocol
    def init(self, key) -> dict:
        """Every agent's policy starts with its Beta modes at ``gen_params.start`` where given, else at the
        agent's configured parameters."""
        k_init = jax.random.fold_in(key, INIT_KEY_SALT)
        keys = jax.random.split(k_init, self.n)
        start = dict(self.cfg.start)
        init_u = jnp.stack([gp.to_unit({**a.sampling_kwargs(), "top_k": a.top_k or self.ranges.top_k[1], **start},
                                       self.ranges, self.controls) for a in self.team.agents])
        hidden, k0, n_params = tuple(self.cfg.hidden), self.cfg.init_concentration, len(self.controls)
        params = jax.vmap(lambda k, u: gp.init_policy(k, self.feature_dim, hidden, u, k0, n_params))(keys, init_u)
        opt_state = jax.vmap(self.tx.init)(params)
        return self.placement.place({"policy": params, "opt": opt_state})

    def rollout_policy(self, state: Mapping[str, Any], deterministic: bool = False) -> RolloutPolicy:
        policy, ranges = state["policy"], self.ranges

        def to_params(u, agent):  # host math on host values: no eager op touches a multi-host array
            sp = gp.to_sampling_params(u, ranges, self.controls, self.fixed[agent])
            return jax.tree_util.tree_map(np.asarray, sp)

        def sampling_fn(agent, pooled, key):
            # one jitted call, then one all-gather: every process gets the whole batch's choices
            with self.placement.context():
                if deterministic:  # the mode: nothing to learn from, no record
                    return to_params(to_host(self._mode(policy, pooled, agent=agent)), agent), None
                out = self._act(policy, pooled, key, agent=agent)
            record = to_host(out)
            return to_params(record.u, agent), record

        return RolloutPolicy(sampling_fn=sampling_fn, need_features=True)

    def update(self, state: Mapping[str, Any], batch: Any, rewards: np.ndarray, key) -> tuple[dict, dict[str, float]]:
        records = policy_records(batch.agent_turns, self.record_type)  # names the agents without one
        rec = jax.tree_util.tree_map(lambda *xs: np.stack(xs), *records)  # every field [n, B, ...] (host arrays)
        ret = np.asarray(rewards).T  # one-step episodes: the return is the reward
        group = self.cfg.group_size
        adv = np.asarray(jax.vmap(lambda r, v: self.algo.advantages(r, values=v, group_size=group))(
            jnp.asarray(ret), jnp.asarray(rec.value)))
        ppo_batch = {"feats": rec.features, "u": rec.u, "logp_old": rec.logp, "v_old": rec.value,
                     "ret": ret, "adv": adv}
        ppo_batch = self.placement.replicate(ppo_batch)  # the policy nets are small and replicated; so is their batch
        if self._update is None:
            self._update = self.placement.jit_keeping_layout(self._update_fn, state["policy"], state["opt"], None)
        with self.placement.context():
            params, opt, m = self._update(state["policy"], state["opt"], ppo_batch, key)
        m = dict(m)
        modes = np.asarray(to_host(m.pop("mode_u")))  # [n, P]: the updated policy's mean mode on this batch
        lo, hi = (np.asarray(x) for x in self.ranges.bounds())
        out = {k: float(v) for k, v in m.items()}
        for j, name in enumerate(self.controls):
            i = PARAM_NAMES.index(name)
            for a in range(self.n):
                out[f"mode/{name}/agent{a + 1}"] = float(lo[i] + (hi[i] - lo[i]) * modes[a, j])
        return {"policy": params, "opt": opt}, out

    # ------------------------------------------------------------------------------ the jitted update
    def _agent_loss(self, p, d):
        cfg = self.cfg
        logp, ent, v = gp.evaluate(p, d["feats"], d["u"], tuple(cfg.hidden))
        pl, m = self.algo.loss_fn(logp, d["logp_old"], d["adv"], jnp.ones_like(logp, bool), cfg.clip_eps)
        vl = value_loss(v, d["ret"], d["v_old"], cfg.clip_eps)
        ent = jnp.mean(ent)
        return pl + cfg.value_coef * vl - cfg.entropy_coef * ent, {**m, "policy_loss": pl, "value_loss": vl, "entropy": ent}

    def _update_fn(self, params, opt_state, batch, key):
        cfg = self.cfg
        params, opt_state, out = ppo_update(self._agent_loss, self.tx, params, opt_state, batch, key,
                                            epochs=self.algo.epochs(cfg.epochs), minibatch=cfg.minibatch,
                                            shuffle=True, target_kl=cfg.target_kl)
        last = jax.tree_util.tree_map(lambda x: x[-1].mean(), out["epoch"])
        hidden = tuple(cfg.hidden)
        mode_u = jax.vmap(lambda p, f: jnp.mean(gp.mode(p, f, hidden), axis=0))(params, batch["feats"])
        return params, opt_state, {**last, "ppo_epochs_run": out["epochs_run"], "mode_u": mode_u}


@LEARNERS.register("gen_params")
def make_gen_params_learner(cfg: GenParamsConfig, team: Any, bundles: Mapping[str, Any],
                            placement: StatePlacement | None = None) -> GenParamsLearner:
    """The learner of ``method=gen_params`` for ``team`` (features: the first agent's model width)."""
    d_model = bundles[team.agents[0].model].cfg.d_model
    return GenParamsLearner(cfg, team, d_model, placement)
