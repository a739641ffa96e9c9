"""Two local CPU processes (4 fake devices each, gloo collectives) form one 8-device mesh, train,
checkpoint with orbax, exit, restart, restore and continue; the result equals one 8-device process
running the same global batches straight through.

Every child runs under a hard timeout; on timeout the whole process group is killed, so the test
cannot hang CI.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from proc_group import free_port, run_group

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mp_worker.py")
STEPS = 2


def _two_process(phase: str, ckpt: str, out: str, log_dir: str) -> list[str]:
    port = str(free_port())
    return run_group(
        [[WORKER, "--devices", "4", "--num-processes", "2", "--process-id", str(i), "--port", port,
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
    run_group([[WORKER, "--devices", "8", "--phase", "full", "--steps", str(STEPS),
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
