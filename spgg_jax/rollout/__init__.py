"""spgg_jax.rollout"""
