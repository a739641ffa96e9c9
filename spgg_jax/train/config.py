"""``TrainConfig``: every knob of a training run, one owner per field.

- The loop (run directory, steps, batch, seed, checkpoints), the task and the placement (mesh)
  are top-level keys.
- The team and its game (agents, models, generation parameters, observation, final-answer rule,
  reward, reward parameters, effort cost) belong to ``team``, resolved into a
  :class:`~spgg_jax.rollout.team.TeamConfig`: nothing about the team is repeated elsewhere.
- The training method's hyperparameters live in its own section (``gen_params`` or ``token``:
  :class:`~spgg_jax.rl.learners.GenParamsConfig`, :class:`~spgg_jax.rl.learners.TokenConfig`).

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
import math
import os
from pathlib import Path
from typing import Any, Mapping

from spgg_jax.errors import read_json_object
from spgg_jax.parallel.rules import ParallelConfig
from spgg_jax.rl.learners import METHOD_CONFIGS
from spgg_jax.registry import unknown_names
from spgg_jax.rollout.team import TeamConfig, load_team

METHODS = tuple(METHOD_CONFIGS)
logger = logging.getLogger(__name__)
#: top-level keys that may differ between a run and its resumption (they do not change what is
#: computed; the mesh may change too: orbax reshards the restored state onto the new mesh)
RESUMABLE_CHANGES = ("run_dir", "steps", "eval_size", "val_size", "sc_temperature", "checkpoint_every", "keep", "progress",
                     "mesh", "rules")
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
    run_dir: str = "runs/train"
    # task
    task: str = "basic_arithmetic"
    task_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    train_size: int = 512
    eval_size: int = 64
    # validation problems (texts unseen in training) on which the evaluation picks the best untrained
    # baseline; 0: no validation, every comparison is reported and none is the headline
    val_size: int = 64
    sc_temperature: float = 0.7  # the self-consistency baseline's sampling temperature (spgg_jax.eval.trained)
    judge: str = ""  # model scoring unverifiable tasks (summeval) with spgg_jax.tasks.judge; "" = task scorer
    dtype: str = "float32"
    # optimisation
    method: str = "gen_params"  # "gen_params" (policy over generation parameters) or "token" (LLM policy gradient)
    method_cfg: Any = None  # the method's section (GenParamsConfig / TokenConfig); default: its defaults
    steps: int = 30
    batch: int = 8  # problems per step
    seed: int = 0
    # ablation: the learner gets each step's rewards permuted across the batch's episodes (same reward
    # distribution, no link to what it did), so a gain that remains does not come from the reward
    shuffle_rewards: bool = False
    # parallelism: "" runs on one device; else a device mesh over every (global) device, e.g.
    # "data=-1" (data parallel), "fsdp=-1,tensor=2"; rules overrides logical-axis rules, e.g. "kv_heads=none"
    mesh: str = ""
    rules: str = ""
    # bookkeeping
    checkpoint_every: int = 5
    keep: int = 3
    progress: bool = True

    def __post_init__(self):
        if self.method in METHOD_CONFIGS and self.method_cfg is None:
            object.__setattr__(self, "method_cfg", METHOD_CONFIGS[self.method]())
        errors = []
        if self.method not in METHODS:
            errors.append(f"method must be one of {METHODS}, got {self.method!r}")
        elif not isinstance(self.method_cfg, METHOD_CONFIGS[self.method]):
            errors.append(f"the {self.method} section must be a {METHOD_CONFIGS[self.method].__name__}")
        else:
            errors += self.method_cfg.errors()
        if not isinstance(self.team, TeamConfig):
            errors.append(f"team must be a TeamConfig, got {type(self.team).__name__}")
        elif self.team.n < 2:
            errors.append(f"the game needs at least 2 agents, the team has {self.team.n}")
        else:
            errors += _game_errors(self.team)
        if self.dtype not in ("float32", "bfloat16"):
            errors.append(f"dtype must be float32 or bfloat16, got {self.dtype!r}")
        for name in ("steps", "batch", "checkpoint_every", "keep", "train_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                errors.append(f"{name} must be a positive integer, got {v!r}")
        for name in ("eval_size", "val_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                errors.append(f"{name} must be an integer >= 0, got {v!r}")
        t = self.sc_temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
            errors.append(f"sc_temperature must be a finite number > 0 (self-consistency samples; 0 would make them "
                          f"all the greedy answer), got {t!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            errors.append(f"seed must be an integer, got {self.seed!r}")
        if not isinstance(self.task_options, Mapping):
            errors.append(f"task_options must be a JSON object, got {self.task_options!r}")
        if self.method == "gen_params" and isinstance(self.team, TeamConfig) and \
                min(a.max_new_tokens for a in self.team.agents) < 2:
            errors.append("every agent's max_new_tokens must be >= 2 for method=gen_params (the policy chooses "
                          "a length): set team.agents.max_new_tokens")
        if self.method == "token" and isinstance(self.method_cfg, METHOD_CONFIGS["token"]) and \
                isinstance(self.batch, int) and self.batch * self.method_cfg.group_size < 2:
            errors.append("token-level training needs batch * token.group_size >= 2 for a baseline")
        if not isinstance(self.mesh, str) or not isinstance(self.rules, str):
            errors.append(f"mesh and rules must be strings like 'fsdp=-1,tensor=2', got {self.mesh!r}, {self.rules!r}")
        elif self.mesh or self.rules:
            try:
                ParallelConfig.from_strings(self.mesh, self.rules)
            except (ValueError, TypeError) as err:
                errors.append(f"mesh={self.mesh!r} rules={self.rules!r}: {err}")
            if self.rules and not self.mesh:
                errors.append(f"rules={self.rules!r} needs a mesh (e.g. mesh=data=-1)")
        if errors:
            raise ValueError("invalid training config: " + "; ".join(errors))

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


def _type_error(where: str, v: Any, default: Any) -> str | None:
    """Why ``v`` does not fit the type of ``default`` (None if it does)."""
    if isinstance(default, bool):
        return None if isinstance(v, bool) else f"{where} must be true or false, got {v!r}"
    if isinstance(default, int):
        ok = isinstance(v, int) and not isinstance(v, bool)
        return None if ok else f"{where} must be an integer, got {v!r}"
    if isinstance(default, float):
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        return None if ok else f"{where} must be a number, got {v!r}"
    if isinstance(default, str):
        return None if isinstance(v, str) else f"{where} must be a string, got {v!r}"
    if isinstance(default, tuple):
        return None if isinstance(v, (list, tuple)) else f"{where} must be a list, got {v!r}"
    if isinstance(default, Mapping):
        return None if isinstance(v, Mapping) else f"{where} must be a JSON object, got {v!r}"
    return None


def _section(cls, prefix: str, d: Any):
    """A method section dataclass from a mapping, with errors naming ``prefix.key``."""
    if not isinstance(d, Mapping):
        raise ValueError(f"{prefix} must be a JSON object of {cls.__name__} keys, got {d!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ValueError(unknown_names(f"{prefix} key(s)", unknown, fields))
    defaults = cls()
    kw = {}
    for k, v in d.items():
        err = _type_error(f"{prefix}.{k}", v, getattr(defaults, k))
        if err:
            raise ValueError(err)
        kw[k] = tuple(v) if isinstance(getattr(defaults, k), tuple) else v
    return cls(**kw)


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
    method = d.get("method", "gen_params")
    if method not in METHOD_CONFIGS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    other = [m for m in METHOD_CONFIGS if m != method and m in d]
    if other:
        raise ValueError(f"the config has a {other[0]!r} section but method={method!r}: remove the section or set "
                         f"method={other[0]}")
    unknown = sorted(set(d) - fields - {method})
    if unknown:
        raise ValueError(unknown_names("training config key(s)", unknown, fields | set(METHODS)))
    section = _section(METHOD_CONFIGS[method], method, d.pop(method, {}))
    team_spec = d.pop("team", DEFAULT_TEAM)
    team = resolve_team(team_spec)
    if method == "token":  # the rollouts sample from the policy itself: part of the effective team
        team = team.with_agent_overrides(**section.sampling())
    defaults = TrainConfig(team=team)
    for k, v in d.items():
        err = _type_error(k, v, getattr(defaults, k))
        if err:
            raise ValueError(err)
    _add_train_options(d)
    return TrainConfig(team=team, method_cfg=section, **d)


def _add_train_options(d: dict[str, Any]) -> None:
    """The task's training defaults (``TaskSpec.train_options``) under the options the config sets, so
    the effective config says what training uses (MBPP: ``prompt_tests="one"``, graded on asserts the
    prompt does not show)."""
    from spgg_jax.tasks import TASKS

    task = d.get("task", TrainConfig.task)
    if isinstance(task, str) and task in TASKS:
        extra = TASKS.get(task).train_options
        if extra:
            d["task_options"] = {**extra, **dict(d.get("task_options") or {})}


def _parse_scalar(raw: str) -> Any:
    """A command-line value: JSON when it parses (numbers, true/false, lists, objects), else the string."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


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
        value = raw if parts[0] in ("run_dir", "mesh", "rules", "judge", "task", "method", "dtype") and len(parts) == 1 \
            else _parse_scalar(raw)
        if parts[-1] in ("hidden", "lora_targets", "controls") and isinstance(value, (str, int)):
            items = [x for x in str(value).split(",") if x]
            value = [int(x) for x in items] if parts[-1] == "hidden" else items
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
