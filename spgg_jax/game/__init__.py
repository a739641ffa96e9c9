"""The public-goods games: reward variants (pure functions) and exact equilibria. No LLM code.

See docs/game.md. Typical use::

    from spgg_jax.game import make_params, rewards, solve
    params = make_params("mac_spgg", n=3, gamma=0.5)   # shared keys and the variant's own (spgg game list)
    R = rewards("mac_spgg", q, params)          # q: f32[..., n] -> f32[..., n]
    eq = solve("mac_spgg", params, grid_size=101)
"""

from spgg_jax.game.costs import COSTS
from spgg_jax.game.params import GameParams, VariantParams, param, parse_overrides
from spgg_jax.game.rewards import (
    OWN_COSTS,
    REWARDS,
    RewardSpec,
    accepted_keys,
    get_reward,
    make_params,
    param_names,
    register_per_agent_reward,
    register_reward,
    rewards,
    reward_terms_given_score,
    rewards_given_score,
)
from spgg_jax.game.scores import SCORES, final_score, predecessor_quality
from spgg_jax.game.solver import Equilibrium, contribution_grid, solve, solve_batch

__all__ = [
    "COSTS", "SCORES", "REWARDS", "GameParams", "VariantParams", "param", "RewardSpec", "Equilibrium",
    "parse_overrides", "accepted_keys", "param_names",
    "get_reward", "make_params", "register_reward", "register_per_agent_reward", "rewards", "rewards_given_score",
    "reward_terms_given_score", "OWN_COSTS",
    "final_score", "predecessor_quality", "contribution_grid", "solve", "solve_batch",
]
