"""Strictly convex, increasing effort costs C(q) (registry ``COSTS``).

Signature: ``cost(q: f32[..., n], params) -> f32[..., n]``, elementwise. Register a new one with
``@COSTS.register("name")``; select it with ``GameParams.cost = "name"``.
"""

from __future__ import annotations

import jax.numpy as jnp

from spgg_jax.registry import Registry

COSTS: Registry = Registry("cost")


@COSTS.register("quadratic")
def quadratic_cost(q, p):
    """C(q) = kappa * q^2 / 2."""
    return 0.5 * p.kappa * q * q


@COSTS.register("power")
def power_cost(q, p):
    """C(q) = kappa * q^p / p with p = cost_power > 1."""
    return p.kappa * jnp.power(q, p.cost_power) / p.cost_power


@COSTS.register("exponential")
def exponential_cost(q, p):
    """C(q) = kappa * (exp(a q) - 1) / a with a = cost_alpha > 0."""
    return p.kappa * jnp.expm1(p.cost_alpha * q) / p.cost_alpha
