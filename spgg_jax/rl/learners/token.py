"""The token-level learner: policy gradients on the agents' own generated tokens.

Every agent of the team shares one base model and trains its own copy of it: LoRA adapters
(``spgg_jax.rl.lora``, default) or full weights. A batch holds ``group_size`` rollouts of every
problem (consecutive rows), so group-baseline algorithms (GRPO) compare samples of one prompt.
Rollouts sample from the policy itself (the team's agents sample at ``temperature``, with top-p,
top-k and penalties off), so the sampler's log-probs are the behaviour log-probs of the update.
Each agent is updated on its own turn's tokens, against the base model as the KL reference.
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
from spgg_jax.rl.algorithms import get_algorithm
from spgg_jax.rl.learners.base import LEARNERS, RolloutPolicy, algorithm_errors, field_errors
from spgg_jax.rl.learners.gen_params import INIT_KEY_SALT
from spgg_jax.rl.lora import DEFAULT_TARGETS, TARGETS, init_lora, merge_lora
from spgg_jax.rl.ppo import make_optimizer
from spgg_jax.sampling import continuation_logprobs


@dataclasses.dataclass(frozen=True)
class TokenConfig:
    """Hyperparameters of ``method=token``."""

    algorithm: str = "grpo"  # a group-baseline algorithm of spgg_jax.rl.algorithms (grpo, reinforce_group)
    lr: float = 1e-4
    epochs: int = 4
    clip_eps: float = 0.2
    grad_clip: float = 0.5
    group_size: int = 4  # rollouts per problem (the group of a group baseline)
    kl_coef: float = 0.04  # KL(policy || base model) penalty
    temperature: float = 1.0  # sampling temperature of the rollouts (the policy is softmax(logits / T))
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = DEFAULT_TARGETS
    full_finetune: bool = False

    def errors(self) -> list[str]:
        out = []
        out += algorithm_errors("token", self.algorithm, False, "use grpo or reinforce_group")
        out += field_errors(self, "token", positive_ints=("epochs", "group_size", "lora_rank"),
                            positive=("lr", "clip_eps", "grad_clip", "lora_alpha", "temperature"),
                            non_negative=("kl_coef",))
        unknown = sorted(set(self.lora_targets) - set(TARGETS))
        if unknown or not self.lora_targets:
            out.append(f"token.lora_targets must name kernels among {sorted(TARGETS)}, got {list(self.lora_targets)!r}")
        if not isinstance(self.full_finetune, bool):
            out.append(f"token.full_finetune must be true or false, got {self.full_finetune!r}")
        return out

    def sampling(self) -> dict[str, Any]:
        """The agents' generation parameters during token-level training (sampling from the policy)."""
        return {"temperature": self.temperature, "top_p": 1.0, "top_k": 0, "repetition_penalty": 1.0,
                "presence_penalty": 0.0}


def token_loss(trainable, base, d, *, model_cfg, lora_spec, loss_fn, clip, kl_coef, temperature):
    params = merge_lora(base, trainable, *lora_spec) if lora_spec is not None else trainable
    lp = continuation_logprobs(params, model_cfg, d["prompt_ids"], d["prompt_mask"], d["tokens"], d["mask"], temperature)
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

    def __init__(self, cfg: TokenConfig, team: Any, bundle: Any, placement: StatePlacement | None = None):
        self.cfg = cfg
        self.team = team
        self.n = team.n
        self.bundle = bundle
        self.placement = placement or StatePlacement()
        self.samples_per_problem = cfg.group_size
        self.algo = get_algorithm(cfg.algorithm)
        self.lora_spec = None if cfg.full_finetune else (cfg.lora_alpha, cfg.lora_rank)
        self.tx = make_optimizer(cfg.lr, cfg.grad_clip)
        self.loss = functools.partial(token_loss, model_cfg=bundle.cfg, lora_spec=self.lora_spec,
                                      loss_fn=self.algo.loss_fn, clip=cfg.clip_eps, kl_coef=cfg.kl_coef,
                                      temperature=cfg.temperature)
        model_cfg, temperature = bundle.cfg, cfg.temperature
        self._reference_logprobs = jax.jit(
            lambda base, ids, pmask, toks, mask: continuation_logprobs(base, model_cfg, ids, pmask, toks, mask, temperature))
        self._step = None  # jitted on the first update, pinned to the layout of the state it gets

    def init(self, key) -> dict:
        base = self.bundle.params
        keys = jax.random.split(jax.random.fold_in(key, INIT_KEY_SALT), self.n)
        if self.cfg.full_finetune:
            trainable = [jax.tree_util.tree_map(jnp.array, base) for _ in range(self.n)]
        else:
            trainable = [init_lora(k, base, self.cfg.lora_rank, self.cfg.lora_targets) for k in keys]
        trainable = self.placement.place(trainable)  # placed first: the optimizer moments follow its layout
        return {"policy": trainable, "opt": [self.placement.opt_init(self.tx, t) for t in trainable]}

    def agent_weights(self, state: Mapping[str, Any]) -> list:
        """Every agent's full weights (base + its adapters, or its fine-tuned copy)."""
        if self.lora_spec is None:
            return list(state["policy"])
        return [merge_lora(self.bundle.params, lora, *self.lora_spec) for lora in state["policy"]]

    def rollout_policy(self, state: Mapping[str, Any], deterministic: bool = False) -> RolloutPolicy:
        # sampling stays the team's (the policy's own temperature): the weights are the policy
        return RolloutPolicy(agent_params=self.agent_weights(state))

    def update(self, state: Mapping[str, Any], batch: Any, rewards: np.ndarray, key) -> tuple[dict, dict[str, float]]:
        del key  # full-batch steps: nothing random
        base = self.bundle.params
        rows = self.bundle.sampler.place_rows  # batch split over the mesh's data axes when it divides
        policy, opt = list(state["policy"]), list(state["opt"])
        if self._step is None:  # every agent's weights share one layout
            self._step = self.placement.jit_keeping_layout(functools.partial(token_step, self.loss, self.tx),
                                                           policy[0], opt[0], None)
        out: dict[str, list] = {}
        for turn in batch.agent_turns:
            a = turn.agent
            adv = np.asarray(self.algo.advantages(jnp.asarray(rewards[:, a]), group_size=self.cfg.group_size))
            d = {"prompt_ids": turn.prompt_ids, "prompt_mask": turn.prompt_mask, "tokens": turn.tokens,
                 "mask": turn.mask, "logp_old": turn.logprobs, "adv": adv}
            d = {k: rows(v) for k, v in d.items()}
            with self.placement.context():
                d["ref_lp"] = self._reference_logprobs(base, d["prompt_ids"], d["prompt_mask"], d["tokens"], d["mask"])
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
