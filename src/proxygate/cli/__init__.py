"""The ``proxygate`` command: one module a command (``users``, ``serve``), assembled here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from proxygate.cli import serve, users
from proxygate.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    Parser,
    print_error,
)
from proxygate.cli.serve import detect_interface

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "detect_interface", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse would echo them back, and one of them may be a password.
        parser.print_usage(sys.stderr)
        print_error(
            f"{len(extra)} unexpected argument(s) (not shown). Passwords are never taken "
            "from the command line: type them at the prompt or use --password-stdin."
        )
        return EXIT_USAGE
    command: Callable[[argparse.Namespace], int] | None = getattr(args, "command", None)
    if command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return command(args)
    except CommandError as exc:
        print_error(str(exc))
        return exc.code
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except Exception as exc:
        # A bug, not a user error. Its text could quote a hash: name the type only.
        print_error(f"unexpected {type(exc).__name__}; please report it")
        return EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="proxygate",
        description="Manage htpasswd users files and serve an app behind proxygate.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    users.register(commands)
    serve.register(commands)
    return parser
