"""The error-envelope conformance suite: one list of cases, run against any app on any server.

A *target* is anything that answers a :class:`Request` with a :class:`Reply`:
:func:`call_asgi` and :func:`call_wsgi` drive an app in process,
:func:`call_http` talks to a real server. Every case states one checklist line.

An app under test implements these routes (framework apps use their own routing,
404 and 405 pages; only the behaviour matters):

====================  ==========================================================
``GET /ok``           200 ``application/json`` ``{"ok": true}``
``GET /boom``         raises an exception whose message holds :data:`SECRET`
``/only-get``         GET answers 200; any other method gets the framework's (or an
                      HTML) 405 with ``Allow``
any unknown path      the framework's (or an HTML) 404
``GET /no-content``   204, no body
``GET /not-modified`` 304 with an ``ETag``, no body
``GET /stream?release=F``  200 ``text/plain``: ``first\\n``, then waits until file ``F``
                      exists (bounded by :data:`WAIT_LIMIT`), then ``second\\n``
                      (``timeout\\n`` if it never appeared)
``GET /text-400``     400 ``text/plain`` ``the name field is required``
``GET /text-500``     500 ``text/plain`` debug-page style text holding :data:`SECRET`
``GET /gzip-404``     404 gzip-compressed HTML with ``Content-Encoding: gzip``
``GET /json-409``     409 ``application/json`` ``{"detail": "already exists"}``
``GET /json-422``     422 FastAPI's validation list, its ``input`` holding :data:`SECRET`
``GET /problem-404``  404 ``application/problem+json`` with ``detail`` "no order 7"
``GET /envelope-404`` 404: the envelope already (``details`` "no order 8")
``GET /problem-500``  500 ``application/problem+json``, ``detail`` holding :data:`SECRET`
``GET /envelope-500`` 500 shaped as the envelope, ``details`` holding :data:`SECRET`
``GET /fail-midway``  200 ``text/plain``: ``first\n``, then raises (message holds :data:`SECRET`)
``GET /headers-404``  404 HTML with ``Set-Cookie``, ``Retry-After``, ``Vary: Origin``,
                      ``Access-Control-Allow-Origin``, ``ETag``, ``Content-MD5``,
                      ``Cache-Control``
====================  ==========================================================

:func:`asgi_app` and :func:`wsgi_app` are plain implementations, wrapped in
proxygate's error middleware as ``asgi_served`` / ``wsgi_served`` for servers
(``uvicorn support.conformance:asgi_served``, ``gunicorn support.conformance:wsgi_served``).
"""

from __future__ import annotations

import asyncio
import gzip
import http.client
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

SECRET = "s3cret-conformance-9d1b"
WAIT_LIMIT = 5.0
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

Headers = list[tuple[str, str]]


# -- requests, replies, targets ---------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    #: Add ``?release=<file>`` and create the file once the first body chunk has arrived.
    release_after_first_chunk: bool = False


@dataclass
class Reply:
    status: int
    headers: Headers
    body: bytes = b""
    #: Body chunks as they arrived; ``body`` is their concatenation.
    chunks: list[bytes] = field(default_factory=list)
    method: str = "GET"
    #: The response broke off after it started (the exception reached the server).
    broken: bool = False

    def header(self, name: str) -> str | None:
        values = self.header_all(name)
        return ", ".join(values) if values else None

    def header_all(self, name: str) -> list[str]:
        lowered = name.lower()
        return [value for key, value in self.headers if key.lower() == lowered]

    def json(self) -> Any:
        return json.loads(self.body)


Target = Callable[[Request], Reply]


@dataclass(frozen=True)
class Case:
    name: str
    request: Request
    check: Callable[[Reply], None]
    #: The reply is expected to break off after its start.
    broken: bool = False

    def __str__(self) -> str:
        return self.name


def _release_path() -> Path:
    return Path(tempfile.mkdtemp(prefix="proxygate-release-")) / "go"


def _with_release(request: Request) -> tuple[Request, Path | None]:
    if not request.release_after_first_chunk:
        return request, None
    path = _release_path()
    sep = "&" if "?" in request.path else "?"
    return replace(request, path=f"{request.path}{sep}release={path}"), path


# -- in-process drivers -------------------------------------------------------------------


def call_asgi(app: Any, request: Request) -> Reply:
    """Drive an ASGI app like a server: one start at most, body chunks recorded as sent."""
    request, release = _with_release(request)
    target = urlsplit(request.path)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        "path": target.path,
        "raw_path": target.path.encode(),
        "query_string": target.query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request.headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "extensions": {},
    }
    reply = Reply(0, [], method=request.method)
    done = asyncio.Event()
    sent_request = False

    async def receive() -> dict[str, Any]:
        nonlocal sent_request
        if not sent_request:
            sent_request = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            if reply.status:
                raise RuntimeError("second http.response.start")
            reply.status = message["status"]
            reply.headers = [(k.decode("latin-1"), v.decode("latin-1"))
                             for k, v in message.get("headers", [])]
        elif message["type"] == "http.response.body":
            if not reply.status:
                raise RuntimeError("body before http.response.start")
            if done.is_set():
                raise RuntimeError("body after the response completed")
            chunk = message.get("body", b"")
            if chunk:
                reply.chunks.append(chunk)
                if release is not None and not release.exists():
                    release.touch()
            if not message.get("more_body", False):
                done.set()

    async def main() -> None:
        try:
            await app(scope, receive, send)
        except Exception:
            if not reply.status:
                raise
            reply.broken = True  # a server would cut the connection here

    asyncio.run(main())
    reply.body = b"".join(reply.chunks)
    return reply


class WSGIResult:
    """What a WSGI call left behind: the reply and whether the server-side close() ran."""

    closed: bool = False


def call_wsgi(app: Any, request: Request, *, result: WSGIResult | None = None) -> Reply:
    """Drive a WSGI app like a server (PEP 3333 start_response rules, close() always called)."""
    from wsgiref.util import setup_testing_defaults

    request, release = _with_release(request)
    target = urlsplit(request.path)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "PATH_INFO": target.path,
        "QUERY_STRING": target.query,
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
    }
    for name, value in request.headers:
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"] = value
    setup_testing_defaults(environ)
    reply = Reply(0, [], method=request.method)
    pending: list[Any] = []
    headers_sent = False

    def start_response(status: str, headers: Headers, exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            if headers_sent:
                raise exc_info[1].with_traceback(exc_info[2])
        elif pending:
            raise AssertionError("start_response called twice without exc_info")
        pending[:] = [int(status[:3]), list(headers)]
        return write

    def send_headers() -> None:
        nonlocal headers_sent
        if not headers_sent:
            if not pending:
                raise AssertionError("body before start_response")
            reply.status, reply.headers = pending
            headers_sent = True

    def write(data: bytes) -> None:
        send_headers()
        if data:
            reply.chunks.append(data)

    iterable = app(environ, start_response)
    try:
        for chunk in iterable:
            if chunk:
                write(chunk)
                if release is not None and not release.exists():
                    release.touch()
        send_headers()
    except Exception:
        if not headers_sent:
            raise
        reply.broken = True  # a server would cut the connection here
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
            if result is not None:
                result.closed = True
    reply.body = b"".join(reply.chunks)
    return reply


# -- a real server ------------------------------------------------------------------------


def call_http(base_url: str, request: Request, *, timeout: float = 10.0) -> Reply:
    """One request over a fresh connection; chunks recorded as the socket delivered them."""
    request, release = _with_release(request)
    split = urlsplit(base_url)
    connection = http.client.HTTPConnection(split.hostname or "127.0.0.1", split.port,
                                            timeout=timeout)
    try:
        connection.putrequest(request.method, request.path, skip_accept_encoding=True)
        for name, value in request.headers:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        reply = Reply(response.status, list(response.getheaders()), method=request.method)
        while True:
            try:
                chunk = response.read1(65536)
            except (http.client.IncompleteRead, ConnectionError):
                reply.broken = True
                break
            if not chunk:
                break
            reply.chunks.append(chunk)
            if release is not None and not release.exists():
                release.touch()
        reply.body = b"".join(reply.chunks)
        return reply
    finally:
        connection.close()


# -- the plain apps -----------------------------------------------------------------------

_HTML_404 = b"<!doctype html><html><body><h1>Not Found</h1><p>The page is gone.</p></body></html>"
_HTML_405 = b"<!doctype html><html><body><h1>Method Not Allowed</h1></body></html>"
_TEXT_500 = (
    "Traceback (most recent call last):\n"
    '  File "/srv/app/views.py", line 12, in handler\n'
    f"RuntimeError: SELECT * FROM users WHERE password = '{SECRET}'\n"
).encode()
_JSON_409 = b'{"detail": "already exists"}'
_JSON_422 = json.dumps({"detail": [{"type": "missing", "loc": ["body", "password"],
                                    "msg": "Field required", "input": {"pw": SECRET},
                                    "ctx": {"given": SECRET}}]}).encode()
_PROBLEM_404 = b'{"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no order 7"}'
_ENVELOPE_404 = b'{"error": {"code": 404, "message": "Not Found", "details": "no order 8"}}'
_PROBLEM_500 = json.dumps({"type": "about:blank", "title": "Internal Server Error", "status": 500,
                           "detail": f"psycopg: password {SECRET} rejected"}).encode()
_ENVELOPE_500 = json.dumps({"error": {"code": 500, "message": "Internal Server Error",
                                      "details": f"Traceback: password={SECRET}"}}).encode()
_JSON_ROUTES = {
    "/json-409": (409, "application/json", _JSON_409),
    "/json-422": (422, "application/json", _JSON_422),
    "/problem-404": (404, "application/problem+json", _PROBLEM_404),
    "/envelope-404": (404, "application/json", _ENVELOPE_404),
    "/problem-500": (500, "application/problem+json", _PROBLEM_500),
    "/envelope-500": (500, "application/json", _ENVELOPE_500),
}


def _response_for(method: str, path: str, query: str) -> tuple[int, Headers, list[bytes]] | None:
    """The fixed responses both plain apps send; None for /boom and /stream."""
    html = [("Content-Type", "text/html; charset=utf-8")]
    if path == "/ok":
        return 200, [("Content-Type", "application/json")], [b'{"ok": true}']
    if path == "/only-get":
        if method in ("GET", "HEAD"):
            return 200, [("Content-Type", "text/plain")], [b"only get"]
        return 405, [*html, ("Allow", "GET, HEAD")], [_HTML_405]
    if path == "/no-content":
        return 204, [], []
    if path == "/not-modified":
        return 304, [("ETag", '"v1"')], []
    if path == "/text-400":
        return 400, [("Content-Type", "text/plain; charset=utf-8")], [b"the name field is required"]
    if path == "/text-500":
        return 500, [("Content-Type", "text/plain; charset=utf-8")], [_TEXT_500]
    if path == "/gzip-404":
        return 404, [*html, ("Content-Encoding", "gzip"), ("ETag", '"z"')], \
            [gzip.compress(_HTML_404)]
    if path in _JSON_ROUTES:
        status, content_type, body = _JSON_ROUTES[path]
        return status, [("Content-Type", content_type)], [body]
    if path == "/headers-404":
        return 404, [
            *html,
            ("Set-Cookie", "seen=1; Path=/"),
            ("Retry-After", "30"),
            ("Vary", "Origin"),
            ("Access-Control-Allow-Origin", "https://example.test"),
            ("ETag", '"old-body"'),
            ("Content-MD5", "Q2hlY2sgSW50ZWdyaXR5IQ=="),
            ("Cache-Control", "max-age=600"),
        ], [_HTML_404]
    return 404, html, [_HTML_404]


def _release_file(query: str) -> Path:
    return Path(parse_qs(query)["release"][0])


def _boom() -> None:
    raise RuntimeError(f"connection to postgres://admin:{SECRET}@db.internal failed")


async def asgi_app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    """The route table above as a raw ASGI app."""
    if scope["type"] != "http":
        return
    path, query = scope["path"], scope.get("query_string", b"").decode()
    if path == "/boom":
        _boom()
    if path == "/fail-midway":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        _boom()
    if path == "/stream":
        release = _release_file(query)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        deadline = time.monotonic() + WAIT_LIMIT
        while not release.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        last = b"second\n" if release.exists() else b"timeout\n"
        await send({"type": "http.response.body", "body": last})
        return
    found = _response_for(scope["method"], path, query)
    assert found is not None
    status, headers, chunks = found
    body = b"".join(chunks)
    raw = [(k.lower().encode(), v.encode()) for k, v in headers]
    if status not in (204, 304):
        raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


def _stream(release: Path) -> Iterator[bytes]:
    yield b"first\n"
    deadline = time.monotonic() + WAIT_LIMIT
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    yield b"second\n" if release.exists() else b"timeout\n"


def _fail_midway() -> Iterator[bytes]:
    yield b"first\n"
    _boom()


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """The route table above as a plain PEP 3333 app."""
    import http as _http

    path, query = environ.get("PATH_INFO", "/"), environ.get("QUERY_STRING", "")
    if path == "/boom":
        _boom()
    if path == "/fail-midway":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _fail_midway()
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _stream(_release_file(query))
    found = _response_for(environ["REQUEST_METHOD"], path, query)
    assert found is not None
    status, headers, chunks = found
    body = b"".join(chunks)
    if status not in (204, 304):
        headers = [*headers, ("Content-Length", str(len(body)))]
    start_response(f"{status} {_http.HTTPStatus(status).phrase}", headers)
    return [] if environ["REQUEST_METHOD"] == "HEAD" else chunks


def _served() -> tuple[Any, Any]:
    from proxygate import asgi, wsgi

    options = json.loads(os.environ.get("PROXYGATE_CONFORMANCE_OPTIONS", "{}"))
    options.setdefault("users", {})  # the error middleware alone needs no users
    return (asgi.ErrorEnvelopeMiddleware(asgi_app, **options),
            wsgi.ErrorEnvelopeMiddleware(wsgi_app, **options))


asgi_served, wsgi_served = _served()


# -- the cases ----------------------------------------------------------------------------


def _envelope(reply: Reply, status: int) -> dict[str, Any]:
    assert reply.status == status, (reply.status, reply.body[:300])
    assert reply.header("content-type") == "application/json", reply.headers
    error: dict[str, Any] = reply.json()["error"]
    assert error["code"] == status
    return error


def _no_secret(reply: Reply) -> None:
    assert SECRET.encode() not in reply.body
    assert all(SECRET not in value for _, value in reply.headers)


def _content_length_matches(reply: Reply) -> None:
    lengths = reply.header_all("content-length")
    if reply.method != "HEAD" and lengths:
        assert lengths == [str(len(reply.body))], (lengths, len(reply.body))


def _check_exception(reply: Reply) -> None:
    error = _envelope(reply, 500)
    _no_secret(reply)
    for leak in (b"RuntimeError", b"Traceback", b"postgres", b".py"):
        assert leak not in reply.body, leak
    assert error["message"] == "Internal Server Error"


def _check_html_404(reply: Reply) -> None:
    error = _envelope(reply, 404)
    assert error["message"] == "Not Found"
    assert b"<" not in reply.body


def _check_html_405(reply: Reply) -> None:
    _envelope(reply, 405)
    allow = {m.strip() for m in (reply.header("allow") or "").split(",")}
    assert "GET" in allow, reply.headers


def _check_head_404(reply: Reply) -> None:
    assert reply.status == 404
    assert reply.body == b""
    assert reply.header("content-type") == "application/json"


def _check_head_500(reply: Reply) -> None:
    assert reply.status == 500
    assert reply.body == b""


def _check_no_body(status: int) -> Callable[[Reply], None]:
    def check(reply: Reply) -> None:
        assert reply.status == status
        assert reply.body == b""
        assert reply.header("content-length") in (None, "0")
    return check


def _check_stream(reply: Reply) -> None:
    assert reply.status == 200
    assert reply.body == b"first\nsecond\n", reply.body
    assert reply.chunks[0] == b"first\n"


def _check_text_400(reply: Reply) -> None:
    error = _envelope(reply, 400)
    assert error["details"] == "the name field is required"


def _check_text_500(reply: Reply) -> None:
    error = _envelope(reply, 500)
    _no_secret(reply)
    assert b"Traceback" not in reply.body
    assert error["details"] == "The server could not complete the request."


def _check_gzip_404(reply: Reply) -> None:
    _envelope(reply, 404)
    assert reply.header("content-encoding") is None
    assert reply.header("etag") is None


def _check_json_409(reply: Reply) -> None:
    error = _envelope(reply, 409)
    assert (error["message"], error["details"]) == ("Conflict", "already exists")


def _check_json_422(reply: Reply) -> None:
    error = _envelope(reply, 422)
    assert error["details"] == [{"loc": ["body", "password"], "msg": "Field required",
                                 "type": "missing"}]


def _check_problem_404(reply: Reply) -> None:
    assert _envelope(reply, 404)["details"] == "no order 7"


def _check_envelope_404(reply: Reply) -> None:
    assert reply.status == 404
    assert reply.body == _ENVELOPE_404


def _check_5xx_json_replaced(reply: Reply) -> None:
    error = _envelope(reply, 500)
    assert (error["message"], error["details"]) == (
        "Internal Server Error", "The server could not complete the request.")
    assert b"Traceback" not in reply.body and b"psycopg" not in reply.body


def _check_headers_404(reply: Reply) -> None:
    _envelope(reply, 404)
    assert reply.header("set-cookie") == "seen=1; Path=/"
    assert reply.header("retry-after") == "30"
    assert reply.header("access-control-allow-origin") == "https://example.test"
    vary = {v.strip().lower() for v in (reply.header("vary") or "").split(",")}
    assert vary == {"origin", "accept"}, reply.headers
    for dropped in ("etag", "content-md5", "cache-control", "content-encoding"):
        assert reply.header(dropped) is None, dropped


def _check_problem_json(reply: Reply) -> None:
    assert reply.status == 404
    assert reply.header("content-type") == "application/problem+json"
    problem = reply.json()
    assert problem["status"] == 404
    assert problem["title"] == "Not Found"
    assert problem["request_id"] == reply.header("x-request-id")


def _check_request_id_echoed(reply: Reply) -> None:
    error = _envelope(reply, 404)
    assert error["request_id"] == "req-42.a_b:c"
    assert reply.header("x-request-id") == "req-42.a_b:c"


def _check_request_id_generated(reply: Reply) -> None:
    error = _envelope(reply, 404)
    generated = reply.header("x-request-id")
    assert generated is not None
    assert "<" not in generated
    assert error["request_id"] == generated
    assert len(generated) == 32


def _check_fail_midway(reply: Reply) -> None:
    assert reply.status == 200
    assert reply.body == b"first\n"  # no second start, no envelope appended to a success


def _check_ok(reply: Reply) -> None:
    assert reply.status == 200
    assert reply.json() == {"ok": True}
    assert reply.header("x-request-id") is None


CASES: list[Case] = [
    Case("exception_with_secret_text_becomes_generic_500",
         Request("GET", "/boom"), _check_exception),
    Case("html_404_becomes_envelope",
         Request("GET", "/no/such/page", (("Accept", BROWSER_ACCEPT),)), _check_html_404),
    Case("html_405_becomes_envelope_with_allow_kept",
         Request("POST", "/only-get"), _check_html_405),
    Case("head_404_has_no_body", Request("HEAD", "/no/such/page"), _check_head_404),
    Case("head_exception_has_no_body", Request("HEAD", "/boom"), _check_head_500),
    Case("no_content_204_has_no_body", Request("GET", "/no-content"), _check_no_body(204)),
    Case("not_modified_304_has_no_body", Request("GET", "/not-modified"), _check_no_body(304)),
    Case("streamed_200_arrives_chunk_by_chunk",
         Request("GET", "/stream", release_after_first_chunk=True), _check_stream),
    Case("short_plain_text_400_becomes_details", Request("GET", "/text-400"), _check_text_400),
    Case("plain_text_500_body_never_carried", Request("GET", "/text-500"), _check_text_500),
    Case("gzip_404_replaced_without_encoding", Request("GET", "/gzip-404"), _check_gzip_404),
    Case("json_detail_409_is_normalized", Request("GET", "/json-409"), _check_json_409),
    Case("json_validation_422_is_normalized_and_redacted", Request("GET", "/json-422"),
         _check_json_422),
    Case("problem_json_404_is_normalized", Request("GET", "/problem-404"), _check_problem_404),
    Case("envelope_404_passes_as_it_came", Request("GET", "/envelope-404"), _check_envelope_404),
    Case("problem_json_500_body_never_carried", Request("GET", "/problem-500"),
         _check_5xx_json_replaced),
    Case("envelope_shaped_500_body_never_carried", Request("GET", "/envelope-500"),
         _check_5xx_json_replaced),
    Case("error_headers_kept_and_dropped", Request("GET", "/headers-404"), _check_headers_404),
    Case("problem_json_when_preferred",
         Request("GET", "/missing", (("Accept", "application/problem+json"),)),
         _check_problem_json),
    Case("safe_incoming_request_id_is_echoed",
         Request("GET", "/missing", (("X-Request-ID", "req-42.a_b:c"),)),
         _check_request_id_echoed),
    Case("unsafe_incoming_request_id_is_replaced",
         Request("GET", "/missing", (("X-Request-ID", "<script>alert(1)</script>"),)),
         _check_request_id_generated),
    Case("success_passes_untouched", Request("GET", "/ok"), _check_ok),
    Case("exception_after_start_breaks_the_response_off",
         Request("GET", "/fail-midway"), _check_fail_midway, broken=True),
]


def run_case(target: Target, case: Case) -> Reply:
    """Send the case's request, run its check and the checks every reply must pass."""
    reply = target(case.request)
    assert reply.broken == case.broken, "broken off" if reply.broken else "completed"
    _content_length_matches(reply)
    _no_secret(reply)
    case.check(reply)
    return reply
