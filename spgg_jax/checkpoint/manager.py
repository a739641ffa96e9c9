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
import shutil
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

import jax
import orbax.checkpoint as ocp

from spgg_jax.errors import CheckpointError


class CheckpointSaveError(CheckpointError):
    """A checkpoint could not be written (a full disk, a read-only or forbidden directory): one line
    naming the step, the directory and the reason; ``errno`` is the operating system's code."""

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno


def _save_error(err: BaseException, step: int | str, directory: Path) -> BaseException:
    """``err`` as a :class:`CheckpointSaveError` when it is a storage failure (an ``OSError``, or
    TensorStore's ``ValueError`` carrying an ``os_error_code``); else ``err`` unchanged."""
    from spgg_jax.errors import errno_text, io_errno

    code = io_errno(err)
    if code is None:
        return err
    return CheckpointSaveError(f"checkpoint step {step} could not be saved in {directory}: {errno_text(code)}", code)


def _one_line(err: BaseException) -> str:
    """``Type: first line of the message`` (at most 300 characters): TensorStore errors span pages."""
    lines = str(err).strip().splitlines()
    msg = lines[0] if lines else ""
    return f"{type(err).__name__}: {msg}"[:300]


#: what an unfinished orbax save leaves behind (``<step>.orbax-checkpoint-tmp-<time>``)
TMP_MARK = ".orbax-checkpoint-tmp"
#: the name a bad or orphaned checkpoint is moved to: ``<step>.set-aside-<time>`` (orbax ignores it)
SET_ASIDE_MARK = ".set-aside-"


class Checkpointer:
    """Save / restore ``(state pytree, meta dict)`` under ``directory`` keeping the last ``keep``.

    ``read_only=True`` opens an existing directory for reading only: nothing is created, cleaned
    or deleted (what a resume uses while it checks the run, before it changes anything)."""

    def __init__(self, directory: str | Path, keep: int = 3, async_save: bool = True, read_only: bool = False):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = Path(directory).absolute()
        if read_only:
            options = ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0)
        else:
            options = ocp.CheckpointManagerOptions(
                max_to_keep=keep, enable_async_checkpointing=async_save, cleanup_tmp_directories=True, create=True
            )
        self._mgr = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

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
        try:
            started = self._mgr.save(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(dict(meta))),
                force=force,
            )
        except Exception as err:  # a failed write (this save's, or an earlier asynchronous one's)
            raise _save_error(err, step, self.directory) from err
        self._pending = step
        return started

    def wait(self) -> None:
        """Block until pending asynchronous saves are complete (a failed write: :class:`CheckpointSaveError`)."""
        try:
            self._mgr.wait_until_finished()
        except Exception as err:
            raise _save_error(err, getattr(self, "_pending", "?"), self.directory) from err

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
        candidates = [step]
        if step == latest:
            candidates += sorted((s for s in self.all_steps() if s < step), reverse=True)
        state, meta, s, failures = self.restore_first_intact(abstract_state, candidates)
        if s != step:
            warnings.warn(f"checkpoint step {step} in {self.directory} is unreadable "
                          f"({failures[0][1]}); restored step {s}, the newest "
                          f"intact checkpoint, instead", RuntimeWarning, stacklevel=2)
        return state, meta, s

    def restore_first_intact(self, abstract_state: Any, steps: list[int]) -> tuple[Any, dict, int, list[tuple[int, str]]]:
        """Restore the first readable checkpoint of ``steps`` (in that order): ``(state, meta, step,
        failures)``, ``failures`` the ``(step, one-line reason)`` of each unreadable step tried before
        it. ``CheckpointError`` (one line, naming the steps and the directory) when none is readable."""
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, abstract_state)
        failures: list[tuple[int, str]] = []
        for s in steps:
            try:
                state, meta = self._restore_step(abstract, s)
            except Exception as err:  # orbax/tensorstore/json errors: each becomes one line
                failures.append((s, _one_line(err)))
                continue
            return state, meta, s, failures
        if len(failures) == 1:
            raise CheckpointError(f"checkpoint step {failures[0][0]} in {self.directory} is unreadable: "
                                  f"{failures[0][1]}")
        raise CheckpointError(f"no intact checkpoint in {self.directory}: "
                              + "; ".join(f"step {s}: {why}" for s, why in failures))

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
        try:
            self.wait()
        finally:
            self._mgr.close()


def unfinished_saves(directory: str | Path) -> list[Path]:
    """The temporary folders unfinished saves left in ``directory`` (``*.orbax-checkpoint-tmp*``)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if TMP_MARK in p.name)


def set_aside(directory: str | Path, step: int) -> Path:
    """Move checkpoint ``step`` of ``directory`` to ``<step>.set-aside-<UTC time>`` beside it (orbax
    no longer sees it; nothing is deleted) and return the new path."""
    src = Path(directory) / str(step)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dst = src.with_name(f"{step}{SET_ASIDE_MARK}{stamp}")
    n = 1
    while dst.exists():
        n += 1
        dst = src.with_name(f"{step}{SET_ASIDE_MARK}{stamp}-{n}")
    src.rename(dst)
    return dst


def remove_unfinished_saves(directory: str | Path) -> list[Path]:
    """Delete the temporary folders of unfinished saves in ``directory``; returns what was removed."""
    gone = unfinished_saves(directory)
    for p in gone:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    return gone


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

    ``requested`` is the signal's name and ``signum`` its number (the first one received); ``spgg
    train`` then exits with the conventional status ``128 + signum`` (143 for SIGTERM, 130 for
    SIGINT). A second SIGINT raises ``KeyboardInterrupt`` at once. Only installable from the main thread.
    """

    def __init__(self, signals=(signal.SIGTERM, signal.SIGINT)):
        self.requested: str | None = None
        self.signum: int | None = None
        self._old = {}
        if threading.current_thread() is threading.main_thread():
            for s in signals:
                self._old[s] = signal.signal(s, self._handle)

    def _handle(self, signum, frame):
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.requested is None:
            self.requested = signal.Signals(signum).name
            self.signum = int(signum)

    def restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}
