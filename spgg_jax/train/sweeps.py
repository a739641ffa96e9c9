"""Expand a sweep file into jobs: the planner behind ``tpu_scripts/sweep.sh``.

A sweep file is JSON, one of::

    {"base": {...train config keys...}, "grid": {"team.reward_params.gamma": [0.5, 1.0], "seed": [0, 1]}}
    {"base": {...}, "list": [{"seed": 0, "team.model": "a"}, {"seed": 1, "team.model": "b"}]}

Keys are ``spgg train`` config keys (``spgg train --help``, docs/training.md); keys inside sections
are dotted (``team.reward_params.B``, ``gen_params.lr``, ``task_options.max_terms``), and ``base`` may
also give them as nested objects. ``grid`` is
the Cartesian product in the order written; ``list`` gives the points one by one. Every point is
validated as a ``TrainConfig`` before anything is launched. Optional ``"name"`` names the sweep
(default: the file's stem) and ``"game"`` holds ``spgg game sweep`` options for ``--mode vmap``
(``grid``, ``method``, ``chunk``).

Two plans:

- ``jobs``: one ``spgg train KEY=VALUE... --run-dir RUN_ROOT/<point>`` command per point; the point
  directory name lists the swept values, e.g. ``p003_gamma=1_rho=0.5_seed=1``.
- ``vmap``: a game-level sweep (only ``team.from`` = ``default:N`` and ``team.reward_params.*`` may vary,
  on a grid) becomes one ``spgg game sweep`` call that solves the whole grid in one vmapped program.

Before printing a plan, every point's configuration goes through the checks of ``spgg train
--dry-run`` (:func:`spgg_jax.train.setup.check_run`): reward, its parameters, scorer, team, task name.
Model paths and task data usually exist only on the workers, so they are read here only with
``--check-files``. Plugins (``SPGG_PLUGINS`` and ``--plugin FILE_OR_MODULE``, docs/game.md) are
loaded first, and every planned command gets ``--plugin`` for each of them, so the workers load the
same ones (a plugin file must then exist at that path on the workers: keep it inside the project).

``python -m spgg_jax.train.sweeps --mode jobs FILE`` prints the plan (``--format text``: one
shell-quoted command per line; ``json``; ``nul``: the NUL-separated records ``sweep.sh`` reads).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import itertools
import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from spgg_jax.train.config import load_config

GAME_OPTIONS = ("grid", "method", "chunk")
DEFAULT_SPGG = ".venv/bin/spgg"


class SweepError(ValueError):
    """A malformed sweep file or a point that is not a valid training config."""


@dataclasses.dataclass(frozen=True)
class Job:
    """One command of a plan: ``name`` (also the run directory's last component), the run
    directory and the argv."""

    name: str
    run_dir: str
    argv: tuple[str, ...]
    point: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def _flatten(d: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if not isinstance(k, str) or not k:
            raise SweepError(f"{where}: bad key {k!r}")
        if isinstance(v, Mapping) and v:
            for kk, vv in _flatten(v, where).items():
                out[f"{k}.{kk}"] = vv
        else:
            out[k] = v
    return out


def load_sweep(path: str | Path) -> dict[str, Any]:
    """Read and check a sweep file: returns ``{"name", "base", "points", "axes", "game"}`` where
    ``points`` are the flattened per-point overrides (without ``base``) and ``axes`` the grid
    (``None`` for a list)."""
    from spgg_jax.errors import read_text_file

    p = Path(path)
    if not p.exists():
        raise SweepError(f"sweep file not found: {path}")
    try:
        text = read_text_file(p, "sweep file")
    except ValueError as err:
        raise SweepError(str(err)) from None
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as err:
        raise SweepError(f"sweep file {path} is not valid JSON: {err}") from None
    return parse_sweep(spec, default_name=p.stem, where=str(path))


def parse_sweep(spec: Any, default_name: str = "sweep", where: str = "sweep") -> dict[str, Any]:
    """Check a sweep spec (the parsed JSON) and expand its points; see ``load_sweep``."""
    if not isinstance(spec, Mapping):
        raise SweepError(f"{where}: the sweep must be a JSON object with 'base' and 'grid' or 'list'")
    unknown = set(spec) - {"name", "base", "grid", "list", "game"}
    if unknown:
        raise SweepError(f"{where}: unknown top-level key(s) {sorted(unknown)}; allowed: name, base, grid, list, game")
    if ("grid" in spec) == ("list" in spec):
        raise SweepError(f"{where}: give exactly one of 'grid' (Cartesian product) or 'list' (explicit points)")
    name = spec.get("name", default_name)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise SweepError(f"{where}: sweep name {name!r} must be letters, digits, '.', '_' or '-'")
    base = spec.get("base", {})
    if not isinstance(base, Mapping):
        raise SweepError(f"{where}: 'base' must be an object of config keys, got {base!r}")
    base = _flatten(base, f"{where}: base")
    game = spec.get("game", {})
    if not isinstance(game, Mapping) or set(game) - set(GAME_OPTIONS):
        raise SweepError(f"{where}: 'game' must be an object with keys among {GAME_OPTIONS}, got {game!r}")
    axes: dict[str, list] | None = None
    if "grid" in spec:
        grid = spec["grid"]
        if not isinstance(grid, Mapping) or not grid:
            raise SweepError(f"{where}: 'grid' must be a non-empty object KEY -> [values], got {grid!r}")
        axes = {}
        for k, vals in grid.items():
            if not isinstance(vals, list) or not vals:
                raise SweepError(f"{where}: grid axis {k!r} must be a non-empty list of values, got {vals!r}")
            if len({json.dumps(v, sort_keys=True) for v in vals}) != len(vals):
                raise SweepError(f"{where}: grid axis {k!r} repeats a value: {vals!r}")
            axes[k] = list(vals)
        axes = _flatten(axes, f"{where}: grid")
        points = [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]
    else:
        items = spec["list"]
        if not isinstance(items, list) or not items:
            raise SweepError(f"{where}: 'list' must be a non-empty list of objects, got {items!r}")
        points = []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise SweepError(f"{where}: list entry {i} must be an object, got {item!r}")
            points.append(_flatten(item, f"{where}: list entry {i}"))
    for i, pt in enumerate(points):
        if "run_dir" in pt:
            raise SweepError(f"{where}: point {i} sets run_dir; the sweep gives every point its own")
        _validate(base, pt, f"{where}: point {i} {pt}")
    return {"name": name, "base": base, "points": points, "axes": axes, "game": dict(game)}


def _point_config(base: Mapping[str, Any], point: Mapping[str, Any], config: str | None = None):
    """The ``TrainConfig`` of base + point (the same parsing as ``spgg train KEY=VALUE``)."""
    merged = {k: v for k, v in {**base, **point}.items() if k != "run_dir"}
    return load_config(config, [f"{k}={format_value(k, v)}" for k, v in merged.items()])


def _validate(base: Mapping[str, Any], point: Mapping[str, Any], where: str) -> None:
    try:
        _point_config(base, point)
    except (ValueError, TypeError) as err:
        raise SweepError(f"{where}: {err}") from None


def format_value(key: str, value: Any) -> str:
    """The VALUE of a ``spgg train KEY=VALUE`` override that parses back to ``value``."""
    if "." in key or isinstance(value, Mapping):
        return json.dumps(value)  # nested keys and objects are parsed as JSON
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if value is None:
        raise SweepError(f"{key}: null is not a config value")
    return str(value)


def _slug(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return re.sub(r"[^A-Za-z0-9.=+-]+", "-", text).strip("-") or "x"


def point_name(index: int, point: Mapping[str, Any], varying: Sequence[str]) -> str:
    """``p003_gamma=1_rho=0.5_seed=1``: the index plus the swept values (last key component)."""
    parts = [f"p{index:03d}"]
    for k in varying:
        if k in point:
            parts.append(f"{k.split('.')[-1]}={_slug(point[k])}")
    return "_".join(parts)[:120]


def check_points(sweep: Mapping[str, Any], config: str | None = None, files: bool = False) -> None:
    """Run ``spgg train --dry-run``'s checks (:func:`~spgg_jax.train.setup.check_run`) on every point."""
    from spgg_jax.train.setup import check_run

    for i, pt in enumerate(sweep["points"]):
        try:
            check_run(_point_config(sweep["base"], pt, config), files=files)
        except (ValueError, TypeError, KeyError, FileNotFoundError) as err:
            msg = err.args[0] if isinstance(err, KeyError) and err.args else err
            raise SweepError(f"point {i} {pt}: {msg}") from None


def plan_jobs(sweep: Mapping[str, Any], run_root: str, spgg: str = DEFAULT_SPGG, config: str | None = None,
              resume: bool = False, plugins: Sequence[str] = ()) -> list[Job]:
    """One ``spgg train`` command per point, each with its own ``--run-dir RUN_ROOT/<point>``."""
    varying = list(sweep["axes"]) if sweep["axes"] is not None else list(
        dict.fromkeys(k for pt in sweep["points"] for k in pt))
    jobs = []
    for i, pt in enumerate(sweep["points"]):
        name = point_name(i, pt, varying)
        run_dir = f"{run_root.rstrip('/')}/{name}"
        merged = {**sweep["base"], **pt}
        argv = [*shlex.split(spgg), *_plugin_args(plugins), "train"]
        if config:
            argv += ["--config", config]
        argv += [f"{k}={format_value(k, v)}" for k, v in merged.items() if k != "run_dir"]
        argv += ["--run-dir", run_dir]
        if resume:
            argv.append("--resume")
        jobs.append(Job(name, run_dir, tuple(argv), pt))
    return jobs


def _plugin_args(plugins: Sequence[str]) -> list[str]:
    return [a for p in plugins for a in ("--plugin", p)]


def plan_vmap(sweep: Mapping[str, Any], run_root: str, spgg: str = DEFAULT_SPGG, plugins: Sequence[str] = ()) -> Job:
    """One ``spgg game sweep`` over the whole grid (the game is deterministic: seeds and training
    keys cannot be swept here)."""
    if sweep["axes"] is None:
        raise SweepError("--mode vmap needs a 'grid' (spgg game sweep solves a Cartesian product), not a 'list'")
    def game_key(k: str) -> str | None:
        if k == "team.from":
            return "n"
        if k.startswith("team.reward_params."):
            return k.split(".", 2)[2]
        return None

    def n_agents(spec: Any) -> int:
        m = re.fullmatch(r"default:(\d+)", str(spec))
        if not m:
            raise SweepError(f"--mode vmap: team.from must be 'default:N' (the team size), got {spec!r}")
        return int(m.group(1))

    from spgg_jax.game.sweep import sweepable

    base = sweep["base"]
    reward = str(base.get("team.reward", "mac_spgg"))
    names = sweepable(reward)
    bad = [k for k in sweep["axes"] if game_key(k) is None or (game_key(k) != "n" and game_key(k) not in names)]
    if bad:
        raise SweepError(
            f"--mode vmap sweeps game parameters only (team.from=default:N, team.reward_params.{{{', '.join(names)}}} "
            f"for reward {reward!r}); cannot sweep {bad}: use --mode jobs (seeds, models and training keys need "
            f"training runs)")
    argv = [*shlex.split(spgg), *_plugin_args(plugins), "game", "sweep", "--reward", reward,
            "--agents", str(n_agents(base.get("team.from", "default:3")))]
    if "team.observation" in base:
        argv += ["--param", f"observation={base['team.observation']}"]
    for k, v in base.items():
        gk = game_key(k)
        if gk is not None and gk != "n":
            val = ",".join(str(x) for x in v) if isinstance(v, (list, tuple)) else v
            argv += ["--param", f"{gk}={val}"]
    for opt in GAME_OPTIONS:
        if opt in sweep["game"]:
            argv += [f"--{opt}", str(sweep["game"][opt])]
    for k, vals in sweep["axes"].items():
        if game_key(k) == "n":
            vals = [n_agents(v) for v in vals]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            raise SweepError(f"--mode vmap: axis {k!r} must hold numbers, got {vals!r}")
        argv += ["--sweep", f"{game_key(k)}={','.join(repr(v) if isinstance(v, float) else str(v) for v in vals)}"]
    out = f"{run_root.rstrip('/')}/game_sweep"
    argv += ["--out", out]
    return Job("game_sweep", out, tuple(argv), {})


def _emit(jobs: Sequence[Job], fmt: str, stream, name: str = "sweep") -> None:
    if fmt == "json":
        json.dump([{"name": j.name, "run_dir": j.run_dir, "argv": list(j.argv), "point": dict(j.point)}
                   for j in jobs], stream, indent=2)
        stream.write("\n")
    elif fmt == "text":
        for j in jobs:
            stream.write(" ".join(shlex.quote(a) for a in j.argv) + "\n")
    else:  # nul: SWEEP_NAME \0, then NAME \0 RUN_DIR \0 ARGC \0 ARG... \0 per job (tpu_scripts/sweep.sh)
        stream.write(name + "\0")
        for j in jobs:
            for field in (j.name, j.run_dir, str(len(j.argv)), *j.argv):
                if "\0" in field:
                    raise SweepError(f"NUL byte in {field!r}")
                stream.write(field + "\0")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m spgg_jax.train.sweeps", description=__doc__.split("\n\n")[0])
    ap.add_argument("sweep_file")
    ap.add_argument("--mode", choices=["jobs", "vmap"], default="jobs")
    ap.add_argument("--run-root", help="parent of the per-point run directories (default runs/sweeps/NAME)")
    ap.add_argument("--spgg", default=DEFAULT_SPGG, help=f"the spgg command (default {DEFAULT_SPGG})")
    ap.add_argument("--config", help="a training config JSON passed to every job as --config")
    ap.add_argument("--resume", action="store_true", help="append --resume to every training job")
    ap.add_argument("--format", choices=["text", "json", "nul"], default="text")
    ap.add_argument("--plugin", action="append", default=[], metavar="FILE_OR_MODULE",
                    help="load a plugin (besides SPGG_PLUGINS) and pass it to every planned command; repeatable")
    ap.add_argument("--check-files", action="store_true",
                    help="also check model paths and read the task data here (default: names only; the files "
                    "usually exist only on the workers)")
    args = ap.parse_args(argv)
    from spgg_jax.plugins import PluginError, env_specs, load_plugins

    try:
        load_plugins(args.plugin)
        plugins = list(dict.fromkeys([*env_specs(), *args.plugin]))
        sweep = load_sweep(args.sweep_file)
        # the config file is read here when it exists here (else it is only on the workers)
        local_config = args.config if args.config and Path(args.config).is_file() else None
        check_points(sweep, local_config, files=args.check_files)
        root = args.run_root or f"runs/sweeps/{sweep['name']}"
        if args.mode == "jobs":
            jobs = plan_jobs(sweep, root, args.spgg, args.config, args.resume, plugins)
        else:
            jobs = [plan_vmap(sweep, root, args.spgg, plugins)]
    except (SweepError, PluginError) as err:
        print(f"spgg_jax.train.sweeps: error: {err}", file=sys.stderr)
        return 2
    out = sys.stdout
    if args.format == "nul":
        out.flush()
        buf = io.StringIO()
        _emit(jobs, "nul", buf, sweep["name"])
        sys.stdout.buffer.write(buf.getvalue().encode())
        sys.stdout.buffer.flush()
    else:
        _emit(jobs, args.format, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
