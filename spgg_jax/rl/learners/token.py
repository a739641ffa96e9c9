"""The token-level learner: policy gradients on the agents' own generated tokens.

Every agent of the team shares one base model and trains its own copy of it: LoRA adapters
(``spgg_jax.rl.lora``, default) or full weights. A batch holds ``group_size`` rollouts of every
problem (consecutive rows), so group-baseline algorithms (GRPO) compare samples of one prompt.
Rollouts sample from the policy itself (the team's agents sample at ``temperature``, with top-p,
top-k and penalties off), so the sampler's log-probs are the behaviour log-probs of the update.
Each agent is updated on its own turn's tokens, against the base model as the KL reference.

Only the top ``train_layers`` layers are trained (LoRA adapters there; 0 = every layer). The layers
below (the trunk) are the base model's for every agent, so the step never runs a backward pass
through them, and does not even run them forward when the rollout kept their output: the rollout
captures the residual stream entering the first trained layer in its own prefill and decode
(``RolloutPolicy.capture_layer``, ``AgentTurn.trunk``), the update runs the top layers and the head
on it (``spgg_jax.sampling.logprobs_from_layer``), and the KL reference (the base model) comes from
the same stream. A turn without a captured stream has it recomputed (``trunk_states``, forward
only). Continuations are cut to the batch's longest row (rounded up to a multiple of 8) instead of
the generation buffer.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from spgg_jax.parallel.placement import StatePlacement
from spgg_jax.parallel.xla_options import dense_jit, dense_options
from spgg_jax.rl.algorithms import algorithm_names, get_algorithm
from spgg_jax.rl.learners.base import LEARNERS, RolloutPolicy
from spgg_jax.rl.learners.gen_params import INIT_KEY_SALT
from spgg_jax.rl.lora import DEFAULT_TARGETS, TARGETS, adapted_kernels, init_lora, merge_kernels, merge_lora, replace_kernels
from spgg_jax.rl.ppo import make_optimizer
from spgg_jax.sampling import SamplingParams, logprobs_from_layer, trunk_states
from spgg_jax.settings import setting, setting_errors

#: generated columns of an update are cut to the batch's longest row, rounded up to this
LENGTH_MULTIPLE = 8


@dataclasses.dataclass(frozen=True)
class TokenConfig:
    """Hyperparameters of ``method=token``."""

    algorithm: str = setting("grpo", choices=functools.partial(algorithm_names, critic=False),
                             note="an algorithm with a critic needs a value head, which this learner does not have",
                             doc="a group-baseline algorithm of spgg_jax.rl.algorithms")
    lr: float = setting(1e-4, gt=0, doc="learning rate")
    epochs: int = setting(4, ge=1, doc="passes over each batch (multi-epoch algorithms)")
    clip_eps: float = setting(0.2, gt=0, doc="clip range of the surrogate objective")
    grad_clip: float = setting(0.5, gt=0, doc="global gradient-norm clip")
    group_size: int = setting(4, ge=1, doc="rollouts per problem (the group of a group baseline)")
    kl_coef: float = setting(0.04, ge=0, doc="weight of the KL(policy || base model) penalty")
    temperature: float = setting(1.0, gt=0, doc="sampling temperature of the rollouts (the policy is "
                                 "softmax(logits / T))")
    lora_rank: int = setting(8, ge=1, doc="rank of the LoRA adapters")
    lora_alpha: float = setting(16.0, gt=0, doc="LoRA scale: kernels become W + (alpha / rank) A B")
    lora_targets: tuple[str, ...] = setting(DEFAULT_TARGETS, choices=TARGETS, doc="the kernels that get adapters")
    full_finetune: bool = setting(False, doc="train every weight instead of adapters (needs train_layers=0)")
    train_layers: int = setting(2, ge=0, note="0: every layer", doc="adapters on the top K layers only (0: every "
                                "layer); the layers below run without a backward pass")

    def errors(self) -> list[str]:
        """Each setting checked against its declaration."""
        return setting_errors(self, "token")

    def first_trained_layer(self, n_layers: int) -> int:
        """L: the layers L..n_layers-1 are trained, 0..L-1 are the frozen trunk (one-line errors)."""
        k = self.train_layers
        if k > n_layers:
            raise ValueError(f"token.train_layers={k} exceeds the model's {n_layers} layers (0 trains every layer)")
        start = n_layers - k if k else 0
        if self.full_finetune and start:
            raise ValueError(f"token.full_finetune=true trains every weight (embeddings and head included): set "
                             f"token.train_layers=0 (got {k} of the model's {n_layers} layers)")
        return start

    def sampling(self) -> dict[str, Any]:
        """The agents' generation parameters during token-level training (sampling from the policy)."""
        return {"temperature": self.temperature, "top_p": 1.0, "top_k": 0, "repetition_penalty": 1.0,
                "presence_penalty": 0.0}


def token_loss(trainable, base, d, *, model_cfg, lora_spec, loss_fn, clip, kl_coef, temperature, start=0):
    """The policy-gradient loss of one agent's turn ``d`` (prompt_ids, prompt_mask, tokens, mask,
    logp_old, adv, ref_lp; optionally ``trunk``, the residual stream entering layer ``start``).

    Layers ``start..`` and the head run with the agent's weights; without ``d["trunk"]`` the layers
    below are run forward here (no gradient reaches them: they are the base model's).
    """
    params = merge_lora(base, trainable, *lora_spec) if lora_spec is not None else trainable
    x = d.get("trunk")
    if x is None:  # adapters leave the trunk the base model's: run it on the base (not differentiated)
        x = trunk_states(base if lora_spec is not None else params, model_cfg, d["prompt_ids"], d["prompt_mask"],
                         d["tokens"], d["mask"], start)
    lp = logprobs_from_layer(params, model_cfg, x, d["prompt_mask"], d["tokens"], d["mask"], temperature, start)
    loss, m = loss_fn(lp, d["logp_old"], d["adv"][:, None], d["mask"], clip, d["ref_lp"], kl_coef)
    m["logprob_mismatch"] = jnp.max(jnp.abs(jnp.where(d["mask"], lp - d["logp_old"], 0.0)))
    return loss, m


def token_step(loss, tx: optax.GradientTransformation, trainable, opt_state, base, d):
    """One gradient step of ``loss(trainable, base, d) -> (loss, metrics)`` for one agent."""
    (value, m), grads = jax.value_and_grad(loss, has_aux=True)(trainable, base, d)
    updates, opt_state = tx.update(grads, opt_state, trainable)
    return optax.apply_updates(trainable, updates), opt_state, {**m, "loss": value}


class TokenLearner:
    """Built once per run: the loss, optimizer and reference log-probs close over the config."""

    #: how ``rollout_policy(state, deterministic=True)`` plays (the trained team's row of the evaluation)
    eval_setting = "the trained policy, greedy (each token the mode of the agent's policy)"
    #: no per-turn policy record: the update reads what the rollout keeps anyway (the turn's tokens,
    #: the sampler's log-probs, the captured trunk)
    record_type = None

    def __init__(self, cfg: TokenConfig, team: Any, bundle: Any, placement: StatePlacement | None = None):
        self.cfg = cfg
        self.team = team
        self.n = team.n
        self.bundle = bundle
        self.placement = placement or StatePlacement()
        self.samples_per_problem = cfg.group_size
        self.algo = get_algorithm(cfg.algorithm)
        self.lora_spec = None if cfg.full_finetune else (cfg.lora_alpha, cfg.lora_rank)
        self.start = cfg.first_trained_layer(bundle.cfg.n_layers)  # the first trained layer (L)
        self.tx = make_optimizer(cfg.lr, cfg.grad_clip)
        self.loss = functools.partial(token_loss, model_cfg=bundle.cfg, lora_spec=self.lora_spec,
                                      loss_fn=self.algo.loss_fn, clip=cfg.clip_eps, kl_coef=cfg.kl_coef,
                                      temperature=cfg.temperature, start=self.start)
        model_cfg, temperature, start = bundle.cfg, cfg.temperature, self.start
        # the frozen trunk (forward only) and the base model's log-probs from it (the KL reference)
        self._trunk = dense_jit(lambda base, ids, pmask, toks, mask: trunk_states(base, model_cfg, ids, pmask, toks, mask,
                                                                                start))
        self._reference_logprobs = dense_jit(lambda base, x, pmask, toks, mask: logprobs_from_layer(
            base, model_cfg, x, pmask, toks, mask, temperature, start))
        self._merge = None  # jitted adapter merge (the rollout's weights), pinned to the base's layout
        self._step = None  # jitted on the first update, pinned to the layout of the state it gets

    def init(self, key) -> dict:
        base = self.bundle.params
        keys = jax.random.split(jax.random.fold_in(key, INIT_KEY_SALT), self.n)
        if self.cfg.full_finetune:
            trainable = [jax.tree_util.tree_map(jnp.array, base) for _ in range(self.n)]
        else:
            top = self.bundle.cfg.n_layers - self.start if self.start else 0  # 0: every layer
            trainable = [init_lora(k, base, self.cfg.lora_rank, self.cfg.lora_targets, top_layers=top) for k in keys]
        trainable = self.placement.place(trainable)  # placed first: the optimizer moments follow its layout
        return {"policy": trainable, "opt": [self.placement.opt_init(self.tx, t) for t in trainable]}

    def agent_weights(self, state: Mapping[str, Any]) -> list:
        """Every agent's full weights (base + its adapters, or its fine-tuned copy)."""
        if self.lora_spec is None:
            return list(state["policy"])
        base = self.bundle.params
        if self._merge is None:  # one compiled merge of the adapted kernels; every other leaf is the base's
            alpha, rank = self.lora_spec
            kernels = adapted_kernels(base, state["policy"][0])
            self._merge = self.placement.jit_keeping_layout(  # one output tree: a 1-tuple, as it takes
                lambda kernels, lora: (merge_kernels(kernels, lora, alpha, rank),), kernels)
        return [replace_kernels(base, self._merge(adapted_kernels(base, lora), lora)[0]) for lora in state["policy"]]

    def rollout_policy(self, state: Mapping[str, Any], deterministic: bool = False) -> RolloutPolicy:
        """Training: each agent samples from its policy (the team's sampling, ``token.temperature``)
        and the rollout keeps the trunk's output for the update. ``deterministic`` (evaluation): each
        agent decodes greedily, every token the mode of its policy's next-token distribution, as
        the gen_params policy is evaluated at its modes and the untrained team's best rows run greedily."""
        weights = self.agent_weights(state)
        if not deterministic:
            return RolloutPolicy(agent_params=weights, capture_layer=self.start or None)
        agents = self.team.agents

        def greedy(agent, features, key):
            del key
            greedy_kwargs = {**agents[agent].sampling_kwargs(), "temperature": 0.0}  # as eval's greedy_team
            return SamplingParams.create(int(features.shape[0]), **greedy_kwargs), None

        return RolloutPolicy(sampling_fn=greedy, agent_params=weights, need_features=True)

    def turn_data(self, turn: Any, adv: np.ndarray) -> dict[str, np.ndarray]:
        """One agent turn as update inputs, the generated columns cut to the longest row (rounded up
        to ``LENGTH_MULTIPLE``); with the rollout's captured trunk when it is the one this update needs."""
        width = int(np.shape(turn.tokens)[1])
        longest = max(int(np.max(turn.lengths)), 1)
        t = min(width, -(-longest // LENGTH_MULTIPLE) * LENGTH_MULTIPLE)
        d = {"prompt_ids": turn.prompt_ids, "prompt_mask": turn.prompt_mask, "tokens": turn.tokens[:, :t],
             "mask": turn.mask[:, :t], "logp_old": turn.logprobs[:, :t], "adv": adv}
        trunk = getattr(turn, "trunk", None)
        p = int(np.shape(turn.prompt_ids)[1])
        if self.start and trunk is not None and turn.trunk_layer == self.start and trunk.shape[1] == p + width:
            d["trunk"] = trunk[:, : p + t]
        return d

    def update(self, state: Mapping[str, Any], batch: Any, rewards: np.ndarray, key) -> tuple[dict, dict[str, float]]:
        del key  # full-batch steps: nothing random
        base = self.bundle.params
        rows = self.bundle.sampler.place_rows  # batch split over the mesh's data axes when it divides
        policy, opt = list(state["policy"]), list(state["opt"])
        if self._step is None:  # every agent's weights share one layout
            self._step = self.placement.jit_keeping_layout(functools.partial(token_step, self.loss, self.tx),
                                                           policy[0], opt[0], None, compiler_options=dense_options())
        out: dict[str, list] = {}
        for turn in batch.agent_turns:
            a = turn.agent
            adv = np.asarray(self.algo.advantages(jnp.asarray(rewards[:, a]), group_size=self.cfg.group_size))
            d = {k: rows(v) for k, v in self.turn_data(turn, adv).items()}
            with self.placement.context():
                ids, pmask, toks, mask = d["prompt_ids"], d["prompt_mask"], d["tokens"], d["mask"]
                if self.lora_spec is not None and "trunk" not in d:  # the trunk is the base model's: run it once
                    d["trunk"] = self._trunk(base, ids, pmask, toks, mask)
                x = d["trunk"] if "trunk" in d else self._trunk(base, ids, pmask, toks, mask)
                d["ref_lp"] = self._reference_logprobs(base, x, pmask, toks, mask)
                for _ in range(self.algo.epochs(self.cfg.epochs)):
                    policy[a], opt[a], m = self._step(policy[a], opt[a], base, d)
                    for k, v in m.items():
                        out.setdefault(k, []).append(float(v))
        metrics = {k: (max(v) if k == "logprob_mismatch" else float(np.mean(v))) for k, v in out.items()}
        return {"policy": policy, "opt": opt}, metrics


@LEARNERS.register("token")
def make_token_learner(cfg: TokenConfig, team: Any, bundles: Mapping[str, Any],
                       placement: StatePlacement | None = None) -> TokenLearner:
    """The learner of ``method=token``: every agent must run the same base model."""
    models = team.models()
    if len(models) != 1:
        raise ValueError(f"token-level training needs agents sharing one base model, got {sorted(models)}")
    return TokenLearner(cfg, team, bundles[models[0]], placement)
