"""The ``proxygate`` command: keep htpasswd users files, and serve an app behind the gate."""

from __future__ import annotations

import argparse
import getpass
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
from proxygate.auth.hashing import (
    ALLOWED_SCHEMES,
    DEFAULT_SCHEME,
    HashFormatError,
    check_hash,
    hash_password,
    verify_password,
)
from proxygate.auth.htpasswd import (
    HtpasswdEntry,
    HtpasswdError,
    check_user_name,
    index_htpasswd_lines,
    parse_htpasswd,
    read_htpasswd_lines,
    remove_htpasswd_entry,
    set_htpasswd_entry,
    write_htpasswd_atomic,
)

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "detect_interface", "main"]

EXIT_OK = 0
#: A verification failed, or the user asked for is absent (or, for ``add``, present).
EXIT_FAILED = 1
#: Bad usage, a refused user name or password, an unreadable or malformed file.
EXIT_USAGE = 2

Interface = Literal["asgi", "wsgi"]
_BCRYPT_MAX_BYTES = 72
_DEMO_USER = "demo"
_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


class CommandError(Exception):
    """A failure reported as one line on stderr and an exit code. Never holds a secret."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse without option abbreviations: ``--password`` must not silently mean
    ``--password-stdin`` and leave the password behind as a positional argument."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse would echo them back, and one of them may be a password.
        parser.print_usage(sys.stderr)
        _print_error(
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
        _print_error(str(exc))
        return exc.code
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except Exception as exc:
        # A bug, not a user error. Its text could quote a hash: name the type only.
        _print_error(f"unexpected {type(exc).__name__}; please report it")
        return EXIT_USAGE


def _print_error(message: str) -> None:
    print(f"proxygate: error: {message}", file=sys.stderr)


def _print_warning(message: str) -> None:
    print(f"proxygate: warning: {message}", file=sys.stderr)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="proxygate",
        description="Manage htpasswd users files and serve an app behind proxygate.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)

    users = commands.add_parser(
        "users",
        help="add, change, delete, verify or list users in an htpasswd file",
        description="Edit an htpasswd users file. Passwords come from a prompt or "
        "--password-stdin, never from the command line.",
    )
    users.set_defaults(command=lambda _args: _missing_subcommand(users))
    actions = users.add_subparsers(title="actions", metavar="ACTION", parser_class=_Parser)

    def action(name: str, run: Callable[[argparse.Namespace], int], help_: str, *,
               user: bool = True, new_password: bool = False,
               password: bool = False) -> None:
        sub = actions.add_parser(name, help=help_, description=help_)
        sub.add_argument("file", metavar="FILE", help="the htpasswd file")
        if user:
            sub.add_argument("user", metavar="USER", help="the user name")
        if new_password:
            sub.add_argument(
                "--scheme", choices=ALLOWED_SCHEMES, default=DEFAULT_SCHEME,
                help=f"hash scheme (default: {DEFAULT_SCHEME})",
            )
            sub.add_argument(
                "--rounds", type=int, metavar="N", default=None,
                help="work factor: bcrypt cost, sha*_crypt rounds, argon2 time cost "
                "(default: the hash library's)",
            )
        if new_password or password:
            sub.add_argument(
                "--password-stdin", action="store_true",
                help="read the password from the first line of standard input",
            )
        sub.set_defaults(command=run)

    action("add", _users_add, "add a user; fails if the user exists", new_password=True)
    action("set", _users_set, "set a user's password, adding the user if absent",
           new_password=True)
    action("delete", _users_delete, "delete a user; fails if the user is absent")
    action("verify", _users_verify, "check a password: exit 0 if it matches, 1 if not",
           password=True)
    action("list", _users_list, "print the user names, one per line", user=False)

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
    serve.add_argument("--users", metavar="FILE", help="htpasswd users file")
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
    serve.add_argument(
        "--log-level", choices=_LOG_LEVELS, default="info", help="log level (default: info)"
    )
    serve.set_defaults(command=_serve)
    return parser


def _missing_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


# --- users -----------------------------------------------------------------------------


def _users_add(args: argparse.Namespace) -> int:
    return _store_password(args, replace=False)


def _users_set(args: argparse.Namespace) -> int:
    return _store_password(args, replace=True)


def _store_password(args: argparse.Namespace, *, replace: bool) -> int:
    user = _user_name(args.user)
    lines = _read_lines(args.file, missing_ok=True)
    exists = user in _index(lines, args.file)
    if exists and not replace:
        raise CommandError(
            f"user {user!r} already exists in {args.file}; "
            "use 'proxygate users set' to change the password",
            EXIT_FAILED,
        )
    password = _new_password(args)
    stored = _hash(password, args.scheme, args.rounds)
    lines = set_htpasswd_entry(lines, user, stored)
    _write_lines(args.file, lines)
    print(f"{'updated' if exists else 'added'} user {user!r} in {args.file}")
    return EXIT_OK


def _users_delete(args: argparse.Namespace) -> int:
    user = _user_name(args.user)
    lines = _read_lines(args.file)
    if user not in _index(lines, args.file):
        raise CommandError(f"no user {user!r} in {args.file}", EXIT_FAILED)
    _write_lines(args.file, remove_htpasswd_entry(lines, user))
    print(f"deleted user {user!r} from {args.file}")
    return EXIT_OK


def _users_verify(args: argparse.Namespace) -> int:
    # A local admin tool: whoever can run this on the file can read the file, so
    # saying "no such user" apart from "wrong password" reveals nothing new.
    user = _user_name(args.user)
    lines = _read_lines(args.file)
    entry = _index(lines, args.file).get(user)
    if entry is None:
        raise CommandError(f"no user {user!r} in {args.file}", EXIT_FAILED)
    try:
        check_hash(entry.stored)
    except HashFormatError as exc:
        raise CommandError(
            f"{args.file}, line {entry.index + 1} (user {user!r}): {exc}", EXIT_USAGE
        ) from None
    password = _read_password(args, prompt="Password: ", confirm=False)
    if not verify_password(password, entry.stored):
        raise CommandError(f"wrong password for user {user!r}", EXIT_FAILED)
    print(f"password matches for user {user!r}")
    return EXIT_OK


def _users_list(args: argparse.Namespace) -> int:
    for user in _index(_read_lines(args.file), args.file):
        print(user)
    return EXIT_OK


def _user_name(name: str) -> str:
    try:
        return check_user_name(name)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _read_lines(path: str, *, missing_ok: bool = False) -> list[str]:
    try:
        return read_htpasswd_lines(path)
    except FileNotFoundError:
        if missing_ok:
            return []
        raise CommandError(f"{path}: no such file") from None
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None
    except HtpasswdError as exc:
        raise CommandError(str(exc)) from None


def _index(lines: list[str], path: str) -> dict[str, HtpasswdEntry]:
    try:
        return index_htpasswd_lines(lines, path)
    except HtpasswdError as exc:
        raise CommandError(str(exc)) from None


def _write_lines(path: str, lines: list[str]) -> None:
    try:
        write_htpasswd_atomic(path, lines)
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}") from None
    # The edit itself succeeded; say so if the gate would still refuse the file,
    # e.g. another entry uses a hash scheme proxygate does not accept.
    try:
        users = parse_htpasswd("".join(lines), path)
    except HtpasswdError as exc:
        _print_warning(f"proxygate will not load this file until it is fixed: {exc}")
        return
    if not users:
        _print_warning(f"{path} lists no users; proxygate will not load it")


def _new_password(args: argparse.Namespace) -> str:
    password = _read_password(args, prompt="New password: ", confirm=True)
    if not password:
        raise CommandError("the password is empty")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in password):
        raise CommandError(
            "the password contains a control character; Basic credentials carrying one "
            "are refused, so it could never log in"
        )
    if args.scheme == "bcrypt" and len(password.encode("utf-8")) > _BCRYPT_MAX_BYTES:
        raise CommandError(
            "bcrypt uses at most 72 bytes of a password and this one is longer; choose a "
            "shorter one or --scheme argon2 / sha512_crypt"
        )
    return password


def _read_password(args: argparse.Namespace, *, prompt: str, confirm: bool) -> str:
    if args.password_stdin:
        raw = sys.stdin.buffer.readline()
        if not raw:
            raise CommandError("--password-stdin: standard input is empty")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CommandError("--password-stdin: the password is not UTF-8") from None
        return line.removesuffix("\n").removesuffix("\r")
    password = _prompt(prompt)
    if confirm and _prompt("Retype new password: ") != password:
        raise CommandError("the two passwords do not match")
    return password


def _prompt(prompt: str) -> str:
    with warnings.catch_warnings():
        # Without a terminal getpass falls back to reading stdin with echo on, after
        # a warning: refuse instead, before anything is read.
        warnings.simplefilter("error", getpass.GetPassWarning)
        try:
            return getpass.getpass(prompt)
        except getpass.GetPassWarning:
            raise CommandError(
                "no terminal to prompt for a password on; use --password-stdin"
            ) from None
        except EOFError:
            raise CommandError("no password given") from None


def _hash(password: str, scheme: str, rounds: int | None) -> str:
    settings: dict[str, Any] = {} if rounds is None else {"rounds": rounds}
    try:
        return hash_password(password, scheme, **settings)
    except TypeError:
        raise CommandError(f"--rounds does not apply to {scheme}") from None
    except ValueError as exc:
        # hash_password's and the hash library's messages name the scheme and the
        # setting, never the password (overlong bcrypt input is refused earlier).
        raise CommandError(str(exc)) from None


# --- serve -----------------------------------------------------------------------------


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

    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again for the
    # handler it found. Found the default, the process would die on the spot and leave
    # the demo users file behind; found this one, cleanup runs first. Installed before
    # the file exists, so a SIGTERM during start-up cleans up too.
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    demo_dir: str | None = None
    terminated = False
    try:
        if args.users is None:
            demo_dir = tempfile.mkdtemp(prefix="proxygate-demo-")
            users_path = os.path.join(demo_dir, "htpasswd")
            password = secrets.token_urlsafe(12)
            write_htpasswd_atomic(users_path, [f"{_DEMO_USER}:{hash_password(password)}\n"])
        else:
            users_path = args.users
            password = None
        try:
            gate = ProxyGateMiddleware(
                app,
                users=users_path,
                realm=args.realm,
                mode=args.mode,
                exempt_paths=tuple(exempt),
                reload_interval=args.reload_interval,
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


def _print_banner(args: argparse.Namespace, label: str, users_path: str,
                  password: str | None, exempt: Sequence[str]) -> None:
    host = args.host
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    base = f"http://{host}:{args.port}"
    lines = [f"proxygate: serving {label} on {base} ({args.mode} mode, realm {args.realm!r})"]
    if exempt:
        lines.append(f"proxygate: open without credentials: {', '.join(exempt)}")
    if password is None:
        lines.append(f"proxygate: users from {users_path}")
    else:
        lines.append(f"proxygate: demo user: {_DEMO_USER}  password: {password}")
        lines.append("proxygate: try:")
        if args.mode == "proxy":
            lines.append(f"  curl -x {base} --proxy-user {_DEMO_USER}:{password} "
                         "http://example.internal/hello")
        else:
            lines.append(f"  curl -u {_DEMO_USER}:{password} {base}/hello")
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
    """A WSGI app as an ASGI app under the gate, with the identity in ``REMOTE_USER``.

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
        username = getattr(scope.get("user"), "username", None)
        if isinstance(username, str) and username:
            headers.append((self._header, username.encode("utf-8")))
        await self._adapter({**scope, "headers": headers}, receive, send)

    def _call_wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        identity = environ.pop(self._environ_key, None)
        environ.pop("REMOTE_USER", None)
        if identity is not None:
            # Already UTF-8 bytes decoded as latin-1: PEP 3333's native strings.
            environ["REMOTE_USER"] = identity
        return self._app(environ, start_response)
