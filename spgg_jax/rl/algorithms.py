"""Policy-gradient algorithms: a policy loss and an advantage estimator registered together.

Choosing an algorithm by name (``ALGORITHMS.get("grpo")``) selects the whole algorithm, as in
Tunix's function registry: the loss that is minimised, the advantage estimator that feeds it, and
whether it reuses a batch for several epochs. Learners ask the algorithm for both; they never pair
a loss with an estimator themselves.

Advantage estimators (pure functions on arrays, :data:`ADVANTAGES`):

- ``critic``: ``normalize(R - V)`` with a learned state value V (one-step episodes: the return is
  the reward, so GAE reduces to R - V). Needs a learner with a value head.
- ``group``: GRPO's ``(R - mean) / (std + eps)`` within groups of samples of the same prompt.

=============  ===================  ==========  ======================================================
algorithm      loss                 advantage   epochs
=============  ===================  ==========  ======================================================
``ppo``        clipped surrogate    critic      the config's epochs (target-KL early stop if set)
``reinforce``  -A log pi            critic      1 (on-policy)
``grpo``       clipped surrogate    group       the config's epochs; KL to the reference policy
                                                (``kl_coef``, 0.04 by default)
``reinforce_group``  -A log pi      group       1 (REINFORCE with a group-mean/std baseline)
=============  ===================  ==========  ======================================================
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

from spgg_jax.registry import Registry
from spgg_jax.rl.advantages import group_advantages, normalize
from spgg_jax.rl.losses import LOSSES

#: name -> ``estimator(rewards f32[B], *, values=None, group_size=None) -> f32[B]``
ADVANTAGES: Registry[Callable[..., jax.Array]] = Registry("advantage estimator")


@ADVANTAGES.register("critic")
def critic_advantages(rewards, *, values=None, group_size=None):
    """``normalize(R - V)`` over the batch (one-step episodes: return = reward)."""
    del group_size
    if values is None:
        raise ValueError("the 'critic' advantage needs the value head's estimates (values=...)")
    return normalize(jnp.asarray(rewards) - jnp.asarray(values))


@ADVANTAGES.register("group")
def group_advantage(rewards, *, values=None, group_size=None):
    """GRPO baselines within consecutive groups of ``group_size`` samples of one prompt."""
    del values
    if group_size is None:
        raise ValueError("the 'group' advantage needs group_size")
    return group_advantages(jnp.asarray(rewards), group_size)


@ADVANTAGES.register("group_centred")
def group_centred_advantage(rewards, *, values=None, group_size=None):
    """The group's mean as the baseline, without GRPO's division by the group's std (Dr. GRPO, Liu et
    al. 2025): a reward difference keeps its size. Under GRPO a group whose episodes are all equally
    right differs only by the token cost, and the division turns a cost difference of 0.01 into a unit
    advantage; here it stays 0.01 beside a correctness difference of order 1."""
    del values
    if group_size is None:
        raise ValueError("the 'group_centred' advantage needs group_size")
    return group_advantages(jnp.asarray(rewards), group_size, scale=False)


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """A registered algorithm: ``loss`` (a :data:`~spgg_jax.rl.losses.LOSSES` entry) and
    ``advantage`` (an :data:`ADVANTAGES` entry); ``multi_epoch`` False means one pass per batch."""

    name: str
    loss: str
    advantage: str
    multi_epoch: bool = True
    default_kl_coef: float = 0.0
    doc: str = ""

    @property
    def needs_critic(self) -> bool:
        return self.advantage == "critic"

    @property
    def loss_fn(self) -> Callable[..., Any]:
        return LOSSES.get(self.loss)

    def advantages(self, rewards, **kw) -> jax.Array:
        return ADVANTAGES.get(self.advantage)(rewards, **kw)

    def epochs(self, configured: int) -> int:
        return configured if self.multi_epoch else 1


ALGORITHMS: Registry[Algorithm] = Registry("algorithm")


def register_algorithm(name: str, loss: str, advantage: str, *, multi_epoch: bool = True,
                       default_kl_coef: float = 0.0, doc: str = "", overwrite: bool = False) -> Algorithm:
    """Register ``loss`` + ``advantage`` under ``name`` (both must be registered already)."""
    LOSSES.get(loss)
    ADVANTAGES.get(advantage)
    algo = Algorithm(name, loss, advantage, multi_epoch, default_kl_coef, doc)
    ALGORITHMS.register(name, overwrite=overwrite)(algo)
    return algo


def get_algorithm(name: str) -> Algorithm:
    return ALGORITHMS.get(name)


def algorithm_names(critic: Optional[bool] = None) -> list[str]:
    """The registered algorithms; ``critic=True``/``False``: only those with / without a value baseline."""
    return [n for n in ALGORITHMS if critic is None or ALGORITHMS.get(n).needs_critic == critic]


register_algorithm("ppo", "ppo", "critic", doc="PPO: clipped surrogate, learned value baseline")
register_algorithm("reinforce", "reinforce", "critic", multi_epoch=False,
                   doc="REINFORCE with a learned value baseline, one pass per batch")
register_algorithm("grpo", "ppo", "group", default_kl_coef=0.04,
                   doc="GRPO: clipped surrogate on group-normalised advantages, KL to the reference")
register_algorithm("grpo_centred", "ppo", "group_centred", default_kl_coef=0.04,
                   doc="GRPO with the group-mean baseline only (no division by the group's std, as Dr. GRPO): "
                       "reward differences keep their size")
register_algorithm("reinforce_group", "reinforce", "group", multi_epoch=False,
                   doc="REINFORCE with group-normalised advantages, one pass per batch")
