"""One sandboxed run under layers already chosen: the box, the stages' command line, the
subprocess, and the result.

:func:`run_program` is what :func:`.api.run_python` (and the layer probe) call. Its steps, in order:
:func:`_prepare_box` (a fresh work dir holding the box with the program and its files, owned by a
fresh uid when privileges are dropped), :func:`_command` (``unshare`` + ``jail.sh`` + ``pre_exec.py``
+ ``setpriv`` + ``bootstrap.py``, each part only where its layer is on), :func:`_start` and
:func:`_wait` (the subprocess in a new session, SIGKILL to its process group at the end),
:func:`_result` (output, exit status and the status it means). :class:`_Run` holds what the run
must release however it ends (descriptors, the subprocess, the uid's processes and files, the
work dir).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import signal
import subprocess
import tempfile
import time
from typing import IO, Any, Mapping, Optional

from .layers import interpreter_prefix, landlock_abi, masked_files, setpriv_cmd
from .limits import SandboxLimits
from .result import SandboxResult
from .seccomp import seccomp_program
from .stages import (BLOCKED_EXIT, BLOCKED_IMPORTS, BLOCKED_MARK, BOOT_ERROR_EXIT, BOOT_ERROR_MARK, BOOTSTRAP,
                     JAIL_BOX, JAIL_SH, PRE_EXEC)
from .uids import fresh_uid, kill_uid, remove_uid_files

#: Device nodes the Landlock ruleset lets the program write (all harmless).
_WRITABLE_DEVICES = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"]


def run_program(
    code: str,
    limits: SandboxLimits,
    python: str,
    ns: Optional[list[str]],
    jail: bool,
    drop: bool,
    files: Optional[Mapping[str, str]],
    pass_fds: Optional[list[int]] = None,
    filters: bool = False,
) -> SandboxResult:
    """Run the source ``code`` with interpreter ``python`` under the ``unshare`` prefix ``ns``
    (``None``: no namespaces), in the jail or not, as a fresh uid (``drop``) or not, with the
    kernel filters of the pre-exec stage (``filters``) or not.

    ``pass_fds`` (a list, emptied once the descriptors are closed) are inherited by the program and
    closed here. Never raises for anything the program does; infrastructure failures give status
    ``error``.
    """
    t0 = time.monotonic()
    layers = _layer_names(limits, ns, jail, drop, filters)
    run = _Run(work=tempfile.mkdtemp(prefix="spgg-sandbox-"), jail=jail,
               pass_fds=pass_fds if pass_fds is not None else [])
    try:
        _prepare_box(run, code, files, drop)
        cmd = _command(run, limits, python, ns, filters)
        with open(run.out_path, "wb") as out_f, open(run.err_path, "wb") as err_f:
            try:
                _start(run, cmd, out_f, err_f)
            except OSError as e:
                return SandboxResult("error", None, "", "", time.monotonic() - t0,
                                     reason=f"could not start the sandbox: {e!r}", layers=layers)
            timed_out = _wait(run, limits)
        run.release_uid()
        return _result(run, limits, timed_out, time.monotonic() - t0, layers)
    except Exception as e:  # infrastructure failure: never the caller's crash
        return SandboxResult("error", None, "", "", time.monotonic() - t0,
                             reason=f"sandbox failure: {e!r}", layers=layers)
    finally:
        run.close()


@dataclasses.dataclass
class _Run:
    """The state of one run: its work dir and what it must release however it ends.

    The work dir holds ``box/`` (the program's dir: ``main.py`` and its files), ``root/`` (the
    mount point of the jail's new root), ``status.json`` (written by the supervisor only) and the
    program's ``stdout`` and ``stderr``.
    """

    work: str
    jail: bool
    pass_fds: list[int]
    status_fd: list[int] = dataclasses.field(default_factory=list)
    uid: Optional[int] = None
    gid: Optional[int] = None
    proc: Optional[subprocess.Popen] = None

    @property
    def box(self) -> str:
        return os.path.join(self.work, "box")

    @property
    def jail_root(self) -> str:
        return os.path.join(self.work, "root")

    @property
    def inner_box(self) -> str:
        """The box as the program sees it (``/box`` in the jail)."""
        return JAIL_BOX if self.jail else self.box

    @property
    def status_path(self) -> str:
        return os.path.join(self.work, "status.json")

    @property
    def out_path(self) -> str:
        return os.path.join(self.work, "stdout")

    @property
    def err_path(self) -> str:
        return os.path.join(self.work, "stderr")

    def release_uid(self) -> None:
        """Kill every process of the run's fresh uid and, without the jail, delete the files it
        left in the shared temporary dirs (nothing when no uid was allocated)."""
        if self.uid is not None:
            kill_uid(self.uid)
            if not self.jail:
                remove_uid_files(self.uid)

    def close(self) -> None:
        """Release everything: descriptors, the subprocess's group, the uid, the work dir."""
        close_fds(self.status_fd)
        close_fds(self.pass_fds)
        if self.proc is not None and self.proc.poll() is None:
            _kill_group(self.proc)
        self.release_uid()
        shutil.rmtree(self.work, ignore_errors=True)


def _layer_names(limits: SandboxLimits, ns: Optional[list[str]], jail: bool, drop: bool,
                 filters: bool) -> tuple[str, ...]:
    """The layers that apply to a run (:attr:`SandboxResult.layers`)."""
    layers = ["subprocess", "isolated-python", "rlimits"]
    if ns:
        layers.append("namespaces")
        if "--ipc" in ns:
            layers.append("ipc-namespace")
        if os.geteuid() != 0:
            layers.append("user-namespace")
    if jail:
        layers.append("jail")
    if drop:
        layers.append("uid-drop")
    if filters:
        layers.append("seccomp")
        if landlock_abi() > 0:
            layers.append("landlock")
    if limits.audit_hook:
        layers.append("audit-hook")
    return tuple(layers)


def _prepare_box(run: _Run, code: str, files: Optional[Mapping[str, str]], drop: bool) -> None:
    """Make the box (``main.py`` and ``files``); with ``drop``, allocate a fresh uid that owns it."""
    os.chmod(run.work, 0o711)
    box = run.box
    os.mkdir(box, 0o700)
    os.mkdir(run.jail_root, 0o700)
    with open(os.path.join(box, "main.py"), "w", encoding="utf-8") as f:
        f.write(code)
    for name, content in (files or {}).items():
        dest = os.path.realpath(os.path.join(box, name))
        if not dest.startswith(box + os.sep):
            raise ValueError(f"run_python: file name {name!r} escapes the sandbox dir")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "w", encoding="utf-8") as f:
            f.write(content)
    if drop:
        run.uid = run.gid = fresh_uid()
        for root, dirs, fnames in os.walk(box):
            for n in [root] + [os.path.join(root, x) for x in dirs + fnames]:
                os.chown(n, run.uid, run.gid)


def _rlimits(limits: SandboxLimits, jail: bool) -> list[tuple[str, int, int]]:
    """(name, soft, hard) of each rlimit the bootstrap sets on the program."""
    cpu = limits.cpu_limit
    # the jail's tmpfs mounts (root and /dev/shm) hold memory too: the address space gets the rest
    mem = (limits.memory_mb - (2 * limits.tmpfs_mb if jail else 0)) * 1024 * 1024
    return [
        ("RLIMIT_CORE", 0, 0),
        ("RLIMIT_CPU", cpu, cpu + 1),
        ("RLIMIT_AS", mem, mem),
        ("RLIMIT_FSIZE", limits.max_file_bytes, limits.max_file_bytes),
        ("RLIMIT_NOFILE", limits.max_open_files, limits.max_open_files),
        ("RLIMIT_NPROC", limits.max_procs, limits.max_procs),
    ]


def _bootstrap_config(run: _Run, limits: SandboxLimits) -> dict[str, Any]:
    """The bootstrap's ``CONFIG``; opens the status file whose descriptor the supervisor inherits."""
    inner_box = run.inner_box
    run.status_fd.append(os.open(run.status_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    return {
        "box": inner_box,
        "program": os.path.join(inner_box, "main.py"),
        "status_fd": run.status_fd[0],
        "rlimits": _rlimits(limits, run.jail),
        "uid": run.uid,
        "gid": run.gid,
        "audit_hook": limits.audit_hook,
        "blocked_mark": BLOCKED_MARK,
        "blocked_exit": BLOCKED_EXIT,
        "boot_mark": BOOT_ERROR_MARK,
        "boot_exit": BOOT_ERROR_EXIT,
        "blocked_imports": list(BLOCKED_IMPORTS),
    }


def _pre_exec_cmd(python: str, masked: list[str], run: _Run) -> list[str]:
    """``python -c PRE_EXEC CONFIG``: masks ``masked``, installs Landlock and seccomp, then
    exec()s the rest of the command line (appended after it)."""
    pre_cfg = {
        "mask": masked, "boot_mark": BOOT_ERROR_MARK, "boot_exit": BOOT_ERROR_EXIT,
        "landlock_abi": landlock_abi(), "bpf": seccomp_program(platform.machine()).hex(),
        "writable_dirs": [JAIL_BOX, "/tmp", "/dev/shm"] if run.jail else [run.box],
        "writable_files": list(_WRITABLE_DEVICES),
    }
    return [python, "-I", "-S", "-B", "-c", PRE_EXEC, json.dumps(pre_cfg)]


def _jail_cmd(run: _Run, limits: SandboxLimits, python: str, masked: list[str]) -> list[str]:
    """``/bin/sh -c JAIL_SH spgg-jail ...``: builds the jail, then exec()s what follows it."""
    owner = f"{run.uid}:{run.gid}" if run.uid is not None else ""
    return ["/bin/sh", "-c", JAIL_SH, "spgg-jail", run.jail_root, run.box, f"{limits.tmpfs_mb}m",
            str(limits.max_files), owner, interpreter_prefix(python), ":".join(masked)]


def _command(run: _Run, limits: SandboxLimits, python: str, ns: Optional[list[str]],
             filters: bool) -> list[str]:
    """The whole command line: [unshare] [jail.sh] [pre_exec.py] [setpriv] bootstrap.py."""
    py_cmd = [os.path.realpath(python) if run.jail else python, "-I", "-S", "-B", "-c",
              BOOTSTRAP, json.dumps(_bootstrap_config(run, limits))]
    masked = masked_files(python) if run.jail else []
    pre_cmd: list[str] = []
    if filters:
        pre_cmd = _pre_exec_cmd(py_cmd[0], masked, run)
        masked = []  # the pre-exec stage masks them, after it has loaded _ctypes
    if run.jail:
        return (list(ns or []) + _jail_cmd(run, limits, python, masked)
                + pre_cmd + setpriv_cmd(drop_caps=os.geteuid() != 0) + py_cmd)
    return list(ns or []) + pre_cmd + setpriv_cmd(drop_caps=False) + py_cmd


def _start(run: _Run, cmd: list[str], out_f: IO[bytes], err_f: IO[bytes]) -> None:
    """Start ``cmd`` in a new session with a minimal environment; the caller's copies of the
    passed descriptors are closed once the subprocess has them. ``OSError``: it did not start."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": run.inner_box,
           "TMPDIR": run.inner_box}
    run.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out_f, stderr=err_f,
                                cwd=run.box, env=env, start_new_session=True, close_fds=True,
                                pass_fds=tuple(run.pass_fds) + tuple(run.status_fd))
    close_fds(run.pass_fds)
    close_fds(run.status_fd)


def _wait(run: _Run, limits: SandboxLimits) -> bool:
    """Wait out the wall-clock limit, then SIGKILL the process group; True when it ran out."""
    assert run.proc is not None
    timed_out = False
    try:
        # + interpreter start-up (and building the jail)
        run.proc.wait(timeout=limits.timeout_s + (1.0 if run.jail else 0.5))
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        _kill_group(run.proc)
    return timed_out


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group of ``proc`` (its own session) and reap ``proc``."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _read_status(path: str) -> dict[str, Any]:
    """What the supervisor reported (exit code, signal, CPU time); ``{}`` when it reported nothing."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _result(run: _Run, limits: SandboxLimits, timed_out: bool, wall: float,
            layers: tuple[str, ...]) -> SandboxResult:
    """The result of a finished run: its capped output and the status its exit means."""
    assert run.proc is not None
    stdout, out_trunc = read_capped(run.out_path, limits.max_output_bytes)
    stderr, err_trunc = read_capped(run.err_path, limits.max_output_bytes)
    st = _read_status(run.status_path)
    common = dict(stdout=stdout, stderr=stderr, wall_s=wall, cpu_s=st.get("cpu_s"),
                  signal=st.get("signal"), stdout_truncated=out_trunc, stderr_truncated=err_trunc,
                  layers=layers)
    return _classify(limits, st, timed_out, run.proc.returncode, common)


def _classify(limits: SandboxLimits, st: dict[str, Any], timed_out: bool, proc_rc: Optional[int],
              common: dict[str, Any]) -> SandboxResult:
    """Turn the supervisor's report ``st`` (and the outer process's ``proc_rc``) into a status."""
    rc = st.get("exitcode")
    sig = st.get("signal")
    stderr = common["stderr"]
    cpu = limits.cpu_limit
    if timed_out:
        return SandboxResult("timeout", rc, reason=f"wall-clock limit {limits.timeout_s}s", **common)
    if not st:
        return SandboxResult("error", proc_rc,
                             reason=f"no exit status from the supervisor (rc={proc_rc})", **common)
    if rc == BLOCKED_EXIT and BLOCKED_MARK in stderr:
        why = stderr.rsplit(BLOCKED_MARK, 1)[1].strip().splitlines()[0] if stderr else ""
        return SandboxResult("blocked", rc, blocked_reason=why, reason="audit hook", **common)
    if rc == BOOT_ERROR_EXIT and BOOT_ERROR_MARK in stderr:
        return SandboxResult("error", rc, reason="bootstrap failed: " +
                             stderr.rsplit(BOOT_ERROR_MARK, 1)[1].strip()[:500], **common)
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and (st.get("cpu_s") or 0) >= cpu - 0.5):
        return SandboxResult("timeout", rc, reason=f"CPU limit {cpu}s", **common)
    if rc == 0:
        return SandboxResult("passed", rc, **common)
    tail = stderr[-2000:]
    if "MemoryError" in tail or "Cannot allocate memory" in tail or "std::bad_alloc" in tail:
        return SandboxResult("memory", rc, reason=f"memory limit {limits.memory_mb} MiB", **common)
    if sig == signal.SIGXFSZ or "File too large" in tail:
        return SandboxResult("failed", rc, reason=f"file/output size limit "
                             f"{limits.max_file_bytes} bytes", **common)
    return SandboxResult("failed", rc, reason=f"killed by signal {sig}" if sig else f"exit code {rc}",
                         **common)


def close_fds(fds: list[int]) -> None:
    """Close and forget ``fds`` (a list, emptied so a second call closes nothing: a descriptor
    number closed twice could by then belong to another thread's file)."""
    while fds:
        try:
            os.close(fds.pop())
        except OSError:
            pass


def read_capped(path: str, cap: int) -> tuple[str, bool]:
    """Head and tail of a file, ``cap`` bytes in all; (text, truncated)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            if size <= cap:
                return f.read().decode("utf-8", "replace"), False
            half = cap // 2
            head = f.read(half)
            f.seek(size - (cap - half))
            tail = f.read()
    except OSError:
        return "", False
    skipped = size - len(head) - len(tail)
    text = (head.decode("utf-8", "replace") + f"\n...[{skipped} bytes truncated]...\n"
            + tail.decode("utf-8", "replace"))
    return text, True
