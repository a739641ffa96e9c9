"""spgg_jax.game"""
