"""Start groups of local CPU processes for the multi-process tests, with a hard shared deadline.

Every child gets its own session; on timeout the whole process group is killed, so a hung
collective cannot hang CI.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT_S = 300


class GroupTimeout(AssertionError):
    """The group was still running at the deadline (its logs hold every thread's stack)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run_group(arg_lists: list[list[str]], log_dir: str, tag: str, devices: int | None = None,
              timeout: float = TIMEOUT_S) -> list[str]:
    """Run ``python ARGS`` for each entry at once (cwd the repository root); return their outputs.

    ``devices``: fake CPU devices per process (``XLA_FLAGS``); default: leave the flags unset.
    Asserts every process exited with 0, showing the failing one's log tail; raises
    ``GroupTimeout`` (an ``AssertionError``) when the group ran past the shared deadline.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    # PYTHONFAULTHANDLER: a process that hangs past the deadline gets SIGABRT first and prints every
    # thread's Python stack into its log before the group is killed
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=ROOT, PYTHONFAULTHANDLER="1")
    if devices is not None:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    procs, logs = [], []
    for i, args in enumerate(arg_lists):
        log = open(os.path.join(log_dir, f"{tag}-{i}.log"), "w+")
        logs.append(log)
        procs.append(subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True))
    deadline = time.monotonic() + timeout
    hung = False
    try:
        for p in procs:
            p.wait(timeout=max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
        hung = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGABRT)
        time.sleep(5)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    outputs = []
    for p, log in zip(procs, logs):
        log.seek(0)
        text = log.read()
        log.close()
        outputs.append(text)
        tail = "\n".join(line for line in text.splitlines() if "[Gloo]" not in line)[-3000:]
        if p.returncode != 0:
            err = GroupTimeout if hung else AssertionError
            raise err(f"{tag}: process exited with {p.returncode}{' at the deadline' if hung else ''}:\n{tail}")
    return outputs
