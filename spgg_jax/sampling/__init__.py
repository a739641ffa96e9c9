"""spgg_jax.sampling"""
