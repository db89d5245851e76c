"""What every ``proxygate`` command shares: exit codes, the error type, the parser class."""

from __future__ import annotations

import argparse
import sys

from proxygate.cli._arguments import Parser

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandError",
    "Parser",
    "print_error",
    "print_warning",
]

EXIT_OK = 0
#: A verification failed, or the user asked for is absent (or, for ``add``, present).
EXIT_FAILED = 1
#: Bad usage, a refused user name or password, an unreadable or malformed file.
EXIT_USAGE = 2


class CommandError(Exception):
    """A failure reported as one line on stderr and an exit code. Never holds a secret."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def print_error(message: str) -> None:
    print(f"proxygate: error: {message}", file=sys.stderr)


def print_warning(message: str) -> None:
    print(f"proxygate: warning: {message}", file=sys.stderr)


def missing_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE
