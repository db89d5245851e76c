"""Absolute-form targets (RFC 9112 §3.2.2) keep their encoded path intact through both shells."""

from __future__ import annotations

import base64
from typing import Any

from proxygate import asgi, wsgi
from proxygate.auth.hashing import hash_password
from support.asgi_driver import RecordingApp, call_asgi
from support.wsgi_driver import RecordingWSGIApp, call_wsgi

USERS = {"alice": hash_password("pw", "apr_md5_crypt")}
CREDENTIALS = ("Proxy-Authorization", "Basic " + base64.b64encode(b"alice:pw").decode())


def _asgi_scope(raw_target: bytes, path: str) -> dict[str, Any]:
    return {"raw_path": raw_target, "path": path, "query_string": b"q=1"}


def test_asgi_encoded_question_mark_stays_in_the_path() -> None:
    inner = RecordingApp()
    app = asgi.ProxyGateMiddleware(inner, users=USERS)
    call_asgi(app, "GET", "http://example.com/pub/a b?c", [CREDENTIALS],
              scope=_asgi_scope(b"http://example.com/pub/a%20b%3Fc", "http://example.com/pub/a b?c"))
    seen = inner.scopes[-1]
    assert seen["path"] == "/pub/a b?c"
    assert seen["raw_path"] == b"/pub/a%20b%3Fc"
    assert seen["query_string"] == b"q=1"
    assert (b"host", b"example.com") in seen["headers"]


def test_asgi_absolute_form_without_raw_path_still_routes_on_the_path() -> None:
    inner = RecordingApp()
    app = asgi.ProxyGateMiddleware(inner, users=USERS)
    call_asgi(app, "GET", "http://example.com:8080/a/b", [CREDENTIALS],
              scope={"raw_path": None, "query_string": b""})
    seen = inner.scopes[-1]
    assert seen["path"] == "/a/b"
    assert seen["raw_path"] == b"/a/b"
    assert (b"host", b"example.com:8080") in seen["headers"]


def test_wsgi_raw_uri_is_split_before_decoding() -> None:
    inner = RecordingWSGIApp()
    app = wsgi.ProxyGateMiddleware(inner, users=USERS)
    call_wsgi(app, "GET", "http://example.com/pub/a b?c", [CREDENTIALS],
              environ={"RAW_URI": "http://example.com/pub/a%20b%3Fc?q=1",
                       "PATH_INFO": "http://example.com/pub/a b?c", "QUERY_STRING": ""})
    seen = inner.environs[-1]
    assert seen["PATH_INFO"] == "/pub/a b?c"
    assert seen["QUERY_STRING"] == "q=1"
    assert seen["HTTP_HOST"] == "example.com"
