"""Orbax checkpointing: atomic saves, keep-last-N, resume order, signal-safe stops."""

from spgg_jax.checkpoint.manager import (CheckpointError, Checkpointer, CheckpointSaveError, StopSignal,
                                         remove_unfinished_saves, resolve_resume, set_aside, unfinished_saves)

__all__ = ["CheckpointError", "CheckpointSaveError", "Checkpointer", "StopSignal", "remove_unfinished_saves",
           "resolve_resume", "set_aside", "unfinished_saves"]
