"""The trainer end to end on a tiny self-contained model: exact resume, run-dir safety, configs."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from spgg_jax.checkpoint import Checkpointer, StopSignal
from spgg_jax.cli.main import main
from spgg_jax.rl.config import TrainConfig, load_config
from spgg_jax.rl.trainer import RunDirError, Trainer

from tiny_models import run_metrics as _metrics
from tiny_models import tiny_train_overrides as _overrides

ROOT = Path(__file__).resolve().parents[2]


def _final_state(run_dir, template):
    ck = Checkpointer(Path(run_dir) / "checkpoints")
    state, meta, step = ck.restore(template)
    ck.close()
    return state, step


@pytest.mark.slow
def test_resume_in_a_new_process_equals_uninterrupted(tiny_model_dir, tmp_path):
    full = Trainer(load_config(None, _overrides(tiny_model_dir, tmp_path / "full", 4)))
    full.run(evaluate=False)
    part = Trainer(load_config(None, _overrides(tiny_model_dir, tmp_path / "part", 2)), bundles=full.bundles)
    part.run(evaluate=False)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "spgg_jax.cli.main", "train", "--resume", *_overrides(tiny_model_dir, tmp_path / "part", 4)],
        capture_output=True, text=True, timeout=600, env=env, cwd=str(ROOT),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from" in proc.stdout
    a, sa = _final_state(tmp_path / "full", full.state)
    b, sb = _final_state(tmp_path / "part", full.state)
    assert sa == sb == 4
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # the policy really changed, so the equality above is not vacuous
    init = full._init_state()["policy"]
    moved = [float(np.abs(np.asarray(x) - np.asarray(y)).max()) for x, y in
             zip(jax.tree_util.tree_leaves(init), jax.tree_util.tree_leaves(a["policy"]))]
    assert max(moved) > 1e-4
    assert _metrics(tmp_path / "full") == _metrics(tmp_path / "part")
    # spgg plot works on the run
    assert main(["plot", str(tmp_path / "part")]) == 0
    assert (tmp_path / "part" / "learning_curves.png").stat().st_size > 1000


def test_run_dir_is_never_overwritten_silently(tiny_model_dir, tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "something.txt").write_text("precious")
    with pytest.raises(RunDirError, match="--resume to continue it or --overwrite"):
        Trainer(load_config(None, _overrides(tiny_model_dir, run, 1)))
    (run / "config.json").write_text(json.dumps({**TrainConfig().to_dict(), "lr": 0.123}))
    with pytest.raises(RunDirError, match="lr"):
        Trainer(load_config(None, _overrides(tiny_model_dir, run, 1)), resume=True)
    assert (run / "something.txt").exists()


def test_token_method_step_and_logprob_check(tiny_model_dir, tmp_path):
    t = Trainer(load_config(None, _overrides(tiny_model_dir, tmp_path / "tok", 1, method="token", batch=2, group_size=2,
                                             ppo_epochs=1)))
    out = t.run(evaluate=False)
    assert out["steps"] == 1
    m = _metrics(tmp_path / "tok")[0]
    assert m["logprob_mismatch"] < 1e-4  # training-side recomputation equals the sampler's log-probs
    assert "kl_ref" in m and "clip_frac" in m


@pytest.mark.parametrize("item, match", [
    (["steps=0"], "steps must be a positive integer"),
    (["method=magic"], "method must be one of"),
    (["lr=abc"], "lr must be a number"),
    (["nope=1"], "unknown training config key 'nope'"),
    (["gamma=1.5"], r"gamma must be in \[0, 1\]"),
    (["max_new_tokens=1"], "max_new_tokens must be >= 2 for method=gen_params"),
    (["reward_params"], "key=value"),
    (["foo.bar=1"], "only reward_params"),
    (["mesh=foo=2"], "bad mesh spec entry 'foo=2'"),
    (["mesh=data=-1,fsdp=-1"], "at most one axis may be -1"),
    (["rules=kv_heads=none"], "needs a mesh"),
    (["mesh=data=-1", "rules=heads=nowhere"], "unknown mesh axis 'nowhere'"),
])
def test_config_errors(item, match):
    with pytest.raises(ValueError, match=match):
        load_config(None, item)


def test_config_overrides_and_file(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"steps": 7, "reward_params": {"B": 0.5}}))
    cfg = load_config(str(f), ["reward_params.gamma=0.9", "policy_hidden=64,64", "progress=false"])
    assert cfg.steps == 7 and cfg.reward_params == {"B": 0.5, "gamma": 0.9}
    assert cfg.policy_hidden == (64, 64) and cfg.progress is False
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(str(tmp_path / "missing.json"))


def test_stop_signal_sets_flag():
    stop = StopSignal()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested == "SIGTERM"
    finally:
        stop.restore()
