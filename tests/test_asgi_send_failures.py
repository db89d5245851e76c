"""A send that fails because the client hung up is not a server error; an app's own is.

The ASGI shell notes an ``OSError`` coming out of the server's ``send`` (what ASGI
servers raise on a closed connection) and tells the two apart by that. These tests pin it
for the shapes a server's ``send`` takes: a coroutine function, a bound method, a
callable object, a partial, and another proxygate layer in front of the server.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from proxygate import asgi

Message = dict[str, Any]


class ClientGone(OSError):
    """What a server raises on a send to a closed connection (ASGI: an OSError subclass)."""


class Server:
    """A server stand-in whose send fails once the first ``fail_after`` messages are out."""

    def __init__(self, fail_after: int) -> None:
        self.fail_after = fail_after
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: Message) -> None:
        if len(self.sent) >= self.fail_after:
            raise ClientGone("connection closed")
        self.sent.append(message)


class CallableSend:
    def __init__(self, server: Server) -> None:
        self.server = server

    async def __call__(self, message: Message) -> None:
        await self.server.send(message)


def _sends(server: Server) -> dict[str, Callable[[Message], Awaitable[None]]]:
    async def function(message: Message) -> None:
        await server.send(message)

    async def with_tag(tag: str, message: Message) -> None:
        await server.send(message)

    return {
        "bound method": server.send,
        "function": function,
        "callable object": CallableSend(server),
        "partial": functools.partial(with_tag, "x"),
    }


SHAPES = ("bound method", "function", "callable object", "partial")


async def streaming_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"one", "more_body": True})
    await send({"type": "http.response.body", "body": b"two", "more_body": False})


def _scope() -> dict[str, Any]:
    return {"type": "http", "path": "/", "method": "GET", "headers": [], "query_string": b"",
            "client": ("127.0.0.1", 1), "asgi": {"version": "3.0"}}


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "proxygate.errors" and r.levelno >= logging.ERROR]


@pytest.mark.parametrize("shape", SHAPES)
def test_send_to_a_closed_connection_after_a_passed_start_is_not_an_error(
        shape: str, caplog: pytest.LogCaptureFixture) -> None:
    server = Server(fail_after=2)  # the start and the first chunk get out, then the hang-up
    app = asgi.ErrorEnvelopeMiddleware(streaming_app)
    asyncio.run(app(_scope(), server.receive, _sends(server)[shape]))  # nothing re-raised
    assert [m["type"] for m in server.sent] == ["http.response.start", "http.response.body"]
    assert _errors(caplog) == []


def test_a_hang_up_is_recognised_through_an_outer_proxygate_layer(
        caplog: pytest.LogCaptureFixture) -> None:
    server = Server(fail_after=2)
    app = asgi.ErrorEnvelopeMiddleware(asgi.ErrorEnvelopeMiddleware(streaming_app))
    asyncio.run(app(_scope(), server.receive, server.send))
    assert len(server.sent) == 2
    assert _errors(caplog) == []


def test_the_apps_own_oserror_after_the_start_is_logged_and_reraised(
        caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise ClientGone("the app's own, not the server's")

    server = Server(fail_after=10)
    with pytest.raises(ClientGone):
        asyncio.run(asgi.ErrorEnvelopeMiddleware(app)(_scope(), server.receive, server.send))
    errors = _errors(caplog)
    assert len(errors) == 1
    assert "exception after the response started" in errors[0].getMessage()


def test_an_app_that_wraps_the_failed_send_in_its_own_exception_is_still_a_hang_up(
        caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await send({"type": "http.response.body", "body": b"x"})
        except OSError as exc:
            raise RuntimeError("could not write") from exc

    server = Server(fail_after=1)
    asyncio.run(asgi.ErrorEnvelopeMiddleware(app)(_scope(), server.receive, server.send))
    assert _errors(caplog) == []


def test_a_server_refusing_a_message_is_reported_not_taken_for_a_hang_up(
        caplog: pytest.LogCaptureFixture) -> None:
    """A server raises RuntimeError for a message out of order (uvicorn: "Expected ASGI
    message ..."): that is the app's bug, and it must reach the logs."""

    class Strict(Server):
        async def send(self, message: Message) -> None:
            if self.sent and message["type"] == "http.response.start":
                raise RuntimeError("Expected ASGI message 'http.response.body'")
            await super().send(message)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.start", "status": 200, "headers": []})

    server = Strict(fail_after=10)
    with pytest.raises(RuntimeError):
        asyncio.run(asgi.ErrorEnvelopeMiddleware(app)(_scope(), server.receive, server.send))
    errors = _errors(caplog)
    assert len(errors) == 1
    assert "exception after the response started" in errors[0].getMessage()


def test_a_hang_up_while_the_envelope_replaces_an_error_is_not_an_error(
        caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"Not Found"})

    server = Server(fail_after=1)  # the envelope's start gets out, its body does not
    asyncio.run(asgi.ErrorEnvelopeMiddleware(app)(_scope(), server.receive, server.send))
    assert [m["status"] for m in server.sent] == [404]
    assert _errors(caplog) == []
