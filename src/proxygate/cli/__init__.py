"""The ``proxygate`` command: one module a command (``users``, ``serve``, ...), assembled here."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence

from proxygate import __version__
from proxygate.cli import forward_auth, gateway_config, serve, tokens, users
from proxygate.cli._arguments import report_unrecognized
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
    try:
        args, extra = parser.parse_known_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already reported
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if extra:
        # argparse would echo them back, and one of them may be a password.
        report_unrecognized(parser, args, extra)
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
        # A bug, not a user error: every mistake a user can make is a CommandError with
        # its own message. This text could quote a hash: name the type and the place.
        print_error(f"unexpected {type(exc).__name__}{_where(exc)}; please report it")
        return EXIT_USAGE


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="proxygate",
        description="Manage users and tokens files and serve an app behind proxygate.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    users.register(commands)
    tokens.register(commands)
    serve.register(commands)
    forward_auth.register(commands)
    gateway_config.register(commands)
    return parser
