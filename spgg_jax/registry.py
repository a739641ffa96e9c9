"""A tiny name -> object registry filled by decorators.

Rewards, costs, final-score functions, scorers, tasks, models and losses are all kept in
``Registry`` instances, so configs and the CLI pick entries by name and a new variant is one
decorated function.
"""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")

#: the unknown-name hint of registries that plugins fill (rewards, episode scorers)
PLUGIN_HINT = "a plugin's? load it with --plugin FILE_OR_MODULE or SPGG_PLUGINS"


def did_you_mean(names: str | Iterable[str], choices: Iterable[str]) -> str:
    """A hint naming the closest of ``choices`` to each of ``names`` (a typo): ``" (did you mean 'x'?)"``
    for one name, ``" (did you mean 'x' for 'y', ...?)"`` for several, ``""`` when none is close."""
    names = [names] if isinstance(names, str) else list(names)
    choices = [str(c) for c in choices]
    pairs = [(n, c[0]) for n in names if (c := difflib.get_close_matches(str(n), choices, n=1, cutoff=0.6))]
    if not pairs:
        return ""
    if len(names) == 1:
        return f" (did you mean {pairs[0][1]!r}?)"
    return " (did you mean " + ", ".join(f"{c!r} for {n!r}" for n, c in pairs) + "?)"


def unknown_names(what: str, unknown: Iterable[str], known: Iterable[str]) -> str:
    """The error message for names not among ``known``, with the closest known name of each typo."""
    known, unknown = sorted(known), sorted(unknown)
    return f"unknown {what} {unknown}{did_you_mean(unknown, known)}; known: {known}"


class Registry(Generic[T]):
    """A mapping from names to objects with a ``register`` decorator and helpful errors."""

    def __init__(self, kind: str, hint: str = ""):
        self.kind = kind
        self.hint = hint  # appended to the unknown-name error (e.g. how to load a plugin)
        self._items: dict[str, T] = {}

    def register(self, name: str, *, overwrite: bool = False) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("name")`` adds the decorated object under ``name``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def deco(obj: T) -> T:
            if name in self._items and not overwrite:
                raise ValueError(
                    f"{self.kind} {name!r} is already registered; pass overwrite=True to replace it"
                )
            self._items[name] = obj
            return obj

        return deco

    def unknown_message(self, name: str) -> str:
        return (f"unknown {self.kind} {name!r}{did_you_mean(str(name), self._items)}; "
                f"registered: {', '.join(sorted(self._items)) or '(none)'}"
                + (f" ({self.hint})" if self.hint else ""))

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(self.unknown_message(name)) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)
