"""Plugins (SPGG_PLUGINS, --plugin, entry points), per-variant parameters and the example plugin."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from spgg_jax import plugins
from spgg_jax.cli.main import main
from spgg_jax.game import GameParams, VariantParams, make_params, param, register_reward, rewards
from spgg_jax.game.rewards import check_params, get_reward
from spgg_jax.game.solver import solve, solve_batch
from spgg_jax.game.sweep import parse_axis, stack_params

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "experiments" / "plugins" / "relative_reward.py"

DRIVER = """
import json, sys
from spgg_jax.cli.main import main
for argv in json.loads(sys.argv[1]):
    print("=== " + " ".join(argv), flush=True)
    rc = main(argv)
    print(f"=== rc {rc}", flush=True)
    if rc:
        sys.exit(rc)
"""


def test_example_plugin_copied_outside_the_repository_runs_every_command(tmp_path):
    """The example plugin, copied away from the repository and named only by SPGG_PLUGINS, drives
    game list / solve / sweep / learn and train --dry-run in a fresh interpreter."""
    outside = tmp_path / "elsewhere" / "my_rewards.py"
    outside.parent.mkdir()
    shutil.copy(EXAMPLE, outside)
    commands = [
        ["game", "list", "--json"],
        ["game", "solve", "--reward", "mac_spgg_relative", "--param", "alpha=0.3", "--grid", "21", "--json"],
        ["game", "sweep", "--reward", "mac_spgg_relative", "--sweep", "alpha=0,0.8", "--grid", "11", "--out", "sw"],
        ["game", "learn", "--reward", "mac_spgg_relative", "--seeds", "1", "--steps", "4", "--batch", "8",
         "--grid", "11", "--hidden", "8", "--out", "learn"],
        ["train", "--dry-run", "team.reward=mac_spgg_relative", "team.reward_params.alpha=0.9",
         "team.scorer=mean_credit", "run_dir=run"],
    ]
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SPGG_PLUGINS": str(outside)}
    out = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(commands)], cwd=work, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    parts = out.stdout.split("=== ")
    listed = json.loads(parts[1].split("\n", 1)[1])
    [relative] = [r for r in listed["rewards"] if r["name"] == "mac_spgg_relative"]
    assert [(p["name"], p["default"], p["range"]) for p in relative["params"]][0] == ("alpha", 0.6, ">= 0")
    solved = json.loads(parts[3].split("\n", 1)[1])
    assert solved["reward"] == "mac_spgg_relative" and solved["params"]["alpha"] == pytest.approx(0.3)
    rows = (work / "sw" / "sweep.csv").read_text().splitlines()
    assert "alpha" in rows[0].split(",") and len(rows) == 3
    assert (work / "learn" / "learning.csv").is_file()
    dry = parts[-2]
    assert "dry run: the configuration is valid" in dry and "alpha=0.9" in dry and "mean_credit" in dry
    cfg = json.loads(dry[dry.index("effective configuration:") + len("effective configuration:"):])
    assert cfg["team"]["reward"] == "mac_spgg_relative" and cfg["team"]["reward_params"] == {"alpha": 0.9}
    assert cfg["team"]["scorer"] == "mean_credit" and not (work / "run").exists()


def _write(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body))
    return path


def test_a_failing_plugin_is_one_line_naming_the_file_and_the_exception(tmp_path, capsys, monkeypatch):
    bad = _write(tmp_path / "broken_plugin.py", "import jax\nraise RuntimeError('boom at import')\n")
    assert main(["--plugin", str(bad), "game", "list"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(bad) in err and "RuntimeError: boom at import" in err, err
    monkeypatch.setenv("SPGG_PLUGINS", str(tmp_path / "missing.py"))
    assert main(["game", "list"]) == 2
    assert "no such file" in capsys.readouterr().err
    monkeypatch.setenv("SPGG_PLUGINS", "no_such_plugin_module_xyz")
    assert main(["game", "list"]) == 2
    assert "no such file or importable module" in capsys.readouterr().err
    monkeypatch.delenv("SPGG_PLUGINS")
    assert main(["game", "solve", "--reward", "not_a_reward"]) == 2
    assert "load it with --plugin" in capsys.readouterr().err


def test_plugin_options_anywhere_env_and_module_names_load_once(tmp_path, monkeypatch, capsys):
    assert plugins.split_plugin_args(["--plugin", "a.py", "game", "solve", "--plugin=b", "--grid", "3"]) == \
        (["a.py", "b"], ["game", "solve", "--grid", "3"])
    with pytest.raises(plugins.PluginError, match="needs a file path"):
        plugins.split_plugin_args(["game", "--plugin"])
    assert plugins.env_specs({"SPGG_PLUGINS": "a.py::pkg.mod: "}) == ["a.py", "pkg.mod"]
    _write(tmp_path / "plugin_mod_once.py", """
        from spgg_jax.game import register_reward

        @register_reward("test_plugin_once")
        def once(q, p):
            '''R_i = q_i'''
            return q
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SPGG_PLUGINS", "plugin_mod_once")
    for _ in range(2):  # env and flag name it again: registered once, no "already registered"
        assert main(["--plugin", "plugin_mod_once", "game", "solve", "--reward", "test_plugin_once", "--grid", "5"]) == 0
    assert "test_plugin_once" in capsys.readouterr().out


def test_entry_point_plugins_are_loaded(tmp_path, monkeypatch):
    _write(tmp_path / "ep_plugin_pkg.py", """
        from spgg_jax.rollout.scoring import register_episode_scorer, task_scorer

        def register():
            register_episode_scorer("ep_test_scorer", overwrite=True)(task_scorer)
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = metadata.EntryPoint(name="ep_test", value="ep_plugin_pkg:register", group=plugins.ENTRY_POINT_GROUP)
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [ep] if group == plugins.ENTRY_POINT_GROUP else [])
    assert plugins.load_entry_points() == ["ep_plugin_pkg:register"]
    from spgg_jax.rollout.scoring import EPISODE_SCORERS

    assert "ep_test_scorer" in EPISODE_SCORERS
    assert plugins.load_entry_points() == []  # once


@struct.dataclass
class _TwoParams(VariantParams):
    alpha: Any = param(0.5, ge=0.0, le=1.0, doc="weight")
    beta: Any = param(2.0, gt=1.0)


@register_reward("test_variant_params", params=_TwoParams, overwrite=True)
def _two(q, p):
    """R_i = alpha q_i - q_i^beta / beta"""
    return p.alpha * q - q**p.beta / p.beta


def test_variant_parameters_defaults_ranges_errors_and_vmap():
    p = make_params("test_variant_params", 3, beta=3.0, B=0.5)
    assert float(p.alpha) == 0.5 and float(p.beta) == 3.0 and float(p.B) == 0.5 and p.variant.beta is p.beta
    assert p.param_names()[-2:] == ["alpha", "beta"] and p.to_dict()["beta"] == 3.0
    for kw, match in [({"alpha": 1.5}, "test_variant_params parameter alpha must be <= 1, got \\[1.5\\]"),
                      ({"beta": 1.0}, "test_variant_params parameter beta must be > 1"),
                      ({"alpha": float("nan")}, "alpha must be finite"),
                      ({"gamma": 0.5}, r"unknown game parameter\(s\) \['gamma'\] for reward 'test_variant_params'; "
                                       r"its own parameters: alpha, beta")]:
        with pytest.raises(ValueError, match=match):
            make_params("test_variant_params", 3, **kw)
    with pytest.raises(ValueError, match="alpha must be <= 1"):
        p.updated(alpha=2.0)
    # parameters of another variant are refused, naming both
    with pytest.raises(ValueError, match=r"reward 'test_variant_params' needs its own parameters \(_TwoParams\).*'mac_spgg'"):
        rewards("test_variant_params", jnp.ones(3) * 0.5, make_params("mac_spgg", 3))
    # a sweep over the variant's own fields: stacked, validated elementwise, vmapped, solved in one call
    pts = [{"alpha": a, "beta": b} for a in (0.2, 0.9) for b in (2.0, 4.0)]
    stacked = stack_params(p, pts)
    with pytest.raises(ValueError, match="alpha must be <= 1"):
        stack_params(p, [{"alpha": 3.0}])
    with pytest.raises(ValueError, match="cannot sweep 'gamma' for reward 'test_variant_params'"):
        stack_params(p, [{"gamma": 3.0}])
    q = jnp.array([0.2, 0.5, 0.9])
    batched = jax.vmap(get_reward("test_variant_params").fn, in_axes=(None, 0))(q, stacked)
    eq = solve_batch("test_variant_params", stacked, grid_size=11)
    for j, pt in enumerate(pts):
        one = p.updated(**pt)
        np.testing.assert_allclose(batched[j], rewards("test_variant_params", q, one), rtol=1e-6)
        np.testing.assert_allclose(eq.q[j], solve("test_variant_params", one, 11).q, rtol=1e-6)
    assert parse_axis("beta=2:4:3", "test_variant_params") == ("beta", [2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="cannot sweep 'gamma' for reward 'test_variant_params'; sweepable: .*alpha, beta"):
        parse_axis("gamma=0,1", "test_variant_params")
    # under grad/jit the variant's fields are traced like the shared ones
    g = jax.grad(lambda a: jnp.sum(rewards("test_variant_params", q, p.replace(alpha=a))))(0.5)
    np.testing.assert_allclose(g, float(jnp.sum(q)), rtol=1e-6)
    check_params(get_reward("test_variant_params"), stacked)


def test_variant_parameter_declarations_are_checked():
    @struct.dataclass
    class Clash(VariantParams):
        kappa: Any = param(1.0)

    with pytest.raises(ValueError, match=r"parameter\(s\) \['kappa'\] clash with the shared game parameters"):
        register_reward("test_clash", params=Clash)
    with pytest.raises(ValueError, match="params must be a VariantParams subclass"):
        register_reward("test_not_params", params=dict)
    with pytest.raises(ValueError, match="unknown game parameter"):
        GameParams.create(3, gamma=0.5)


def test_builtin_variants_declare_their_parameters():
    own = {name: get_reward(name).params.names() for name in ("pgg", "spgg", "mac_spgg", "mac_spgg_smooth")}
    assert own == {"pgg": ["w0", "r"], "spgg": ["w0", "r"], "mac_spgg": ["gamma", "rho", "P"],
                   "mac_spgg_smooth": ["gamma", "rho", "P", "tau"]}
    p = make_params("mac_spgg_smooth", 3)
    assert [float(getattr(p, k)) for k in ("gamma", "rho", "P", "tau", "B")] == pytest.approx([0.5, 1.8, 1.5, 0.05, 0.6])
    with pytest.raises(ValueError, match="mac_spgg_smooth parameter tau must be > 0"):
        make_params("mac_spgg_smooth", 3, tau=0.0)
