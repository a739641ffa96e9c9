"""Probing the host for the kernel layers: namespaces (``unshare``), Landlock, seccomp, and the
pieces of the command line they need (``setpriv``, the files the jail masks, interpreters).

Each probe runs once per process; answers are kept in :data:`probe_cache` under
:data:`probe_lock` (also used by :func:`.api.resolve_layers`, which runs probe programs).
"""

from __future__ import annotations

import glob
import os
import platform
import shutil
import subprocess
import sys
import threading
from typing import Optional

from .seccomp import AUDIT_ARCH

probe_lock = threading.Lock()
probe_cache: dict[tuple, object] = {}

#: Extension modules a jailed program cannot load under any name: their files are masked with
#: /dev/null wherever the jail shows a Python library dir (lib-dynload, site-packages,
#: dist-packages of the interpreter's prefix, /usr and /usr/local), so a copy or an alias loads
#: nothing either.
MASKED_EXTENSIONS = ("_ctypes", "_ctypes_test", "_testcapi", "_testinternalcapi",
                     "_xxsubinterpreters", "_xxinterpchannels", "_posixsubprocess", "_cffi_backend",
                     "mmap", "_posixshmem", "_multiprocessing")


def landlock_abi() -> int:
    """Landlock ABI version of this kernel (0 when it has none), asked once per process."""
    with probe_lock:
        if "landlock" in probe_cache:
            return probe_cache["landlock"]  # type: ignore[return-value]
    abi = 0
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        v = libc.syscall(444, None, ctypes.c_ulong(0), ctypes.c_ulong(1))
        abi = int(v) if v > 0 else 0
    except Exception:
        abi = 0
    with probe_lock:
        probe_cache["landlock"] = abi
    return abi


def kernel_filters_possible() -> bool:
    """seccomp filters exist here (``Seccomp:`` in /proc/self/status) and the arch is known."""
    try:
        with open("/proc/self/status") as f:
            has = any(line.startswith("Seccomp:") for line in f)
    except OSError:
        has = False
    return has and platform.machine() in AUDIT_ARCH


def unshare_cmd(jail: bool) -> Optional[list[str]]:
    """The ``unshare`` prefix that works here (network + PID namespace, an IPC namespace where the
    kernel has them, plus a mount namespace when ``jail``), or ``None``. Not root: inside a new
    user namespace (mapped to root there). The IPC namespace makes every SysV object and POSIX
    message queue of the run die with it (the seccomp filter also refuses to create them)."""
    key = ("unshare", jail)
    with probe_lock:
        if key in probe_cache:
            return probe_cache[key]  # type: ignore[return-value]
        exe = shutil.which("unshare")
        found = None
        if exe is not None:
            extra = ["--mount", "--propagation", "private"] if jail else []
            user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
            bases = [[exe] + user + extra + ["--net", "--pid"] + ipc + ["--fork", "--kill-child"]
                     for ipc in (["--ipc"], [])]
            for base in bases:
                try:
                    r = subprocess.run(base + ["--", "true"], capture_output=True, timeout=10)
                except (OSError, subprocess.SubprocessError):
                    continue
                if r.returncode == 0:
                    found = base + ["--"]
                    break
        probe_cache[key] = found
        return found


def setpriv_cmd(drop_caps: bool) -> list[str]:
    """``setpriv`` prefix: no new privileges (set-uid binaries cannot gain any); with
    ``drop_caps`` also no capabilities at all (the user-namespace root of a non-root run)."""
    exe = shutil.which("setpriv")
    if exe is None:
        return []
    cmd = [exe, "--no-new-privs"]
    if drop_caps:
        cmd += ["--inh-caps=-all", "--bounding-set=-all"]
    return cmd + ["--"]


def interpreter_prefix(python: str) -> str:
    """The install prefix of ``python`` (the jail shows it read-only: e.g. a pyenv install)."""
    return os.path.dirname(os.path.dirname(os.path.realpath(python)))


def masked_files(python: str) -> list[str]:
    """The files of :data:`MASKED_EXTENSIONS` below every Python library dir the jail shows
    (searched once per interpreter and process)."""
    key = ("masked", python)
    with probe_lock:
        if key in probe_cache:
            return list(probe_cache[key])  # type: ignore[arg-type]
    out: list[str] = []
    names = frozenset(MASKED_EXTENSIONS)
    for prefix in dict.fromkeys([interpreter_prefix(python), "/usr", "/usr/local"]):
        for lib in ("lib", "lib64"):
            for pydir in glob.glob(os.path.join(prefix, lib, "python3*")):
                for root, _dirs, files in os.walk(pydir):
                    for f in files:
                        if f.partition(".")[0] in names and (f.endswith(".so") or ".so." in f):
                            p = os.path.join(root, f)
                            if os.path.isfile(p) and not os.path.islink(p):
                                out.append(p)
    out = sorted(set(out))
    with probe_lock:
        probe_cache[key] = tuple(out)
    return out


def candidate_pythons(explicit: Optional[str]) -> list[str]:
    """Interpreters to try, in order: ``explicit`` alone, else this one, its base and the system's."""
    if explicit:
        return [explicit]
    cands = [sys.executable, getattr(sys, "_base_executable", None), "/usr/bin/python3",
             "/usr/local/bin/python3", shutil.which("python3")]
    out: list[str] = []
    for c in cands:
        if c and os.path.exists(c) and c not in out:
            out.append(c)
    return out

