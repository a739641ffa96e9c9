"""spgg_jax: MAC-SPGG (sequential public-goods games for multi-LLM teams) in JAX.

Subpackages, one concept each:

- ``spgg_jax.game``: reward variants (pure functions) and exact subgame-perfect equilibria.
- ``spgg_jax.models``: Flax decoder ports and weight loading (HF safetensors, GGUF).
- ``spgg_jax.sampling``: KV-cached batched sampling with per-row traced parameters.
- ``spgg_jax.rollout``: the sequential multi-agent protocol (FO / PO).
- ``spgg_jax.tasks``: data sets, answer extraction, scorers, code sandbox.
- ``spgg_jax.rl``: losses, advantages, policies, trainer.
- ``spgg_jax.parallel``: device mesh, logical-axis sharding rules, multi-host.
- ``spgg_jax.checkpoint``: orbax checkpointing and resume.
- ``spgg_jax.cli``: the ``spgg`` command line.
"""

__version__ = "0.1.0"
