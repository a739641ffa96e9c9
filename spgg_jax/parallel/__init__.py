"""spgg_jax.parallel"""
