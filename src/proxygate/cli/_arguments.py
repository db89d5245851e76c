"""Argument mistakes reported without echoing what was typed: any word of argv may be a password.

Every ``proxygate`` parser is a :class:`Parser`. argparse's own messages quote the
offending value (``invalid choice: 'x'``, ``ignored explicit argument 'hunter2'``);
:meth:`Parser.error` says the same thing without the value. Arguments no parser took
are reported by :func:`report_unrecognized` under the usage of the (sub)command that
was left with them, naming what is plainly an option name and suggesting the closest
option string of that same parser, so a command registered later gets all of this
without a line of its own.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["Parser", "describe_unrecognized", "report_unrecognized"]

#: Where a parser that was left with arguments records itself in the namespace.
_LEFT_WITH = "_proxygate_parser_left_with_arguments"

#: An option name as people type them: nothing in it could be a password's worth of
#: secret, only letters, digits and dashes. ``--password=x`` and ``-x3Fg!`` are not.
_OPTION_NAME = re.compile(r"--?[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*")

_NO_PASSWORDS_ON_ARGV = (
    "Passwords are never taken from the command line: type them at the prompt or use "
    "--password-stdin."
)

_INVALID_CHOICE = re.compile(r"^(?P<head>.*)invalid choice: (?P<value>.*) \(choose from (?P<choices>.*)\)$",
                             re.DOTALL)
_INVALID_VALUE = re.compile(r"^(?P<head>.*)invalid (?P<type>[\w.]+) value: .*$", re.DOTALL)
_EXPLICIT_ARGUMENT = re.compile(r"^(?P<head>.*)ignored explicit argument .*$", re.DOTALL)


class Parser(argparse.ArgumentParser):
    """argparse that never echoes a command-line value, and takes no option abbreviations.

    Without abbreviations ``--password`` cannot silently mean ``--password-stdin`` and
    leave the password behind as a positional argument.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extra = super().parse_known_args(args, namespace)
        # Subparsers parse first and their namespace is copied into ours: the innermost
        # parser left with arguments is the one whose usage and options fit the mistake.
        if extra and not hasattr(parsed, _LEFT_WITH):
            setattr(parsed, _LEFT_WITH, self)
        return parsed, extra

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {_without_values(message)}\n")

    def option_strings(self) -> list[str]:
        return [s for action in self._actions for s in action.option_strings]


def _without_values(message: str) -> str:
    """argparse's message with every quoted command-line value taken out."""
    match = _INVALID_CHOICE.match(message)
    if match:
        choices = _choices(match["choices"])
        text = f"{match['head']}invalid choice (choose from {', '.join(choices)})"
        value = _literal(match["value"])
        close = difflib.get_close_matches(value, choices, n=1) if value is not None else []
        return text + (f"; did you mean {close[0]}?" if close else "")
    match = _INVALID_VALUE.match(message)
    if match:
        return f"{match['head']}not a valid {match['type']} (the value is not shown)"
    match = _EXPLICIT_ARGUMENT.match(message)
    if match:
        return f"{match['head']}takes no value (the value given is not shown)"
    return message


def _literal(text: str) -> str | None:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, str) else None


def _choices(text: str) -> list[str]:
    """``'a', 'b'`` (Python 3.12.8+) or ``a, b`` (before) as a list of names."""
    names = []
    for part in text.split(", "):
        literal = _literal(part)
        names.append(literal if literal is not None else part)
    return names


def describe_unrecognized(extra: Sequence[str], options: Sequence[str]) -> str:
    """One sentence about arguments nobody took: option names named, the rest only counted."""
    named: list[str] = []
    hidden = 0
    password_like = False
    for token in extra:
        name, equals, _value = token.partition("=")
        if _OPTION_NAME.fullmatch(name) and len(name) <= 40:
            close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
            notes = ["its value is not shown"] if equals else []
            if close:
                notes.append(f"did you mean {close[0]}?")
            named.append(f"unknown option {name}" + (f" ({'; '.join(notes)})" if notes else ""))
            password_like = password_like or "pass" in name.lower()
        else:
            hidden += 1
    parts = list(named)
    if hidden:
        parts.append(f"{hidden} unexpected argument(s) (not shown)")
    sentence = "; ".join(parts)
    if hidden or password_like:
        sentence += ". " + _NO_PASSWORDS_ON_ARGV
    return sentence


def report_unrecognized(parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                        extra: Sequence[str]) -> None:
    """Print the usage of the command left with ``extra``, then what was wrong."""
    left_with = getattr(namespace, _LEFT_WITH, parser)
    options = left_with.option_strings() if isinstance(left_with, Parser) else []
    left_with.print_usage(sys.stderr)
    print(f"{left_with.prog}: error: {describe_unrecognized(extra, options)}", file=sys.stderr)
