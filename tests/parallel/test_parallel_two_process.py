"""Two local CPU processes (4 fake devices each, gloo collectives) form one 8-device mesh, train,
checkpoint with orbax, exit, restart, restore and continue; the result equals one 8-device process
running the same global batches straight through.

Every child runs under a hard timeout; on timeout the whole process group is killed, so the test
cannot hang CI.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mp_worker.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(WORKER)))
TIMEOUT_S = 180
STEPS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _run_group(arg_lists: list[list[str]], log_dir: str, tag: str) -> list[str]:
    """Start all commands at once, wait for all with a shared deadline, kill all on timeout."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    procs, logs = [], []
    for i, args in enumerate(arg_lists):
        log = open(os.path.join(log_dir, f"{tag}-{i}.log"), "w+")
        logs.append(log)
        procs.append(subprocess.Popen([sys.executable, WORKER, *args], cwd=ROOT, env=env,
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    try:
        for p in procs:
            p.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
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
        assert p.returncode == 0, f"{tag}: worker exited with {p.returncode}:\n{tail}"
    return outputs


def _two_process(phase: str, ckpt: str, out: str, log_dir: str) -> list[str]:
    port = str(_free_port())
    return _run_group(
        [["--devices", "4", "--num-processes", "2", "--process-id", str(i), "--port", port,
          "--ckpt", ckpt, "--phase", phase, "--steps", str(STEPS), "--out", out] for i in range(2)],
        log_dir, phase)


@pytest.mark.slow
def test_two_processes_train_checkpoint_resume_match_single_process(tmp_path):
    ckpt = str(tmp_path / "ckpt")
    logs = str(tmp_path)
    first = _two_process("train", ckpt, str(tmp_path / "train.json"), logs)
    # Each process fed its own half of the global batch.
    assert "WORKER_OK process=0 rows=0:8" in first[0]
    assert "WORKER_OK process=1 rows=8:16" in first[1]
    assert os.path.isdir(os.path.join(ckpt, str(STEPS)))
    _two_process("resume", ckpt, str(tmp_path / "resume.json"), logs)
    _run_group([["--devices", "8", "--phase", "full", "--steps", str(STEPS),
                 "--out", str(tmp_path / "single.json")]], logs, "single")

    train, resume, single = (json.load(open(tmp_path / f"{n}.json"))
                             for n in ("train", "resume", "single"))
    assert train["process_count"] == resume["process_count"] == 2
    assert single["process_count"] == 1
    losses = train["losses"] + resume["losses"]
    assert len(losses) == len(single["losses"]) == 2 * STEPS
    np.testing.assert_allclose(losses, single["losses"], rtol=1e-6, atol=1e-6)
    assert losses[-1] < losses[0]  # it trained
    for name, ref in single["params"].items():
        np.testing.assert_allclose(np.array(resume["params"][name]), np.array(ref),
                                   rtol=1e-6, atol=1e-6, err_msg=name)
