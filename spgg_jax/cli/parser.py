"""The argument parser every ``spgg`` command uses: errors name the subcommand and suggest fixes.

``SpggParser`` is the root parser; ``add_subparsers`` hands its class to every sub-parser, so each
command and action gets, without doing anything:

* no prefix abbreviations (``--agent`` is an error, not ``--agents``);
* errors labelled with the full command (``spgg game solve: error: ...``), with "did you mean"
  for a mistyped flag or an invalid choice;
* ``--help`` that shows each flag's default (appended when the help text does not state it) and a
  description (the sub-parser's ``help`` when it has none of its own); ``more_help`` appends text
  built when the help is printed (``spgg train``'s settings).
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Callable, Iterator, Optional

from spgg_jax.registry import did_you_mean

#: The attribute of the parsed namespace naming the innermost parser (set by ``SpggParser``).
PARSER_ATTR = "_spgg_parser"


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends ``(default X)`` to a flag's help unless the text already states its default.

    Flags without a meaningful default (``None``, ``False``, an empty list) and ``--help`` are left
    alone.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text.lower() or default in (None, False, argparse.SUPPRESS) or default == []
                or isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))):
            return text
        shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default {str(shown).replace('%', '%%')})"


class _SubcommandsAction(argparse._SubParsersAction):
    """Sub-parsers (of the parent's class, argparse's default) get their ``help`` as description when
    they have none, so every ``--help`` says what the command does."""

    def add_parser(self, name: str, **kwargs):
        if "help" in kwargs and "description" not in kwargs:
            kwargs["description"] = kwargs["help"].replace("%%", "%")
        return super().add_parser(name, **kwargs)


_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")


class SpggParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with exact flags, suggestions and defaults in ``--help``."""

    def __init__(self, *args, more_help: Optional[Callable[[int], str]] = None, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _SubcommandsAction)
        self.more_help = more_help

    def format_help(self) -> str:
        """argparse's help, then ``more_help(width)`` when given: text built only when help is printed
        (its imports cost nothing otherwise), kept line by line (not re-wrapped, no ``%`` escapes)."""
        text = super().format_help()
        if self.more_help is None:
            return text
        return f"{text}\n{self.more_help(self._get_formatter()._width)}\n"

    def parse_known_args(self, args=None, namespace=None):
        namespace, extra = super().parse_known_args(args, namespace)
        if not hasattr(namespace, PARSER_ATTR):  # the innermost sub-parser returns first
            setattr(namespace, PARSER_ATTR, self)
        return namespace, extra

    def option_names(self) -> list[str]:
        return [s for a in self._actions for s in a.option_strings]

    def suggest(self, message: str) -> str:
        """``message`` with "did you mean" for each unknown flag or invalid choice in it."""
        m = _INVALID_CHOICE.search(message)
        if m:
            choices = re.findall(r"'([^']*)'", m.group(2))
            return message + did_you_mean(m.group(1), choices)
        if message.startswith("unrecognized arguments: "):
            flags = [a.split("=", 1)[0] for a in message.split(": ", 1)[1].split() if a.startswith("-")]
            message += did_you_mean(flags, self.option_names())
        return message

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {self.suggest(message)}\n")


def walk(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every sub-parser below it (each once, aliases skipped)."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen = set()
            for sub in action.choices.values():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield from walk(sub)
