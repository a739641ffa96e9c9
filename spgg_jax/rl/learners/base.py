"""The learner protocol: what the training loop needs from a training method.

A learner is built once from its config (``make_learner``, PureJaxRL's ``make_train`` style): its
jitted functions close over the hyperparameters and take arrays. The loop only ever calls

    state = learner.init(key)                                 # {"policy": ..., "opt": ...}, placed
    policy = learner.rollout_policy(state, deterministic)     # how the rollout consults the policy
    batch = run_episodes(team, bundles, problems, key, **policy.episode_kwargs())
    state, metrics = learner.update(state, batch, rewards, key)

and never looks inside ``state`` (its structure is the learner's: stacked over agents for small
per-agent networks, a tuple of per-agent trees for LLM weights that are updated one agent at a
time). Everything ``update`` needs comes back from the rollout inside the ``EpisodeBatch``: no side
channels. What the policy itself keeps of a turn (its choices, log-probs, values, inputs) is a typed
record the learner declares (``Learner.record_type``, e.g. ``gen_params.GenParamsRecord``): its
``sampling_fn`` returns one beside the generation parameters, the rollout carries it untouched as
``AgentTurn.policy``, and the update reads its fields (:func:`policy_records` checks every agent
turn has one). A learner whose update needs only what the rollout records anyway (tokens,
log-probs, the captured trunk: ``token``) declares none.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence, TypeVar

import numpy as np

from spgg_jax.registry import Registry

R = TypeVar("R")


@dataclasses.dataclass(frozen=True)
class RolloutPolicy:
    """What a rollout needs from the current policy (the keyword arguments of ``run_episodes``).

    ``sampling_fn(agent, features, key) -> (SamplingParams, record)`` chooses generation parameters
    (``record``, of the learner's ``record_type`` or ``None``, lands in ``AgentTurn.policy``);
    ``agent_params`` are per-agent weights; ``need_features`` asks the rollout for the prompts' pooled
    hidden states; ``capture_layer`` asks it to keep each agent turn's residual stream entering that
    layer (a learner that trains only the layers above).
    """

    sampling_fn: Optional[Callable[..., Any]] = None
    agent_params: Optional[Sequence[Any]] = None
    need_features: bool = False
    capture_layer: Optional[int] = None

    def episode_kwargs(self) -> dict[str, Any]:
        return {"sampling_fn": self.sampling_fn, "agent_params": self.agent_params, "need_features": self.need_features,
                "capture_layer": self.capture_layer}


class Learner(Protocol):
    """A training method for a team (see the module docstring)."""

    #: rollouts per problem in a training batch (GRPO groups); 1 when no groups are needed
    samples_per_problem: int

    #: the type of the record its ``sampling_fn`` returns for each agent turn (``AgentTurn.policy``);
    #: ``None``: the learner keeps no per-turn record
    record_type: Optional[type]

    def init(self, key) -> Mapping[str, Any]: ...

    def rollout_policy(self, state: Mapping[str, Any], deterministic: bool = False) -> RolloutPolicy: ...

    def update(self, state: Mapping[str, Any], batch: Any, rewards: np.ndarray, key) -> tuple[dict, dict[str, float]]: ...


def policy_records(turns: Sequence[Any], record_type: type[R]) -> list[R]:
    """Each turn's policy record (``AgentTurn.policy``), in order.

    Raises ``ValueError`` naming the agents whose turns carry none of ``record_type`` (a rollout
    without this learner's sampling policy, or a deterministic one, keeps no record).
    """
    missing = [t.agent for t in turns if not isinstance(t.policy, record_type)]
    if missing:
        raise ValueError(f"agent turns {missing} carry no policy choices ({record_type.__name__} in "
                         "AgentTurn.policy): roll out with this learner's rollout_policy(state) (not deterministic) "
                         "before updating")
    return [t.policy for t in turns]


#: method name -> ``factory(method_cfg, team, bundles, placement) -> Learner``
LEARNERS: Registry[Callable[..., Learner]] = Registry("training method")
