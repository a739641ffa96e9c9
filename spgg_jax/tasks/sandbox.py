"""Run untrusted (model-generated) Python in a contained subprocess.

Model output is never ``exec``'d in the calling process. :func:`run_python` writes the program into
a fresh temporary directory and runs it in a new interpreter under several independent layers; any
one of them alone stops the common failure modes, and together they make the rest hard:

============================  ===============================================================
layer                         what it stops
============================  ===============================================================
subprocess, new session       crashes/exits of the program never touch the caller; a
                              wall-clock timeout kills the whole process group (SIGKILL)
``python -I -S -B``           isolated mode: no ``PYTHON*`` env vars, no user/site packages,
                              no script dir on ``sys.path``, no ``.pyc`` writes
minimal environment           ``PATH=/usr/bin:/bin``, ``HOME``/``TMPDIR`` = the sandbox dir
rlimits (kernel)              ``RLIMIT_CPU`` (CPU seconds), ``RLIMIT_AS`` (memory),
                              ``RLIMIT_FSIZE`` (file and output size), ``RLIMIT_NOFILE``,
                              ``RLIMIT_CORE=0``, ``RLIMIT_NPROC`` (processes+threads)
privilege drop (root only)    the program runs as a fresh, otherwise unused uid/gid, so
                              ``RLIMIT_NPROC`` is really enforced (the kernel ignores it for
                              root), ordinary file permissions stop writes outside the
                              sandbox dir, it cannot signal other users' processes, and
                              ``PR_SET_NO_NEW_PRIVS`` stops set-uid binaries regaining root
jail (mount namespace)        a new root on a size- and inode-limited tmpfs with read-only
                              system dirs, private ``/tmp`` and ``/dev/shm`` (both counted in
                              ``memory_mb``), a ``/proc`` of the run only, ctypes, the C FFI
                              backend, mmap and the shared-memory modules masked, entered
                              with ``pivot_root``; the host filesystem is unreachable (as
                              root, and as an ordinary user through a user namespace, with no
                              capabilities left)
namespaces (``unshare``)      a new network namespace (only a down loopback: no network at
                              all, not even 127.0.0.1) and a new PID namespace whose init is
                              our supervisor, so every process the program left behind is
                              killed by the kernel when the run ends; a new IPC namespace, so
                              SysV objects and POSIX message queues die with the run
seccomp + Landlock            installed by a trusted pre-exec stage (the only code that
                              loads ctypes; it exec()s away) after the jail is built: a
                              classic-BPF filter that checks the arch and answers EPERM to
                              non-AF_UNIX sockets, ptrace, mount, namespaces, bpf, perf,
                              keyrings, modules, io_uring, SysV IPC, POSIX message queues,
                              memfd_create, ...; where the kernel has
                              Landlock, writes only below the box, /tmp and /dev/shm
audit hook (PEP 578)          installed by the bootstrap before user code runs; ends the
                              program (status ``blocked``) on fork/exec/spawn/subprocess,
                              socket creation/connect/DNS, ``os.kill``, writes, deletes,
                              renames, chmods outside the sandbox dir, importing
                              ``ctypes``/``_posixsubprocess``/``cffi``/``mmap``/... (any
                              component of the name, or the file's stem), ``gc`` object
                              walking, ``sys.settrace``/``setprofile`` and code/defaults
                              patching of functions
output cap                    stdout/stderr go to files limited by ``RLIMIT_FSIZE``; the
                              result keeps the head and tail (``max_output_bytes``)
============================  ===============================================================

What it does not protect against (see ``docs/tasks.md``, which says what each machine without a
kernel feature loses): reading what the jail exposes (``/usr``, ``/etc``), CPU and memory use up
to the limits, kernel exploits, and, where the jail is unavailable, a determined attacker who
defeats the audit hook from pure Python (PEP 578 says plainly that audit hooks are not a
sandbox); those are why the kernel layers exist. Results are also only as honest as the program: an adversarial program
could print a forged success marker (scorers use a per-run random nonce to make accidental
forgery impossible).

Layers that need privileges (privilege drop, namespaces) are probed once per process and used
when they work; :func:`sandbox_capabilities` reports which are active, and each
:class:`SandboxResult` lists the layers that applied to that run.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Mapping, Optional, Sequence

__all__ = [
    "SandboxLimits",
    "SandboxResult",
    "STATUSES",
    "run_python",
    "sandbox_capabilities",
]

#: Every status a :class:`SandboxResult` can carry.
STATUSES = ("passed", "failed", "timeout", "memory", "error", "blocked")

_BLOCKED_EXIT = 86
_BOOT_ERROR_EXIT = 87
_BLOCKED_MARK = "[spgg-sandbox] blocked:"
_BOOT_ERROR_MARK = "[spgg-sandbox] bootstrap error:"


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
        ctypes (see ``_JAIL_SH``); ``None`` = when available.
      tmpfs_mb: size of the jail's writable root (box and ``/tmp``) and of its ``/dev/shm``, each
        (both inside ``memory_mb``, which must be at least ``2 * tmpfs_mb + 64``).
      max_files: files and directories the program may create in each of them (inodes).
      drop_privileges: when root, run the program as a fresh unused uid; ``None`` = when possible.
      audit_hook: install the blocking audit hook (turn off only to test the other layers).
      python: interpreter to use; ``None`` picks one that works with the chosen layers.
      kernel_filters: a trusted pre-exec stage installs a seccomp filter (and a Landlock ruleset
        where the kernel has Landlock) before the bootstrap starts (see ``_PRE_EXEC``);
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
        return int(self.cpu_s) if self.cpu_s is not None else max(1, int(-(-self.timeout_s // 1)))


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


# --------------------------------------------------------------------------------------------
# The bootstrap: trusted code that runs first in the fresh interpreter.
# It forks once: the parent (the supervisor; PID 1 of the new PID namespace when there is one)
# waits and writes the child's exit status to a file the child cannot write; the child applies
# rlimits, drops privileges, installs the audit hook and only then runs the program.
# --------------------------------------------------------------------------------------------
_BOOTSTRAP = r'''
import os, sys, json, resource
cfg = json.loads(sys.argv[1])

def _boot_fail(msg):
    os.write(2, ("\n%s %s\n" % (BOOT_MARK, msg)).encode("utf-8", "replace"))
    os._exit(BOOT_EXIT)

BOOT_MARK = cfg["boot_mark"]; BOOT_EXIT = cfg["boot_exit"]
try:
    pid = os.fork()
except OSError as e:
    _boot_fail("fork of the supervisor failed: %r" % (e,))
if pid:
    import signal
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)
    while True:
        try:
            _, status, ru = os.wait4(pid, 0)
            break
        except InterruptedError:
            continue
    res = {"cpu_s": ru.ru_utime + ru.ru_stime, "maxrss_kb": ru.ru_maxrss}
    if os.WIFSIGNALED(status):
        res["signal"] = os.WTERMSIG(status); res["exitcode"] = -res["signal"]
    else:
        res["signal"] = None; res["exitcode"] = os.WEXITSTATUS(status)
    with os.fdopen(cfg["status_fd"], "w") as f:
        json.dump(res, f)
    os._exit(0)

# ---- child: limits, privileges, hook, program ----
try:
    os.close(cfg["status_fd"])  # only the supervisor reports the exit status
    for name, soft, hard in cfg["rlimits"]:
        resource.setrlimit(getattr(resource, name), (soft, hard))
    if cfg["uid"] is not None:
        # PR_SET_NO_NEW_PRIVS was set by `setpriv` before this interpreter started (ctypes is
        # never loaded here: a loaded _ctypes could be imported again by the program).
        os.setgroups([])
        os.setgid(cfg["gid"])
        os.setuid(cfg["uid"])
        if os.getuid() != cfg["uid"] or os.geteuid() != cfg["uid"]:
            _boot_fail("privilege drop did not take effect")
    os.chdir(cfg["box"])
    os.umask(0o077)
    with open(cfg["program"], "r", encoding="utf-8") as f:
        _src = f.read()
    _code = compile(_src, cfg["program"], "exec")
except SyntaxError:
    raise
except BaseException as e:
    _boot_fail(repr(e))


def _install_hook(box, blocked_mark, blocked_exit, blocked_imports):
    # Only C functions captured now and str/bytes methods (which a program cannot replace) are
    # used below: no standard-library Python helper whose globals the program could patch.
    import stat as _stat_mod
    _lstat = os.lstat
    _stat = os.stat
    _readlink = os.readlink
    _S_ISLNK = _stat_mod.S_ISLNK
    _S_ISDIR = _stat_mod.S_ISDIR
    _getcwd = os.getcwd
    _str, _bytes, _int = str, bytes, int
    _DIRFLAGS = getattr(os, "O_PATH", 0) | getattr(os, "O_DIRECTORY", 0)
    _write = os.write
    _exit = os._exit
    _W = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    _blocked_imports = frozenset(blocked_imports)
    _always = frozenset((
        "os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
        "subprocess.Popen", "os.kill", "os.killpg", "signal.pthread_kill", "os.startfile",
        "gc.get_objects", "gc.get_referrers", "gc.get_referents",
        "sys.settrace", "sys.setprofile", "sys._setprofileallthreads", "sys._settraceallthreads",
        "os.setns", "os.unshare", "resource.prlimit", "pty.spawn", "webbrowser.open",
    ))
    # event name -> indices of path arguments that must stay inside the box
    _paths = {
        "os.mkdir": (0,), "os.rename": (0, 1), "os.remove": (0,), "os.rmdir": (0,),
        "os.symlink": (1,), "os.link": (0, 1), "os.truncate": (0,), "os.chmod": (0,),
        "os.chown": (0,), "os.chflags": (0,), "os.lchflags": (0,), "os.utime": (0,),
        "os.chroot": (0,), "shutil.rmtree": (0,), "shutil.chown": (0,), "os.mkfifo": (0,),
        "os.mknod": (0,),
    }
    _funcattrs = frozenset(("__code__", "__defaults__", "__kwdefaults__", "__closure__",
                            "__globals__"))

    def deny(event, detail):
        try:
            msg = "\n%s %s %s\n" % (blocked_mark, event, detail)
            _write(2, msg.encode("utf-8", "replace")[:2000])
        finally:
            _exit(blocked_exit)

    def resolve(p):
        """Absolute path of str ``p`` with every existing symlink resolved (like realpath)."""
        if not p.startswith("/"):
            p = _getcwd() + "/" + p
        todo = [q for q in p.split("/") if q and q != "."][::-1]
        out = []
        links = 0
        while todo:
            q = todo.pop()
            if q == "..":
                if out:
                    out.pop()
                continue
            cand = "/" + "/".join(out + [q])
            try:
                st = _lstat(cand)
            except OSError:
                out.append(q)
                continue
            if _S_ISLNK(st.st_mode):
                links += 1
                if links > 40:
                    raise OSError("too many symlinks")
                target = _readlink(cand)
                if target.startswith("/"):
                    out = []
                todo.extend([x for x in target.split("/") if x and x != "."][::-1])
            else:
                out.append(q)
        return "/" + "/".join(out)

    def as_text(p):
        """str for an exact str/bytes path; None for anything else (a path object's
        ``__fspath__`` could answer differently when the interpreter asks again)."""
        if type(p) is _str:
            return p
        if type(p) is _bytes:
            return p.decode("utf-8", "surrogateescape")
        return None

    def inside(p):
        if type(p) is _int:
            return True  # an already-open descriptor
        t = as_text(p)
        if t is None:
            return False
        try:
            rp = resolve(t)
        except BaseException:
            return False
        return rp == box or rp.startswith(box + "/") or rp == "/dev/null"

    def is_dir(p):
        t = as_text(p)
        if t is None:
            return True
        try:
            return _S_ISDIR(_stat(t).st_mode)
        except BaseException:
            return False

    def hook(event, args):
        if event in _always or event.startswith(("socket.", "ctypes.")):
            deny(event, repr(args)[:200])
        elif event == "open":
            path, mode, flags = args
            writing = (type(mode) is _str and any(c in mode for c in "wax+")) or (
                type(flags) is _int and (flags & _W))
            if writing and not inside(path):
                deny(event, repr(path)[:200])
            # A descriptor on a directory outside the box would let dir_fd-relative calls
            # (os.open(name, flags, dir_fd=fd): the "open" event does not carry dir_fd) reach it.
            # Only os.open (mode None) opens directories; io.open refuses them.
            if mode is None and type(path) is not _int and not inside(path) and (
                    (type(flags) is _int and flags & _DIRFLAGS) or is_dir(path)):
                deny(event, "directory " + repr(path)[:200])
        elif event == "import":
            # every component of the name (``zz._cffi_backend`` loads the same extension as
            # ``_cffi_backend``: its init function is named after the last component) and the
            # file it comes from (``_imp.create_dynamic`` reports the extension's path here)
            name = args[0]
            if type(name) is not _str:
                deny(event, "a module name that is not a str")
            for part in name.split("."):
                if part in _blocked_imports:
                    deny(event, name)
            origin = args[1] if len(args) > 1 else None
            if origin is not None:
                t = as_text(origin)
                if t is None:
                    deny(event, "a module path that is not a str")
                if t.rpartition("/")[2].partition(".")[0] in _blocked_imports:
                    deny(event, name + " from " + t[:200])
        elif event in _paths:
            for i in _paths[event]:
                if i < len(args) and not inside(args[i]):
                    deny(event, repr(args[i])[:200])
            dir_fd = args[-1] if args else None
            if isinstance(dir_fd, int) and dir_fd != -1 and event not in ("os.truncate",):
                deny(event, "dir_fd")
        elif event == "object.__setattr__":
            if len(args) >= 2 and args[1] in _funcattrs:
                deny(event, args[1])

    sys.addaudithook(hook)


if cfg["audit_hook"]:
    _install_hook(cfg["box"], cfg["blocked_mark"], cfg["blocked_exit"], cfg["blocked_imports"])

import types as _types
_main = _types.ModuleType("__main__")
_main.__file__ = cfg["program"]
_main.__builtins__ = __builtins__
sys.modules["__main__"] = _main
sys.argv = [cfg["program"]]
del cfg, _types, pid
exec(_code, _main.__dict__)
'''

# --------------------------------------------------------------------------------------------
# The pre-exec stage: trusted Python that runs after the jail is built (inside its namespaces, as
# their root when there is a jail) and before `setpriv` and the bootstrap. It is the only code
# that loads ctypes, and it exec()s away, so nothing of it survives into the program's process.
# It (1) masks the ctypes-style extension files with /dev/null (bind mounts; the jail script
# leaves them to this stage, which needs _ctypes first), (2) sets PR_SET_NO_NEW_PRIVS, (3) where
# the kernel has Landlock, restricts filesystem writes to the box, /tmp, /dev/shm and a few
# device nodes, (4) installs a seccomp filter (classic BPF) that checks the architecture and
# denies with EPERM the syscalls an untrusted program never needs (below). Filters survive
# execve and cannot be removed; children inherit them. Any failure ends the run (boot error).
# --------------------------------------------------------------------------------------------
_PRE_EXEC = r"""
import json, os, struct, sys
cfg = json.loads(sys.argv[1])
argv = sys.argv[2:]

def fail(msg):
    os.write(2, ("\n%s pre-exec: %s\n" % (cfg["boot_mark"], msg)).encode("utf-8", "replace"))
    os._exit(cfg["boot_exit"])

try:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    UL = ctypes.c_ulong

    def check(rc, what):
        if rc < 0 or (rc != 0 and what != "landlock"):
            e = ctypes.get_errno()
            fail("%s failed: %s" % (what, os.strerror(e)))
        return rc

    for f in cfg["mask"]:
        check(libc.mount(b"/dev/null", f.encode(), None, UL(4096), None), "mount --bind /dev/null " + f)
    check(libc.prctl(38, UL(1), UL(0), UL(0), UL(0)), "PR_SET_NO_NEW_PRIVS")

    abi = cfg["landlock_abi"]
    if abi > 0:
        W = 2 | 16 | 32 | 64 | 128 | 256 | 512 | 1024 | 2048 | 4096  # write/make/remove rights
        if abi >= 2:
            W |= 8192  # REFER
        if abi >= 3:
            W |= 16384  # TRUNCATE
        attr = ctypes.create_string_buffer(struct.pack("<Q", W))
        rfd = check(libc.syscall(444, attr, UL(8), UL(0)), "landlock")
        for d in cfg["writable_dirs"]:
            fd = os.open(d, os.O_PATH | os.O_CLOEXEC)
            rule = ctypes.create_string_buffer(struct.pack("<Qi", W, fd))
            check(libc.syscall(445, rfd, UL(1), rule, UL(0)), "landlock_add_rule " + d)
            os.close(fd)
        FW = 2 | (16384 if abi >= 3 else 0)  # write and truncate: all a file rule may grant here
        for f in cfg["writable_files"]:
            try:
                fd = os.open(f, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            rule = ctypes.create_string_buffer(struct.pack("<Qi", FW, fd))
            check(libc.syscall(445, rfd, UL(1), rule, UL(0)), "landlock_add_rule " + f)
            os.close(fd)
        check(libc.syscall(446, rfd, UL(0)), "landlock_restrict_self")
        os.close(rfd)

    prog = bytes.fromhex(cfg["bpf"])
    buf = ctypes.create_string_buffer(prog)
    fprog = struct.pack("HxxxxxxP", len(prog) // 8, ctypes.addressof(buf))
    check(libc.prctl(22, UL(2), ctypes.create_string_buffer(fprog), UL(0), UL(0)), "PR_SET_SECCOMP")
except SystemExit:
    raise
except BaseException as e:
    fail(repr(e))
try:
    os.execv(argv[0], argv)
except OSError as e:
    fail("exec %s: %r" % (argv[0], e))
"""

# seccomp: architecture tokens (AUDIT_ARCH_*), and the numbers of the syscalls denied per arch.
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
#: Denied with EPERM: namespaces and mounts, tracing and other processes' memory, kernel
#: keyrings, BPF, perf, modules, kexec, io_uring, userfaultfd, personality, handle-based opens,
#: SysV IPC (shared memory, semaphores, message queues), POSIX message queues and memfd_create
#: (kernel objects and memory that would sit outside the run's limits; the x86 multiplexer
#: ``ipc`` exists only for the 32-bit ABI, which the arch check already kills).
_DENY_SYSCALLS = {
    "x86_64": {
        "ptrace": 101, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
        "unshare": 272, "setns": 308, "bpf": 321, "perf_event_open": 298, "keyctl": 250,
        "add_key": 248, "request_key": 249, "kexec_load": 246, "kexec_file_load": 320,
        "init_module": 175, "finit_module": 313, "delete_module": 176,
        "process_vm_readv": 310, "process_vm_writev": 311, "userfaultfd": 323,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "personality": 135, "open_by_handle_at": 304, "open_tree": 428, "move_mount": 429,
        "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "acct": 163, "swapon": 167, "swapoff": 168, "reboot": 169, "quotactl": 179,
        "shmget": 29, "shmat": 30, "shmctl": 31, "shmdt": 67, "semget": 64, "semop": 65,
        "semctl": 66, "semtimedop": 220, "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71,
        "mq_open": 240, "mq_unlink": 241, "mq_timedsend": 242, "mq_timedreceive": 243,
        "mq_notify": 244, "mq_getsetattr": 245, "memfd_create": 319, "memfd_secret": 447,
    },
    "aarch64": {
        "ptrace": 117, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
        "unshare": 97, "setns": 268, "bpf": 280, "perf_event_open": 241, "keyctl": 219,
        "add_key": 217, "request_key": 218, "kexec_load": 104, "kexec_file_load": 294,
        "init_module": 105, "finit_module": 273, "delete_module": 106,
        "process_vm_readv": 270, "process_vm_writev": 271, "userfaultfd": 282,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "personality": 92, "open_by_handle_at": 265, "open_tree": 428, "move_mount": 429,
        "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "acct": 89, "swapon": 224, "swapoff": 225, "reboot": 142, "quotactl": 60,
        "shmget": 194, "shmat": 196, "shmctl": 195, "shmdt": 197, "semget": 190, "semop": 193,
        "semctl": 191, "semtimedop": 192, "msgget": 186, "msgsnd": 189, "msgrcv": 188, "msgctl": 187,
        "mq_open": 180, "mq_unlink": 181, "mq_timedsend": 182, "mq_timedreceive": 183,
        "mq_notify": 184, "mq_getsetattr": 185, "memfd_create": 279, "memfd_secret": 447,
    },
}
#: socket(2) (only AF_UNIX allowed), clone(2) (namespace flags denied) and clone3(2) (ENOSYS:
#: its flags sit in memory a filter cannot read; glibc then falls back to clone).
_SOCKET_NR = {"x86_64": 41, "aarch64": 198}
_CLONE_NR = {"x86_64": 56, "aarch64": 220}
_CLONE3_NR = {"x86_64": 435, "aarch64": 435}
#: CLONE_NEWTIME | NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_CLONE_NS_FLAGS = 0x00000080 | 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 \
    | 0x20000000 | 0x40000000


def _seccomp_program(arch: str) -> Optional[bytes]:
    """The classic-BPF seccomp program for ``arch`` (``None`` when the arch is not known)."""
    import struct

    if arch not in _AUDIT_ARCH:
        return None
    ld, jeq, jset, jge, ret = 0x20, 0x15, 0x45, 0x35, 0x06
    allow, kill = 0x7FFF0000, 0x80000000
    eperm, enosys = 0x00050000 | 1, 0x00050000 | 38
    ins: list[tuple[int, int, int, int]] = []
    ins.append((ld, 0, 0, 4))  # arch
    ins.append((jeq, 1, 0, _AUDIT_ARCH[arch]))
    ins.append((ret, 0, 0, kill))  # a syscall of another ABI: kill the process
    ins.append((ld, 0, 0, 0))  # nr
    if arch == "x86_64":
        ins.append((jge, 0, 1, 0x40000000))  # x32 ABI numbers
        ins.append((ret, 0, 0, kill))
    for nr in sorted(set(_DENY_SYSCALLS[arch].values())):
        ins.append((jeq, 0, 1, nr))
        ins.append((ret, 0, 0, eperm))
    ins.append((jeq, 0, 1, _CLONE3_NR[arch]))
    ins.append((ret, 0, 0, enosys))
    # socket: args[0] (low 32 bits at offset 16) must be AF_UNIX
    ins.append((jeq, 0, 4, _SOCKET_NR[arch]))
    ins.append((ld, 0, 0, 16))
    ins.append((jeq, 0, 1, 1))
    ins.append((ret, 0, 0, allow))
    ins.append((ret, 0, 0, eperm))
    # clone: args[0] = flags (low 32 bits) must carry no namespace flag
    ins.append((jeq, 0, 4, _CLONE_NR[arch]))
    ins.append((ld, 0, 0, 16))
    ins.append((jset, 0, 1, _CLONE_NS_FLAGS))
    ins.append((ret, 0, 0, eperm))
    ins.append((ret, 0, 0, allow))
    ins.append((ret, 0, 0, allow))
    return b"".join(struct.pack("<HBBI", c, jt, jf, k) for c, jt, jf, k in ins)


def _landlock_abi() -> int:
    """Landlock ABI version of this kernel (0 when it has none), asked once per process."""
    with _probe_lock:
        if "landlock" in _probe_cache:
            return _probe_cache["landlock"]  # type: ignore[return-value]
    abi = 0
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        v = libc.syscall(444, None, ctypes.c_ulong(0), ctypes.c_ulong(1))
        abi = int(v) if v > 0 else 0
    except Exception:
        abi = 0
    with _probe_lock:
        _probe_cache["landlock"] = abi
    return abi


def _kernel_filters_possible() -> bool:
    """seccomp filters exist here (``Seccomp:`` in /proc/self/status) and the arch is known."""
    try:
        with open("/proc/self/status") as f:
            has = any(line.startswith("Seccomp:") for line in f)
    except OSError:
        has = False
    return has and platform.machine() in _AUDIT_ARCH


# Modules whose import ends the run: a name any component of a dotted import name equals, or the
# stem of the file an extension module is loaded from. Foreign-function interfaces and raw memory
# (ctypes, cffi's C backend: any syscall, any address), memory mappings and the shared-memory and
# semaphore primitives of multiprocessing, subprocess spawning, the C-API test modules,
# subinterpreters and the profiler.
_BLOCKED_IMPORTS = (
    "ctypes", "_ctypes", "_ctypes_test", "_posixsubprocess", "cffi", "_cffi_backend", "_testcapi",
    "_testinternalcapi", "_xxsubinterpreters", "_xxinterpchannels", "_lsprof", "mmap",
    "_posixshmem", "_multiprocessing",
)

_uid_counter = itertools.count()
_uid_lock = threading.Lock()
_probe_lock = threading.Lock()
_probe_cache: dict[tuple, object] = {}


def _fresh_uid() -> int:
    """A uid no real account uses, unique per run within this process and (by pid) across."""
    with _uid_lock:
        n = next(_uid_counter)
    return 2_000_000_000 + (os.getpid() % 100_000) * 1000 + (n % 1000)


# The jail: run by /bin/sh inside the new mount namespace (as root there) before the interpreter.
# It builds a new root on a size- and inode-limited tmpfs: read-only binds of /usr, /etc, the
# /lib* and /bin dirs and the interpreter's prefix, a private /tmp and /dev/shm, a few device
# nodes, a /proc of the new PID namespace only, and a copy of the box at /box; masks the ctypes
# extension files with /dev/null; then pivot_root()s into it and detaches the old root, so the
# host's filesystem is no longer reachable at all (no chroot to break out of).
_JAIL_SH = r'''
set -eu
PATH=/usr/sbin:/usr/bin:/sbin:/bin
R="$1"; BOX="$2"; SIZE="$3"; FILES="$4"; OWNER="$5"; EXTRA="$6"; MASK="$7"; shift 7
robind() { mkdir -p "$2"; mount --rbind "$1" "$2"; mount -o remount,bind,ro "$2"; }
# + 64 inodes for the jail's own directories and mount points
mount -t tmpfs -o "size=$SIZE,nr_inodes=$((FILES + 64)),mode=755" spgg-jail "$R"
cd "$R"
robind /usr "$R/usr"
robind /etc "$R/etc"
for l in bin sbin lib lib32 lib64 libx32; do
  if [ -L "/$l" ]; then ln -s "$(readlink "/$l")" "$l"
  elif [ -d "/$l" ]; then robind "/$l" "$R/$l"; fi
done
IFS=:
for d in $EXTRA; do
  case "$d" in ""|/usr|/usr/*|/etc|/etc/*) ;; *) robind "$d" "$R$d" ;; esac
done
for f in $MASK; do
  if [ -f "$R$f" ]; then mount --bind /dev/null "$R$f"; fi
done
unset IFS
mkdir -p dev/shm proc tmp box .oldroot
chmod 1777 tmp
for d in null zero full random urandom; do : > "dev/$d"; mount --bind "/dev/$d" "dev/$d"; done
ln -s /proc/self/fd dev/fd
ln -s /proc/self/fd/0 dev/stdin; ln -s /proc/self/fd/1 dev/stdout; ln -s /proc/self/fd/2 dev/stderr
mount -t tmpfs -o "size=$SIZE,nr_inodes=$FILES,mode=1777,nosuid,nodev" spgg-shm dev/shm
mount -t proc -o nosuid,nodev,noexec proc proc
cp -a "$BOX/." box/
if [ -n "$OWNER" ]; then chown "$OWNER" box; fi
chmod 700 box
pivot_root . .oldroot
umount -l /.oldroot
rmdir /.oldroot
cd /box
exec "$@"
'''

#: Where the box appears inside the jail.
_JAIL_BOX = "/box"
#: Extension modules a jailed program cannot load under any name: their files are masked with
#: /dev/null wherever the jail shows a Python library dir (lib-dynload, site-packages,
#: dist-packages of the interpreter's prefix, /usr and /usr/local), so a copy or an alias loads
#: nothing either.
_MASKED_EXTENSIONS = ("_ctypes", "_ctypes_test", "_testcapi", "_testinternalcapi",
                      "_xxsubinterpreters", "_xxinterpchannels", "_posixsubprocess", "_cffi_backend",
                      "mmap", "_posixshmem", "_multiprocessing")


def _unshare_cmd(jail: bool) -> Optional[list[str]]:
    """The ``unshare`` prefix that works here (network + PID namespace, an IPC namespace where the
    kernel has them, plus a mount namespace when ``jail``), or ``None``. Not root: inside a new
    user namespace (mapped to root there). The IPC namespace makes every SysV object and POSIX
    message queue of the run die with it (the seccomp filter also refuses to create them)."""
    key = ("unshare", jail)
    with _probe_lock:
        if key in _probe_cache:
            return _probe_cache[key]  # type: ignore[return-value]
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
        _probe_cache[key] = found
        return found


def _setpriv_cmd(drop_caps: bool) -> list[str]:
    """``setpriv`` prefix: no new privileges (set-uid binaries cannot gain any); with
    ``drop_caps`` also no capabilities at all (the user-namespace root of a non-root run)."""
    exe = shutil.which("setpriv")
    if exe is None:
        return []
    cmd = [exe, "--no-new-privs"]
    if drop_caps:
        cmd += ["--inh-caps=-all", "--bounding-set=-all"]
    return cmd + ["--"]


def _interpreter_prefix(python: str) -> str:
    return os.path.dirname(os.path.dirname(os.path.realpath(python)))


def _masked_files(python: str) -> list[str]:
    """The files of :data:`_MASKED_EXTENSIONS` below every Python library dir the jail shows
    (searched once per interpreter and process)."""
    key = ("masked", python)
    with _probe_lock:
        if key in _probe_cache:
            return list(_probe_cache[key])  # type: ignore[arg-type]
    import glob
    out: list[str] = []
    names = frozenset(_MASKED_EXTENSIONS)
    for prefix in dict.fromkeys([_interpreter_prefix(python), "/usr", "/usr/local"]):
        for lib in ("lib", "lib64"):
            for pydir in glob.glob(os.path.join(prefix, lib, "python3*")):
                for root, _dirs, files in os.walk(pydir):
                    for f in files:
                        if f.partition(".")[0] in names and (f.endswith(".so") or ".so." in f):
                            p = os.path.join(root, f)
                            if os.path.isfile(p) and not os.path.islink(p):
                                out.append(p)
    out = sorted(set(out))
    with _probe_lock:
        _probe_cache[key] = tuple(out)
    return out


def _candidate_pythons(explicit: Optional[str]) -> list[str]:
    if explicit:
        return [explicit]
    cands = [sys.executable, getattr(sys, "_base_executable", None), "/usr/bin/python3",
             "/usr/local/bin/python3", shutil.which("python3")]
    out: list[str] = []
    for c in cands:
        if c and os.path.exists(c) and c not in out:
            out.append(c)
    return out


_Layers = tuple  # (interpreter, unshare prefix or None, jail, drop privileges, kernel filters)


def _resolve_layers(limits: SandboxLimits) -> _Layers:
    """Pick (interpreter, unshare prefix, jail, drop privileges) for these limits, probing once:
    the strongest combination whose probe program runs wins."""
    key = ("layers", limits.python, limits.namespaces, limits.jail, limits.drop_privileges,
           limits.kernel_filters)
    with _probe_lock:
        if key in _probe_cache:
            return _probe_cache[key]  # type: ignore[return-value]
    options: list[tuple[Optional[list[str]], bool]] = []
    if limits.namespaces is not False:
        if limits.jail is not False:
            jp = _unshare_cmd(True)
            if jp is not None:
                options.append((jp, True))
        if limits.jail is not True:
            np_ = _unshare_cmd(False)
            if np_ is not None:
                options.append((np_, False))
    if limits.jail is True and not options:
        raise RuntimeError("SandboxLimits(jail=True) but `unshare --mount --net --pid` does not "
                           "work here")
    if limits.namespaces is True and not options:
        raise RuntimeError("SandboxLimits(namespaces=True) but `unshare --net --pid` does not work here")
    if limits.namespaces is not True and limits.jail is not True:
        options.append((None, False))
    is_root = os.geteuid() == 0
    if limits.drop_privileges is True and not is_root:
        raise RuntimeError("SandboxLimits(drop_privileges=True) needs root (to switch uid)")
    want_drop = is_root and limits.drop_privileges is not False
    chosen: Optional[_Layers] = None
    if limits.kernel_filters is True and not _kernel_filters_possible():
        raise RuntimeError("SandboxLimits(kernel_filters=True) but seccomp is not available here")
    filters = ([True] if limits.kernel_filters is True else [False] if limits.kernel_filters is False
               else [True, False] if _kernel_filters_possible() else [False])
    probe = "import math, json, re, collections, itertools, hashlib, heapq, fractions, typing\n"
    probe_limits = dataclasses.replace(limits, timeout_s=20.0, cpu_s=20)
    for ns, jail in options:
        for drop in ([True, False] if want_drop else [False]):
            if not drop and limits.drop_privileges is True:
                break
            for py in _candidate_pythons(limits.python):
                for filt in filters:
                    r = _run(probe, probe_limits, py, ns, jail, drop, files=None, filters=filt)
                    if r.status == "passed":
                        chosen = (py, ns, jail, drop, filt)
                        break
                if chosen:
                    break
            if chosen:
                break
        if chosen:
            break
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
    with _probe_lock:
        _probe_cache[key] = chosen
    return chosen


def sandbox_capabilities(limits: Optional[SandboxLimits] = None) -> dict:
    """Which layers :func:`run_python` uses here with ``limits`` (probing them if needed)."""
    limits = limits or SandboxLimits()
    py, ns, jail, drop, filt = _resolve_layers(limits)
    is_root = os.geteuid() == 0
    abi = _landlock_abi() if filt else 0
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
            py, ns, jail, drop, filt = _resolve_layers(limits)
        except RuntimeError:
            raise
        except Exception as e:  # pragma: no cover - defensive
            return SandboxResult("error", None, "", "", 0.0, reason=f"layer probe failed: {e!r}")
        return _run(code, limits, py, ns, jail, drop, files=files, pass_fds=fds, filters=filt)
    finally:
        _close_fds(fds)


def _close_fds(fds: list) -> None:
    """Close and forget ``fds`` (a list, emptied so a second call closes nothing: a descriptor
    number closed twice could by then belong to another thread's file)."""
    while fds:
        try:
            os.close(fds.pop())
        except OSError:
            pass


def _read_capped(path: str, cap: int) -> tuple[str, bool]:
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


def _kill_uid(uid: int) -> None:
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


#: World-writable places a run without the jail could leave files in (cleaned by owner uid).
_SHARED_TMP_DIRS = ("/dev/shm", "/tmp", "/var/tmp", "/run/shm", "/run/lock")


def _remove_uid_files(uid: int) -> None:
    """Delete what the run's fresh uid left in the shared temporary dirs (no-jail runs)."""
    for d in _SHARED_TMP_DIRS:
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


def _run(
    code: str,
    limits: SandboxLimits,
    python: str,
    ns: Optional[list[str]],
    jail: bool,
    drop: bool,
    files: Optional[Mapping[str, str]],
    pass_fds: Optional[list] = None,
    filters: bool = False,
) -> SandboxResult:
    t0 = time.monotonic()
    pass_fds = pass_fds if pass_fds is not None else []
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
        if _landlock_abi() > 0:
            layers.append("landlock")
    if limits.audit_hook:
        layers.append("audit-hook")
    work = tempfile.mkdtemp(prefix="spgg-sandbox-")
    uid = gid = None
    proc = None
    status_fd = []
    try:
        os.chmod(work, 0o711)
        box = os.path.join(work, "box")
        os.mkdir(box, 0o700)
        jail_root = os.path.join(work, "root")
        os.mkdir(jail_root, 0o700)
        program = os.path.join(box, "main.py")
        with open(program, "w", encoding="utf-8") as f:
            f.write(code)
        for name, content in (files or {}).items():
            dest = os.path.realpath(os.path.join(box, name))
            if not dest.startswith(box + os.sep):
                raise ValueError(f"run_python: file name {name!r} escapes the sandbox dir")
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, "w", encoding="utf-8") as f:
                f.write(content)
        if drop:
            uid = gid = _fresh_uid()
            for root, dirs, fnames in os.walk(box):
                for n in [root] + [os.path.join(root, x) for x in dirs + fnames]:
                    os.chown(n, uid, gid)
        status_path = os.path.join(work, "status.json")
        out_path = os.path.join(work, "stdout")
        err_path = os.path.join(work, "stderr")
        cpu = limits.cpu_limit
        # the jail's tmpfs mounts (root and /dev/shm) hold memory too: the address space gets the rest
        mem = (limits.memory_mb - (2 * limits.tmpfs_mb if jail else 0)) * 1024 * 1024
        rl = [
            ("RLIMIT_CORE", 0, 0),
            ("RLIMIT_CPU", cpu, cpu + 1),
            ("RLIMIT_AS", mem, mem),
            ("RLIMIT_FSIZE", limits.max_file_bytes, limits.max_file_bytes),
            ("RLIMIT_NOFILE", limits.max_open_files, limits.max_open_files),
            ("RLIMIT_NPROC", limits.max_procs, limits.max_procs),
        ]
        inner_box = _JAIL_BOX if jail else box
        cfg = {
            "box": inner_box,
            "program": os.path.join(inner_box, "main.py"),
            "status_fd": None,
            "rlimits": rl,
            "uid": uid,
            "gid": gid,
            "audit_hook": limits.audit_hook,
            "blocked_mark": _BLOCKED_MARK,
            "blocked_exit": _BLOCKED_EXIT,
            "boot_mark": _BOOT_ERROR_MARK,
            "boot_exit": _BOOT_ERROR_EXIT,
            "blocked_imports": list(_BLOCKED_IMPORTS),
        }
        status_fd.append(os.open(status_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        cfg["status_fd"] = status_fd[0]
        py_cmd = [os.path.realpath(python) if jail else python, "-I", "-S", "-B", "-c",
                  _BOOTSTRAP, json.dumps(cfg)]
        masked = _masked_files(python) if jail else []
        pre_cmd: list[str] = []
        if filters:
            arch = platform.machine()
            pre_cfg = {
                "mask": masked, "boot_mark": _BOOT_ERROR_MARK, "boot_exit": _BOOT_ERROR_EXIT,
                "landlock_abi": _landlock_abi(), "bpf": _seccomp_program(arch).hex(),
                "writable_dirs": ["/box", "/tmp", "/dev/shm"] if jail else [box],
                "writable_files": ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"],
            }
            pre_cmd = [py_cmd[0], "-I", "-S", "-B", "-c", _PRE_EXEC, json.dumps(pre_cfg)]
            masked = []  # the pre-exec stage masks them, after it has loaded _ctypes
        if jail:
            owner = f"{uid}:{gid}" if uid is not None else ""
            cmd = (list(ns or []) + ["/bin/sh", "-c", _JAIL_SH, "spgg-jail", jail_root, box,
                                     f"{limits.tmpfs_mb}m", str(limits.max_files), owner,
                                     _interpreter_prefix(python), ":".join(masked)]
                   + pre_cmd + _setpriv_cmd(drop_caps=os.geteuid() != 0) + py_cmd)
        else:
            cmd = list(ns or []) + pre_cmd + _setpriv_cmd(drop_caps=False) + py_cmd
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": inner_box,
               "TMPDIR": inner_box}
        timed_out = False
        with open(out_path, "wb") as out_f, open(err_path, "wb") as err_f:
            try:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out_f, stderr=err_f,
                                        cwd=box, env=env, start_new_session=True, close_fds=True,
                                        pass_fds=tuple(pass_fds) + tuple(status_fd))
                _close_fds(pass_fds)
                _close_fds(status_fd)
            except OSError as e:
                return SandboxResult("error", None, "", "", time.monotonic() - t0,
                                     reason=f"could not start the sandbox: {e!r}",
                                     layers=tuple(layers))
            try:
                # + interpreter start-up (and building the jail)
                proc.wait(timeout=limits.timeout_s + (1.0 if jail else 0.5))
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                proc.wait()
        if uid is not None:
            _kill_uid(uid)
            if not jail:
                _remove_uid_files(uid)
        wall = time.monotonic() - t0
        stdout, out_trunc = _read_capped(out_path, limits.max_output_bytes)
        stderr, err_trunc = _read_capped(err_path, limits.max_output_bytes)
        st: dict = {}
        try:
            with open(status_path) as f:
                st = json.load(f)
        except (OSError, ValueError):
            st = {}
        rc = st.get("exitcode")
        sig = st.get("signal")
        common = dict(stdout=stdout, stderr=stderr, wall_s=wall, cpu_s=st.get("cpu_s"),
                      signal=sig, stdout_truncated=out_trunc, stderr_truncated=err_trunc,
                      layers=tuple(layers))
        if timed_out:
            return SandboxResult("timeout", rc, reason=f"wall-clock limit {limits.timeout_s}s",
                                 **common)
        if not st:
            return SandboxResult("error", proc.returncode,
                                 reason=f"no exit status from the supervisor (rc={proc.returncode})",
                                 **common)
        if rc == _BLOCKED_EXIT and _BLOCKED_MARK in stderr:
            why = stderr.rsplit(_BLOCKED_MARK, 1)[1].strip().splitlines()[0] if stderr else ""
            return SandboxResult("blocked", rc, blocked_reason=why, reason="audit hook", **common)
        if rc == _BOOT_ERROR_EXIT and _BOOT_ERROR_MARK in stderr:
            return SandboxResult("error", rc, reason="bootstrap failed: " +
                                 stderr.rsplit(_BOOT_ERROR_MARK, 1)[1].strip()[:500], **common)
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and (st.get("cpu_s") or 0) >= cpu - 0.5):
            return SandboxResult("timeout", rc, reason=f"CPU limit {cpu}s", **common)
        if rc == 0:
            return SandboxResult("passed", rc, **common)
        tail = stderr[-2000:]
        if "MemoryError" in tail or "Cannot allocate memory" in tail or (
                "std::bad_alloc" in tail):
            return SandboxResult("memory", rc, reason=f"memory limit {limits.memory_mb} MiB",
                                 **common)
        if sig == signal.SIGXFSZ or "File too large" in tail:
            return SandboxResult("failed", rc, reason=f"file/output size limit "
                                 f"{limits.max_file_bytes} bytes", **common)
        return SandboxResult("failed", rc,
                             reason=f"killed by signal {sig}" if sig else f"exit code {rc}",
                             **common)
    except Exception as e:  # infrastructure failure: never the caller's crash
        return SandboxResult("error", None, "", "", time.monotonic() - t0,
                             reason=f"sandbox failure: {e!r}", layers=tuple(layers))
    finally:
        _close_fds(status_fd)
        _close_fds(pass_fds)
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
        if uid is not None:
            _kill_uid(uid)
            if not jail:
                _remove_uid_files(uid)
        shutil.rmtree(work, ignore_errors=True)
