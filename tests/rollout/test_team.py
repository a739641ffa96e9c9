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
    assert team.replace(final="majority_integrator").n_turns == 4
    assert team.replace(final="majority").n_turns == 3 and team.replace(final="last_answer").n_turns == 3
    assert team.effort == "tokens" and team.token_budget == 0


def test_effort_budget_is_fixed_and_team_wide():
    team = default_team(n=3, max_new_tokens=32)
    team = team.replace(agents=(team.agents[0], team.agents[1].__class__(**{**team.agents[1].__dict__, "max_new_tokens": 80}),
                                team.agents[2]))
    assert team.effort_budget == 80  # 0: the largest max_new_tokens among the agents
    assert team.replace(token_budget=50).effort_budget == 50
    with pytest.raises(ValueError, match="token_budget must be an integer >= 0.*-1"):
        team.replace(token_budget=-1)
    with pytest.raises(ValueError, match="token_budget.*2.5"):
        team.replace(token_budget=2.5)


def test_old_cost_key_is_a_clear_error():
    d = default_team().to_dict()
    d["cost"] = "quality"
    with pytest.raises(ValueError, match="renamed to 'effort'.*\"effort\": \"tokens\".*removed because it charged"):
        TeamConfig.from_dict(d)


def test_verify_roles():
    team = default_team(n=3, roles="verify", final="last_answer")
    assert [a.name for a in team.agents] == ["solver", "verifier1", "verifier2"]
    for a in team.agents[1:]:
        assert "confirm" in a.role and "corrected final answer" in a.role
    with pytest.raises(ValueError, match="roles must be one of .*'judge'"):
        default_team(n=3, roles="judge")


def test_json_round_trip(tmp_path):
    team = default_team(n=2).replace(reward_params={"gamma": 0.7, "B": 0.5}, effort="none", token_budget=64, context_budget=512)
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
    ("effort", "flops", "effort"),
    ("effort", "quality", "effort"),
    ("token_budget", -3, "token_budget"),
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


def test_errors_come_from_the_declarations_and_name_the_value():
    """The fields are declared (spgg_jax.settings): each error names the agent or ``team.KEY`` and the
    value; the checks across fields stay by hand."""
    assert AgentConfig(top_k=40.0, max_new_tokens=64.0).top_k == 40  # a whole float is that integer
    assert isinstance(AgentConfig(max_new_tokens=64.0).max_new_tokens, int)
    for kw, message in [
        (dict(name="a", top_p=1.5), "agent 'a': top_p must be a finite number in (0, 1], got 1.5"),
        (dict(name="a", max_new_tokens=0), "agent 'a': max_new_tokens must be a positive integer, got 0"),
        (dict(name="a", temperature=float("inf")), "agent 'a': temperature must be a finite number >= 0, got inf"),
        (dict(name="a", model=" "), "agent 'a': model must be a non-empty string, got ' '"),
        (dict(name="a", role=None), "agent 'a': role must be a string, got None"),
    ]:
        with pytest.raises(ValueError) as err:
            AgentConfig(**kw)
        assert str(err.value) == message
    team = default_team(n=2)
    for kw, message in [
        (dict(observation="foo"), "team.observation must be one of fo|po, got 'foo' (did you mean 'fo'?)"),
        (dict(c_min=0), "team.c_min must be a finite number > 0, got 0"),
        (dict(c_min=0.5, c_max=0.5), "team needs 0 < c_min < c_max, got c_min=0.5, c_max=0.5"),
        (dict(reward=""), "team.reward must be a reward name, got ''"),
        (dict(reward_params=[1]), "team.reward_params must be a JSON object, got [1]"),
        (dict(context_budget=8), "team.context_budget must be an integer >= 16 (tokens), got 8"),
    ]:
        with pytest.raises(ValueError) as err:
            team.replace(**kw)
        assert str(err.value) == message


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
