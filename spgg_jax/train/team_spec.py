"""The ``team`` of a training config: the spec a file or the command line writes, resolved into a
:class:`~spgg_jax.rollout.team.TeamConfig`, and the game checks of a resolved team.

``team`` in a config file is a team JSON path, ``"default"``/``"default:N"`` (the solver / checker /
finaliser team of N agents), or an object: ``{"from": PATH_OR_DEFAULT, ...overrides}`` where the
overrides are team fields (``observation``, ``final``, ``reward``, ``reward_params`` (merged into the
team's; when ``reward`` names another variant, the file's parameters that variant does not accept
are dropped first), ``scorer``, ...), ``model`` (every agent's model) and ``agents`` (fields applied
to every agent, or a list of per-agent objects). Overrides always win over the file. Command-line ``team.KEY=VALUE`` overrides
are merged into the same object (``team.reward_params.B=0.7``, ``team.agents.max_new_tokens=32``;
:mod:`spgg_jax.train.overrides`). An object with a list of ``agents`` and no ``from`` is a whole team
inline (as saved in a run's ``config.json``).
"""

from __future__ import annotations

from typing import Any, Mapping

from spgg_jax.rollout.team import TeamConfig, load_team

#: the team when a config names none (the trainer's historical default: 3 agents, 64 new tokens)
DEFAULT_TEAM: Mapping[str, Any] = {"from": "default:3", "agents": {"max_new_tokens": 64}}


def resolve_team(spec: Any) -> TeamConfig:
    """A :class:`TeamConfig` from a team spec (path / ``default[:N]`` / object; module docstring)."""
    if isinstance(spec, str):
        spec = {"from": spec}
    if not isinstance(spec, Mapping):
        raise ValueError(f"team must be a team JSON path, 'default[:N]' or an object, got {spec!r:.80}")
    spec = dict(spec)
    if "from" not in spec:
        if isinstance(spec.get("agents"), list):  # a whole team inline (as saved in config.json)
            return TeamConfig.from_dict(spec)
        spec["from"] = DEFAULT_TEAM["from"]
    source = spec.pop("from")
    if not isinstance(source, str):
        raise ValueError(f"team.from must be a team JSON path or 'default[:N]', got {source!r}")
    if source.startswith("default"):
        try:
            base = load_team(source)
        except ValueError:
            raise ValueError(f"team.from={source!r}: write 'default' or 'default:N' with N an integer >= 2") from None
    else:
        base = load_team(source)
    d = base.to_dict()
    model = spec.pop("model", None)
    agents = spec.pop("agents", None)
    if model is not None:
        if not isinstance(model, str) or not model:
            raise ValueError(f"team.model must be a model name or path, got {model!r}")
        for a in d["agents"]:
            a["model"] = model
    if isinstance(agents, Mapping):
        for a in d["agents"]:
            a.update(agents)
    elif isinstance(agents, list):
        if len(agents) != len(d["agents"]):
            raise ValueError(f"team.agents lists {len(agents)} agents, the team {source!r} has {len(d['agents'])}")
        for a, o in zip(d["agents"], agents):
            if not isinstance(o, Mapping):
                raise ValueError(f"team.agents entries must be objects, got {o!r:.80}")
            a.update(o)
    elif agents is not None:
        raise ValueError(f"team.agents must be an object (for every agent) or a list (one per agent), got {agents!r:.80}")
    if isinstance(spec.get("reward"), str) and spec["reward"] != d["reward"]:
        # the file's reward parameters belong to the file's reward: keep those the new one accepts
        from spgg_jax.game.rewards import REWARDS, accepted_keys

        if spec["reward"] in REWARDS:
            keep = set(accepted_keys(spec["reward"]))
            d["reward_params"] = {k: v for k, v in d["reward_params"].items() if k in keep}
    if "reward_params" in spec:
        if not isinstance(spec["reward_params"], Mapping):
            raise ValueError(f"team.reward_params must be a JSON object, got {spec['reward_params']!r:.80}")
        d["reward_params"] = {**d["reward_params"], **spec.pop("reward_params")}
    d.update(spec)
    return TeamConfig.from_dict(d)


def game_errors(team: TeamConfig) -> list[str]:
    """The team's reward parameters checked at the boundary (types first, then the game's own rules)."""
    out = []
    for k, v in team.reward_params.items():
        if k in ("cost", "score"):
            ok = isinstance(v, str)
        elif k == "weights":
            ok = isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
        else:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        if not ok:
            out.append(f"team.reward_params.{k} must be a {'name' if k in ('cost', 'score') else 'number'}, got {v!r}")
    from spgg_jax.rollout.scoring import EPISODE_SCORERS

    if team.scorer not in EPISODE_SCORERS:
        out.append(f"team.scorer: {EPISODE_SCORERS.unknown_message(team.scorer)}")
    if not out:
        try:
            team.game_params()
        except (ValueError, TypeError, KeyError) as err:
            out.append(f"team.reward={team.reward!r} with reward_params {dict(team.reward_params)}: "
                       f"{err.args[0] if err.args else err}")
    return out
