"""Every shipped experiment config parses and validates (without loading any model or data)."""

import json
from pathlib import Path

import pytest

from spgg_jax.game.rewards import validate_for
from spgg_jax.rollout.team import TeamConfig
from spgg_jax.train import load_config

ROOT = Path(__file__).resolve().parents[1]
TRAIN_CONFIGS = sorted(p for p in (ROOT / "experiments").rglob("*.json")
                       if not {"teams", "sweeps", "results"} & set(p.parts))  # results: runs' records
TEAMS = sorted((ROOT / "experiments" / "teams").glob("*.json"))


def test_there_are_configs():
    names = {p.name for p in TRAIN_CONFIGS}
    assert "demo.json" in names
    for task in ("humaneval", "gsm8k", "mmlu", "summeval"):
        for obs in ("fo", "po"):
            assert f"{task}_{obs}.json" in names


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.name)
def test_train_config_validates(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = load_config(str(path))
    if not cfg.team.single:  # a single agent plays no game (experiments/token/single.json)
        validate_for(cfg.team.reward, cfg.team.game_params())
    if cfg.method == "token":
        assert len(set(cfg.team.models())) == 1, "token-level training needs one shared base model"
    # the saved form of the config is the effective one and loads back to the same run
    assert load_config(None, []).__class__.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("path", TEAMS, ids=lambda p: p.name)
def test_team_files_validate(path):
    team = TeamConfig.from_json(str(path))
    assert team.n == len(json.loads(path.read_text())["agents"])


@pytest.mark.slow
def test_free_riding_experiment_runs_end_to_end(tiny_model_dir, tmp_path, monkeypatch):
    """experiments/free_riding/run.py trains the same team under two rewards (tiny model, 2 steps each)
    and writes the per-agent table and the plot. (spgg is pgg on episodes, run.py's docstring; its
    config is validated by ``test_free_riding_configs_validate_for_every_reward``.)"""
    import csv
    from tiny_models import load_script

    monkeypatch.chdir(ROOT)
    mod = load_script(ROOT / "experiments" / "free_riding" / "run.py", "free_riding_run")
    out = tmp_path / "fr"
    assert mod.main(["--out", str(out), "--rewards", "pgg,mac_spgg", f"team.model={tiny_model_dir}", "steps=2", "batch=4",
                     "team.agents.max_new_tokens=8", "gen_params.minibatch=4", "train_size=16"]) == 0
    rows = list(csv.DictReader(open(out / "free_riding.csv")))
    assert {r["variant"] for r in rows} == {"pgg", "mac_spgg"}
    assert all(r["reward"] not in ("pgg", "spgg", "mac_spgg") for r in rows)  # the mean reward, a number
    assert {r["window"] for r in rows} == {"first", "last"} and {r["agent"] for r in rows} == {"1", "2", "3"}
    assert all(float(r["tokens"]) >= 0 and r["mode/max_new_tokens"] for r in rows)
    assert (out / "free_riding.png").stat().st_size > 1000
    saved = json.loads((out / "pgg" / "config.json").read_text())
    assert saved["team"]["reward"] == "pgg" and saved["team"]["effort"] == "tokens"


@pytest.mark.parametrize("path", sorted((ROOT / "experiments" / "free_riding").glob("*.json")), ids=lambda p: p.name)
def test_free_riding_configs_validate_for_every_reward(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    for reward in ("pgg", "spgg", "mac_spgg"):
        cfg = load_config(str(path), [f"team.reward={reward}"])
        assert cfg.team.effort == "tokens"
        validate_for(reward, cfg.team.game_params())
