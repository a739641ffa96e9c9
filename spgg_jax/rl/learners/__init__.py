"""Training methods for LLM teams behind one protocol (``spgg_jax.rl.learners.base.Learner``).

- ``gen_params`` (:mod:`.gen_params`): per-agent policies over generation parameters (the paper's).
- ``token`` (:mod:`.token`): policy gradients on the agents' own tokens (LoRA or full weights).

``make_learner(method, method_cfg, team, bundles, placement)`` builds the registered one.
"""

from spgg_jax.rl.learners.base import LEARNERS, Learner, RolloutPolicy, policy_records
from spgg_jax.rl.learners.gen_params import GenParamsConfig, GenParamsLearner, GenParamsRecord, gen_param_ranges
from spgg_jax.rl.learners.token import TokenConfig, TokenLearner

#: method name -> its config dataclass
METHOD_CONFIGS = {"gen_params": GenParamsConfig, "token": TokenConfig}


def make_learner(method: str, cfg, team, bundles, placement=None) -> Learner:
    """The learner registered under ``method``, built from its config for ``team``."""
    return LEARNERS.get(method)(cfg, team, bundles, placement)


__all__ = ["LEARNERS", "Learner", "RolloutPolicy", "policy_records", "GenParamsConfig", "GenParamsLearner",
           "GenParamsRecord", "gen_param_ranges",
           "TokenConfig", "TokenLearner", "METHOD_CONFIGS", "make_learner"]
