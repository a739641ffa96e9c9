"""spgg_jax.rl"""
