"""``KEY=VALUE`` overrides of a training config, and the keys of the first trainer's flat config.

An override sets one key of the config mapping before it is built: dotted keys reach into sections
(``gen_params.lr=1e-3``, ``team.observation=po``, ``team.reward_params.B=0.7``,
``team.agents.max_new_tokens=32``); a team path already there becomes ``{"from": PATH}`` so the
overrides go next to it. Values are typed by the declarations (:mod:`spgg_jax.settings`): a top-level
string setting as written, a list setting of a section from comma-separated items, anything else as
JSON when it parses.

:data:`MOVED_KEYS` names where each key of the first trainer's flat config lives now, so a config
file or an override that still writes one fails with what to write instead.
"""

from __future__ import annotations

import json
from typing import Any

from spgg_jax.rl.learners import METHOD_CONFIGS
from spgg_jax.settings import declaration

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


def apply_overrides(d: dict[str, Any], overrides: list[str], top: type) -> None:
    """Set each ``KEY=VALUE`` of ``overrides`` in the config mapping ``d``, in order. ``top`` is the
    config class whose declarations type the top-level values (``TrainConfig``, passed in because
    :mod:`spgg_jax.train.config` imports this module); the method sections' come from
    :data:`~spgg_jax.rl.learners.METHOD_CONFIGS`."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value (see `spgg train --help`)")
        key, raw = item.split("=", 1)
        parts = [x.strip() for x in key.split(".")]
        if not all(parts):
            raise ValueError(f"override {item!r}: empty key")
        if parts[0] in MOVED_KEYS:
            raise ValueError(f"override {item!r}: {parts[0]} moved to {MOVED_KEYS[parts[0]]} (see docs/training.md)")
        value = _override_value(top, parts, raw)
        if parts == ["team"] and isinstance(value, str):
            d["team"] = value
            continue
        _set_path(d, parts, value, item)


def _parse_scalar(raw: str) -> Any:
    """A command-line value: JSON when it parses (numbers, true/false, lists, objects), else the string."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _override_value(top: type, parts: list[str], raw: str) -> Any:
    """The value of a ``KEY=VALUE`` override: a top-level string setting as written, a list setting of a
    section from comma-separated items (``gen_params.hidden=64,64``), anything else as JSON when it
    parses (:func:`_parse_scalar`)."""
    d = None
    if len(parts) == 1:
        d = declaration(top, parts[0])
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
