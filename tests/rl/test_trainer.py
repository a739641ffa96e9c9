"""The trainer end to end on a tiny self-contained model: behaviour preserved across the redesign,
exact resume, run-dir safety, configs."""

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
from spgg_jax.train import RunDirError, Trainer, TrainConfig, load_config
from spgg_jax.tidy import tidy

from tiny_models import load_script
from tiny_models import run_metrics as _metrics
from tiny_models import tiny_train_overrides as _overrides

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path(__file__).parent / "reference"


def _reference_module():
    """``reference/make_reference.py``: one definition of the settings and of the comparison rules for
    the test and the writer."""
    return load_script(REFERENCE / "make_reference.py")


REFERENCE_MODULE = _reference_module()
REFERENCE_SETTINGS = REFERENCE_MODULE.SETTINGS


def _final_state(run_dir, template):
    ck = Checkpointer(Path(run_dir) / "checkpoints")
    state, meta, step = ck.restore(template)
    ck.close()
    return state, step


@pytest.mark.slow
def test_resume_in_a_new_process_equals_uninterrupted(tiny_model_dir, tmp_path):
    full = Trainer(load_config(None, _overrides(tiny_model_dir, tmp_path / "full", 4)))
    full.run(evaluate=False)
    part = Trainer(load_config(None, _overrides(tiny_model_dir, tmp_path / "part", 2)), bundles=full.setup.bundles)
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
    init = full.init_state()["policy"]
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
    # --overwrite deletes only a run of this project
    with pytest.raises(RunDirError, match="not a spgg training run directory"):
        Trainer(load_config(None, _overrides(tiny_model_dir, run, 1)), overwrite=True)
    (run / "config.json").write_text(json.dumps({**load_config(None, []).to_dict(), "seed": 123}))
    with pytest.raises(RunDirError, match="seed"):
        Trainer(load_config(None, _overrides(tiny_model_dir, run, 1)), resume=True)
    assert (run / "something.txt").read_text() == "precious"


def test_bad_config_never_touches_an_existing_run(tiny_model_dir, tmp_path):
    """Models and data are resolved before the run directory: a mistyped model path with --overwrite
    leaves the existing run alone, and a start that fails leaves nothing behind."""
    run = tmp_path / "r"
    Trainer(load_config(None, _overrides(tiny_model_dir, run, 1))).run(evaluate=False)
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    with pytest.raises((ValueError, KeyError, FileNotFoundError, OSError)):
        Trainer(load_config(None, _overrides(tmp_path / "no_such_model", run, 1)), overwrite=True)
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
    fresh = tmp_path / "fresh"
    with pytest.raises((ValueError, KeyError, FileNotFoundError, OSError)):
        Trainer(load_config(None, _overrides(tmp_path / "no_such_model", fresh, 1)))
    assert not fresh.exists()
    # a run stopped before its first step (only config.json) starts again without --overwrite
    fresh.mkdir()
    (fresh / "config.json").write_text("{}")
    Trainer(load_config(None, _overrides(tiny_model_dir, fresh, 1)))


@pytest.mark.parametrize("method, extra", list(REFERENCE_SETTINGS.items()))
def test_behaviour_preserved_against_the_first_trainer(tiny_model_dir, tmp_path, method, extra):
    """The metrics and the held-out table of 3 steps equal the committed reference
    (``tests/rl/reference/*.json``, ``make_reference.py``). History: the first trainer wrote them at
    commit 9d09970 and the redesigned trainer (learners, setup, loop) reproduced them bit for bit
    (commit "Training floor redesign"). They were rewritten since when what training computes changed
    on purpose: the episode-to-game mapping (token effort against a fixed budget, free riding measured
    on tokens, accuracy intervals in eval.json), then the policy features computed on the sampler's
    power-of-two prompt bucket (float-level differences in the pooled features), then the token
    learner's trained team evaluated greedily (its eval row only: setting, reward, tokens)."""
    ref = json.loads((REFERENCE / f"{method}.json").read_text())
    run = tmp_path / method
    out = Trainer(load_config(None, _overrides(tiny_model_dir, run, 3, method=method, eval_size=4, **extra))).run()
    got = _metrics(run)
    assert len(got) == len(ref["metrics"]) == 3
    evals = [{k: v for k, v in r.items() if k != "seconds"} for r in out["eval"]["rows"]]
    # discrete outcomes exact, continuous ones within float32 accumulation across CPUs, noise metrics
    # under their bound: the rules and their justification are in make_reference.py
    bad, _ = REFERENCE_MODULE.compare(ref, {"metrics": got, "eval": tidy(evals)})  # eval.json: 6 digits
    assert not bad, "\n".join(bad)


def test_token_method_step_and_logprob_check(tiny_model_dir, tmp_path):
    t = Trainer(load_config(None, _overrides(tiny_model_dir, tmp_path / "tok", 1, method="token", batch=2,
                                             **{"token.group_size": 2, "token.epochs": 1})))
    out = t.run(evaluate=False)
    assert out["steps"] == 1
    m = _metrics(tmp_path / "tok")[0]
    assert m["logprob_mismatch"] < 1e-4  # training-side recomputation equals the sampler's log-probs
    assert "kl_ref" in m and "clip_frac" in m


@pytest.mark.parametrize("item, match", [
    (["steps=0"], "steps must be a positive integer"),
    (["method=magic"], "method must be one of"),
    (["gen_params.lr=abc"], "gen_params.lr must be a number"),
    (["gen_params.lr=-1"], "gen_params.lr must be a finite number > 0"),
    (["gen_params.algorithm=grpo"], "set gen_params.group_size >= 2"),
    (["method=token", "token.algorithm=ppo"], "needs a value head"),
    (["nope=1"], r"unknown training config key\(s\) \['nope'\]"),
    (["gen_params.nope=1"], r"unknown gen_params key\(s\) \['nope'\]"),
    (["lr=0.1"], "lr moved to gen_params.lr"),
    (["observation=po"], "observation moved to team.observation"),
    (["gamma=0.5"], "gamma moved to nothing"),
    (["team.agents.max_new_tokens=1"], "max_new_tokens must be >= 2 for method=gen_params"),
    (["team.observation=xo"], "team.observation must be one of"),
    (["team.from=default:x"], "team.from='default:x'"),
    (["team.reward_params.B=abc"], "team.reward_params.B must be a number"),
    (["team.reward_params.kappa=-1"], "kappa must be >= 0"),
    (["eval_size=\"4\""], "eval_size must be an integer"),
    (["progress=3"], "progress must be true or false"),
    (["method=token", "gen_params.lr=0.1"], "has a 'gen_params' section but method='token'"),
    (["reward_params"], "key=value"),
    (["mesh=foo=2"], "bad mesh spec entry 'foo=2'"),
    (["mesh=data=-1,fsdp=-1"], "at most one axis may be -1"),
    (["rules=kv_heads=none"], "needs a mesh"),
    (["mesh=data=-1", "rules=heads=nowhere"], "unknown mesh axis 'nowhere'"),
])
def test_config_errors(item, match):
    with pytest.raises((ValueError, KeyError), match=match):
        load_config(None, item)


def test_config_overrides_and_file(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"steps": 7, "team": {"from": "default:3", "reward_params": {"B": 0.5}}}))
    cfg = load_config(str(f), ["team.reward_params.gamma=0.9", "gen_params.hidden=64,64", "progress=false"])
    assert cfg.steps == 7 and dict(cfg.team.reward_params) == {"B": 0.5, "gamma": 0.9}
    assert cfg.method_cfg.hidden == (64, 64) and cfg.progress is False
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(str(tmp_path / "missing.json"))
    # the saved form is the effective configuration: it holds only the active method's section and
    # the whole team inline, and loads back to the same config
    d = cfg.to_dict()
    assert "gen_params" in d and "token" not in d and isinstance(d["team"]["agents"], list)
    assert TrainConfig.from_dict(json.loads(json.dumps(d))) == cfg
    tok = load_config(None, ["method=token", "token.temperature=0.8"])
    assert {a.temperature for a in tok.team.agents} == {0.8} and {a.top_p for a in tok.team.agents} == {1.0}


def test_team_file_fields_reach_the_saved_config(tiny_model_dir, tmp_path):
    """A partial-observation team file runs partial observation, and config.json says so; explicit
    team overrides win over the file."""
    team_file = ROOT / "experiments" / "teams" / "smollm2_po3.json"
    cfg = load_config(None, _overrides(tiny_model_dir, tmp_path / "po", 1, **{"team.from": str(team_file)}))
    assert cfg.team.observation == "po"
    Trainer(cfg)
    saved = json.loads((tmp_path / "po" / "config.json").read_text())
    assert saved["team"]["observation"] == "po" and saved["team"]["effort"] == "tokens"
    assert all(a["model"] == tiny_model_dir for a in saved["team"]["agents"])
    assert TrainConfig.from_dict(saved).team == cfg.team
    fo = load_config(None, [f"team.from={team_file}", "team.observation=fo"])
    assert fo.team.observation == "fo"


def test_stop_signal_sets_flag():
    stop = StopSignal()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested == "SIGTERM" and stop.signum == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGTERM)  # again: still one request
        assert stop.requested == "SIGTERM" and stop.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):  # a SIGINT after a request: stop at once
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        stop.restore()


def _no_model_work(sig):
    """A ``Trainer.train_step`` that does no model work and, when ``sig``, signals this process during
    the first step (the loop is what is tested)."""
    from spgg_jax.train.timing import phase_metrics

    def step_fn(self, step):
        if sig is not None and step == 0:
            os.kill(os.getpid(), sig)
        m = phase_metrics({k: 0.0 for k in ("prefill", "decode", "policy", "rollout_host", "score", "update")},
                          1, 1, 0.0)
        return {"reward/mean": 0.0, "accuracy": 0.0, **m}

    return step_fn


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_graceful_stop_exits_128_plus_signal_and_prints_the_resume_command(tiny_model_dir, tmp_path, capsys,
                                                                            monkeypatch, sig, status):
    """A run stopped by SIGTERM/SIGINT before its last step saves that step and exits 143/130 (not 0: it
    is not finished), printing the command that continues it; that command finishes the run."""
    import shlex

    run = tmp_path / "r"
    argv = ["train", "--no-eval", *_overrides(tiny_model_dir, run, 3), "--overwrite"]
    monkeypatch.setattr(Trainer, "train_step", _no_model_work(sig))
    assert main(argv) == status
    out = capsys.readouterr().out
    name = signal.Signals(sig).name
    assert f"received {name}: saving step 1 and stopping" in out, out
    assert f"stopped by {name} after step 1 of 3" in out, out
    cmd = out.split("To continue:")[1].strip().splitlines()[0]
    words = shlex.split(cmd)
    assert words[:2] == ["spgg", "train"] and "--resume" in words and "--overwrite" not in words, cmd
    assert _final_state_step(run) == 1
    monkeypatch.setattr(Trainer, "train_step", _no_model_work(None))
    assert main(words[1:]) == 0  # the printed command continues the run to its end
    assert "resumed from" in capsys.readouterr().out
    assert _final_state_step(run) == 3 and [r["step"] for r in _metrics(run)] == [1, 2, 3]


def _final_state_step(run):
    ck = Checkpointer(Path(run) / "checkpoints")
    try:
        return ck.latest_step()
    finally:
        ck.close()


@pytest.mark.slow
def test_sigterm_to_a_real_training_process_exits_143(tiny_model_dir, tmp_path):
    """The status a scheduler sees: ``spgg train`` signalled during real training steps."""
    run = tmp_path / "r"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "spgg_jax.cli.main", "train", "--no-eval",
                             *_overrides(tiny_model_dir, run, 200)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(ROOT))
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("step 1/200"):
                proc.send_signal(signal.SIGTERM)
                break
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines) + out
    assert proc.returncode == 143, (out[-2000:], err[-3000:])
    assert "received SIGTERM: saving step" in out and "stopped by SIGTERM after step" in out, out[-2000:]
    assert "--resume" in out.split("To continue:")[1]
    stopped = int(out.split("received SIGTERM: saving step ")[1].split()[0])
    assert 1 <= stopped < 200 and _final_state_step(run) == stopped


def test_spgg_eval_run_dir_reproduces_the_training_evaluation(tiny_model_dir, tmp_path):
    """``spgg eval --run-dir`` rebuilds the run from its config.json and latest checkpoint and gives the
    same held-out table as the end of training; ``--split val`` evaluates the validation split."""
    from spgg_jax.eval.trained import BASELINES, TRAINED

    run = tmp_path / "r"
    out = Trainer(load_config(None, _overrides(tiny_model_dir, run, 2, eval_size=3))).run()
    want = [{k: v for k, v in r.items() if k != "seconds"} for r in out["eval"]["rows"]]
    assert main(["eval", "--run-dir", str(run), "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "eval.json").read_text())
    got = [{k: v for k, v in r.items() if k != "seconds"} for r in again["rows"]]
    assert got == want and [r["method"] for r in got] == [*BASELINES, TRAINED]
    assert again["comparisons"] == out["eval"]["comparisons"] and again["headline"] == out["eval"]["headline"]
    assert [(c["a"], c["b"]) for c in again["comparisons"]] == [(TRAINED, b) for b in BASELINES]
    assert again["splits"]["sizes"] == {"train": 16, "val": 3, "test": 3} and again["split"] == "test"
    for r in got:
        assert r["ci95"][0] <= r["accuracy"] <= r["ci95"][1]
    episodes = [json.loads(line) for line in (run / "eval_episodes.jsonl").read_text().splitlines()]
    assert len(episodes) == 6 * 3 and all("prompt" in e and e["turns"] for e in episodes)
    # the validation split: its own file, the same untrained rows as the run's validation
    assert main(["eval", "--run-dir", str(run), "--split", "val"]) == 0
    val = json.loads((run / "eval_val.json").read_text())
    assert val["split"] == "val" and all(r["n"] == 3 for r in val["rows"])
    assert [r["accuracy"] for r in val["rows"][:-1]] == [r["accuracy"] for r in out["eval"]["validation"]["rows"]]
    assert (run / "eval_val_episodes.jsonl").is_file()
    assert main(["eval", "--run-dir", str(run), "--split", "train"]) == 2
    assert main(["eval", "--run-dir", str(tmp_path / "nothing")]) == 2  # not a run: a one-line error


def test_overrides_may_follow_flags(capsys):
    """``spgg train --no-eval steps=0`` reads the override after the flag (a config error, not an
    argparse 'unrecognized arguments'); a stray flag is still an error."""
    assert main(["train", "--no-eval", "steps=0"]) == 2
    assert "steps must be a positive integer" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--no-eval", "--nope", "steps=1"])


def test_step_metrics_split_the_iteration_and_bench_iteration_reports_it(tiny_model_dir, tmp_path, capsys):
    """Every metrics row carries the phase split (phases add up to the step) and ``spgg bench
    iteration`` reports the last iteration's split from the trainer itself."""
    import argparse

    from spgg_jax.bench import iteration

    run = tmp_path / "split"
    Trainer(load_config(None, _overrides(tiny_model_dir, run, 2))).run(evaluate=False)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    phases = ("rollout_prefill", "policy", "rollout_decode", "rollout_host", "score", "update")
    for r in rows:
        assert all(r[f"time/{p}"] >= 0 for p in phases)
        assert sum(r[f"time/{p}"] for p in phases) == pytest.approx(r["time/step"], rel=1e-6)
        assert r["tokens_per_s/prefill"] > 0 and r["tokens_per_s/decode"] > 0
    assert rows[0]["time/compile"] > 0  # the first step compiles the sampler and the update

    capsys.readouterr()  # the run's step log
    p = argparse.ArgumentParser()
    iteration.add_arguments(p)
    args = p.parse_args(["--config", str(run / "config.json"), "--json"])
    assert iteration.run(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["phases_s"]) == set(phases) and out["turns"] == 3
    assert out["step_s"] == pytest.approx(sum(out["phases_s"].values()), rel=1e-6)
    assert out["compile_s_first_step"] > 0 and out["prompt_tokens"] > 0 and out["new_tokens"] > 0
    with pytest.raises(ValueError, match="--steps must be >= 2"):
        iteration.run(p.parse_args(["--config", str(run / "config.json"), "--steps", "1"]))


def test_reference_comparison_tells_noise_from_behaviour():
    """The cross-CPU comparison of ``make_reference.py`` accepts float32 accumulation noise and refuses
    a changed outcome, a changed continuous value and a noise metric above its bound."""
    ref = json.loads((REFERENCE / "gen_params.json").read_text())
    same = json.loads(json.dumps(ref))
    row = same["metrics"][1]
    row["policy_loss"] *= 1 + 5e-6  # the AMD EPYC difference of issue 22
    row["reward/agent1"] *= 1 - 2e-5
    assert REFERENCE_MODULE.compare(ref, same)[0] == []
    for key, value in [("accuracy", row["accuracy"] + 1 / 24), ("tokens/agent2", row["tokens/agent2"] + 0.25),
                       ("reward/mean", row["reward/mean"] * (1 + 1e-3))]:
        changed = json.loads(json.dumps(ref))
        changed["metrics"][1][key] = value
        bad, _ = REFERENCE_MODULE.compare(ref, changed)
        assert len(bad) == 1 and key in bad[0], bad
    changed = json.loads(json.dumps(ref))
    changed["eval"][0]["method"] = "something else"
    assert REFERENCE_MODULE.compare(ref, changed)[0]
    assert REFERENCE_MODULE.kind("logprob_mismatch") == "noise"
    bad, _ = REFERENCE_MODULE.compare({"logprob_mismatch": 1e-7}, {"logprob_mismatch": 3e-4})
    assert bad and "bound" in bad[0]


@pytest.mark.torch
def test_bench_train_compares_the_adapter_step_with_pytorch(tiny_model_dir, capsys):
    """``spgg bench train`` at tiny shapes: adapters on the top layer of 2, ours from the captured trunk
    and with the trunk's forward, and PyTorch's LoRA step; the first step's loss is the same in all
    three (the same weights, adapters and data), and the ratios are reported."""
    from spgg_jax.cli.main import main

    argv = ["bench", "train", "--model", tiny_model_dir, "--batch", "2", "--seq-len", "12", "--new-tokens", "4",
            "--train-layers", "1", "--lora-rank", "2", "--repeats", "1"]
    assert main(argv + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["first_trained_layer"] == 1 and out["trained"].startswith("LoRA r2 on the top 1 of 2 layers")
    losses = out["first_loss"]
    assert set(losses) == {"jax_captured", "jax_trunk", "torch"}
    np.testing.assert_allclose(losses["jax_trunk"], losses["jax_captured"], rtol=1e-6)
    np.testing.assert_allclose(losses["torch"], losses["jax_captured"], rtol=1e-4)
    assert out["ratio"] > 0 and out["ratio_with_trunk"] > 0
    assert main(argv + ["--no-torch"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "ratio: n/a (PyTorch skipped (--no-torch))"
    assert main(argv[:8] + ["--new-tokens", "12"]) == 2
    assert "--new-tokens must be in [1, 11]" in capsys.readouterr().err


def test_method_switched_from_the_command_line(caplog):
    """``method=token`` on the command line runs a gen_params config file (the demo's) with the token
    learner: the file's gen_params section is dropped with a logged warning, the effective config
    holds the token section and the token team's sampling; a section given on the command line for
    the other method is still refused."""
    demo = str(ROOT / "experiments" / "demo.json")
    with caplog.at_level("WARNING", logger="spgg_jax.train.config"):
        cfg = load_config(demo, ["method=token", "token.train_layers=1"])
    assert "method=token on the command line: ignoring the gen_params section" in caplog.text
    d = cfg.to_dict()
    assert cfg.method == "token" and "gen_params" not in d and d["token"]["train_layers"] == 1
    file = json.loads(Path(demo).read_text())
    assert (cfg.batch, cfg.steps) == (file["batch"], file["steps"]) and cfg.team.final == "majority"  # the rest stays
    assert cfg.team.game_params().kappa == file["team"]["reward_params"]["kappa"]
    assert {a.top_p for a in cfg.team.agents} == {1.0}  # the token learner samples from the policy itself
    assert TrainConfig.from_dict(json.loads(json.dumps(d))) == cfg
    assert load_config(demo).method == "gen_params"  # the file alone is unchanged
    with pytest.raises(ValueError, match="has a 'gen_params' section but method='token'"):
        load_config(demo, ["method=token", "gen_params.lr=0.1"])
