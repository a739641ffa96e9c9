"""spgg_jax.tasks"""
