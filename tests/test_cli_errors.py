"""One-line errors where tracebacks were (issue 25): bad paths and files handed to the CLI, a full
disk during a save, a broken model config, a reward parameter out of range. Each case: a non-zero
status, one line on stderr naming what is wrong, no traceback; the read-only cases fail before any
model is loaded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from spgg_jax.cli.main import main

from tiny_models import tiny_train_overrides as _overrides

ROOT = Path(__file__).resolve().parents[1]


def _one_line(rc: int, err: str, *needles: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert rc != 0, err
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def _cli(capsys, argv) -> tuple[int, str]:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err


@pytest.fixture
def files(tmp_path):
    (tmp_path / "a_file").write_text("not a directory")
    (tmp_path / "utf16.json").write_bytes('{"steps": 2}'.encode("utf-16"))
    (tmp_path / "binary.json").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "a_dir").mkdir()
    return tmp_path


# ------------------------------------------------------------------------------ paths to write
@pytest.mark.parametrize("dry", [True, False])
def test_run_dir_that_is_a_file(capsys, files, tiny_model_dir, dry):
    argv = ["train", *(["--dry-run"] if dry else []), *_overrides(tiny_model_dir, files / "a_file", 1)]
    _one_line(*_cli(capsys, argv), "run directory", "a_file", "is a file, not a directory")
    argv = ["train", *_overrides(tiny_model_dir, files / "a_file" / "run", 1)]
    _one_line(*_cli(capsys, argv), "cannot be created", "is a file, not a directory")


def test_run_dir_name_too_long(capsys, files, tiny_model_dir):
    run = files / ("r" * 300)
    _one_line(*_cli(capsys, ["train", *_overrides(tiny_model_dir, run, 1)]), "run directory", "too long", "255")
    assert "r" * 300 not in os.listdir(files)


@pytest.mark.parametrize("sub", [["sweep", "--sweep", "gamma=0:1:2"], ["learn", "--steps", "2"]])
def test_game_out_that_is_a_file(capsys, files, sub):
    _one_line(*_cli(capsys, ["game", sub[0], "--out", files / "a_file", *sub[1:]]), "--out", "is a file, not a directory")
    assert (files / "a_file").read_text() == "not a directory"


def _read_only(path: Path, argv: list[str]) -> subprocess.CompletedProcess:
    """``spgg ARGV`` in a new process that sees ``path`` read-only: a read-only bind mount in a private
    mount namespace when root (root ignores permission bits), else the permission bits."""
    cli = [sys.executable, "-m", "spgg_jax.cli.main", *map(str, argv)]
    if os.geteuid() == 0:
        if shutil.which("unshare") is None:
            pytest.skip("root without unshare: no way to make a read-only directory here")
        script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" || exit 99; shift; exec "$@"'
        cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(path), *cli]
    else:
        os.chmod(path, 0o555)
        cmd = cli
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=str(ROOT),
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode == 99:
        pytest.skip(f"cannot make a read-only bind mount here: {proc.stderr[-200:]}")
    return proc


def test_read_only_run_directory_is_refused_before_any_work(tmp_path, tiny_model_dir):
    from spgg_jax.train import load_config

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(load_config(None, _overrides(tiny_model_dir, run, 1, eval_size=2)).to_dict()))
    try:
        # spgg eval --run-dir writes eval.json into the run: refused before the model is loaded
        proc = _read_only(run, ["eval", "--run-dir", run])
        _one_line(proc.returncode, proc.stderr, "spgg eval: error: run directory", str(run), "not writable")
        assert not (run / "eval.json").exists()
        # a new run below a read-only directory cannot be created
        proc = _read_only(run, ["train", *_overrides(tiny_model_dir, run / "new", 1)])
        _one_line(proc.returncode, proc.stderr, "spgg train: error: run directory", "cannot be created", "not writable")
    finally:
        os.chmod(run, 0o755)


# ------------------------------------------------------------------------------ files to read
@pytest.mark.parametrize("name, words", [("utf16.json", "is UTF-16 text"), ("binary.json", "is not UTF-8 text"),
                                         ("a_dir", "is a directory, not a file")])
def test_config_files_that_are_not_utf8_json_files(capsys, files, name, words):
    path = files / name
    _one_line(*_cli(capsys, ["train", "--dry-run", "--config", path]), "config file", str(path), words)
    _one_line(*_cli(capsys, ["train", "--dry-run", f"team.from={path}"]), "team config", str(path), words)
    _one_line(*_cli(capsys, ["generate", "--prompts-file", path, "--model", "nowhere"]), "prompts file", str(path),
              words)


def test_run_config_that_is_binary(capsys, files):
    run = files / "run"
    run.mkdir()
    (run / "config.json").write_bytes((files / "binary.json").read_bytes())
    _one_line(*_cli(capsys, ["eval", "--run-dir", run]), "run config", str(run / "config.json"), "is not UTF-8 text")
    _one_line(*_cli(capsys, ["eval", "--run-dir", files / "a_file"]), "is a file, not a training run directory")


def _broken_model(tiny_model_dir, tmp_path, edit) -> Path:
    model = tmp_path / "broken_model"
    shutil.copytree(tiny_model_dir, model)
    cfg_path = model / "config.json"
    cfg = json.loads(cfg_path.read_text())
    edit(cfg, cfg_path)
    return model


def test_bad_hf_config_names_the_key_and_the_file(capsys, tmp_path, tiny_model_dir):
    model = _broken_model(tiny_model_dir, tmp_path, lambda c, p: (c.pop("num_attention_heads"),
                                                                   p.write_text(json.dumps(c))))
    where = str(model / "config.json")
    _one_line(*_cli(capsys, ["models", "info", model]), where, "lacks the key 'num_attention_heads'")
    _one_line(*_cli(capsys, ["generate", "--model", model, "--prompt", "hi"]), where,
              "lacks the key 'num_attention_heads'")
    utf16 = _broken_model(tiny_model_dir, tmp_path / "u", lambda c, p: p.write_bytes(json.dumps(c).encode("utf-16")))
    _one_line(*_cli(capsys, ["models", "info", utf16]), "model config", str(utf16 / "config.json"), "UTF-16")


# ------------------------------------------------------------------------------ values
@pytest.mark.parametrize("item, words", [("team.reward_params.B=-5", ["B must be >= 0", "-5"]),
                                         ("team.reward_params.m0=-1", ["m0 must be >= 0", "-1"]),
                                         ("team.reward_params.gamma=-1", ["gamma must be >= 0", "-1"])])
def test_reward_parameters_out_of_range(capsys, item, words):
    _one_line(*_cli(capsys, ["train", "--dry-run", item]), *words)


def test_game_list_declares_the_shared_ranges(capsys):
    assert main(["game", "list", "--json"]) == 0
    ranges = json.loads(capsys.readouterr().out)["shared_ranges"]
    assert ranges["B"] == ">= 0" and ranges["c_min"] == "> 0" and ranges["kappa"] == ">= 0"


# ------------------------------------------------------------------------------ a full disk
ENOSPC_FROM_TENSORSTORE = (
    'RESOURCE_EXHAUSTED: Error writing "w/0.0" in OCDBT database at local file "{d}/1.orbax-checkpoint-tmp/'
    'state.orbax-checkpoint-tmp/ocdbt.process_0/": Failed writing: "{d}/1.orbax-checkpoint-tmp/d/4c4f": Failed to '
    "write 2852565 bytes to file 14: No space left on device [os_error_code='28']")


def test_disk_full_during_a_save_is_one_line_with_the_way_on(capsys, tmp_path, tiny_model_dir, monkeypatch):
    """What orbax raises when the disk fills during a save (the TensorStore message measured on a
    1 MiB tmpfs) ends the run with one line saying what, where and how to continue."""
    import orbax.checkpoint as ocp

    from spgg_jax.train import Trainer
    from spgg_jax.train.timing import phase_metrics

    def fake_step(self, step):  # no model work: the save is what is tested
        m = phase_metrics({"prefill": 0.0, "decode": 0.0, "policy": 0.0, "rollout_host": 0.0, "score": 0.0,
                           "update": 0.0}, 1, 1, 0.0)
        return {"reward/mean": 0.0, "accuracy": 0.0, **m}

    def full_disk(self, step, *a, **k):
        raise ValueError(ENOSPC_FROM_TENSORSTORE.format(d=self.directory))

    monkeypatch.setattr(Trainer, "train_step", fake_step)
    monkeypatch.setattr(ocp.CheckpointManager, "save", full_disk)
    run = tmp_path / "run"
    line = _one_line(*_cli(capsys, ["train", "--no-eval", *_overrides(tiny_model_dir, run, 2)]),
                     "spgg train: error: checkpoint step 1 could not be saved in", str(run / "checkpoints"),
                     "no space left on the device", "training stopped after step 1", "--resume")
    assert "os_error_code" not in line and "OCDBT" not in line
