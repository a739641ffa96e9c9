"""Team configs: JSON round trip, defaults, and validation errors that name the bad value."""

from __future__ import annotations

import json

import pytest

from spgg_jax.rollout.team import AgentConfig, TeamConfig, default_team, load_team


def test_default_team_roles_and_game_params():
    team = default_team(n=3, observation="po")
    assert [a.name for a in team.agents] == ["solver", "checker", "finaliser"]
    assert "final answer" in team.agents[-1].role and "requested format" in team.agents[-1].role
    assert team.n == 3 and team.n_turns == 3 and team.models() == ["smollm2-135m-instruct"]
    gp = team.game_params()
    assert gp.n == 3 and gp.observation == "po" and float(gp.c_min) == pytest.approx(team.c_min)
    integ = team.replace(final="integrator")
    assert integ.n_turns == 4 and integ.turn_agent(3) == 0 and integ.turn_agent(2) == 2


def test_json_round_trip(tmp_path):
    team = default_team(n=2).replace(reward_params={"gamma": 0.7, "B": 0.5}, cost="tokens", context_budget=512)
    p = tmp_path / "team.json"
    team.to_json(p)
    back = TeamConfig.from_json(p)
    assert back == team
    assert back.game_params().n == 2 and float(back.game_params().gamma) == pytest.approx(0.7)


def test_example_configs_load():
    import glob

    files = sorted(glob.glob("experiments/teams/*.json"))
    assert files, "example team configs missing"
    for f in files:
        t = TeamConfig.from_json(f)
        t.game_params()


@pytest.mark.parametrize("field,value,needle", [
    ("observation", "full", "observation"),
    ("final", "first", "final"),
    ("cost", "flops", "cost"),
    ("context_budget", 3, "context_budget"),
    ("c_min", 2.0, "c_min"),
])
def test_team_validation(field, value, needle):
    d = default_team().to_dict()
    d[field] = value
    with pytest.raises(ValueError, match=needle):
        TeamConfig.from_dict(d)


@pytest.mark.parametrize("field,value", [("temperature", -1.0), ("top_p", 0.0), ("top_p", 1.5),
                                         ("max_new_tokens", 0), ("top_k", 2.5), ("repetition_penalty", 0.0),
                                         ("model", "")])
def test_agent_validation(field, value):
    with pytest.raises(ValueError, match=field):
        AgentConfig(**{field: value})


def test_unknown_fields_and_bad_json(tmp_path):
    with pytest.raises(ValueError, match="temprature"):
        TeamConfig.from_dict({"agents": [{"name": "a", "temprature": 0.5}]})
    with pytest.raises(ValueError, match="colour"):
        TeamConfig.from_dict({"agents": [{"name": "a"}], "colour": 1})
    with pytest.raises(ValueError, match="reward_params must not set"):
        TeamConfig.from_dict({"agents": [{"name": "a"}], "reward_params": {"n": 4}})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="invalid JSON"):
        TeamConfig.from_json(bad)
    with pytest.raises(FileNotFoundError):
        TeamConfig.from_json(tmp_path / "missing.json")


def test_load_team_model_override(tmp_path):
    assert all(a.model == "m" for a in load_team("default:4", model="m").agents)
    assert load_team("default:4").n == 4
    p = tmp_path / "t.json"
    p.write_text(json.dumps({"agents": [{"name": "a", "model": "x"}, {"name": "b", "model": "y"}]}))
    t = load_team(str(p), model="z")
    assert t.models() == ["z"]
