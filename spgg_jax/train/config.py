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

``team`` in a config file is a team JSON path, ``"default:N"`` or an object
(:mod:`spgg_jax.train.team_spec`); command-line ``KEY=VALUE`` overrides are parsed by
:mod:`spgg_jax.train.overrides`, which also names where the first trainer's flat keys moved.

The saved ``RUN_DIR/config.json`` is the *effective* configuration: the resolved team inline (every
agent), the active method's section only. Loading it gives the same run; resume compares it
(:mod:`spgg_jax.train.resume`).

A command-line ``method=X`` switches a config file's method: the file's sections of the other
methods are dropped (with a logged warning) instead of refused, so ``spgg train --config
experiments/demo.json method=token`` runs the demo's team and task with the token-level learner.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, Mapping

from spgg_jax.errors import read_json_object
from spgg_jax.parallel.rules import ParallelConfig
from spgg_jax.rl.learners import METHOD_CONFIGS
from spgg_jax.registry import unknown_names
from spgg_jax.rollout.team import TeamConfig
from spgg_jax.settings import declaration, declared, setting, setting_errors
from spgg_jax.train.overrides import MOVED_KEYS, apply_overrides
from spgg_jax.train.team_spec import DEFAULT_TEAM, game_errors, resolve_team

logger = logging.getLogger(__name__)


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
        if self.team.single:  # no game: the task score is the reward (TeamConfig.single)
            return [f"a single agent (a one-agent team) is rewarded with the task score alone: set team.{k} to "
                    f"{ok!r} (got {getattr(self.team, k)!r})"
                    for k, ok, bad in (("effort", "none", self.team.effort != "none"),
                                       ("final", "last", self.team.final != "last")) if bad]
        return game_errors(self.team)

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
        """Validate and resolve a config mapping (the team spec: :mod:`spgg_jax.train.team_spec`)."""
        return _build(copy.deepcopy(dict(d)))

    def replace(self, **kw) -> "TrainConfig":
        return dataclasses.replace(self, **kw)


def _invalid(errors: list[str]) -> str:
    return "invalid training config: " + "; ".join(errors)


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
    apply_overrides(d, overrides or [], TrainConfig)
    return TrainConfig.from_dict(d)
