"""Multi-host helpers in one process: env resolution, process-0 logging, global batches."""

import logging
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from spgg_jax import parallel as par
from spgg_jax.parallel import multihost

ENV_VARS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "SPGG_DISTRIBUTED",
            "TPU_WORKER_HOSTNAMES", "SLURM_JOB_ID", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE",
            "MEGASCALE_COORDINATOR_ADDRESS")


@pytest.fixture
def clean_env(monkeypatch):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
    return calls


def test_single_process_is_a_no_op(clean_env):
    assert par.initialize_distributed() is False
    assert clean_env == []
    assert par.is_main_process()


def test_explicit_and_env_arguments_reach_jax(clean_env, monkeypatch):
    # Arguments win over the environment; the environment fills the rest.
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:1234")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
    monkeypatch.setenv("JAX_PROCESS_ID", "3")
    par.initialize_distributed(process_id=2, local_device_ids=[0, 1])
    assert clean_env[0]["coordinator_address"] == "10.0.0.1:1234"
    assert clean_env[0]["num_processes"] == 4
    assert clean_env[0]["process_id"] == 2
    assert clean_env[0]["local_device_ids"] == [0, 1]


@pytest.mark.parametrize("env", [{"TPU_WORKER_HOSTNAMES": "w0,w1,w2,w3"}, {"SPGG_DISTRIBUTED": "1"},
                                 {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "2"}])
def test_cluster_env_uses_auto_detection(clean_env, monkeypatch, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    par.initialize_distributed()
    assert clean_env == [{"coordinator_address": None, "num_processes": None, "process_id": None,
                          "local_device_ids": None, "initialization_timeout": 300}]


def test_single_host_tpu_vm_is_not_a_cluster(clean_env, monkeypatch):
    monkeypatch.setenv("TPU_WORKER_HOSTNAMES", "localhost")
    assert par.initialize_distributed() is False
    assert clean_env == []


@pytest.mark.parametrize(
    "kwargs, env, match",
    [
        ({"num_processes": 2, "process_id": 0}, {}, "without a coordinator"),
        ({"coordinator_address": "h:1"}, {}, "num_processes=None"),
        ({"coordinator_address": "h:1", "num_processes": 2, "process_id": 2}, {}, "outside"),
        ({"coordinator_address": "h:1", "num_processes": 0, "process_id": 0}, {}, ">= 1"),
        ({}, {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "two"}, "JAX_NUM_PROCESSES"),
    ],
)
def test_bad_settings_rejected(clean_env, monkeypatch, kwargs, env, match):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError, match=match):
        par.initialize_distributed(**kwargs)
    assert clean_env == []


def test_must_be_first_jax_call():
    code = ("import jax; jax.devices()\n"
            "from spgg_jax.parallel import initialize_distributed\n"
            "try:\n"
            "    initialize_distributed('localhost:1', 2, 0, initialization_timeout=5)\n"
            "except RuntimeError as e:\n"
            "    print('FIRST-CALL-ERROR', 'must be the first JAX call' in str(e))\n")
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=root, env=env)
    assert "FIRST-CALL-ERROR True" in out.stdout, out.stdout + out.stderr


def test_main_process_logging(caplog, monkeypatch):
    log = par.get_main_logger("spgg_jax.test_main_logger")
    par.get_main_logger("spgg_jax.test_main_logger")
    assert sum(isinstance(f, par.MainProcessFilter) for f in log.filters) == 1
    with caplog.at_level(logging.INFO):
        log.info("from main")
        par.log_main("log_main %d", 1, logger_=log)
        monkeypatch.setattr(jax, "process_index", lambda: 1)
        log.info("from worker 1")
        par.log_main("log_main %d", 2, logger_=log)
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs == ["from main", "log_main 1"]


def test_host_local_batch_single_process():
    mesh = par.make_mesh(par.MeshConfig(data=2, fsdp=2, tensor=2))
    sharding = par.batch_sharding(mesh)
    assert par.process_batch_rows(sharding, 12) == slice(0, 12)
    local = {"x": np.arange(24.0).reshape(12, 2), "m": np.ones((12,), bool)}
    glob = par.host_local_batch_to_global(local, sharding)
    assert glob["x"].shape == (12, 2) and glob["x"].sharding == sharding
    np.testing.assert_array_equal(np.asarray(glob["x"]), local["x"])
    np.testing.assert_array_equal(par.to_host(glob)["m"], local["m"])
    with pytest.raises(ValueError, match="scalar"):
        par.host_local_batch_to_global({"s": np.float32(1)}, sharding)
    par.sync_global_devices("single-process barrier is a no-op")


def test_process_batch_rows_rejects_interleaved_layout(monkeypatch):
    mesh = par.make_mesh(par.MeshConfig(data=8))

    class FakeSharding:  # this process owns devices of rows 0-1 and 4-5 only
        def addressable_devices_indices_map(self, shape):
            return {0: (slice(0, 2),), 1: (slice(4, 6),)}

    with pytest.raises(ValueError, match="non-contiguous"):
        multihost.process_batch_rows(FakeSharding(), 8)
    assert multihost.process_batch_rows(par.batch_sharding(mesh), 8) == slice(0, 8)
