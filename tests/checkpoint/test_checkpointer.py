"""Checkpointer: round trip, keep-last-N, resume order, and a SIGKILL during an async save."""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from spgg_jax.checkpoint import Checkpointer, resolve_resume


def _state(seed=0):
    params = {"w": jax.random.normal(jax.random.key(seed), (4, 3)), "b": jnp.zeros(3)}
    opt = optax.adam(1e-3).init(params)
    return {"params": params, "opt": opt, "key": jax.random.key_data(jax.random.key(seed)), "step": jnp.int32(seed)}


def test_round_trip_and_keep(tmp_path):
    ck = Checkpointer(tmp_path / "ckpt", keep=2)
    for step in (1, 2, 3):
        ck.save(step, _state(step), {"data_position": step * 10, "config": {"a": 1}})
    ck.wait()
    assert ck.all_steps() == [2, 3]
    state, meta, step = ck.restore(_state(0))
    assert step == 3 and meta["data_position"] == 30
    for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(_state(3))):
        np.testing.assert_array_equal(a, b)
    ck.close()


def test_resume_order(tmp_path):
    assert resolve_resume(tmp_path / "none") is None
    other = Checkpointer(tmp_path / "other")
    other.save(5, _state(5), {})
    other.close()
    assert resolve_resume(tmp_path / "none", tmp_path / "other") == (tmp_path / "other", 5)
    mine = Checkpointer(tmp_path / "mine")
    mine.save(2, _state(2), {})
    mine.close()
    assert resolve_resume(tmp_path / "mine", tmp_path / "other") == (tmp_path / "mine", 2)
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        resolve_resume(tmp_path / "none", tmp_path / "empty")
    with pytest.raises(ValueError, match="JSON|serializable"):
        Checkpointer(tmp_path / "bad").save(1, _state(1), {"x": object()})


def test_sigkill_during_async_save_keeps_last_complete(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, jax, jax.numpy as jnp
        from spgg_jax.checkpoint import Checkpointer
        ck = Checkpointer({str(tmp_path / 'ck')!r}, keep=5, async_save=True)
        ck.save(1, {{"w": jnp.ones((256, 256))}}, {{"n": 1}})
        ck.wait()
        big = {{"w": jnp.ones((4096, 4096)) * 2}}   # 64 MB: the async write is still running
        ck.save(2, big, {{"n": 2}})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    ck = Checkpointer(tmp_path / "ck")
    assert ck.latest_step() == 1
    state, meta, step = ck.restore({"w": jnp.zeros((256, 256))})
    assert step == 1 and meta == {"n": 1} and float(state["w"][0, 0]) == 1.0
    ck.close()
