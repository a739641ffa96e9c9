"""Orbax checkpointing: atomic saves, keep-last-N, resume order, signal-safe stops."""

from spgg_jax.checkpoint.manager import CheckpointError, Checkpointer, StopSignal, resolve_resume

__all__ = ["CheckpointError", "Checkpointer", "StopSignal", "resolve_resume"]
