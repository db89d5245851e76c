"""Exempt prefixes cover plain paths only: tricks some router reads as another path are never exempt."""

from __future__ import annotations

import pytest

from proxygate.asgi import ProxyGateMiddleware as AsgiGate
from proxygate.auth.hashing import hash_password
from proxygate.config import Config
from proxygate.gate import Check, Deny, Forward, Gate, HeadFromPairs
from proxygate.wsgi import ProxyGateMiddleware as WsgiGate
from support.asgi_driver import RecordingApp, call_asgi
from support.wsgi_driver import RecordingWSGIApp, call_wsgi

USERS = {"alice": hash_password("wonder", scheme="sha256_crypt")}


def gate(*exempt: str) -> Gate:
    return Gate(Config(users=USERS, exempt_paths=exempt or ("/static/*", "/healthz")))


def decision(path: str, *exempt: str) -> Forward | Deny:
    decided = gate(*exempt).decide(HeadFromPairs("GET", path, [], "10.0.0.1"))
    return decided.run() if isinstance(decided, Check) else decided


#: Paths under "/static/" that some server, proxy or router resolves to somewhere else.
TRICKS = [
    "/static/..;/admin",              # Tomcat / Spring: ";" starts a path parameter
    "/static/..;jsessionid=x/admin",
    "/static/;/../admin",
    "/static/..\\admin",              # IIS and Windows file servers: "\" is a separator
    "/static\\..\\admin",
    "/static/%2e%2e/admin",           # a second decoder turns these into dot segments
    "/static/%2E%2E/admin",
    "/static/.%2e/admin",
    "/static/..%2fadmin",             # ... or separators
    "/static/..%2Fadmin",
    "/static/..%5cadmin",
    "/static/%252e%252e/admin",       # encoded twice
    "/static/app.css;.js",
    "/static/x\x00/../admin",         # NUL ends the path for C code
    "/static/x\x00.css",
    "/static/x\r\nInjected: yes",
    "/static/x\t/../admin",
    "/static/.. /admin",              # Windows trims trailing dots and spaces
    "/static/... /admin",
    "/static/...",
    "/static/\uff0e\uff0e/admin",     # fullwidth dots: NFKC makes them ".."
    "/static/caf\u00e9/../../admin",
]


#: What a server can hand a shell: ASGI's raw_path is bytes, so Latin-1 text only.
SHELL_TRICKS = [path for path in TRICKS if all(ord(ch) < 256 for ch in path)]


@pytest.mark.parametrize("path", TRICKS)
def test_a_path_some_router_reads_otherwise_is_never_exempt(path: str) -> None:
    assert isinstance(decision(path), Deny)


@pytest.mark.parametrize("path", ["/static/app.css", "/static/a/b-c_d.e~f.js", "/static/.well-known/x",
                                  "/static/a..b", "/static/", "/healthz"])
def test_plain_paths_under_an_exempt_prefix_stay_exempt(path: str) -> None:
    result = decision(path)
    assert isinstance(result, Forward) and result.identity is None


def test_an_exact_exempt_path_is_matched_exactly_not_by_its_tricks() -> None:
    for path in ["/healthz;x", "/healthz/..", "/healthz%2f", "/healthz\x00"]:
        assert isinstance(decision(path), Deny), path


@pytest.mark.parametrize("path", SHELL_TRICKS)
def test_asgi_shell_denies_tricks_without_calling_the_app(path: str) -> None:
    app = RecordingApp()
    result = call_asgi(AsgiGate(app, users=USERS, exempt_paths=["/static/*"]), "GET", path)
    assert result.status == 407
    assert app.scopes == []


@pytest.mark.parametrize("path", SHELL_TRICKS)
def test_wsgi_shell_denies_tricks_without_calling_the_app(path: str) -> None:
    app = RecordingWSGIApp()
    result = call_wsgi(WsgiGate(app, users=USERS, exempt_paths=["/static/*"]), "GET", path)
    assert result.status == 407
    assert app.environs == []
