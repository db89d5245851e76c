"""``proxygate serve``: run an ASGI or WSGI app (or the demo) behind the gate under uvicorn."""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import secrets
import shutil
import signal
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

from proxygate._demo import answer_lifespan
from proxygate.auth.digest_file import ALGORITHMS, check_digest_realm, digest_fields
from proxygate.auth.hashing import hash_password
from proxygate.auth.htpasswd import write_htpasswd_atomic
from proxygate.cli._common import (
    EXIT_OK,
    CommandError,
    add_client_address_arguments,
    add_scheme_arguments,
    client_address_options,
    uvicorn_client_address_settings,
)

__all__ = ["detect_interface", "register"]

Interface = Literal["asgi", "wsgi"]
_DEMO_USER = "demo"
_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def register(commands: Any) -> None:
    """Add ``serve`` to the top-level subparsers."""
    serve = commands.add_parser(
        "serve",
        help="run an ASGI or WSGI app behind the gate under uvicorn",
        description="Run an ASGI or WSGI app behind proxygate under uvicorn. Without APP, a "
        "demo app; without --users, a demo user with a random password.",
    )
    serve.add_argument(
        "app", metavar="MODULE:APP", nargs="?", default=None,
        help="the app to serve, e.g. mysite.wsgi:application (default: the demo app)",
    )
    serve.add_argument("--users", metavar="FILE",
                       help="users file: htpasswd, or a digest users file (which Digest needs)")
    add_scheme_arguments(serve)
    serve.add_argument("--realm", default="proxygate", help="realm (default: proxygate)")
    serve.add_argument(
        "--mode", choices=("proxy", "origin"), default="proxy",
        help="proxy: 407 and Proxy-Authorization; origin: 401 and Authorization "
        "(default: proxy)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="bind port (default: 8080)")
    serve.add_argument(
        "--interface", choices=("auto", "asgi", "wsgi"), default="auto",
        help="what APP is (default: auto, from its call signature)",
    )
    serve.add_argument(
        "--exempt", metavar="PATH", action="append", default=None,
        help="a path served without authentication; repeatable (default: /healthz for "
        "the demo app, none otherwise)",
    )
    serve.add_argument(
        "--app-dir", default=".", metavar="DIR",
        help="directory put first on the import path to find APP (default: .)",
    )
    serve.add_argument(
        "--reload-interval", type=float, default=2.0, metavar="SECONDS",
        help="how often the users file is checked for changes; 0 turns reloading off "
        "(default: 2)",
    )
    add_client_address_arguments(serve)
    serve.add_argument(
        "--log-level", choices=_LOG_LEVELS, default="info", help="log level (default: info)"
    )
    serve.set_defaults(command=_serve)


def detect_interface(app: object) -> Interface:
    """Tell an ASGI app from a WSGI app by how it is called.

    A coroutine function (or an object whose ``__call__`` is one) is ASGI. Otherwise
    the positional parameters decide: ``(environ, start_response)`` is WSGI, ``(scope,
    receive, send)`` is ASGI. Anything else is ValueError: pass ``--interface``.
    """
    if not callable(app):
        raise ValueError("is not callable")
    is_instance = not inspect.isroutine(app) and not inspect.isclass(app)
    if inspect.iscoroutinefunction(app) or (
        is_instance and inspect.iscoroutinefunction(type(app).__call__)
    ):
        return "asgi"
    try:
        signature = inspect.signature(app)
    except (TypeError, ValueError):
        raise ValueError("has no signature to inspect") from None
    positional = [
        p for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    required = sum(1 for p in positional if p.default is p.empty)
    variadic = any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values())
    most = 3 if variadic else len(positional)
    takes_two = required <= 2 <= most
    takes_three = required <= 3 <= most
    if takes_two and not takes_three:
        return "wsgi"
    if takes_three and not takes_two:
        return "asgi"
    raise ValueError(f"takes {signature}, which fits neither ASGI nor WSGI alone")


def _load_app(target: str, app_dir: str) -> object:
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise CommandError(f"APP must look like MODULE:ATTRIBUTE, got {target!r}")
    sys.path.insert(0, os.path.abspath(app_dir))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise CommandError(f"cannot import {module_name!r}: no such module") from None
        raise CommandError(f"cannot import {module_name!r}: {_describe(exc)}") from None
    except Exception as exc:
        raise CommandError(f"cannot import {module_name!r}: {_describe(exc)}") from None
    app: object = module
    for part in attribute.split("."):
        try:
            app = getattr(app, part)
        except AttributeError:
            raise CommandError(f"module {module_name!r} has no attribute {attribute!r}") from None
    return app


def _describe(exc: BaseException) -> str:
    """One line for an exception raised by the user's code: what, and where."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ModuleNotFoundError:
        raise CommandError("serve needs uvicorn: pip install 'proxygate[serve]'") from None
    from proxygate.asgi import ProxyGateMiddleware

    if not 0 <= args.port <= 65535:
        raise CommandError(f"--port {args.port} is not a port number")
    if args.reload_interval < 0:
        raise CommandError("--reload-interval cannot be negative")

    if args.app is None:
        from proxygate._demo import demo_app

        app: Any = demo_app
        label = "the demo app"
        exempt = args.exempt if args.exempt is not None else ["/healthz"]
        if args.interface == "wsgi":
            raise CommandError("--interface wsgi needs an APP; the demo app is ASGI")
    else:
        app = _load_app(args.app, args.app_dir)
        label = args.app
        exempt = args.exempt or []
        interface = args.interface
        if interface == "auto":
            try:
                interface = detect_interface(app)
            except ValueError as exc:
                raise CommandError(
                    f"cannot tell whether {args.app} is ASGI or WSGI: it {exc}; "
                    "pass --interface asgi or --interface wsgi"
                ) from None
        if interface == "wsgi":
            app = _WSGIBehindGate(app)

    schemes = tuple(dict.fromkeys(args.auth_scheme or ["basic"]))
    wants_users = "basic" in schemes or "digest" in schemes
    if "bearer" in schemes and args.tokens is None:
        raise CommandError("--auth-scheme bearer needs --tokens FILE (make one with "
                           "'proxygate tokens add FILE NAME')")
    if args.tokens is not None and "bearer" not in schemes:
        raise CommandError("--tokens needs --auth-scheme bearer")
    if args.users is not None and not wants_users:
        raise CommandError("--users needs --auth-scheme basic or digest")
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again for the
    # handler it found. Found the default, the process would die on the spot and leave
    # the demo users file behind; found this one, cleanup runs first. Installed before
    # the file exists, so a SIGTERM during start-up cleans up too.
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    demo_dir: str | None = None
    terminated = False
    try:
        users_path: str | None = args.users
        password = None
        if users_path is None and wants_users:
            password = secrets.token_urlsafe(12)
            digest = "digest" in schemes  # Digest needs a digest users file; it serves Basic too
            if digest:
                try:
                    check_digest_realm(args.realm)
                except ValueError as exc:
                    raise CommandError(str(exc)) from None
                entry = digest_fields(_DEMO_USER, args.realm, password, tuple(ALGORITHMS))
                line = f"{_DEMO_USER}:{args.realm}:{entry}\n"
            else:
                line = f"{_DEMO_USER}:{_demo_hash(password)}\n"
            try:
                demo_dir = tempfile.mkdtemp(prefix="proxygate-demo-")
                users_path = os.path.join(demo_dir, "digest" if digest else "htpasswd")
                write_htpasswd_atomic(users_path, [line])
            except OSError as exc:
                raise CommandError(
                    f"cannot write the demo users file in {tempfile.gettempdir()}: {exc.strerror}"
                ) from None
        options: dict[str, Any] = {"schemes": schemes, "tokens": args.tokens}
        if args.digest_algorithm:
            options["digest_algorithms"] = tuple(dict.fromkeys(args.digest_algorithm))
        try:
            gate = ProxyGateMiddleware(
                app,
                users=users_path,
                realm=args.realm,
                mode=args.mode,
                exempt_paths=tuple(exempt),
                reload_interval=args.reload_interval,
                **client_address_options(args),
                **options,
            )
        except (ValueError, TypeError) as exc:
            raise CommandError(str(exc)) from None
        _print_banner(args, label, users_path, password, exempt)
        uvicorn.run(
            gate,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            log_config=_log_config(args.log_level),
            **uvicorn_client_address_settings(),
        )
    except _Terminated:
        terminated = True
    finally:
        signal.signal(signal.SIGTERM, previous)
        if demo_dir is not None:
            shutil.rmtree(demo_dir, ignore_errors=True)
    if terminated:
        signal.raise_signal(signal.SIGTERM)  # now with the disposition found at start
    return EXIT_OK


class _Terminated(BaseException):
    """SIGTERM arrived: during start-up, or after uvicorn's graceful shutdown."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


def _demo_hash(password: str) -> str:
    """The demo user's hash: sha512_crypt, which libpass computes with no extra installed.

    bcrypt, the default of ``proxygate users``, needs the ``bcrypt`` extra, and the demo
    must run on an install with ``serve`` alone. Its fewest rounds (1,000, about a
    millisecond): a work factor slows the guessing of chosen passwords, and this one is
    96 random bits, out of reach at any cost. The default 656,000 rounds took longer
    than the whole server's start, once here and again at the first login.
    """
    try:
        return hash_password(password, "sha512_crypt", rounds=1000)
    except ValueError as exc:  # names the scheme and the extra, never the password
        raise CommandError(str(exc)) from None


def _print_banner(args: argparse.Namespace, label: str, users_path: str | None,
                  password: str | None, exempt: Sequence[str]) -> None:
    host = args.host
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    base = f"http://{host}:{args.port}"
    schemes = ", ".join(dict.fromkeys(args.auth_scheme or ["basic"]))
    lines = [f"proxygate: serving {label} on {base} ({args.mode} mode, realm {args.realm!r}, "
             f"schemes {schemes})"]
    if exempt:
        lines.append(f"proxygate: open without credentials: {', '.join(exempt)}")
    if args.tokens is not None:
        lines.append(f"proxygate: tokens from {args.tokens}")
    if password is None:
        if users_path is not None:
            lines.append(f"proxygate: users from {users_path}")
    else:
        lines.append(f"proxygate: demo user: {_DEMO_USER}  password: {password}")
        lines.append("proxygate: try:")
        digest = "digest" in (args.auth_scheme or ())
        if args.mode == "proxy":
            flag = "--proxy-digest " if digest else ""
            lines.append(f"  curl -x {base} {flag}--proxy-user {_DEMO_USER}:{password} "
                         "http://example.internal/hello")
        else:
            flag = "--digest " if digest else ""
            lines.append(f"  curl {flag}-u {_DEMO_USER}:{password} {base}/hello")
    print("\n".join(lines), flush=True)


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging setup, plus the ``proxygate`` logger on the same handler."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = {
        **LOGGING_CONFIG,
        "loggers": {
            **LOGGING_CONFIG["loggers"],
            "proxygate": {
                "handlers": ["default"],
                "level": "DEBUG" if level == "trace" else level.upper(),
                "propagate": False,
            },
        },
    }
    return config


class _WSGIBehindGate:
    """A WSGI app as an ASGI app under the gate, the identity in ``REMOTE_USER`` and
    ``AUTH_TYPE``.

    The ASGI-to-WSGI adapter (a2wsgi if installed, else uvicorn's own) builds the
    environ from the scope's headers alone, so the identity crosses it in a header
    whose name carries a random per-process token. A client cannot guess that
    name, and any copy it sends is dropped anyway before the real one is added.
    """

    def __init__(self, app: Callable[..., Any]) -> None:
        with warnings.catch_warnings():
            # uvicorn's adapter warns that a2wsgi is preferred; it works all the same.
            warnings.simplefilter("ignore", DeprecationWarning)
            # The module picks a2wsgi's adapter when that is installed; going through
            # import_module keeps mypy from insisting on one of the two.
            adapters = importlib.import_module("uvicorn.middleware.wsgi")
            self._adapter: Any = adapters.WSGIMiddleware(self._call_wsgi)
        self._app = app
        name = f"x-proxygate-identity-{secrets.token_hex(8)}"
        self._header = name.encode("ascii")
        self._environ_key = "HTTP_" + name.upper().replace("-", "_")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)  # WSGI has no startup or shutdown
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1000})
            return
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != self._header]
        user = scope.get("user")
        username = getattr(user, "username", None)
        if isinstance(username, str) and username:
            # "<scheme> <user name>": the scheme is a token, so the first space splits them.
            scheme = getattr(user, "scheme", "Basic")
            headers.append((self._header, f"{scheme} {username}".encode()))
        await self._adapter({**scope, "headers": headers}, receive, send)

    def _call_wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        identity = environ.pop(self._environ_key, None)
        environ.pop("REMOTE_USER", None)
        environ.pop("AUTH_TYPE", None)
        if identity is not None:
            # Already UTF-8 bytes decoded as latin-1: PEP 3333's native strings.
            environ["AUTH_TYPE"], _, environ["REMOTE_USER"] = identity.partition(" ")
        return self._app(environ, start_response)
