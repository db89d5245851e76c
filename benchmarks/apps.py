"""The apps under test: one bare route per framework, the anchors users would otherwise pick, and proxygate.

Every contender in a case serves the *same* route; only what wraps it
differs. The anchors follow their own documentation: Starlette's
``AuthenticationMiddleware`` with the ``BasicAuthBackend`` from its
authentication page, Starlette's JSON ``HTTPException`` handler from its
exceptions page, Flask-HTTPAuth's ``verify_password`` callback, and
Django's ``RemoteUserMiddleware`` subclassed to read a header (see
``django_site``).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping
from functools import cache
from typing import Any

from flask import Flask
from flask_httpauth import HTTPBasicAuth
from passlib.hash import apr_md5_crypt
from starlette.applications import Starlette
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    SimpleUser,
    requires,
)
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import proxygate.asgi
import proxygate.wsgi
from proxygate.auth.hashing import hash_password

USER = "alice"
PASSWORD = "correct horse battery staple"
#: The returning user of the bcrypt case: same password, cost-12 hash.
SLOW_USER = "bob"
BODY = b"hello"


@cache
def cheap_hash() -> str:
    return hash_password(PASSWORD, "apr_md5_crypt")


@cache
def bcrypt_hash() -> str:
    return hash_password(PASSWORD, "bcrypt", rounds=12)


def cheap_users() -> dict[str, str]:
    return {USER: cheap_hash()}


# --- Starlette --------------------------------------------------------------


async def hello(request: Request) -> Response:
    return PlainTextResponse(BODY)


def starlette_bare() -> Starlette:
    return Starlette(routes=[Route("/", hello)])


class BasicAuthBackend(AuthenticationBackend):
    """Starlette's documented Basic backend, unchanged.

    Its documentation leaves the password check as a TODO, so this anchor
    verifies nothing: it does strictly less work than proxygate, which makes
    proxygate's targets against it harder, not easier.
    """

    async def authenticate(self, conn):  # type: ignore[no-untyped-def]
        if "Authorization" not in conn.headers:
            return

        auth = conn.headers["Authorization"]
        try:
            scheme, credentials = auth.split()
            if scheme.lower() != "basic":
                return
            decoded = base64.b64decode(credentials).decode("ascii")
        except (ValueError, UnicodeDecodeError, binascii.Error):
            raise AuthenticationError("Invalid basic auth credentials") from None

        username, _, password = decoded.partition(":")  # noqa: RUF059 (as documented)
        return AuthCredentials(["authenticated"]), SimpleUser(username)


def starlette_auth_anchor() -> Starlette:
    """The same route, protected the documented way: the middleware plus ``@requires``.

    Without credentials ``requires`` raises ``HTTPException(403)``, which
    Starlette's exception middleware turns into its plain-text error: that is
    this anchor's error path.
    """
    return Starlette(
        routes=[Route("/", requires("authenticated")(hello))],
        middleware=[Middleware(AuthenticationMiddleware, backend=BasicAuthBackend())],
    )


async def http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def starlette_json_errors_anchor() -> Starlette:
    """The same app with Starlette's documented ``HTTPException`` → JSON handler."""
    return Starlette(routes=[Route("/", hello)], exception_handlers={HTTPException: http_exception})


def starlette_proxygate(users: Mapping[str, str] | None = None, **options: Any) -> Starlette:
    """The same app behind proxygate, added the way Starlette adds middleware.

    ``ProxyGateMiddleware`` is the gate *and* the error envelope (it extends
    ``ErrorEnvelopeMiddleware``), so this is the "envelope on" stack.
    """
    return Starlette(
        routes=[Route("/", hello)],
        middleware=[
            Middleware(proxygate.asgi.ProxyGateMiddleware, users=users or cheap_users(), **options),
        ],
    )


def starlette_proxygate_logging() -> Starlette:
    """``starlette_proxygate`` with the ``proxygate`` logger at INFO on stderr, the way
    ``proxygate serve`` sets it up: what each logged decision costs shows."""
    logger = logging.getLogger("proxygate")
    logger.addHandler(logging.StreamHandler())
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return starlette_proxygate()


def requests() -> dict[str, Any]:
    """The requests the in-process cases send: with credentials (proxy and origin style),
    without, to a missing page, and as the bcrypt user."""
    from drive import Request, basic

    return {
        "proxy": Request(headers=(("Proxy-Authorization", basic(USER, PASSWORD)),)),
        "origin": Request(headers=(("Authorization", basic(USER, PASSWORD)),)),
        "none": Request(),
        "missing": Request(path="/no-such-page"),
        "slow_user": Request(
            headers=(("Proxy-Authorization", basic(SLOW_USER, PASSWORD)),)
        ),
    }


#: Anything an app factory had to work around, for the results' notes.
NOTES: list[str] = []


def envelope_options() -> dict[str, Any]:
    """Options for ``ErrorEnvelopeMiddleware``: none, as documented, if it accepts that."""
    try:
        proxygate.asgi.ErrorEnvelopeMiddleware(starlette_bare())
    except ValueError as exc:
        note = (f"`ErrorEnvelopeMiddleware(app)` refused to build without options ({exc}); "
                "measured with `users=` passed, which the envelope does not use.")
        if note not in NOTES:
            NOTES.append(note)
        return {"users": cheap_users()}
    return {}


def starlette_envelope() -> Starlette:
    """The same app with only proxygate's error envelope."""
    return Starlette(
        routes=[Route("/", hello)],
        middleware=[Middleware(proxygate.asgi.ErrorEnvelopeMiddleware, **envelope_options())],
    )


def starlette_envelope_handlers() -> Starlette:
    """The same app with proxygate's Starlette exception handlers: the anchor's mechanism."""
    from proxygate.contrib.starlette import install_error_handlers

    app = starlette_bare()
    install_error_handlers(app)
    return app


def starlette_envelope_documented() -> Starlette:
    """The handlers and the envelope middleware together, as docs/starlette.md sets them up."""
    from proxygate.contrib.starlette import install_error_handlers

    app = starlette_envelope()
    install_error_handlers(app)
    return app


# --- Flask ------------------------------------------------------------------


def _flask_app() -> Flask:
    app = Flask("bench")

    @app.get("/")
    def index() -> bytes:
        return BODY

    return app


def flask_bare() -> Flask:
    return _flask_app()


def flask_httpauth_anchor(*, plaintext: bool = False) -> Flask:
    """The same route behind Flask-HTTPAuth's ``login_required``.

    ``verify_password`` checks the same apr1 hash proxygate is given.
    Flask-HTTPAuth has no cache, so it verifies on every request; that is
    what a user of it gets. ``plaintext=True`` is a lower bound for any
    callback: a dict lookup and a string compare, no hash at all.
    """
    app = Flask("bench")
    auth = HTTPBasicAuth()
    users = cheap_users()
    plain = {USER: PASSWORD}

    @auth.verify_password
    def verify_password(username: str, password: str) -> str | None:
        if plaintext:
            if plain.get(username) == password:
                return username
            return None
        stored = users.get(username)
        if stored is not None and apr_md5_crypt.verify(password, stored):
            return username
        return None

    @app.get("/")
    @auth.login_required
    def index() -> bytes:
        return BODY

    return app


def flask_proxygate(users: Mapping[str, str] | None = None, **options: Any) -> Flask:
    """The same route with Flask's documented middleware hook: wrap ``app.wsgi_app``."""
    app = _flask_app()
    app.wsgi_app = proxygate.wsgi.ProxyGateMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, users=users or cheap_users(), **options
    )
    return app


# --- Digest ---------------------------------------------------------------------

REALM = "bench"
NONCE_SECRET = "benchmark-nonce-secret-0123456789"


@cache
def digest_users_file() -> str:
    """A digest users file for USER (all algorithms), made once per process."""
    import os
    import tempfile

    from proxygate.auth.digest_file import digest_fields

    fd, path = tempfile.mkstemp(prefix="proxygate-bench-", suffix=".digest")
    with os.fdopen(fd, "w") as handle:
        fields = digest_fields(USER, REALM, PASSWORD, ("MD5", "SHA-256", "SHA-512-256"))
        handle.write(f"{USER}:{REALM}:{fields}\n")
    return path


class DigestClient:
    """A Digest client that answers one challenge with nc 1, 2, 3, ... as a browser or curl
    reusing a nonce does (RFC 7616, SHA-256, qop=auth)."""

    def __init__(self) -> None:
        self.nonce = ""
        self.nc = 0

    def take(self, headers: list[tuple[str, str]]) -> None:
        from urllib.request import parse_http_list, parse_keqv_list

        for name, value in headers:
            if name.lower() == "proxy-authenticate" and value.startswith("Digest "):
                self.nonce = parse_keqv_list(parse_http_list(value[7:]))["nonce"]
                return
        raise AssertionError("no Digest challenge")

    def next(self) -> tuple[str, str]:
        import hashlib

        def h(text: str) -> str:
            return hashlib.sha256(text.encode()).hexdigest()

        self.nc += 1
        nc = f"{self.nc:08x}"
        ha1 = h(f"{USER}:{REALM}:{PASSWORD}")
        response = h(f"{ha1}:{self.nonce}:{nc}:bench:auth:{h('GET:/')}")
        return ("Proxy-Authorization",
                f'Digest username="{USER}", realm="{REALM}", nonce="{self.nonce}", uri="/", '
                f'algorithm=SHA-256, response="{response}", qop=auth, nc={nc}, cnonce="bench"')
