"""``SandboxResult``: what one sandboxed run did, and the statuses it can carry."""

from __future__ import annotations

import dataclasses
from typing import Optional

#: Every status a :class:`SandboxResult` can carry.
STATUSES = ("passed", "failed", "timeout", "memory", "error", "blocked")



@dataclasses.dataclass(frozen=True)
class SandboxResult:
    """Outcome of one sandboxed run.

    ``status`` is one of :data:`STATUSES`:

    - ``passed``: exit code 0;
    - ``failed``: non-zero exit (exception, failed assert, syntax error, output over the file-size
      limit, killed by a signal other than the ones below);
    - ``timeout``: wall-clock timeout or CPU limit (SIGXCPU/SIGKILL from ``RLIMIT_CPU``);
    - ``memory``: ``MemoryError`` or the address-space limit hit;
    - ``blocked``: the audit hook stopped a forbidden operation (``blocked_reason`` says which);
    - ``error``: the sandbox itself could not run the program (not the program's fault).
    """

    status: str
    returncode: Optional[int]
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: Optional[float] = None
    signal: Optional[int] = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    blocked_reason: Optional[str] = None
    reason: str = ""
    layers: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.status == "passed"
