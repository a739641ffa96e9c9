"""The trusted stages as source text, and what they and the runner agree on.

Three stages run before the untrusted program, each a real file in this package that is read once
at import and passed to the subprocess as text (never imported, never a path the jail would have
to show):

- ``jail.sh`` (:data:`JAIL_SH`): ``/bin/sh -c JAIL_SH spgg-jail ROOT BOX ...`` builds the jail's
  new root inside the mount namespace and ``pivot_root``s into it;
- ``pre_exec.py`` (:data:`PRE_EXEC`): ``python -I -S -B -c PRE_EXEC CONFIG ARGV...`` masks the
  ctypes-style files, installs Landlock and seccomp, then exec()s ``ARGV``;
- ``bootstrap.py`` (:data:`BOOTSTRAP`): ``python -I -S -B -c BOOTSTRAP CONFIG`` forks the
  supervisor, applies the rlimits, drops privileges, installs the audit hook, runs the program.

Nothing is formatted into them: each gets its settings as argv (the Python stages as one JSON
``CONFIG``), built by :mod:`.runner`.
"""

from __future__ import annotations

from pathlib import Path


def _source(name: str) -> str:
    """The text of the stage file ``name`` next to this module."""
    return Path(__file__).with_name(name).read_text(encoding="utf-8")


#: The in-jail Python bootstrap (``bootstrap.py``).
BOOTSTRAP = _source("bootstrap.py")
#: The pre-exec stage that installs the kernel filters (``pre_exec.py``).
PRE_EXEC = _source("pre_exec.py")
#: The shell script that builds the jail (``jail.sh``).
JAIL_SH = _source("jail.sh")

#: Exit code and stderr mark of a run the audit hook stopped (status ``blocked``).
BLOCKED_EXIT = 86
BLOCKED_MARK = "[spgg-sandbox] blocked:"
#: Exit code and stderr mark of a stage that failed before the program ran (status ``error``).
BOOT_ERROR_EXIT = 87
BOOT_ERROR_MARK = "[spgg-sandbox] bootstrap error:"

#: Where the box appears inside the jail (``jail.sh`` copies it there and ``cd``s into it).
JAIL_BOX = "/box"

# Modules whose import ends the run: a name any component of a dotted import name equals, or the
# stem of the file an extension module is loaded from. Foreign-function interfaces and raw memory
# (ctypes, cffi's C backend: any syscall, any address), memory mappings and the shared-memory and
# semaphore primitives of multiprocessing, subprocess spawning, the C-API test modules,
# subinterpreters and the profiler.
BLOCKED_IMPORTS = (
    "ctypes", "_ctypes", "_ctypes_test", "_posixsubprocess", "cffi", "_cffi_backend", "_testcapi",
    "_testinternalcapi", "_xxsubinterpreters", "_xxinterpchannels", "_lsprof", "mmap",
    "_posixshmem", "_multiprocessing",
)
