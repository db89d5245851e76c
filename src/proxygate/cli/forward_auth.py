"""``proxygate forward-auth``: run the forward-auth service a gateway asks, under uvicorn."""

from __future__ import annotations

import argparse
from typing import Any

from proxygate.cli._common import (
    EXIT_OK,
    CommandError,
    add_client_address_arguments,
    add_scheme_arguments,
    client_address_options,
    uvicorn_client_address_settings,
)

__all__ = ["register"]

_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def register(commands: Any) -> None:
    """Add ``forward-auth`` to the top-level subparsers."""
    from proxygate.forward_auth import DIALECTS

    command = commands.add_parser(
        "forward-auth",
        help="run the forward-auth service that nginx, Traefik, Envoy or Caddy asks",
        description="Run the forward-auth service under uvicorn in the foreground. The "
        "gateway asks it about every request; it answers 200 with the user header, or the "
        "denial in the shape that gateway passes on. Every other Config option can be set "
        "with a PROXYGATE_* environment variable (PROXYGATE_MAX_FAILURES=5).",
    )
    # Required options are checked by the command, not argparse: argparse would complain
    # about them before naming a mistyped option (see cli/_arguments.py).
    command.add_argument("--users", metavar="FILE",
                         help="users file: htpasswd, or a digest users file (which Digest "
                         "needs); required unless --auth-scheme bearer alone")
    add_scheme_arguments(command)
    command.add_argument(
        "--gateway", choices=DIALECTS, default="generic",
        help="which gateway asks, and so how the original request is described and how "
        "a denial is answered (default: generic)",
    )
    command.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    command.add_argument("--port", type=int, default=9000, help="bind port (default: 9000)")
    command.add_argument("--realm", default=None, help="realm (default: proxygate)")
    command.add_argument(
        "--mode", choices=("proxy", "origin"), default=None,
        help="proxy: 407 and Proxy-Authorization; origin: 401 and Authorization "
        "(default: proxy)",
    )
    command.add_argument(
        "--user-header", default="X-Authenticated-User", metavar="NAME",
        help="the header carrying the user name to the upstream (default: "
        "X-Authenticated-User)",
    )
    add_client_address_arguments(
        command,
        trusted_help="a peer whose forwarded header (see --forwarded-header) names the "
        "client: the gateway's address; repeatable (default: none, the peer is the client)",
    )
    command.add_argument(
        "--exempt", metavar="PATH", action="append", default=None,
        help="a path (or PREFIX*) let through without credentials; repeatable",
    )
    command.add_argument(
        "--throttle-store", metavar="URL", default=None,
        help="where failure counts live: memory:// (default) or redis://HOST:PORT/DB, "
        "shared by every instance",
    )
    command.add_argument(
        "--log-level", choices=_LOG_LEVELS, default="info", help="log level (default: info)"
    )
    command.add_argument(
        "--access-log", action="store_true",
        help="log every check uvicorn serves (off by default: the gateway logs requests)",
    )
    command.set_defaults(command=_forward_auth)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line; they win over PROXYGATE_* variables."""
    options: dict[str, Any] = {}
    if args.users is not None:
        options["users"] = args.users
    if args.auth_scheme is not None:
        options["schemes"] = tuple(dict.fromkeys(args.auth_scheme))
    if args.tokens is not None:
        options["tokens"] = args.tokens
    if args.digest_algorithm is not None:
        options["digest_algorithms"] = tuple(dict.fromkeys(args.digest_algorithm))
    if args.realm is not None:
        options["realm"] = args.realm
    if args.mode is not None:
        options["mode"] = args.mode
    options.update(client_address_options(args))
    if args.exempt is not None:
        options["exempt_paths"] = tuple(args.exempt)
    if args.throttle_store is not None:
        options["throttle_store"] = args.throttle_store
    return options


def _forward_auth(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ModuleNotFoundError:
        raise CommandError("forward-auth needs uvicorn: pip install 'proxygate[serve]'") from None
    from proxygate.cli.serve import _log_config
    from proxygate.config import Config
    from proxygate.forward_auth import ForwardAuthApp

    if args.users is None and set(args.auth_scheme or ["basic"]) - {"bearer"}:
        raise CommandError("--users FILE is required: the service needs a users file")
    if not 0 <= args.port <= 65535:
        raise CommandError(f"--port {args.port} is not a port number")
    try:
        config = Config.from_env(**_overrides(args))
        app = ForwardAuthApp(gateway=args.gateway, user_header=args.user_header, config=config)
    except (ValueError, TypeError) as exc:
        raise CommandError(str(exc)) from None
    print(
        f"proxygate: forward-auth for {args.gateway} on http://{args.host}:{args.port} "
        f"({config.mode} mode, realm {config.realm!r}, schemes {', '.join(config.schemes)}"
        + (f", users from {args.users}" if args.users is not None else "")
        + (f", tokens from {args.tokens}" if args.tokens is not None else "") + ")",
        flush=True,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        log_config=_log_config(args.log_level),
        access_log=args.access_log,
        # --trusted-proxy alone decides whose forwarding headers are believed: uvicorn's
        # own handling would rewrite the peer address from them before the gate looks.
        **uvicorn_client_address_settings(),
        server_header=False,
    )
    return EXIT_OK
