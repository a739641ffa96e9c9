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


def _saved(tmp_path, steps=(1, 2, 3)):
    d = tmp_path / "ckpt"
    ck = Checkpointer(d, keep=5, async_save=False)
    for s in steps:
        ck.save(s, _state(s), {"data_position": s * 10})
    ck.close()
    return d


def _truncate_state(d, step):
    files = [p for p in (d / str(step) / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    assert files
    for p in files:
        p.write_bytes(p.read_bytes()[:5])


def test_truncated_latest_falls_back_to_newest_intact_with_warning(tmp_path):
    d = _saved(tmp_path)
    _truncate_state(d, 3)
    ck = Checkpointer(d, keep=5)
    with pytest.warns(RuntimeWarning, match=r"step 3 in .*ckpt is unreadable.*restored step 2"):
        state, meta, step = ck.restore(_state(0))
    assert step == 2 and meta["data_position"] == 20
    for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(_state(2))):
        np.testing.assert_array_equal(a, b)
    # The trainer's call: restore(template, step) with the latest step from resolve_resume.
    assert resolve_resume(d) == (d, 3)
    with pytest.warns(RuntimeWarning, match="restored step 2"):
        assert ck.restore(_state(0), 3)[2] == 2
    ck.close()


def test_explicit_older_corrupt_step_is_an_error_naming_step_and_dir(tmp_path):
    from spgg_jax.checkpoint import CheckpointError

    d = _saved(tmp_path)
    _truncate_state(d, 2)
    ck = Checkpointer(d, keep=5)
    with pytest.raises(CheckpointError, match=r"^checkpoint step 2 in .*ckpt is unreadable: ") as e:
        ck.restore(_state(0), 2)
    assert "\n" not in str(e.value)
    ck.close()


@pytest.mark.parametrize("damage", ["missing_item", "corrupt_meta", "truncated_state"])
def test_nothing_intact_is_one_line_error(tmp_path, damage):
    import shutil

    from spgg_jax.checkpoint import CheckpointError

    d = _saved(tmp_path, steps=(4,))
    if damage == "missing_item":
        shutil.rmtree(d / "4" / "meta")
    elif damage == "corrupt_meta":
        (d / "4" / "meta" / "metadata").write_text('{"data_position": 4')
    else:
        _truncate_state(d, 4)
    ck = Checkpointer(d, keep=5)
    with pytest.raises(CheckpointError) as e:
        ck.restore(_state(0))
    msg = str(e.value)
    assert "\n" not in msg and "step 4" in msg and str(d) in msg, msg
    if damage == "missing_item":
        assert "'meta' is missing" in msg
    ck.close()


def test_two_corrupt_then_intact(tmp_path):
    d = _saved(tmp_path)
    _truncate_state(d, 3)
    (d / "2" / "meta" / "metadata").write_text("not json")
    ck = Checkpointer(d, keep=5)
    with pytest.warns(RuntimeWarning, match=r"step 3 .*restored step 1"):
        assert ck.restore(_state(0))[2] == 1
    ck.close()
