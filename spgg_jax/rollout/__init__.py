"""spgg_jax.rollout: the sequential multi-agent protocol (FO / PO), episodes, scores and rewards.

    team = default_team("smollm2-135m-instruct", n=3, observation="fo")   # or TeamConfig.from_json(path)
    bundles = load_bundles(team)                                           # each distinct model once
    batch = run_episodes(team, bundles, problems, key)                     # one sampler call per turn
    scores = score_episodes(batch, team)                                   # q[B,n], S[B], effort[B,n]
    R = episode_rewards(scores, team)                                      # f32[B,n]

See docs/episodes.md.
"""

from spgg_jax.rollout.episode import (
    AgentTurn,
    EpisodeBatch,
    ModelBundle,
    config_sampling,
    encode_prompts,
    generate_batch,
    load_bundles,
    prompt_features,
    run_episodes,
)
from spgg_jax.rollout.prompts import (
    Contribution,
    TokenCounter,
    TurnPrompt,
    agent_turn_prompts,
    build_messages,
    render_messages,
    share_budget,
    turn_prompt,
    visible_turns,
)
from spgg_jax.rollout.scoring import (
    EPISODE_SCORERS,
    EpisodeScores,
    TextScores,
    choose_final,
    effort_from_lengths,
    episode_reward_terms,
    free_riding,
    episode_rewards,
    is_verifiable,
    make_scores,
    register_episode_scorer,
    score_episodes,
    score_texts,
    score_texts_extracted,
    to_contribution,
    vote_key,
)
from spgg_jax.rollout.team import AgentConfig, TeamConfig, default_roles, default_team, load_team

__all__ = [
    "AgentConfig", "TeamConfig", "default_team", "default_roles", "load_team",
    "Contribution", "TokenCounter", "TurnPrompt", "agent_turn_prompts", "build_messages", "render_messages",
    "share_budget", "turn_prompt", "visible_turns",
    "AgentTurn", "EpisodeBatch", "ModelBundle", "config_sampling", "encode_prompts", "generate_batch",
    "load_bundles", "prompt_features", "run_episodes",
    "EpisodeScores", "effort_from_lengths", "episode_rewards", "is_verifiable", "make_scores",
    "score_episodes", "score_texts", "to_contribution", "choose_final", "episode_reward_terms", "free_riding",
    "score_texts_extracted", "vote_key", "EPISODE_SCORERS", "TextScores", "register_episode_scorer",
]
