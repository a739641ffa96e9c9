"""Every shipped experiment config parses and validates (without loading any model or data)."""

import json
from pathlib import Path

import pytest

from spgg_jax.game.rewards import validate_for
from spgg_jax.rollout.team import TeamConfig
from spgg_jax.train import load_config

ROOT = Path(__file__).resolve().parents[1]
TRAIN_CONFIGS = sorted(p for p in (ROOT / "experiments").rglob("*.json")
                       if "teams" not in p.parts and "sweeps" not in p.parts)
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
    validate_for(cfg.team.reward, cfg.team.game_params())
    if cfg.method == "token":
        assert len(set(cfg.team.models())) == 1, "token-level training needs one shared base model"
    # the saved form of the config is the effective one and loads back to the same run
    assert load_config(None, []).__class__.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("path", TEAMS, ids=lambda p: p.name)
def test_team_files_validate(path):
    team = TeamConfig.from_json(str(path))
    assert team.n == len(json.loads(path.read_text())["agents"])
