"""``TrainConfig``: every knob of a training run, a frozen dataclass with ``key=value`` overrides.

Defaults for the generation-parameter PPO are the paper's released config (lr 5e-4, clip 0.2,
4 epochs, minibatch 16, target KL 0.015, gamma 0.99, lambda 0.95, value 0.5, entropy 0.02, grad clip
0.5). The resolved config is saved as ``RUN_DIR/config.json`` and checked on resume.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Mapping

METHODS = ("gen_params", "token")
# keys that may differ between a run and its resumption (they do not change what was computed)
# (the mesh too: a run may resume on another slice; orbax reshards the restored state onto the new mesh)
RESUMABLE_CHANGES = ("steps", "eval_size", "checkpoint_every", "keep", "progress", "mesh", "rules")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    run_dir: str = "runs/train"
    # team and task
    model: str = "smollm2-135m-instruct"  # every agent's model in the default team
    team: str = "default"  # "default" or a team JSON file (spgg_jax.rollout.team) naming each agent's model
    n_agents: int = 3
    observation: str = "fo"
    task: str = "basic_arithmetic"
    task_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    train_size: int = 512
    eval_size: int = 64
    max_new_tokens: int = 64
    dtype: str = "float32"
    # game reward of each agent
    reward: str = "mac_spgg"
    reward_params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    cost: str = "quality"  # "quality": C(q_i); "tokens": C(effort from generated tokens)
    judge: str = ""  # model scoring unverifiable tasks (summeval) with spgg_jax.tasks.judge; "" = task scorer
    # optimisation
    method: str = "gen_params"  # "gen_params" (policy over generation parameters) or "token" (LLM policy gradient)
    steps: int = 30
    batch: int = 8  # problems per step
    seed: int = 0
    lr: float = 5e-4
    ppo_epochs: int = 4
    minibatch: int = 16
    clip_eps: float = 0.2
    target_kl: float = 0.015
    gamma: float = 0.99
    lam: float = 0.95
    value_coef: float = 0.5
    entropy_coef: float = 0.02
    grad_clip: float = 0.5
    policy_hidden: tuple[int, ...] = (128, 128)
    # token-level policy gradient
    loss: str = "grpo"
    group_size: int = 4  # samples per problem for group baselines
    kl_coef: float = 0.04
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = ("q_proj_kernel", "k_proj_kernel", "v_proj_kernel", "o_proj_kernel")
    full_finetune: bool = False
    token_lr: float = 1e-4
    temperature: float = 1.0
    # parallelism: "" runs on one device; else a device mesh over every (global) device, e.g.
    # "data=-1" (data parallel), "fsdp=-1,tensor=2"; rules overrides logical-axis rules, e.g. "kv_heads=none"
    mesh: str = ""
    rules: str = ""
    # bookkeeping
    checkpoint_every: int = 5
    keep: int = 3
    progress: bool = True

    def __post_init__(self):
        errors = []
        if self.method not in METHODS:
            errors.append(f"method must be one of {METHODS}, got {self.method!r}")
        if self.observation not in ("fo", "po"):
            errors.append(f"observation must be 'fo' or 'po', got {self.observation!r}")
        if self.cost not in ("quality", "tokens"):
            errors.append(f"cost must be 'quality' or 'tokens', got {self.cost!r}")
        if self.dtype not in ("float32", "bfloat16"):
            errors.append(f"dtype must be float32 or bfloat16, got {self.dtype!r}")
        for name in ("n_agents", "steps", "batch", "ppo_epochs", "minibatch", "group_size", "lora_rank",
                     "checkpoint_every", "keep", "train_size", "max_new_tokens"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                errors.append(f"{name} must be a positive integer, got {v!r}")
        if self.eval_size < 0:
            errors.append(f"eval_size must be >= 0, got {self.eval_size!r}")
        for name in ("lr", "token_lr", "clip_eps", "grad_clip", "lora_alpha", "target_kl"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                errors.append(f"{name} must be a finite number > 0, got {v!r}")
        for name in ("gamma", "lam"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                errors.append(f"{name} must be in [0, 1], got {v!r}")
        for name in ("value_coef", "entropy_coef", "kl_coef", "temperature"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                errors.append(f"{name} must be a finite number >= 0, got {v!r}")
        if self.method == "gen_params" and isinstance(self.max_new_tokens, int) and self.max_new_tokens < 2:
            errors.append(f"max_new_tokens must be >= 2 for method=gen_params (the policy chooses a length), got {self.max_new_tokens}")
        if self.method == "token" and self.batch * self.group_size < 2:
            errors.append("token-level training needs batch * group_size >= 2 for a baseline")
        if not isinstance(self.mesh, str) or not isinstance(self.rules, str):
            errors.append(f"mesh and rules must be strings like 'fsdp=-1,tensor=2', got {self.mesh!r}, {self.rules!r}")
        elif self.mesh or self.rules:
            from spgg_jax.parallel.rules import ParallelConfig

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
        d = dataclasses.asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(d) - set(fields)
        if unknown:
            raise ValueError(f"unknown training config key(s) {sorted(unknown)}; known: {sorted(fields)}")
        out = {}
        for k, v in d.items():
            if isinstance(getattr(cls, k, None), tuple) or k in ("policy_hidden", "lora_targets"):
                v = tuple(v)
            out[k] = v
        return cls(**out)

    def replace(self, **kw) -> "TrainConfig":
        return dataclasses.replace(self, **kw)


def _parse_value(key: str, raw: str, current: Any) -> Any:
    if isinstance(current, bool):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{key} must be true or false, got {raw!r}")
    if isinstance(current, int):
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{key} must be an integer, got {raw!r}") from None
    if isinstance(current, float):
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{key} must be a number, got {raw!r}") from None
    if isinstance(current, tuple):
        items = [x for x in raw.split(",") if x]
        return tuple(int(x) for x in items) if current and isinstance(current[0], int) else tuple(items)
    if isinstance(current, Mapping):
        try:
            v = json.loads(raw)
        except json.JSONDecodeError:
            raise ValueError(f"{key} must be a JSON object, e.g. {key}='{{\"size\": 100}}', got {raw!r}") from None
        if not isinstance(v, dict):
            raise ValueError(f"{key} must be a JSON object, got {raw!r}")
        return v
    return raw


def load_config(path: str | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Config from an optional JSON file, then ``key=value`` overrides (nested: ``reward_params.B=0.7``)."""
    base = TrainConfig()
    d = base.to_dict()
    if path:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            loaded = json.loads(p.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"config file {path} is not valid JSON: {err}") from None
        d.update(TrainConfig.from_dict({**d, **loaded}).to_dict())
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value (see `spgg train --help`)")
        key, raw = item.split("=", 1)
        key = key.strip()
        if "." in key:
            outer, inner = key.split(".", 1)
            if outer not in ("reward_params", "task_options"):
                raise ValueError(f"nested override {key!r}: only reward_params.* and task_options.* are nested")
            try:
                val: Any = json.loads(raw)
            except json.JSONDecodeError:
                val = raw
            d[outer] = {**d[outer], inner: val}
            continue
        if key not in d:
            raise ValueError(f"unknown training config key {key!r}; known: {sorted(d)}")
        d[key] = _parse_value(key, raw, getattr(base, key))
    return TrainConfig.from_dict(d)


def config_differences(saved: Mapping[str, Any], current: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """Keys whose values differ between a saved run config and this one (ignoring RESUMABLE_CHANGES)."""
    now = json.loads(json.dumps(current.to_dict()))
    diffs = {}
    for k in set(saved) | set(now):
        if k in RESUMABLE_CHANGES or k == "run_dir":
            continue
        if saved.get(k) != now.get(k):
            diffs[k] = (saved.get(k), now.get(k))
    return diffs
