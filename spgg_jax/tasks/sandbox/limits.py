"""``SandboxLimits``: the resource limits and layer switches of one sandboxed run."""

from __future__ import annotations

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class SandboxLimits:
    """Resource limits and layer switches for one sandboxed run.

    Attributes:
      timeout_s: wall-clock limit in seconds; on expiry the whole process group is SIGKILLed.
      cpu_s: CPU-time limit (``RLIMIT_CPU``) in whole seconds; ``None`` means ``ceil(timeout_s)``.
      memory_mb: the run's whole memory in MiB: the address-space limit (``RLIMIT_AS``) plus, in
        the jail, its two tmpfs mounts (``RLIMIT_AS`` is ``memory_mb - 2 * tmpfs_mb`` there), so
        files written to ``/box``, ``/tmp`` or ``/dev/shm`` count too. SysV shared memory and
        ``memfd_create`` are refused (seccomp) and SysV objects die with the IPC namespace.
      max_file_bytes: largest file the program may write, stdout/stderr included (``RLIMIT_FSIZE``).
      max_output_bytes: how much of stdout and of stderr the result keeps (head + tail).
      max_procs: ``RLIMIT_NPROC`` for the program's uid (processes and threads). Enforced only
        when privileges are dropped or when not running as root.
      max_open_files: ``RLIMIT_NOFILE``.
      namespaces: run under ``unshare --net --pid``; ``None`` = when available.
      jail: also a mount namespace whose root is a fresh tmpfs with read-only system dirs, a
        private ``/tmp`` and ``/dev/shm``, a ``/proc`` of the run's PID namespace only and no
        ctypes (see ``jail.sh``); ``None`` = when available.
      tmpfs_mb: size of the jail's writable root (box and ``/tmp``) and of its ``/dev/shm``, each
        (both inside ``memory_mb``, which must be at least ``2 * tmpfs_mb + 64``).
      max_files: files and directories the program may create in each of them (inodes).
      drop_privileges: when root, run the program as a fresh unused uid; ``None`` = when possible.
      audit_hook: install the blocking audit hook (turn off only to test the other layers).
      python: interpreter to use; ``None`` picks one that works with the chosen layers.
      kernel_filters: a trusted pre-exec stage installs a seccomp filter (and a Landlock ruleset
        where the kernel has Landlock) before the bootstrap starts (see ``pre_exec.py``);
        ``None`` = when available.
    """

    timeout_s: float = 10.0
    cpu_s: Optional[int] = None
    memory_mb: int = 1024
    max_file_bytes: int = 4 * 1024 * 1024
    max_output_bytes: int = 64 * 1024
    max_procs: int = 8
    max_open_files: int = 64
    namespaces: Optional[bool] = None
    jail: Optional[bool] = None
    tmpfs_mb: int = 64
    max_files: int = 256
    drop_privileges: Optional[bool] = None
    audit_hook: bool = True
    python: Optional[str] = None
    kernel_filters: Optional[bool] = None

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"SandboxLimits.timeout_s must be > 0, got {self.timeout_s!r}")
        if self.cpu_s is not None and self.cpu_s < 1:
            raise ValueError(f"SandboxLimits.cpu_s must be >= 1 or None, got {self.cpu_s!r}")
        if self.memory_mb < 64:
            raise ValueError(f"SandboxLimits.memory_mb must be >= 64, got {self.memory_mb!r}")
        for name in ("max_file_bytes", "max_output_bytes", "max_procs", "max_open_files",
                     "tmpfs_mb", "max_files"):
            if getattr(self, name) < 1:
                raise ValueError(f"SandboxLimits.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.memory_mb < 2 * self.tmpfs_mb + 64:
            raise ValueError(f"SandboxLimits.memory_mb must be >= 2 * tmpfs_mb + 64 = "
                             f"{2 * self.tmpfs_mb + 64} (the jail's two tmpfs mounts count in the "
                             f"run's memory), got memory_mb={self.memory_mb!r}, tmpfs_mb={self.tmpfs_mb!r}")

    @property
    def cpu_limit(self) -> int:
        """``RLIMIT_CPU`` in whole seconds: ``cpu_s``, or ``ceil(timeout_s)`` when it is ``None``."""
        return int(self.cpu_s) if self.cpu_s is not None else max(1, int(-(-self.timeout_s // 1)))
