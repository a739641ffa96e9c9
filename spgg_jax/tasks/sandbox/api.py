"""The sandbox's public functions: :func:`run_python` and :func:`sandbox_capabilities`, and the
choice of layers behind both (:func:`resolve_layers`: the strongest combination that runs here)."""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Iterator, Mapping, Optional, Sequence

from .layers import candidate_pythons, kernel_filters_possible, landlock_abi, probe_cache, probe_lock, unshare_cmd
from .limits import SandboxLimits
from .result import SandboxResult
from .runner import close_fds, run_program

#: (interpreter, unshare prefix or None, jail, drop privileges, kernel filters)
Layers = tuple

#: The program each candidate combination of layers must run to be chosen.
_PROBE = "import math, json, re, collections, itertools, hashlib, heapq, fractions, typing\n"


def resolve_layers(limits: SandboxLimits) -> Layers:
    """Pick (interpreter, unshare prefix, jail, drop privileges, kernel filters) for these limits,
    probing once per process: the strongest combination whose probe program runs wins.

    Raises ``RuntimeError`` when a layer ``limits`` asks for (``True``) cannot be had here.
    """
    key = ("layers", limits.python, limits.namespaces, limits.jail, limits.drop_privileges,
           limits.kernel_filters)
    with probe_lock:
        if key in probe_cache:
            return probe_cache[key]  # type: ignore[return-value]
    options = _namespace_options(limits)
    is_root = os.geteuid() == 0
    if limits.drop_privileges is True and not is_root:
        raise RuntimeError("SandboxLimits(drop_privileges=True) needs root (to switch uid)")
    want_drop = is_root and limits.drop_privileges is not False
    if limits.kernel_filters is True and not kernel_filters_possible():
        raise RuntimeError("SandboxLimits(kernel_filters=True) but seccomp is not available here")
    filters = ([True] if limits.kernel_filters is True else [False] if limits.kernel_filters is False
               else [True, False] if kernel_filters_possible() else [False])
    chosen = _first_that_runs(limits, _combinations(limits, options, want_drop, filters))
    if chosen is None:
        if limits.drop_privileges is True:
            raise RuntimeError("no interpreter runs the sandbox with dropped privileges "
                               "(its standard library must be readable by other users)")
        if limits.jail is True:
            raise RuntimeError("SandboxLimits(jail=True) but no interpreter runs in the jail here")
        if limits.kernel_filters is True:
            raise RuntimeError("SandboxLimits(kernel_filters=True) but the seccomp stage does not run here")
        ns, jail = options[-1] if options else (None, False)
        chosen = (limits.python or sys.executable, ns, jail, False, False)
    with probe_lock:
        probe_cache[key] = chosen
    return chosen


def _namespace_options(limits: SandboxLimits) -> list[tuple[Optional[list[str]], bool]]:
    """(unshare prefix or None, jail) to try, strongest first: jail, namespaces only, none."""
    options: list[tuple[Optional[list[str]], bool]] = []
    if limits.namespaces is not False:
        if limits.jail is not False:
            jp = unshare_cmd(True)
            if jp is not None:
                options.append((jp, True))
        if limits.jail is not True:
            np_ = unshare_cmd(False)
            if np_ is not None:
                options.append((np_, False))
    if limits.jail is True and not options:
        raise RuntimeError("SandboxLimits(jail=True) but `unshare --mount --net --pid` does not "
                           "work here")
    if limits.namespaces is True and not options:
        raise RuntimeError("SandboxLimits(namespaces=True) but `unshare --net --pid` does not work here")
    if limits.namespaces is not True and limits.jail is not True:
        options.append((None, False))
    return options


def _combinations(limits: SandboxLimits, options: list[tuple[Optional[list[str]], bool]],
                  want_drop: bool, filters: list[bool]) -> Iterator[Layers]:
    """Every combination to probe, strongest first: namespace option, then with and without the
    uid drop, then each candidate interpreter, then with and without the kernel filters."""
    for ns, jail in options:
        for drop in ([True, False] if want_drop else [False]):
            if not drop and limits.drop_privileges is True:
                break
            for py in candidate_pythons(limits.python):
                for filt in filters:
                    yield (py, ns, jail, drop, filt)


def _first_that_runs(limits: SandboxLimits, combinations: Iterator[Layers]) -> Optional[Layers]:
    """The first combination under which the probe program passes (``None``: none does)."""
    probe_limits = dataclasses.replace(limits, timeout_s=20.0, cpu_s=20)
    for py, ns, jail, drop, filt in combinations:
        r = run_program(_PROBE, probe_limits, py, ns, jail, drop, files=None, filters=filt)
        if r.status == "passed":
            return (py, ns, jail, drop, filt)
    return None


def sandbox_capabilities(limits: Optional[SandboxLimits] = None) -> dict:
    """Which layers :func:`run_python` uses here with ``limits`` (probing them if needed)."""
    limits = limits or SandboxLimits()
    py, ns, jail, drop, filt = resolve_layers(limits)
    is_root = os.geteuid() == 0
    abi = landlock_abi() if filt else 0
    return {
        "seccomp": filt,
        "landlock": abi if filt and abi > 0 else False,
        "python": py,
        "namespaces": ns is not None,
        "ipc_namespace": ns is not None and "--ipc" in ns,
        "jail": jail,
        "user_namespace": ns is not None and not is_root,
        "drop_privileges": drop,
        "audit_hook": limits.audit_hook,
        "rlimit_nproc_enforced": drop or not is_root,
        "is_root": is_root,
    }


def run_python(
    code: str,
    limits: Optional[SandboxLimits] = None,
    *,
    files: Optional[Mapping[str, str]] = None,
    pass_fds: Sequence[int] = (),
) -> SandboxResult:
    """Run the Python source ``code`` in the sandbox and return what happened.

    Args:
      code: the program (untrusted). It runs as ``__main__`` with the sandbox dir as cwd.
      limits: resource limits and layer switches (defaults: :class:`SandboxLimits`).
      files: extra text files (relative name -> content) written into the sandbox dir first.
      pass_fds: descriptors (pipe ends) the program inherits under the same numbers. They belong
        to ``run_python`` from the call on: it closes them in the caller once the program has
        them (or when the run fails to start), so the other end sees end-of-file when the program
        ends.

    Never raises for anything the program does; infrastructure failures give status ``error``.
    """
    if not isinstance(code, str):
        raise TypeError(f"run_python: code must be a str, got {type(code).__name__}")
    limits = limits or SandboxLimits()
    fds = [int(fd) for fd in pass_fds]  # emptied by whoever closes them (never closed twice)
    try:
        try:
            py, ns, jail, drop, filt = resolve_layers(limits)
        except RuntimeError:
            raise
        except Exception as e:  # pragma: no cover - defensive
            return SandboxResult("error", None, "", "", 0.0, reason=f"layer probe failed: {e!r}")
        return run_program(code, limits, py, ns, jail, drop, files=files, pass_fds=fds, filters=filt)
    finally:
        close_fds(fds)
