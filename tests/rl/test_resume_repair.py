"""Resume repairs the run directory (issue 25): a bad latest checkpoint is moved aside and its steps
trained and saved again, metrics rows always match the checkpoints (a truncated last line
included), unfinished saves are removed, and a start that fails changes nothing."""

import json
import shutil
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest

from spgg_jax.checkpoint import Checkpointer
from spgg_jax.train import Trainer, load_config

from tiny_models import run_metrics as _metrics
from tiny_models import tiny_train_overrides as _overrides

STEPS = 3


@pytest.fixture(scope="module")
def base(tiny_model_dir, tmp_path_factory):
    """An uninterrupted run of STEPS steps with a checkpoint after every step (the reference)."""
    run = tmp_path_factory.mktemp("base") / "run"
    t = Trainer(load_config(None, _overrides(tiny_model_dir, run, STEPS, keep=5)), log=lambda *a: None)
    t.run(evaluate=False)
    return {"run": run, "model": tiny_model_dir, "state": t.state, "bundles": t.setup.bundles,
            "metrics": _metrics(run)}


def _copy(base, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(base["run"], run)
    return run


def _resume(base, run, lines):
    t = Trainer(load_config(None, _overrides(base["model"], run, STEPS, keep=5)), resume=True,
                bundles=base["bundles"], log=lambda *a: lines.append(" ".join(map(str, a))))
    t.run(evaluate=False)
    return t


def _assert_whole_and_equal(base, run):
    """Every checkpoint readable, the latest is step STEPS and equals the reference bit for bit, and
    the metrics rows are the reference's (one per step, none missing)."""
    ck = Checkpointer(run / "checkpoints")
    try:
        assert ck.latest_step() == STEPS
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback to an older step
            state, _, step = ck.restore(base["state"])
    finally:
        ck.close()
    assert step == STEPS
    for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(base["state"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert _metrics(run) == base["metrics"]
    assert [r["step"] for r in _metrics(run)] == list(range(1, STEPS + 1))
    assert not [p for p in (run / "checkpoints").iterdir() if "orbax-checkpoint-tmp" in p.name]


def _truncate_state(run, step):
    files = [p for p in (run / "checkpoints" / str(step) / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    assert files
    for p in files:
        p.write_bytes(p.read_bytes()[:5])


@pytest.mark.slow
def test_corrupt_latest_checkpoint_is_set_aside_and_saved_again(base, tmp_path):
    run = _copy(base, tmp_path)
    _truncate_state(run, STEPS)
    lines: list[str] = []
    t = _resume(base, run, lines)
    assert t.start_step == STEPS - 1
    log = "\n".join(lines)
    assert f"checkpoint step {STEPS} in {run / 'checkpoints'} is unreadable" in log, log
    aside = [p.name for p in (run / "checkpoints").iterdir() if ".set-aside-" in p.name]
    assert len(aside) == 1 and aside[0].startswith(f"{STEPS}.set-aside-"), aside
    assert f"moved checkpoint step {STEPS} to {run / 'checkpoints' / aside[0]}" in log
    _assert_whole_and_equal(base, run)
    # a later resume finds the run whole: nothing to repair, nothing to train
    lines.clear()
    again = _resume(base, run, lines)
    assert again.start_step == STEPS and not any("set aside" in x or "moved" in x for x in lines), lines


@pytest.mark.slow
def test_truncated_last_metrics_line_is_trained_and_written_again(base, tmp_path):
    run = _copy(base, tmp_path)
    path = run / "metrics.jsonl"
    text = path.read_text()
    path.write_text(text[: len(text) - len(text.splitlines()[-1]) // 2 - 1])  # half of the last row
    lines: list[str] = []
    with pytest.warns(RuntimeWarning, match="dropping the truncated last line"):
        t = _resume(base, run, lines)
    assert t.start_step == STEPS - 1  # the newest checkpoint the complete rows reach
    log = "\n".join(lines)
    assert "is truncated" in log and f"checkpoint step {STEPS}" in log and "no metrics row" in log, log
    _assert_whole_and_equal(base, run)


@pytest.mark.slow
def test_unfinished_save_and_rows_without_checkpoint_are_repaired(base, tmp_path):
    """What a disk-full save leaves: metrics rows past the last checkpoint and an orbax tmp folder."""
    run = _copy(base, tmp_path)
    ckpts = run / "checkpoints"
    shutil.rmtree(ckpts / str(STEPS))
    tmp = ckpts / f"{STEPS}.orbax-checkpoint-tmp-1234567"
    (tmp / "state").mkdir(parents=True)
    (tmp / "state" / "partial").write_bytes(b"\0" * 100)
    lines: list[str] = []
    t = _resume(base, run, lines)
    assert t.start_step == STEPS - 1
    assert f"removed {tmp}" in "\n".join(lines), lines
    assert not tmp.exists()
    _assert_whole_and_equal(base, run)


def _snapshot(run: Path) -> dict:
    return {str(p.relative_to(run)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["garbage_metrics_line", "every_checkpoint_unreadable"])
def test_a_resume_that_fails_changes_nothing(base, tmp_path, damage):
    run = _copy(base, tmp_path)
    cfg_path = run / "config.json"
    cfg_path.write_text(json.dumps(json.loads(cfg_path.read_text())))  # not how the trainer writes it
    if damage == "garbage_metrics_line":
        rows = (run / "metrics.jsonl").read_text().splitlines()
        rows[1] = "garbage"
        (run / "metrics.jsonl").write_text("\n".join(rows) + "\n")
        match = r"metrics\.jsonl: line 2 is not a JSON object"
    else:
        for s in range(1, STEPS + 1):
            _truncate_state(run, s)
        match = "no intact checkpoint in"
    (run / "checkpoints" / "9.orbax-checkpoint-tmp-1").mkdir()
    before = _snapshot(run)
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    with pytest.raises((ValueError, RuntimeError), match=match):
        Trainer(load_config(None, _overrides(base["model"], run, STEPS, keep=5)), resume=True,
                bundles=base["bundles"], log=lambda *a: None)
    assert _snapshot(run) == before
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == names
