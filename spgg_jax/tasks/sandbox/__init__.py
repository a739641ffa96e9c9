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

The package (relative imports only, so a copy of this directory runs on its own, as the test for
ordinary users does):

==================  =========================================================================
``api.py``          :func:`run_python`, :func:`sandbox_capabilities`, the choice of layers
``limits.py``       :class:`SandboxLimits`
``result.py``       :class:`SandboxResult`, :data:`STATUSES`
``runner.py``       one run under chosen layers: box, command line, subprocess, status
``layers.py``       probing the host: ``unshare``, Landlock, seccomp, ``setpriv``, masked files
``seccomp.py``      the classic-BPF seccomp program
``uids.py``         the fresh uid of a run: allocation, killing its processes, its leftovers
``stages.py``       the trusted stages below as text, and the marks and codes they share
``jail.sh``         stage 1 (``/bin/sh -c``): builds the jail, ``pivot_root``
``pre_exec.py``     stage 2 (``python -c``): masks ctypes, Landlock, seccomp, then exec()
``bootstrap.py``    stage 3 (``python -c``): supervisor, rlimits, uid drop, audit hook, program
==================  =========================================================================
"""

from .api import run_python, sandbox_capabilities
from .limits import SandboxLimits
from .result import STATUSES, SandboxResult

__all__ = [
    "SandboxLimits",
    "SandboxResult",
    "STATUSES",
    "run_python",
    "sandbox_capabilities",
]
