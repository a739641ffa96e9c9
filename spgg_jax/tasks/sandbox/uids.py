"""The fresh uid a root run drops to: allocating it, and removing what it left behind."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import threading
import time

_uid_counter = itertools.count()
_uid_lock = threading.Lock()

#: World-writable places a run without the jail could leave files in (cleaned by owner uid).
SHARED_TMP_DIRS = ("/dev/shm", "/tmp", "/var/tmp", "/run/shm", "/run/lock")


def fresh_uid() -> int:
    """A uid no real account uses, unique per run within this process and (by pid) across."""
    with _uid_lock:
        n = next(_uid_counter)
    return 2_000_000_000 + (os.getpid() % 100_000) * 1000 + (n % 1000)


def kill_uid(uid: int) -> None:
    """SIGKILL every process owned by ``uid`` (only ever a fresh sandbox uid)."""
    for _ in range(3):
        found = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/status") as f:
                    for line in f:
                        if line.startswith("Uid:"):
                            if int(line.split()[1]) == uid:
                                found = True
                                os.kill(int(entry), signal.SIGKILL)
                            break
            except (OSError, ValueError):
                continue
        if not found:
            return
        time.sleep(0.01)


def remove_uid_files(uid: int) -> None:
    """Delete what the run's fresh uid left in the shared temporary dirs (no-jail runs)."""
    for d in SHARED_TMP_DIRS:
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            try:
                if e.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if e.is_dir(follow_symlinks=False):
                    shutil.rmtree(e.path, ignore_errors=True)
                else:
                    os.unlink(e.path)
            except OSError:
                continue
