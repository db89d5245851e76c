"""The shared error-envelope conformance cases, in process and under real uvicorn and gunicorn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from proxygate import asgi, wsgi
from support.conformance import (
    CASES,
    SECRET,
    Case,
    Reply,
    Request,
    Target,
    asgi_app,
    asgi_served,
    call_asgi,
    call_http,
    call_wsgi,
    run_case,
    wsgi_app,
    wsgi_served,
)
from support.servers import run_server

IN_PROCESS: dict[str, Target] = {
    "asgi": lambda request: call_asgi(asgi_served, request),
    "wsgi": lambda request: call_wsgi(wsgi_served, request),
}


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("shell", sorted(IN_PROCESS))
def test_in_process(shell: str, case: Case) -> None:
    run_case(IN_PROCESS[shell], case)


SERVERS = {
    "uvicorn": [sys.executable, "-m", "uvicorn", "support.conformance:asgi_served",
                "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"],
    "gunicorn": [sys.executable, "-m", "gunicorn", "support.conformance:wsgi_served",
                 "--bind", "127.0.0.1:{port}", "--workers", "1", "--threads", "4",
                 "--log-level", "warning"],
}


@pytest.fixture(scope="module", params=sorted(SERVERS))
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    with run_server(SERVERS[request.param]) as server:
        yield server.url


@pytest.mark.server
@pytest.mark.parametrize("case", CASES, ids=str)
def test_real_server(server_url: str, case: Case) -> None:
    run_case(lambda request: call_http(server_url, request), case)


# -- failure paths, in process ------------------------------------------------------------

SHELLS = ("asgi", "wsgi")


def _call(shell: str, request: Request, **options: Any) -> Reply:
    options.setdefault("users", {})
    if shell == "asgi":
        return call_asgi(asgi.ErrorEnvelopeMiddleware(asgi_app, **options), request)
    return call_wsgi(wsgi.ErrorEnvelopeMiddleware(wsgi_app, **options), request)


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "proxygate.errors" and r.levelno >= logging.ERROR]


@pytest.mark.parametrize("shell", SHELLS)
def test_unhandled_exception_logs_one_error_with_traceback_and_request_facts(
        shell: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="proxygate")
    reply = _call(shell, Request("GET", "/boom", (("X-Request-ID", "trace-me-1"),)))
    [record] = _errors(caplog)
    assert record.exc_info is not None and SECRET in str(record.exc_info[1])
    assert record.request_id == "trace-me-1"  # type: ignore[attr-defined]
    assert record.proxygate == {"request_id": "trace-me-1", "method": "GET",  # type: ignore[attr-defined]
                                "path": "/boom", "status": 500}
    assert reply.json()["error"]["request_id"] == "trace-me-1"


@pytest.mark.parametrize("path", ["/no/such/page", "/text-400", "/json-409"])
@pytest.mark.parametrize("shell", SHELLS)
def test_client_errors_are_not_logged_as_errors(shell: str, path: str,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="proxygate")
    reply = _call(shell, Request("GET", path))
    assert 400 <= reply.status < 500
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize("shell", SHELLS)
def test_mapped_client_exception_is_not_logged_as_error(shell: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="proxygate")
    reply = _call(shell, Request("GET", "/boom"), exception_map={RuntimeError: (409, "Conflict")})
    assert reply.status == 409
    assert _errors(caplog) == []


@pytest.mark.parametrize("shell", SHELLS)
def test_request_id_on_success_sends_the_header(shell: str) -> None:
    reply = _call(shell, Request("GET", "/ok", (("X-Request-ID", "ok-7"),)),
                  request_id_on_success=True)
    assert reply.status == 200
    assert reply.header("x-request-id") == "ok-7"


@pytest.mark.parametrize("shell", SHELLS)
def test_request_id_in_body_off_gives_exactly_three_keys(shell: str) -> None:
    reply = _call(shell, Request("GET", "/missing"), request_id_in_body=False)
    assert set(reply.json()["error"]) == {"code", "message", "details"}
    assert reply.header("x-request-id")


@pytest.mark.parametrize("shell", SHELLS)
def test_debug_flag_puts_type_and_message_in_500(shell: str) -> None:
    reply = _call(shell, Request("GET", "/boom"), debug=True)
    details = reply.json()["error"]["details"]
    assert details["exception"] == "RuntimeError"
    assert SECRET in details["message"]
    assert "traceback" not in details


@pytest.mark.parametrize("shell", SHELLS)
def test_renderer_failure_falls_back_to_fixed_minimal_500(
        shell: str, monkeypatch: pytest.MonkeyPatch) -> None:
    middleware: Any = (asgi.ErrorEnvelopeMiddleware(asgi_app, users={}) if shell == "asgi"
                       else wsgi.ErrorEnvelopeMiddleware(wsgi_app, users={}))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("template exploded")

    monkeypatch.setattr(middleware.handler.renderer, "render", broken)
    request = Request("GET", "/boom")
    reply = call_asgi(middleware, request) if shell == "asgi" else call_wsgi(middleware, request)
    assert reply.status == 500
    assert reply.json() == {"error": {"code": 500, "message": "Internal Server Error",
                                      "details": "The server could not complete the request."}}
    assert reply.header("content-length") == str(len(reply.body))


# -- WSGI: close() and iteration ----------------------------------------------------------


class RecordingBody:
    """A WSGI body that counts the chunks pulled from it and records close()."""

    def __init__(self, chunks: list[bytes], fail_at: int | None = None) -> None:
        self.chunks = chunks
        self.fail_at = fail_at
        self.pulled = 0
        self.closed = False

    def __iter__(self) -> RecordingBody:
        return self

    def __next__(self) -> bytes:
        if self.fail_at is not None and self.pulled == self.fail_at:
            raise RuntimeError(f"body failed: {SECRET}")
        if self.pulled >= len(self.chunks):
            raise StopIteration
        self.pulled += 1
        return self.chunks[self.pulled - 1]

    def close(self) -> None:
        self.closed = True


def _wsgi_returning(status: str, headers: list[tuple[str, str]], body: RecordingBody) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> RecordingBody:
        start_response(status, headers)
        return body
    return wsgi.ErrorEnvelopeMiddleware(app, users={}, max_error_body=4096)


CLOSE_CASES = {
    "passed_200": ("200 OK", [("Content-Type", "text/plain")], [b"a", b"b"]),
    "replaced_html_404": ("404 Not Found", [("Content-Type", "text/html")], [b"<h1>x</h1>"]),
    "inspected_text_400": ("400 Bad Request", [("Content-Type", "text/plain")], [b"bad name"]),
    "text_400_past_limit": ("400 Bad Request", [("Content-Type", "text/plain")], [b"x" * 1024] * 50),
    "passed_json_409": ("409 Conflict", [("Content-Type", "application/json")], [b"{}"]),
}


@pytest.mark.parametrize("name", sorted(CLOSE_CASES))
def test_wsgi_close_is_always_called(name: str) -> None:
    status, headers, chunks = CLOSE_CASES[name]
    body = RecordingBody(chunks)
    call_wsgi(_wsgi_returning(status, headers, body), Request("GET", "/"))
    assert body.closed


def test_wsgi_error_body_past_max_error_body_is_replaced_without_reading_the_rest() -> None:
    body = RecordingBody([b"x" * 1024] * 50)
    reply = call_wsgi(_wsgi_returning("400 Bad Request", [("Content-Type", "text/plain")], body),
                      Request("GET", "/"))
    assert reply.status == 400
    assert reply.json()["error"]["details"] == "The request could not be understood."
    assert body.pulled <= 5  # 4096 bytes: the fifth KiB crosses the bound
    assert body.closed


def test_wsgi_exception_before_the_first_chunk_becomes_the_envelope(
        caplog: pytest.LogCaptureFixture) -> None:
    body = RecordingBody([b"never"], fail_at=0)
    reply = call_wsgi(_wsgi_returning("200 OK", [("Content-Type", "text/plain")], body),
                      Request("GET", "/"))
    assert reply.status == 500
    assert reply.json()["error"]["code"] == 500
    assert SECRET.encode() not in reply.body
    assert len(_errors(caplog)) == 1
    assert body.closed


def test_wsgi_exception_after_the_first_chunk_is_reraised_and_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    body = RecordingBody([b"first", b"second"], fail_at=1)
    app = _wsgi_returning("200 OK", [("Content-Type", "text/plain")], body)
    reply = call_wsgi(app, Request("GET", "/"))  # the driver records the re-raise as broken
    assert reply.broken and reply.body == b"first"
    [record] = _errors(caplog)
    assert record.proxygate["status"] == 200  # type: ignore[attr-defined]
    assert body.closed


def test_wsgi_generator_exception_after_first_chunk_is_reraised_and_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first"
        raise RuntimeError("late failure")

    reply = call_wsgi(wsgi.ErrorEnvelopeMiddleware(app, users={}), Request("GET", "/"))
    assert reply.broken and reply.body == b"first"
    [record] = _errors(caplog)
    assert record.exc_info is not None and "late failure" in str(record.exc_info[1])


def test_wsgi_exception_after_start_response_before_return_becomes_the_envelope() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        raise RuntimeError(SECRET)

    reply = call_wsgi(wsgi.ErrorEnvelopeMiddleware(app, users={}), Request("GET", "/"))
    assert reply.status == 500
    assert SECRET.encode() not in reply.body


# -- ASGI: after start, buffering bound, disconnect, lifespan, websockets -----------------


class Recorder:
    """An ASGI server stand-in: records what was sent, feeds the given messages in order."""

    def __init__(self, incoming: list[dict[str, Any]] | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.incoming = list(incoming or [{"type": "http.request", "body": b""}])

    async def receive(self) -> dict[str, Any]:
        if self.incoming:
            return self.incoming.pop(0)
        await asyncio.Event().wait()  # like a server with nothing more to say
        raise AssertionError("unreachable")

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def types(self) -> list[str]:
        return [m["type"] for m in self.sent]


def _scope(kind: str = "http", path: str = "/", **extra: Any) -> dict[str, Any]:
    scope = {"type": kind, "path": path, "method": "GET", "headers": [], "query_string": b"",
             "client": ("127.0.0.1", 1), "asgi": {"version": "3.0"}}
    scope.update(extra)
    return scope


def _run(app: Any, scope: dict[str, Any], server: Recorder) -> None:
    asyncio.run(app(scope, server.receive, server.send))


def test_asgi_exception_after_start_is_reraised_without_second_start_and_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("mid-stream")

    server = Recorder()
    with pytest.raises(RuntimeError, match="mid-stream"):
        _run(asgi.ErrorEnvelopeMiddleware(app, users={}), _scope(), server)
    assert server.types().count("http.response.start") == 1
    assert len(_errors(caplog)) == 1


def test_asgi_error_body_past_max_error_body_is_replaced_before_the_app_finishes() -> None:
    server = Recorder()
    sent_when_replaced: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 400,
                    "headers": [(b"content-type", b"text/plain")]})
        for index in range(50):
            await send({"type": "http.response.body", "body": b"x" * 1024, "more_body": True})
            if not sent_when_replaced and server.sent:
                sent_when_replaced.append(index + 1)
        await send({"type": "http.response.body", "body": b""})

    _run(asgi.ErrorEnvelopeMiddleware(app, users={}, max_error_body=4096), _scope(), server)
    assert sent_when_replaced == [5]
    assert server.types() == ["http.response.start", "http.response.body"]
    assert server.sent[0]["status"] == 400


def test_asgi_client_disconnect_is_not_a_synthetic_500(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        message = await receive()
        assert message["type"] == "http.disconnect"
        raise OSError("client went away")

    server = Recorder([{"type": "http.request", "body": b"", "more_body": True},
                       {"type": "http.disconnect"}])
    # Re-raising to the server would be fine; answering or logging a 500 is not.
    with contextlib.suppress(OSError):
        _run(asgi.ErrorEnvelopeMiddleware(app, users={}), _scope(), server)
    assert "http.response.start" not in server.types()
    assert _errors(caplog) == []


def test_asgi_lifespan_scope_passes_untouched() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive, send))

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    server = Recorder()
    _run(asgi.ErrorEnvelopeMiddleware(app, users={}), scope, server)
    assert seen == [(scope, server.receive, server.send)]


async def _raising_websocket(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    if scope["path"] == "/after":
        await send({"type": "websocket.accept"})
        raise RuntimeError(f"websocket blew up {SECRET}")
    raise PermissionError(SECRET)


def _websocket_app() -> Any:
    return asgi.ErrorEnvelopeMiddleware(_raising_websocket, users={},
                                        exception_map={PermissionError: 403})


def test_websocket_exception_before_accept_is_a_denial_with_the_mapped_status() -> None:
    server = Recorder([{"type": "websocket.connect"}])
    scope = _scope("websocket", "/before", extensions={"websocket.http.response": {}})
    _run(_websocket_app(), scope, server)
    assert server.types() == ["websocket.http.response.start", "websocket.http.response.body"]
    assert server.sent[0]["status"] == 403
    assert SECRET.encode() not in server.sent[1]["body"]


def test_websocket_exception_before_accept_without_the_extension_closes() -> None:
    server = Recorder([{"type": "websocket.connect"}])
    _run(_websocket_app(), _scope("websocket", "/before"), server)
    assert server.types() == ["websocket.close"]


def test_websocket_exception_after_accept_closes_1011_with_a_short_reason(
        caplog: pytest.LogCaptureFixture) -> None:
    server = Recorder([{"type": "websocket.connect"}])
    _run(_websocket_app(), _scope("websocket", "/after"), server)
    assert server.types() == ["websocket.accept", "websocket.close"]
    close = server.sent[1]
    assert close["code"] == 1011
    assert SECRET not in close.get("reason", "") and len(close.get("reason", "")) <= 123
    assert len(_errors(caplog)) == 1
