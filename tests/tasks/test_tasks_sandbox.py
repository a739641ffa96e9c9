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
