"""What every ``proxygate`` command shares: exit codes, the error type, the parser class."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from proxygate.cli._arguments import Parser

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandError",
    "Parser",
    "add_client_address_arguments",
    "add_scheme_arguments",
    "client_address_options",
    "print_error",
    "print_warning",
    "uvicorn_client_address_settings",
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


def uvicorn_client_address_settings() -> dict[str, Any]:
    """What every command that runs uvicorn passes to it about the client address.

    uvicorn's own proxy-header handling (on by default, trusting 127.0.0.1) rewrites
    ``scope["client"]`` from ``X-Forwarded-For`` before the gate looks, so a client on
    the same host could pick the address its failures count against. Off, the peer
    reaches the gate as it is, and ``--trusted-proxy`` / ``--forwarded-header`` (the
    gate's ``trusted_proxies`` and ``forwarded_header``) alone decide whom to believe.
    """
    return {"proxy_headers": False, "forwarded_allow_ips": ""}


def add_client_address_arguments(parser: argparse.ArgumentParser, *,
                                 trusted_help: str | None = None) -> None:
    """``--trusted-proxy CIDR`` (repeatable) and ``--forwarded-header NAME``."""
    parser.add_argument(
        "--trusted-proxy", metavar="CIDR", action="append", default=None,
        help=trusted_help or "a reverse proxy in front whose forwarded header names the "
        "client (e.g. 10.0.0.5/32); repeatable. Without it the peer is the client and "
        "no forwarded header is believed, from anyone",
    )
    parser.add_argument(
        "--forwarded-header", metavar="NAME", default=None,
        help="the one header the trusted proxy writes the client address in: "
        "X-Forwarded-For (default), Forwarded or X-Real-IP",
    )


def client_address_options(args: argparse.Namespace) -> dict[str, Any]:
    """The gate options those arguments give; only the ones that were given."""
    options: dict[str, Any] = {}
    if args.trusted_proxy is not None:
        options["trusted_proxies"] = tuple(args.trusted_proxy)
    if args.forwarded_header is not None:
        options["forwarded_header"] = args.forwarded_header
    return options


def add_scheme_arguments(parser: argparse.ArgumentParser) -> None:
    """``--auth-scheme``, ``--tokens`` and ``--digest-algorithm``: the same on every command
    that runs a gate (``serve``, ``forward-auth``)."""
    parser.add_argument(
        "--auth-scheme", metavar="SCHEME", action="append", default=None,
        choices=("basic", "digest", "bearer"),
        help="a scheme to offer, one challenge each in this order; repeatable "
        "(default: basic). See docs/schemes.md",
    )
    parser.add_argument("--tokens", metavar="FILE",
                        help="tokens file for --auth-scheme bearer ('proxygate tokens add')")
    parser.add_argument(
        "--digest-algorithm", metavar="ALGORITHM", action="append", default=None,
        choices=("SHA-256", "SHA-512-256", "MD5"),
        help="a Digest algorithm to offer; repeatable (default: SHA-256)",
    )
