"""The real trainer on a device mesh: same results as one device, and across two processes.

- In one process (8 fake CPU devices): a data x fsdp x tensor mesh gives the same rewards, metrics
  and trained state as the single-device run, for both training methods.
- Two processes (4 fake CPU devices each, gloo collectives) run ``spgg train`` on one global mesh,
  checkpoint, exit, are restarted with ``--resume``, and end where one 8-device process running all
  steps straight through ends. Only process 0 writes metrics.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from proc_group import GroupTimeout, free_port, run_group
from spgg_jax.eval.trained import BASELINES, TRAINED
from spgg_jax.train import Trainer, load_config
from tiny_models import run_metrics as _metrics
from tiny_models import tiny_train_overrides as _overrides

MESH = "data=2,fsdp=2,tensor=2"


def _assert_metrics_close(a, b):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            if isinstance(ra[k], str) or ra[k] is None:
                assert rb[k] == ra[k], k
            else:
                np.testing.assert_allclose(rb[k], ra[k], rtol=1e-4, atol=1e-5, err_msg=k)


def _leaves_close(a, b, atol=1e-5):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-4, atol=atol)


@pytest.mark.slow
@pytest.mark.parametrize("method, extra", [
    ("gen_params", {}),
    ("token", {"batch": 2, "token.group_size": 2, "token.epochs": 1}),
    ("token", {"batch": 2, "token.group_size": 2, "token.epochs": 1, "token.full_finetune": "true",
               "team.from": "default:2"}),
])
def test_trainer_on_mesh_equals_single_device(tiny_model_dir, tmp_path, method, extra):
    runs, evals = {}, {}
    for mesh in ("", MESH):
        t = Trainer(load_config(None, _overrides(tiny_model_dir, tmp_path / (mesh or "single"), 2, method=method,
                                                 mesh=mesh, eval_size=4, **extra)))
        evals[mesh] = [{k: v for k, v in row.items() if k != "seconds"} for row in t.run()["eval"]["rows"]]
        runs[mesh] = t
    ref, got = runs[""], runs[MESH]
    assert got.setup.mesh is not None and dict(got.setup.mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}
    # the weights really are split (fsdp and tensor), and the trained state lives on the mesh
    base = got.learner.bundle.params if method == "token" else next(iter(got.setup.bundles.values())).params
    specs = {str(x.sharding.spec) for x in jax.tree_util.tree_leaves(base)}
    assert any("fsdp" in s for s in specs) and any("tensor" in s for s in specs), specs
    # the trained state keeps the layout it started with (no drift, so no recompiles between steps)
    for x, x0 in zip(jax.tree_util.tree_leaves(got.state), jax.tree_util.tree_leaves(got.init_state())):
        assert x.sharding.mesh == got.setup.mesh
        assert x.sharding.is_equivalent_to(x0.sharding, x.ndim), (x.sharding, x0.sharding)
    if extra.get("full_finetune"):  # full copies of the weights and their Adam moments stay split like the base
        base = [x.sharding.spec for x in jax.tree_util.tree_leaves(got.learner.bundle.params)]
        for agent in range(got.n):
            assert [x.sharding.spec for x in jax.tree_util.tree_leaves(got.state["policy"][agent])] == base
            adam = got.state["opt"][agent][1][0]
            assert [x.sharding.spec for x in jax.tree_util.tree_leaves(adam.mu)] == base
    _assert_metrics_close(_metrics(tmp_path / "single"), _metrics(tmp_path / MESH))
    # the held-out comparison (agent 1 alone, self-consistency, the untrained team, the trained team) too
    assert [r["method"] for r in evals[MESH]] == [*BASELINES, TRAINED]
    _assert_metrics_close(evals[""], evals[MESH])
    _leaves_close(ref.state, got.state)
    moved = max(float(np.abs(np.asarray(x) - np.asarray(y)).max()) for x, y in
                zip(jax.tree_util.tree_leaves(ref.init_state()["policy"]), jax.tree_util.tree_leaves(ref.state["policy"])))
    assert moved > 1e-6  # it trained, so the equality is not vacuous


def test_mesh_that_does_not_fit_the_devices_is_rejected(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="has 3 devices but 8 are available"):
        Trainer(load_config(None, _overrides(tiny_model_dir, tmp_path / "r", 1, mesh="data=3,fsdp=1,tensor=1")))


def _restore_state(run_dir):
    """The latest checkpoint's state as host arrays, whatever devices saved it (shapes from its metadata)."""
    ckpt = Path(run_dir) / "checkpoints"
    step = max(int(p.name) for p in ckpt.iterdir() if p.name.isdigit())
    path = (ckpt / str(step) / "state").absolute()
    one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    with ocp.StandardCheckpointer() as ck:
        meta = ck.metadata(path)
        target = jax.tree_util.tree_map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=one),
                                        getattr(meta, "item_metadata", meta))
        state = ck.restore(path, target)
    return step, jax.tree_util.tree_map(np.asarray, state)


@pytest.mark.slow
def test_two_processes_train_checkpoint_resume_equal_one_process(tiny_model_dir, tmp_path):
    train = ["-m", "spgg_jax.cli.main", "train", "--no-eval"]

    def two_processes(steps, *flags, retry_flags=()):
        # Gloo collectives on 2 shared CPU cores hung twice in ~15 runs of a phase (docs/scaling.md):
        # such a hang (only a hang, never an error or a wrong result) gets one retry, with a warning;
        # the hung attempt's stacks stay in its logs.
        for attempt in (1, 2):
            port = str(free_port())
            try:
                return run_group([[*train, *flags, *_overrides(tiny_model_dir, tmp_path / "mp", steps, mesh=MESH),
                                   "--coordinator", f"localhost:{port}", "--num-processes", "2",
                                   "--process-id", str(i)] for i in range(2)],
                                 str(tmp_path), f"mp{steps}-try{attempt}", devices=4)
            except GroupTimeout as err:
                if attempt == 2:
                    raise
                warnings.warn(f"two-process phase hung; retrying once. {str(err)[:2000]}")
                flags = flags + tuple(retry_flags)

    # one step, exit, resume for a second: the smallest run that crosses a checkpoint on both sides
    first = two_processes(1, retry_flags=("--overwrite",))
    assert "training 3 agents" in first[0] and "training 3 agents" not in first[1]  # process 0 logs
    assert len(_metrics(tmp_path / "mp")) == 1
    second = two_processes(2, "--resume")
    assert "resumed from" in second[0]
    run_group([[*train, *_overrides(tiny_model_dir, tmp_path / "one", 2, mesh=MESH)]], str(tmp_path), "one", devices=8)

    got, want = _metrics(tmp_path / "mp"), _metrics(tmp_path / "one")
    assert [r["step"] for r in got] == [1, 2]  # one writer: no duplicated rows
    _assert_metrics_close(want, got)
    (s_mp, mp), (s_one, one) = _restore_state(tmp_path / "mp"), _restore_state(tmp_path / "one")
    assert s_mp == s_one == 2
    _leaves_close(one, mp)
