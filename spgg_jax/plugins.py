"""Plugins: users' own reward variants and episode scorers, loaded by every ``spgg`` command.

A plugin is a Python module that registers things when it is imported (``@register_reward``,
``@register_per_agent_reward``, ``@register_episode_scorer``, ``@COSTS.register``, ...). Three ways to
name one, all loaded before a command runs:

- ``SPGG_PLUGINS``: file paths or importable module names separated by ``:``;
- ``--plugin FILE_OR_MODULE`` (repeatable) on any ``spgg`` command line;
- an installed package's entry point in the group ``spgg_jax.plugins`` (``pyproject.toml``:
  ``[project.entry-points."spgg_jax.plugins"] my_rewards = "my_pkg.rewards"``): the module is
  imported; if the entry point names a callable instead, it is called with no arguments.

A spec that ends in ``.py`` or names an existing file is loaded from that file (relative paths from
the current directory); anything else is imported as a module. Each plugin is loaded once per
process, however many times it is named. A plugin that fails raises :class:`PluginError` naming the
plugin, its file and the exception.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Iterable

ENV_VAR = "SPGG_PLUGINS"
ENTRY_POINT_GROUP = "spgg_jax.plugins"

_loaded: dict[str, str] = {}  # key (resolved file or module name) -> what was loaded


class PluginError(ValueError):
    """A plugin that cannot be found or fails while it is imported."""


def env_specs(environ: dict | None = None) -> list[str]:
    """The plugin specs in ``SPGG_PLUGINS`` (empty entries ignored)."""
    raw = (os.environ if environ is None else environ).get(ENV_VAR, "")
    return [s.strip() for s in raw.split(":") if s.strip()]


def _is_file_spec(spec: str) -> bool:
    return spec.endswith(".py") or os.sep in spec or Path(spec).is_file()


def _load_file(spec: str) -> str:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise PluginError(f"plugin {spec!r}: no such file ({path.resolve()})")
    path = path.resolve()
    key = str(path)
    if key in _loaded:
        return _loaded[key]
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    name = f"spgg_plugin_{path.stem}_{digest}"
    mod_spec = importlib.util.spec_from_file_location(name, path)
    if mod_spec is None or mod_spec.loader is None:
        raise PluginError(f"plugin {spec!r}: cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[name] = module
    try:
        mod_spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - any failure of user code is reported with its file
        sys.modules.pop(name, None)
        raise PluginError(f"plugin {spec!r} ({path}) failed to import: {type(err).__name__}: {err}") from err
    _loaded[key] = name
    return name


def _load_module(spec: str) -> str:
    if spec in _loaded:
        return _loaded[spec]
    try:
        module = importlib.import_module(spec)
    except ModuleNotFoundError as err:
        if err.name and spec.startswith(err.name):
            raise PluginError(f"plugin {spec!r}: no such file or importable module") from err
        raise PluginError(f"plugin {spec!r} failed to import: {type(err).__name__}: {err}") from err
    except Exception as err:  # noqa: BLE001
        raise PluginError(f"plugin {spec!r} ({getattr(err, 'filename', None) or spec}) failed to import: "
                          f"{type(err).__name__}: {err}") from err
    _loaded[spec] = getattr(module, "__name__", spec)
    return _loaded[spec]


def load_plugin(spec: str) -> str:
    """Load one plugin (a file path or a module name); returns the module's name."""
    if not isinstance(spec, str) or not spec.strip():
        raise PluginError(f"a plugin must be a file path or a module name, got {spec!r}")
    spec = spec.strip()
    return _load_file(spec) if _is_file_spec(spec) else _load_module(spec)


def load_entry_points() -> list[str]:
    """Load every installed ``spgg_jax.plugins`` entry point (each once)."""
    out = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        key = f"entry-point:{ep.name}={ep.value}"
        if key in _loaded:
            continue
        try:
            obj = ep.load()
            if callable(obj):  # an entry point naming a function: call it; a module: importing was enough
                obj()
        except Exception as err:  # noqa: BLE001
            raise PluginError(f"plugin entry point {ep.name!r} ({ep.value}) failed: {type(err).__name__}: {err}") from err
        _loaded[key] = ep.value
        out.append(ep.value)
    return out


def load_plugins(specs: Iterable[str] = (), *, environ: dict | None = None, entry_points: bool = True) -> list[str]:
    """Load the entry points, then ``SPGG_PLUGINS``, then ``specs``; returns the loaded modules' names."""
    names = load_entry_points() if entry_points else []
    for spec in [*env_specs(environ), *specs]:
        names.append(load_plugin(spec))
    return names


def split_plugin_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(plugins, rest)``: every ``--plugin X`` / ``--plugin=X`` taken out of a command line (they may
    stand anywhere, before or after the command's name)."""
    plugins, rest, i = [], [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            rest += argv[i:]
            break
        if a == "--plugin":
            if i + 1 >= len(argv):
                raise PluginError("--plugin needs a file path or a module name")
            plugins.append(argv[i + 1])
            i += 2
            continue
        if a.startswith("--plugin="):
            plugins.append(a.split("=", 1)[1])
        else:
            rest.append(a)
        i += 1
    return plugins, rest
