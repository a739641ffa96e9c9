"""Orbax checkpointing with a resume order and signal-safe saving.

``Checkpointer`` wraps ``orbax.checkpoint.CheckpointManager``: each checkpoint holds the training
state pytree (params, optimizer state, RNG key data, step) and a JSON item (data-iterator position,
the resolved config, anything else the trainer needs). Saves are atomic (orbax writes a temporary
directory and renames it when complete), so a process killed during a save - even by SIGKILL -
leaves the last *complete* checkpoint as the latest one.

Resume order (as MaxText): this run's latest checkpoint, else an explicit ``resume_from``
checkpoint directory, else a fresh start.
"""

from __future__ import annotations

import json
import signal
import threading
import warnings
from pathlib import Path
from typing import Any, Mapping

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read (the message names the step and the directory)."""


def _one_line(err: BaseException) -> str:
    """``Type: first line of the message`` (at most 300 characters): TensorStore errors span pages."""
    lines = str(err).strip().splitlines()
    msg = lines[0] if lines else ""
    return f"{type(err).__name__}: {msg}"[:300]


class Checkpointer:
    """Save / restore ``(state pytree, meta dict)`` under ``directory`` keeping the last ``keep``."""

    def __init__(self, directory: str | Path, keep: int = 3, async_save: bool = True):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = Path(directory).absolute()
        self._mgr = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, enable_async_checkpointing=async_save, cleanup_tmp_directories=True, create=True
            ),
            item_names=("state", "meta"),
        )

    def latest_step(self) -> int | None:
        return self._mgr.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._mgr.all_steps())

    def save(self, step: int, state: Any, meta: Mapping[str, Any], force: bool = False) -> bool:
        """Start saving (asynchronously when enabled); returns whether a save was started."""
        try:
            json.dumps(meta)  # fail early, in the caller, on non-JSON metadata
        except TypeError as err:
            raise ValueError(f"checkpoint metadata must be JSON serializable: {err}") from None
        return self._mgr.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(dict(meta))),
            force=force,
        )

    def wait(self) -> None:
        """Block until pending asynchronous saves are complete."""
        self._mgr.wait_until_finished()

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict, int]:
        """Restore (state, meta, step); ``abstract_state`` gives structure, shapes, dtypes, shardings.

        When the latest checkpoint is asked for (``step`` None or the latest step) and it cannot be
        read (a truncated state file, a missing item, corrupted metadata), the newest intact older
        checkpoint is restored instead, with a warning naming both steps; the step returned is the
        one restored. An older step asked for explicitly is never replaced. When nothing readable
        remains, the error is one line naming the step(s) and the directory.
        """
        latest = self.latest_step()
        if step is None:
            step = latest
        if step is None:
            raise FileNotFoundError(f"no complete checkpoint in {self.directory}")
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, abstract_state)
        candidates = [step]
        if step == latest:
            candidates += sorted((s for s in self.all_steps() if s < step), reverse=True)
        failures: list[str] = []
        for s in candidates:
            try:
                state, meta = self._restore_step(abstract, s)
            except Exception as err:  # orbax/tensorstore/json errors: each becomes one line
                failures.append(f"step {s}: {_one_line(err)}")
                continue
            if s != step:
                warnings.warn(f"checkpoint step {step} in {self.directory} is unreadable "
                              f"({failures[0].split(': ', 1)[1]}); restored step {s}, the newest "
                              f"intact checkpoint, instead", RuntimeWarning, stacklevel=2)
            return state, meta, s
        if len(candidates) == 1:
            raise CheckpointError(f"checkpoint step {step} in {self.directory} is unreadable: "
                                  f"{failures[0].split(': ', 1)[1]}")
        raise CheckpointError(f"no intact checkpoint in {self.directory}: " + "; ".join(failures))

    def _restore_step(self, abstract: Any, step: int) -> tuple[Any, dict]:
        step_dir = self.directory / str(step)
        for item in ("state", "meta"):
            if not (step_dir / item).is_dir():
                raise FileNotFoundError(f"item {item!r} is missing ({step_dir / item})")
        out = self._mgr.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
        )
        meta = out["meta"]
        if not isinstance(meta, Mapping):
            raise ValueError(f"metadata is a {type(meta).__name__}, not a JSON object")
        return out["state"], dict(meta)

    def close(self) -> None:
        self._mgr.wait_until_finished()
        self._mgr.close()


def resolve_resume(run_ckpt_dir: str | Path, resume_from: str | Path | None = None) -> tuple[Path, int] | None:
    """Where to resume from: (checkpoint dir, step) of this run's latest, else ``resume_from``'s, else None."""
    for d in (run_ckpt_dir, resume_from):
        if d is None or not Path(d).exists():
            continue
        mgr = ocp.CheckpointManager(Path(d).absolute(), options=ocp.CheckpointManagerOptions(read_only=True))
        step = mgr.latest_step()
        mgr.close()
        if step is not None:
            return Path(d), step
    if resume_from is not None:
        raise FileNotFoundError(f"--resume-from {resume_from}: no complete checkpoint there")
    return None


class StopSignal:
    """Turns SIGTERM / SIGINT into a flag the training loop checks after each step (then saves and exits).

    A second SIGINT raises ``KeyboardInterrupt`` at once. Only installable from the main thread.
    """

    def __init__(self, signals=(signal.SIGTERM, signal.SIGINT)):
        self.requested: str | None = None
        self._old = {}
        if threading.current_thread() is threading.main_thread():
            for s in signals:
                self._old[s] = signal.signal(s, self._handle)

    def _handle(self, signum, frame):
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}
