"""spgg_jax.models"""
