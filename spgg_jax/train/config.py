"""``TrainConfig``: every knob of a training run, one owner per field.

- The loop (run directory, steps, batch, seed, checkpoints), the task and the placement (mesh)
  are top-level keys.
- The team and its game (agents, models, generation parameters, observation, final-answer rule,
  reward, reward parameters, effort cost) belong to ``team``, resolved into a
  :class:`~spgg_jax.rollout.team.TeamConfig`: nothing about the team is repeated elsewhere.
- The training method's hyperparameters live in its own section (``gen_params`` or ``token``:
  :class:`~spgg_jax.rl.learners.GenParamsConfig`, :class:`~spgg_jax.rl.learners.TokenConfig`).

Every top-level key and every key of a method section is declared once, beside its field
(:func:`spgg_jax.settings.setting`: default, range or choices, one-line help); the checks of single
values, the command-line parsing of strings and lists, ``spgg train --help`` and the resumable keys
come from the declarations. Only checks across keys are written here and in the sections.

``team`` in a config file is a team JSON path, ``"default"``/``"default:N"`` (the solver / checker /
finaliser team of N agents), or an object: ``{"from": PATH_OR_DEFAULT, ...overrides}`` where the
overrides are team fields (``observation``, ``final``, ``reward``, ``reward_params`` (merged into the
team's; when ``reward`` names another variant, the file's parameters that variant does not accept
are dropped first), ``scorer``, ...), ``model`` (every agent's model) and ``agents`` (fields applied
to every agent, or a list of per-agent objects). Overrides always win over the file. Command-line ``team.KEY=VALUE`` overrides
are merged into the same object (``team.reward_params.B=0.7``, ``team.agents.max_new_tokens=32``).

The saved ``RUN_DIR/config.json`` is the *effective* configuration: the resolved team inline (every
agent), the active method's section only. Loading it gives the same run; resume compares it.

A command-line ``method=X`` switches a config file's method: the file's sections of the other
methods are dropped (with a logged warning) instead of refused, so ``spgg train --config
experiments/demo.json method=token`` runs the demo's team and task with the token-level learner.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping

from spgg_jax.errors import read_json_object
from spgg_jax.parallel.rules import ParallelConfig
from spgg_jax.rl.learners import METHOD_CONFIGS
from spgg_jax.registry import unknown_names
from spgg_jax.rollout.team import TeamConfig, load_team
from spgg_jax.settings import declaration, declared, setting, setting_errors

logger = logging.getLogger(__name__)
#: the team when a config names none (the trainer's historical default: 3 agents, 64 new tokens)
DEFAULT_TEAM: Mapping[str, Any] = {"from": "default:3", "agents": {"max_new_tokens": 64}}
#: keys of the first trainer's flat config -> where they live now (for errors that say what to write)
MOVED_KEYS = {
    "model": "team.model", "n_agents": "team.from=default:N", "observation": "team.observation",
    "reward": "team.reward", "reward_params": "team.reward_params",
    "cost": "team.effort (tokens or none; 'quality' was removed: it charged correctness as a cost)",
    "max_new_tokens": "team.agents.max_new_tokens", "lr": "gen_params.lr", "ppo_epochs": "gen_params.epochs or token.epochs",
    "minibatch": "gen_params.minibatch", "clip_eps": "gen_params.clip_eps or token.clip_eps",
    "target_kl": "gen_params.target_kl", "value_coef": "gen_params.value_coef", "entropy_coef": "gen_params.entropy_coef",
    "grad_clip": "gen_params.grad_clip or token.grad_clip", "policy_hidden": "gen_params.hidden",
    "loss": "token.algorithm", "group_size": "token.group_size", "kl_coef": "token.kl_coef",
    "lora_rank": "token.lora_rank", "lora_alpha": "token.lora_alpha", "lora_targets": "token.lora_targets",
    "full_finetune": "token.full_finetune", "token_lr": "token.lr", "temperature": "token.temperature",
    "gamma": "nothing (it was never read; the game's synergy is team.reward_params.gamma)",
    "lam": "nothing (it was never read: episodes are one step long)",
}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A training run. Build with :func:`load_config` / :meth:`from_dict` (they resolve the team)."""

    team: TeamConfig
    run_dir: str = setting("runs/train", resumable=True, doc="the run directory (same as --run-dir)")
    # task
    task: str = setting("basic_arithmetic", doc="a registered task (docs/tasks.md)")
    task_options: Mapping[str, Any] = setting(default_factory=dict, doc="the task's loader options "
                                              "(task_options.KEY=VALUE); the task's training defaults are added")
    train_size: int = setting(512, ge=1, doc="the generated training pool (file-based tasks: their train split)")
    eval_size: int = setting(64, ge=0, resumable=True, doc="held-out test problems of the final evaluation")
    val_size: int = setting(64, ge=0, resumable=True, doc="validation problems (texts unseen in training) on which the "
                            "evaluation picks the best untrained baseline; 0: none, no headline")
    sc_temperature: float = setting(0.7, gt=0, resumable=True, note="self-consistency samples; 0 would make them all "
                                    "the greedy answer", doc="the self-consistency baseline's sampling temperature")
    judge: str = setting("", doc="the model scoring unverifiable tasks (summeval); empty: the task's scorer")
    dtype: str = setting("float32", choices=("float32", "bfloat16"), doc="the models' parameter dtype")
    # optimisation
    method: str = setting("gen_params", choices=METHOD_CONFIGS, doc="gen_params: a policy over generation "
                          "parameters; token: policy gradients on the LLMs' tokens")
    method_cfg: Any = None  # the method's section (GenParamsConfig / TokenConfig); default: its defaults
    steps: int = setting(30, ge=1, resumable=True, doc="training steps")
    batch: int = setting(8, ge=1, doc="problems per step")
    seed: int = setting(0, doc="the run's seed (problems, rollouts, initial policies)")
    shuffle_rewards: bool = setting(False, doc="ablation: each step's rewards permuted across the batch's episodes "
                                    "(same distribution, no link to what the learner did)")
    # parallelism
    mesh: str = setting("", resumable=True, doc="a device mesh over every device, e.g. data=-1 or fsdp=-1,tensor=2; "
                        "empty: one device")
    rules: str = setting("", resumable=True, doc="logical-axis rule overrides, e.g. kv_heads=none (needs a mesh)")
    # bookkeeping
    checkpoint_every: int = setting(5, ge=1, resumable=True, doc="steps between checkpoints")
    keep: int = setting(3, ge=1, resumable=True, doc="checkpoints kept")
    progress: bool = setting(True, resumable=True, doc="a progress bar")

    def __post_init__(self):
        if self.method in METHOD_CONFIGS and self.method_cfg is None:
            object.__setattr__(self, "method_cfg", METHOD_CONFIGS[self.method]())
        errors = setting_errors(self) + self._section_errors() + self._team_errors()
        if not errors:
            errors = self._cross_errors()
        if errors:
            raise ValueError(_invalid(errors))

    def _section_errors(self) -> list[str]:
        if self.method not in METHOD_CONFIGS:
            return []  # a setting error already
        if not isinstance(self.method_cfg, METHOD_CONFIGS[self.method]):
            return [f"the {self.method} section must be a {METHOD_CONFIGS[self.method].__name__}"]
        return self.method_cfg.errors()

    def _team_errors(self) -> list[str]:
        if not isinstance(self.team, TeamConfig):
            return [f"team must be a TeamConfig, got {type(self.team).__name__}"]
        if self.team.n < 2:
            return [f"the game needs at least 2 agents, the team has {self.team.n}"]
        return _game_errors(self.team)

    def _cross_errors(self) -> list[str]:
        """The checks across settings (each setting is valid on its own)."""
        errors = []
        if self.method == "gen_params" and min(a.max_new_tokens for a in self.team.agents) < 2:
            errors.append("every agent's max_new_tokens must be >= 2 for method=gen_params (the policy chooses "
                          "a length): set team.agents.max_new_tokens")
        if self.method == "token" and self.batch * self.method_cfg.group_size < 2:
            errors.append("token-level training needs batch * token.group_size >= 2 for a baseline")
        if self.mesh or self.rules:
            try:
                ParallelConfig.from_strings(self.mesh, self.rules)
            except (ValueError, TypeError) as err:
                errors.append(f"mesh={self.mesh!r} rules={self.rules!r}: {err}")
            if self.rules and not self.mesh:
                errors.append(f"rules={self.rules!r} needs a mesh (e.g. mesh=data=-1)")
        return errors

    # ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The effective configuration as JSON-ready data (the team inline, the active method only)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "method_cfg":
                out[self.method] = _plain(dataclasses.asdict(self.method_cfg))
            elif f.name == "team":
                out["team"] = _plain(self.team.to_dict())
            else:
                out[f.name] = _plain(getattr(self, f.name))
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        """Validate and resolve a config mapping (the shapes of the module docstring)."""
        return _build(copy.deepcopy(dict(d)))

    def replace(self, **kw) -> "TrainConfig":
        return dataclasses.replace(self, **kw)


#: top-level keys that may differ between a run and its resumption (they do not change what is
#: computed; the mesh may change too: orbax reshards the restored state onto the new mesh)
RESUMABLE_CHANGES = tuple(d.name for d in declared(TrainConfig) if d.setting.resumable)


def _invalid(errors: list[str]) -> str:
    return "invalid training config: " + "; ".join(errors)


def _game_errors(team: TeamConfig) -> list[str]:
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


def _plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    return v


# ------------------------------------------------------------------------------------------------
# building and checking
# ------------------------------------------------------------------------------------------------


def _section(cls, prefix: str, d: Any):
    """A method section dataclass from a mapping, checked at once (errors name ``prefix.key``)."""
    if not isinstance(d, Mapping):
        raise ValueError(f"{prefix} must be a JSON object of {cls.__name__} keys, got {d!r}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - fields)
    if unknown:
        raise ValueError(unknown_names(f"{prefix} key(s)", unknown, fields))
    lists = {x.name for x in declared(cls) if x.kind == "list"}
    section = cls(**{k: tuple(v) if k in lists and isinstance(v, list) else v for k, v in d.items()})
    errors = section.errors()
    if errors:
        raise ValueError(_invalid(errors))
    return section


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


def _build(d: dict[str, Any]) -> TrainConfig:
    moved = sorted(set(d) & set(MOVED_KEYS))
    if moved:
        raise ValueError("training config keys moved: " + "; ".join(f"{k} -> {MOVED_KEYS[k]}" for k in moved)
                         + " (see docs/training.md)")
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"method_cfg"}
    method = d.get("method", TrainConfig.method)
    method_error = declaration(TrainConfig, "method").error("method", method)
    if method_error:
        raise ValueError(method_error)
    other = [m for m in METHOD_CONFIGS if m != method and m in d]
    if other:
        raise ValueError(f"the config has a {other[0]!r} section but method={method!r}: remove the section or set "
                         f"method={other[0]}")
    unknown = sorted(set(d) - fields - {method})
    if unknown:
        raise ValueError(unknown_names("training config key(s)", unknown, fields | set(METHOD_CONFIGS)))
    section = _section(METHOD_CONFIGS[method], method, d.pop(method, {}))
    team_spec = d.pop("team", DEFAULT_TEAM)
    team = resolve_team(team_spec)
    if method == "token":  # the rollouts sample from the policy itself: part of the effective team
        team = team.with_agent_overrides(**section.sampling())
    _add_train_options(d)
    return TrainConfig(team=team, method_cfg=section, **d)


def _add_train_options(d: dict[str, Any]) -> None:
    """The task's training defaults (``TaskSpec.train_options``) under the options the config sets, so
    the effective config says what training uses (MBPP: ``prompt_tests="one"``, graded on asserts the
    prompt does not show)."""
    from spgg_jax.tasks import TASKS

    task = d.get("task", TrainConfig.task)
    if isinstance(task, str) and task in TASKS and isinstance(d.get("task_options", {}), Mapping):
        extra = TASKS.get(task).train_options
        if extra:
            d["task_options"] = {**extra, **dict(d.get("task_options") or {})}


def _parse_scalar(raw: str) -> Any:
    """A command-line value: JSON when it parses (numbers, true/false, lists, objects), else the string."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _override_value(parts: list[str], raw: str) -> Any:
    """The value of a ``KEY=VALUE`` override: a top-level string setting as written, a list setting of a
    section from comma-separated items (``gen_params.hidden=64,64``), anything else as JSON when it
    parses (:func:`_parse_scalar`)."""
    d = None
    if len(parts) == 1:
        d = declaration(TrainConfig, parts[0])
        if d is not None and d.kind == "str":
            return raw
    elif len(parts) == 2 and parts[0] in METHOD_CONFIGS:
        d = declaration(METHOD_CONFIGS[parts[0]], parts[1])
    value = _parse_scalar(raw)
    if d is not None and d.kind == "list" and isinstance(value, (str, int)):
        return d.split(str(value))
    return value


def _set_path(d: dict, path: list[str], value: Any, item: str) -> None:
    node = d
    for p in path[:-1]:
        nxt = node.get(p)
        if isinstance(nxt, str) and p == "team":  # a team path: overrides go next to it
            nxt = {"from": nxt}
        if nxt is None:
            nxt = {}
        if not isinstance(nxt, dict):
            raise ValueError(f"override {item!r}: {p} is not an object")
        node[p] = nxt = dict(nxt)
        node = nxt
    node[path[-1]] = value


def _anchor(value: Any, base: Path, key: str, config: str) -> Any:
    """A relative path from a config file, resolved against the file's directory (absolute)."""
    if not isinstance(value, str) or not value or value.startswith("default") or Path(value).is_absolute():
        return value
    anchored = base / value
    if not anchored.exists() and Path(value).exists():
        raise ValueError(f"{key}={value!r} in {config}: paths in a config file are relative to the file's directory "
                         f"({base}), not to the working directory; write {os.path.relpath(Path(value).resolve(), base)!r}")
    return str(anchored)


def _anchor_paths(d: dict[str, Any], base: Path, config: str) -> None:
    """Paths written in a config file (the team file, a task's data path) resolve against the file's
    directory, so the config works from any working directory; the effective config saved in a run
    holds them absolute. Command-line overrides stay relative to the working directory."""
    team = d.get("team")
    if isinstance(team, str):
        d["team"] = _anchor(team, base, "team", config)
    elif isinstance(team, Mapping) and "from" in team:
        d["team"] = {**team, "from": _anchor(team["from"], base, "team.from", config)}
    options = d.get("task_options")
    if isinstance(options, Mapping) and "path" in options:
        d["task_options"] = {**options, "path": _anchor(options["path"], base, "task_options.path", config)}


def load_config(path: str | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Config from an optional JSON file, then ``key=value`` overrides (dotted keys reach into
    sections: ``gen_params.lr=1e-3``, ``team.observation=po``, ``team.reward_params.B=0.7``)."""
    d: dict[str, Any] = {}
    if path:
        # a directory, a UTF-16 or binary file, bad JSON: one line naming the file
        d = read_json_object(Path(path), "config file")
        _anchor_paths(d, Path(path).resolve().parent, path)
    d.setdefault("team", copy.deepcopy(dict(DEFAULT_TEAM)))
    methods = [item.split("=", 1)[1] for item in overrides or [] if item.split("=", 1)[0].strip() == "method"]
    if methods and methods[-1] in METHOD_CONFIGS:  # the command line switches the file's method
        for other in [m for m in METHOD_CONFIGS if m != methods[-1] and m in d]:
            logger.warning("method=%s on the command line: ignoring the %s section of %s", methods[-1], other, path)
            del d[other]
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value (see `spgg train --help`)")
        key, raw = item.split("=", 1)
        parts = [x.strip() for x in key.split(".")]
        if not all(parts):
            raise ValueError(f"override {item!r}: empty key")
        if parts[0] in MOVED_KEYS:
            raise ValueError(f"override {item!r}: {parts[0]} moved to {MOVED_KEYS[parts[0]]} (see docs/training.md)")
        value = _override_value(parts, raw)
        if parts == ["team"] and isinstance(value, str):
            d["team"] = value
            continue
        _set_path(d, parts, value, item)
    return TrainConfig.from_dict(d)


def config_differences(saved: Mapping[str, Any], current: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """Top-level keys whose values differ between a saved run config and this one (ignoring
    :data:`RESUMABLE_CHANGES`)."""
    now = json.loads(json.dumps(current.to_dict()))
    try:  # keys added since the run was saved read as their defaults
        saved = json.loads(json.dumps(TrainConfig.from_dict(saved).to_dict()))
    except (ValueError, TypeError, KeyError, OSError):
        pass
    diffs = {}
    for k in set(saved) | set(now):
        if k in RESUMABLE_CHANGES:
            continue
        if saved.get(k) != now.get(k):
            diffs[k] = (saved.get(k), now.get(k))
    return diffs
