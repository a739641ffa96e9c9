"""`spgg train --dry-run` and the sweep planner: the same checks, nothing written, plugins passed on."""

import json
from pathlib import Path

import pytest

from spgg_jax.cli.main import main
from spgg_jax.train import load_config
from spgg_jax.train.sweeps import SweepError, check_points, main as plan_main, parse_sweep

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = str(ROOT / "experiments" / "plugins" / "relative_reward.py")


def test_dry_run_prints_the_effective_config_and_writes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["--plugin", PLUGIN, "train", "--dry-run", "team.reward=mac_spgg_relative", "team.reward_params.alpha=0.2",
            "team.scorer=mean_credit", "--run-dir", str(run)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "alpha=0.2" in out and "basic_arithmetic (one problem generated: ok)" in out and "does not exist yet" in out
    cfg = json.loads(out[out.index("effective configuration:") + len("effective configuration:"):])
    assert cfg["team"]["scorer"] == "mean_credit" and cfg["run_dir"] == str(run)
    assert not run.exists()
    # an existing run is refused as training would refuse it, and left alone
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "metrics.jsonl").write_text("")
    assert main(argv) == 2
    assert "already exists; pass --resume" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "metrics.jsonl"]


@pytest.mark.parametrize("extra,needle", [
    (["team.reward_params.alpah=0.2"], "unknown game parameter(s) ['alpah'] for reward 'mac_spgg_relative'"),
    (["team.reward_params.alpha=-1"], "mac_spgg_relative parameter alpha must be >= 0"),
    (["team.scorer=mean_credt"], "unknown episode scorer 'mean_credt'"),
    (["team.model=/no/such/model"], "unknown model '/no/such/model'"),
    (["task=basic_arithmetc"], "unknown task 'basic_arithmetc'"),
    (["task_options.max_terms=oops"], "bad option for reasoning-gym 'basic_arithmetic'"),
])
def test_dry_run_names_the_bad_value(tmp_path, capsys, extra, needle):
    argv = ["--plugin", PLUGIN, "train", "--dry-run", "team.reward=mac_spgg_relative", *extra,
            "--run-dir", str(tmp_path / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_switching_reward_drops_the_team_files_parameters_it_does_not_accept():
    cfg = load_config(None, ["team.from=experiments/teams/smollm2_fo3.json", "team.reward=spgg",
                             "team.reward_params.r=2.0"])
    assert dict(cfg.team.reward_params) == {"kappa": 1.0, "B": 0.6, "r": 2.0}  # gamma, rho, P were mac_spgg's
    with pytest.raises(ValueError, match=r"unknown game parameter\(s\) \['gamma'\] for reward 'spgg'"):
        load_config(None, ["team.reward=spgg", "team.reward_params.gamma=0.5"])  # written explicitly: an error


def test_planner_checks_every_point_and_passes_plugins_on(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    sweep = tmp_path / "s.json"
    sweep.write_text(json.dumps({"base": {"team": {"reward": "mac_spgg_relative"}},
                                 "grid": {"team.reward_params.alpha": [0.1, 0.5], "seed": [0, 1]}}))
    assert plan_main(["--plugin", PLUGIN, "--format", "json", str(sweep)]) == 0
    jobs = json.loads(capsys.readouterr().out)
    assert len(jobs) == 4 and all(j["argv"][1:3] == ["--plugin", PLUGIN] for j in jobs)
    monkeypatch.setenv("SPGG_PLUGINS", PLUGIN)  # the environment's plugins are passed on too, once
    assert plan_main(["--plugin", PLUGIN, "--format", "json", str(sweep)]) == 0
    assert json.loads(capsys.readouterr().out)[0]["argv"].count("--plugin") == 1
    with pytest.raises(SweepError, match="point 0 .*unknown episode scorer 'nope'"):
        parse_sweep({"base": {"team": {"reward": "mac_spgg_relative", "scorer": "nope"}}, "grid": {"seed": [0]}})
    # model paths are only checked with --check-files (they usually exist only on the workers)
    remote = parse_sweep({"base": {"team": {"model": "models/only-on-the-pod"}}, "grid": {"seed": [0]}})
    check_points(remote)
    with pytest.raises(SweepError, match="unknown model 'models/only-on-the-pod'"):
        check_points(remote, files=True)


def test_paths_in_a_config_file_resolve_against_its_directory(tmp_path, monkeypatch, capsys):
    """A config works from any directory: its team file and data paths are relative to the file; the
    effective config holds them absolute; command-line overrides stay relative to the working
    directory; a path written relative to the working directory gets an error that says what to write."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", str(ROOT / "experiments" / "demo.json"), "--dry-run",
                 "--run-dir", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    cfg = json.loads(out[out.index("effective configuration:") + len("effective configuration:"):])
    assert cfg["team"]["agents"][0]["max_new_tokens"] == 32 and not (tmp_path / "run").exists()
    gsm = load_config(str(ROOT / "experiments" / "paper" / "gsm8k_fo.json"))
    assert gsm.task_options["path"] == str(ROOT / "experiments" / "paper" / "../../data/gsm8k")
    assert gsm.team.agents[0].model == "models/Llama-3.1-8B-Instruct"  # the team file was found from tmp_path
    # a team path written relative to the working directory, as configs were before
    (tmp_path / "teams").mkdir()
    (tmp_path / "teams" / "t.json").write_text((ROOT / "experiments" / "teams" / "smollm2_fo3.json").read_text())
    (tmp_path / "cfgs").mkdir()
    bad = tmp_path / "cfgs" / "c.json"
    bad.write_text(json.dumps({"team": {"from": "teams/t.json"}}))
    with pytest.raises(ValueError, match=r"relative to the file's directory .*write '../teams/t.json'"):
        load_config(str(bad))
    bad.write_text(json.dumps({"team": "../teams/t.json"}))
    assert load_config(str(bad)).team.n == 3
    assert load_config(None, ["team.from=teams/t.json"]).team.n == 3  # the command line: the working directory
