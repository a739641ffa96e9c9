"""Settings declared once: a dataclass field with its default, its range or choices and a one-line doc.

Declare a config dataclass's fields with :func:`setting`; everything else reads the declarations:
:func:`setting_errors` checks an instance (type, range, choices; each message names ``prefix.key`` and the
value), :func:`declared` lists them (the docs test), :func:`help_lines` writes them for ``--help``, and
:meth:`Declared.split` reads a comma-separated list from the command line::

    @dataclasses.dataclass(frozen=True)
    class Config:
        lr: float = setting(5e-4, gt=0, doc="learning rate")
        algorithm: str = setting("ppo", choices=ALGORITHMS, doc="the policy-gradient algorithm")
        top_p: float = setting(0.95, gt=0, le=1, doc="nucleus sampling")

A setting's kind (true/false, integer, number, string, list, object) is its default's type; a
list's items have the kind of the default's items, and a range or choices apply to each item (a list
is never empty; a list of names never repeats one). Numbers are finite; booleans are never numbers.
``choices`` is a collection of names or a callable returning them, read when checked, so names that a
registry gains later (a plugin's) count.
"""

from __future__ import annotations

import dataclasses
import json
import math
import textwrap
from typing import Any, Callable, Collection, Mapping, Optional, Union

from spgg_jax.registry import did_you_mean

Choices = Union[Collection[str], Callable[[], Collection[str]], None]
_KEY = "setting"


@dataclasses.dataclass(frozen=True)
class Setting:
    """What a declaration says beyond the default (see :func:`setting`)."""

    doc: str
    ge: Optional[float] = None
    gt: Optional[float] = None
    choices: Choices = None
    note: str = ""
    resumable: bool = False
    le: Optional[float] = None

    def names(self) -> list[str]:
        """The allowed names (empty when the setting has no choices)."""
        c = self.choices
        return list((c() if callable(c) else c) or ())


def setting(default: Any = dataclasses.MISSING, *, doc: str, ge: Optional[float] = None, gt: Optional[float] = None,
            le: Optional[float] = None, choices: Choices = None, note: str = "", resumable: bool = False,
            default_factory: Any = dataclasses.MISSING) -> Any:
    """Declare a config field: its default (or ``default_factory``), its range (``ge``/``gt`` below,
    ``le`` above) or ``choices``, and ``doc``, its one-line help. ``note`` is appended to a range or
    choice error; ``resumable`` marks a key that may change when a run is resumed."""
    meta = {_KEY: Setting(doc, ge, gt, choices, note, resumable, le)}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    for types, kind in ((int, "int"), (float, "number"), (str, "str"), ((tuple, list), "list"), (Mapping, "object")):
        if isinstance(v, types):
            return kind
    raise TypeError(f"a setting's default must be a bool, int, float, str, tuple or mapping, got {v!r}")


_TYPE_OK = {"bool": lambda v: isinstance(v, bool), "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            "str": lambda v: isinstance(v, str), "list": lambda v: isinstance(v, (list, tuple)),
            "object": lambda v: isinstance(v, Mapping)}
_TYPE_TEXT = {"bool": "true or false", "int": "an integer", "number": "a number", "str": "a string", "list": "a list",
              "object": "a JSON object"}


@dataclasses.dataclass(frozen=True)
class Declared:
    """One declared field: its name, default, kind (``int``, ``number``, ``list``, ...) and :class:`Setting`."""

    name: str
    default: Any
    kind: str
    setting: Setting

    @property
    def item_kind(self) -> str:
        """The kind of a list's items (the setting's own kind for a scalar)."""
        return _kind(self.default[0]) if self.kind == "list" else self.kind

    def default_text(self) -> str:
        return value_text(self.default)

    def rule(self) -> str:
        """What a valid value is, e.g. ``"a positive integer"``, ``"one of ppo|grpo"``."""
        if self.kind != "list":
            return _scalar_rule(self.kind, self.setting)
        items = " of distinct names" if self.item_kind == "str" else ""
        return f"a non-empty list{items}, each {_scalar_rule(self.item_kind, self.setting)}"

    def bounds(self) -> str:
        """The range or choices in short (``>= 1``, ``in (0, 1]``, ``ppo, grpo``); empty when there are none."""
        return ", ".join(self.setting.names()) or _bound_text(self.setting)

    def error(self, where: str, v: Any) -> Optional[str]:
        """Why ``v`` is not a valid value of this setting (named ``where``), or None."""
        if not _TYPE_OK[self.kind](v):
            return f"{where} must be {_TYPE_TEXT[self.kind]}, got {v!r}"
        items = list(v) if self.kind == "list" else [v]
        ok = all(_TYPE_OK[self.item_kind](x) and _in_range(x, self.item_kind, self.setting) for x in items)
        if self.kind == "list":
            ok = ok and bool(items) and (self.item_kind != "str" or len(set(items)) == len(items))
        if ok:
            return None
        note = f" ({self.setting.note})" if self.setting.note else ""
        hint = did_you_mean(v, self.setting.names()) if isinstance(v, str) else ""
        return f"{where} must be {self.rule()}{note}, got {items if self.kind == 'list' else v!r}{hint}"

    def split(self, text: str) -> list[Any]:
        """A list setting's comma-separated command-line value (integers read as such)."""
        items = [x for x in text.split(",") if x]
        return [int(x) if self.item_kind == "int" and _is_int(x) else x for x in items]


def value_text(v: Any) -> str:
    """A value as written on the command line: ``true``, ``0.0005``, ``128,128``, ``""``, ``{}``."""
    kind = _kind(v)
    if kind == "bool":
        return "true" if v else "false"
    if kind == "number":
        return f"{v:g}"
    if kind == "list":
        return ",".join(map(str, v))
    if kind == "object":
        return json.dumps(v)
    return str(v) if v != "" else '""'


def _is_int(text: str) -> bool:
    return text.strip().lstrip("-").isdigit()


def _in_range(v: Any, kind: str, s: Setting) -> bool:
    if kind in ("int", "number"):
        return (math.isfinite(v) and (s.ge is None or v >= s.ge) and (s.gt is None or v > s.gt)
                and (s.le is None or v <= s.le))
    return not s.choices or v in s.names()


def _scalar_rule(kind: str, s: Setting) -> str:
    if s.choices:
        return f"one of {'|'.join(s.names())}"
    if kind == "int":
        if s.ge == 1 and s.gt is None and s.le is None:
            return "a positive integer"
        return f"an integer {_bound_text(s)}".rstrip()
    if kind == "number":
        return f"a finite number {_bound_text(s)}".rstrip()
    return _TYPE_TEXT[kind]


def _bound_text(s: Setting) -> str:
    """``">= 1"``, ``"> 0"``, ``"<= 1"``, ``"in (0, 1]"`` (empty without bounds)."""
    low = ("[", s.ge) if s.ge is not None else ("(", s.gt) if s.gt is not None else None
    if low is not None and s.le is not None:
        return f"in {low[0]}{low[1]:g}, {s.le:g}]"
    return " ".join(f"{op} {b:g}" for op, b in ((">=", s.ge), (">", s.gt), ("<=", s.le)) if b is not None)


def declared(cls: type) -> list[Declared]:
    """The fields of dataclass ``cls`` declared with :func:`setting`, in field order."""
    out = []
    for f in dataclasses.fields(cls):
        if _KEY in f.metadata:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            out.append(Declared(f.name, default, _kind(default), f.metadata[_KEY]))
    return out


def declaration(cls: type, name: str) -> Optional[Declared]:
    """The declared field ``name`` of ``cls`` (None when it is not a declared setting)."""
    return next((d for d in declared(cls) if d.name == name), None)


def int_error(where: str, v: Any, *, ge: Optional[float] = None, note: str = "") -> Optional[str]:
    """Why ``v`` is not an integer >= ``ge`` (booleans are not integers), named ``where``; None if it is.
    The check of a declared integer setting, for a value that is not one (a function's argument)."""
    return Declared(where, 0, "int", Setting("", ge=ge, note=note)).error(where, v)


def setting_errors(obj: Any, prefix: str = "") -> list[str]:
    """Every declared field of ``obj`` checked (type, range, choices); messages name ``prefix.key``."""
    where = f"{prefix}." if prefix else ""
    found = (d.error(where + d.name, getattr(obj, d.name)) for d in declared(type(obj)))
    return [e for e in found if e]


def help_lines(cls: type, prefix: str = "", width: int = 78) -> list[str]:
    """One entry per declared setting of ``cls``, ``KEY=DEFAULT [RANGE or CHOICES]: doc``, wrapped to
    ``width`` with a hanging indent (for ``--help``)."""
    out = []
    for d in declared(cls):
        bounds = f" [{d.bounds()}]" if d.bounds() else ""
        out += help_entry(f"{prefix}{d.name}={d.default_text()}{bounds}: {d.setting.doc}", width)
    return out


def help_entry(text: str, width: int = 78) -> list[str]:
    """``text`` wrapped to ``width`` as one entry of a help listing (indented, with a hanging indent)."""
    return textwrap.wrap(text, width, initial_indent="  ", subsequent_indent="      ", break_on_hyphens=False)
