"""spgg_jax.checkpoint"""
