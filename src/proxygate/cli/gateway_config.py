"""``proxygate gateway-config``: write a gateway's configuration for the forward-auth service."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from proxygate.cli._common import EXIT_OK, CommandError

__all__ = ["parse_listen", "register"]


def register(commands: Any) -> None:
    """Add ``gateway-config`` to the top-level subparsers."""
    from proxygate.gateways import GATEWAYS

    command = commands.add_parser(
        "gateway-config",
        help="write the files a gateway needs to ask the forward-auth service",
        description="Write into DIR every file GATEWAY needs to listen on HOST:PORT, ask the "
        "forward-auth service at URL about each request and proxy allowed requests to the "
        "upstream. The last line printed is the command that starts the gateway in the "
        "foreground with those files.",
    )
    # GATEWAY and the required options are checked by the command, not argparse: argparse
    # would complain about them before naming a mistyped option (see cli/_arguments.py).
    command.add_argument("gateway", metavar="GATEWAY", help=f"one of: {', '.join(GATEWAYS)}")
    command.add_argument("--listen", metavar="HOST:PORT",
                         help="where the gateway listens, e.g. 127.0.0.1:8080 (required)")
    command.add_argument(
        "--auth-url", metavar="URL", action="append",
        help="the forward-auth service, e.g. http://127.0.0.1:9000/auth; repeat it for "
        "several instances (same path), the gateway spreads checks over them",
    )
    command.add_argument("--upstream", metavar="URL",
                         help="where allowed requests go, e.g. http://127.0.0.1:8000 (required)")
    command.add_argument("--dir", metavar="DIR",
                         help="the directory for the configuration, temporary files, logs, pid "
                         "(required)")
    command.add_argument("--realm", default="proxygate",
                         help="the service's realm (default: proxygate)")
    command.add_argument("--mode", choices=("proxy", "origin"), default="proxy",
                         help="the service's mode (default: proxy)")
    command.add_argument("--user-header", default="X-Authenticated-User", metavar="NAME",
                         help="the service's --user-header (default: X-Authenticated-User)")
    command.set_defaults(command=_gateway_config)


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) as (host, port)."""
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CommandError(f"--listen {value!r} must look like HOST:PORT, e.g. 127.0.0.1:8080")
    return host, int(port)


def _gateway_config(args: argparse.Namespace) -> int:
    from proxygate.gateways import (
        GATEWAYS,
        GatewayError,
        GatewayOptions,
        render,
        shell_command,
    )

    if args.gateway not in GATEWAYS:
        raise CommandError(f"GATEWAY must be one of: {', '.join(GATEWAYS)}")
    for option, value in (("--listen HOST:PORT", args.listen), ("--auth-url URL", args.auth_url),
                          ("--upstream URL", args.upstream), ("--dir DIR", args.dir)):
        if value is None:
            raise CommandError(f"{option} is required")
    host, port = parse_listen(args.listen)
    try:
        options = GatewayOptions(
            listen_host=host,
            listen_port=port,
            auth_url=args.auth_url[0],
            extra_auth_urls=tuple(args.auth_url[1:]),
            upstream=args.upstream,
            directory=Path(args.dir).resolve(),
            realm=args.realm,
            mode=args.mode,
            user_header=args.user_header,
        )
        argv = render(args.gateway, options)
    except GatewayError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot write into {args.dir!r}: {exc.strerror}") from None
    print(f"proxygate: wrote the {args.gateway} configuration into {options.directory}")
    print("proxygate: start the gateway in the foreground with:")
    print(shell_command(argv), flush=True)
    return EXIT_OK
