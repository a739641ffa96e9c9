"""Settings declared once (spgg_jax.settings): the checks, the docs table and the help come from the
declarations of TrainConfig, TeamConfig, AgentConfig, GenParamsConfig and TokenConfig."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from spgg_jax.registry import Registry
from spgg_jax.rl.algorithms import ALGORITHMS, algorithm_names
from spgg_jax.rl.learners import METHOD_CONFIGS, GenParamsConfig, TokenConfig
from spgg_jax.rollout.team import AgentConfig, TeamConfig
from spgg_jax.settings import declared, setting, setting_errors
from spgg_jax.train.config import TrainConfig, load_config
from spgg_jax.train.resume import RESUMABLE_CHANGES

DOCS = Path(__file__).resolve().parents[1] / "docs" / "training.md"
#: docs/training.md's settings table: row label -> (the declared class, the prefix of its keys)
ROWS = {"top level": (TrainConfig, ""), "`team`": (TeamConfig, "team"), "`team.agents`": (AgentConfig, "team.agents"),
        "`gen_params`": (GenParamsConfig, "gen_params"), "`token`": (TokenConfig, "token")}
#: how an error names a key of a row, when not by the key itself (an agent's: by the agent's name; the
#: default team's first agent is the solver)
MESSAGE_KEY = {"team.agents": "agent 'solver': {}"}
NAMES: Registry[int] = Registry("name")
NAMES.register("a")(1)


@dataclasses.dataclass(frozen=True)
class Toy:
    count: int = setting(2, ge=1, doc="a positive integer")
    depth: int = setting(0, ge=0, note="0: all", doc="an integer >= 0")
    rate: float = setting(0.5, gt=0, doc="a number > 0")
    share: float = setting(0.5, gt=0, le=1, doc="a number in (0, 1]")
    cap: float = setting(1.0, le=1, doc="a number <= 1")
    flag: bool = setting(False, doc="true or false")
    name: str = setting("a", choices=NAMES, doc="a registered name")
    names: tuple[str, ...] = setting(("a",), choices=NAMES, doc="registered names")
    widths: tuple[int, ...] = setting((4, 4), ge=1, doc="positive widths")
    options: dict = setting(default_factory=dict, doc="an object")
    other: int = 0  # not a setting: never checked


@pytest.mark.parametrize("kw, message", [
    (dict(count=0), "toy.count must be a positive integer, got 0"),
    (dict(count=True), "toy.count must be an integer, got True"),
    (dict(count=1.0), "toy.count must be an integer, got 1.0"),
    (dict(depth=-1), "toy.depth must be an integer >= 0 (0: all), got -1"),
    (dict(rate=0), "toy.rate must be a finite number > 0, got 0"),
    (dict(rate=float("nan")), "toy.rate must be a finite number > 0, got nan"),
    (dict(rate="x"), "toy.rate must be a number, got 'x'"),
    (dict(share=0), "toy.share must be a finite number in (0, 1], got 0"),
    (dict(share=1.5), "toy.share must be a finite number in (0, 1], got 1.5"),
    (dict(cap=2), "toy.cap must be a finite number <= 1, got 2"),
    (dict(flag=1), "toy.flag must be true or false, got 1"),
    (dict(name="b"), "toy.name must be one of a, got 'b'"),
    (dict(names=()), "toy.names must be a non-empty list of distinct names, each one of a, got []"),
    (dict(names=("a", "a")), "toy.names must be a non-empty list of distinct names, each one of a, got ['a', 'a']"),
    (dict(widths=(4, 0)), "toy.widths must be a non-empty list, each a positive integer, got [4, 0]"),
    (dict(widths=4), "toy.widths must be a list, got 4"),
    (dict(options=[]), "toy.options must be a JSON object, got []"),
])
def test_errors_come_from_the_declarations(kw, message):
    assert setting_errors(Toy(**kw), "toy") == [message]


def test_valid_values_pass_and_choices_are_read_when_checked():
    # an int is a number; undeclared fields are never checked
    assert setting_errors(Toy(rate=3, share=1, cap=-5, other="anything")) == []
    assert setting_errors(Toy(name="late"), "toy") != []
    NAMES.register("late")(2)  # a name registered later (a plugin's) counts
    try:
        assert setting_errors(Toy(name="late"), "toy") == []
        assert setting_errors(Toy(name="lat"))[0].endswith("(did you mean 'late'?)")
    finally:
        NAMES._items.pop("late")


def test_every_bound_and_choice_of_the_training_config_is_checked():
    """Each declared range or choice rejects a value outside it, with the key and the value named (an
    upper bound: a value above it too)."""
    for cls, prefix in ROWS.values():
        for d in declared(cls):
            s = d.setting
            bads = [s.ge - 1 if s.ge is not None else s.gt if s.gt is not None else "nope" if s.choices else None]
            bads = [b for b in bads + [s.le + 1 if s.le is not None else None] if b is not None]
            for bad in bads:
                if d.kind == "list":
                    bad = [bad]
                elif d.kind == "int":
                    bad = int(bad)
                key = f"{prefix}.{d.name}" if prefix else d.name
                named = MESSAGE_KEY.get(prefix, key).format(d.name)
                items = ["method=token"] if prefix == "token" else []
                with pytest.raises(ValueError, match=re.escape(f"{named} must be ")) as err:
                    load_config(None, items + [f"{key}={bad if d.kind != 'list' else bad[0]}"])
                assert repr(bad if d.kind != "list" else bad) in str(err.value)


def test_algorithm_choices_come_from_the_registry():
    gen, token = (next(d for d in declared(c) if d.name == "algorithm") for c in (GenParamsConfig, TokenConfig))
    assert gen.setting.names() == ALGORITHMS.names()
    assert token.setting.names() == algorithm_names(critic=False) == ["grpo", "grpo_centred", "reinforce_group"]


def test_resumable_keys_are_declared():
    assert set(RESUMABLE_CHANGES) == {"run_dir", "steps", "eval_size", "val_size", "sc_temperature",
                                      "checkpoint_every", "keep", "progress", "mesh", "rules"}


def _table_rows() -> dict[str, str]:
    text = DOCS.read_text().split("## Config", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\| (.+?) \| (.*) \|$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def test_the_docs_settings_table_matches_the_declarations():
    """docs/training.md: every declared key appears in its row as `key` (DEFAULT...; a key named
    there (`key` followed by a parenthesis) is declared."""
    rows = _table_rows()
    assert set(ROWS) <= set(rows), sorted(rows)
    problems = []
    for label, (cls, _) in ROWS.items():
        row, names = rows[label], {d.name for d in declared(cls)}
        for d in declared(cls):
            if not re.search(rf"`{d.name}` \({re.escape(d.default_text())}[):;, ]", row):
                problems.append(f"{label}: `{d.name}` ({d.default_text()} is missing")
        problems += [f"{label}: `{k}` is not a declared key" for k in re.findall(r"`([\w.*]+)` \(", row)
                     if k not in names]
    assert not problems, "\n".join(problems)


def test_every_method_section_is_documented():
    assert {cls for cls, _ in ROWS.values()} == {TrainConfig, TeamConfig, AgentConfig, *METHOD_CONFIGS.values()}
