"""Drive an ASGI app in-process: one HTTP request in, the messages it sent out, no server.

    result = call_asgi(app, "GET", "/path", [("proxy-authorization", "Basic ...")])
    assert result.status == 407 and result.header("proxy-authenticate")

``call_asgi`` runs its own event loop; inside a running loop use ``acall_asgi``.
``call_websocket`` opens a websocket scope and returns every message the app sent.
Header names are lower-cased the way ASGI servers pass them; values are bytes
as given (str values are encoded as Latin-1). ``RecordingApp`` is an app that
answers 200 and keeps the scope it saw, to check what reached it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "HeadersIn",
    "RecordingApp",
    "Result",
    "acall_asgi",
    "acall_websocket",
    "call_asgi",
    "call_websocket",
    "encode_headers",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                   Awaitable[None]]
HeadersIn = Iterable[tuple[str | bytes, str | bytes]] | Mapping[str, str] | None


@dataclass
class Result:
    """What the app answered. ``headers`` are (lower-case name, value) text pairs, in order."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    #: Body chunks as sent, one per body message (WSGI: one per iterated item).
    chunks: list[bytes] = field(default_factory=list)
    #: Every message sent (ASGI only).
    messages: list[Message] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        """The single value of ``name``; None if absent; AssertionError if repeated."""
        values = self.header_list(name)
        assert len(values) <= 1, f"{name} appears {len(values)} times: {values}"
        return values[0] if values else None

    def header_list(self, name: str) -> list[str]:
        lowered = name.lower()
        return [value for key, value in self.headers if key == lowered]

    def json(self) -> Any:
        return json.loads(self.body)


def encode_headers(headers: HeadersIn) -> list[tuple[bytes, bytes]]:
    """ASGI header pairs: lower-case byte names, byte values (str as Latin-1)."""
    if headers is None:
        return []
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out: list[tuple[bytes, bytes]] = []
    for name, value in pairs:
        raw_name = name if isinstance(name, bytes) else name.encode("latin-1")
        raw_value = value if isinstance(value, bytes) else value.encode("latin-1")
        out.append((raw_name.lower(), raw_value))
    return out


def _scope(method: str, target: str, headers: HeadersIn, client: tuple[str, int] | None,
           scope_type: str, extra: Mapping[str, Any] | None) -> Scope:
    # Servers split the query off the target and percent-decode the path.
    from urllib.parse import unquote

    raw_path, _, query = target.partition("?")
    scope: Scope = {
        "type": scope_type,
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http" if scope_type == "http" else "ws",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("latin-1"),
        "query_string": query.encode("latin-1"),
        "root_path": "",
        "headers": encode_headers(headers),
        "client": client,
        "server": ("127.0.0.1", 8000),
        "extensions": {},
    }
    if extra:
        scope.update(extra)
    return scope


async def acall_asgi(app: ASGIApp, method: str = "GET", path: str = "/",
                     headers: HeadersIn = None, *, body: bytes = b"",
                     client: tuple[str, int] | None = ("127.0.0.1", 50000),
                     scope: Mapping[str, Any] | None = None) -> Result:
    """Send one HTTP request to ``app``; return what it answered.

    ``path`` is the request target as a server would see it: ``/a?b=1``, or an
    absolute form ``http://host/a?b=1``. ``scope`` entries override the built scope.
    """
    full_scope = _scope(method, path, headers, client, "http", scope)
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    messages: list[Message] = []
    disconnected = asyncio.Event()

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        messages.append(dict(message))

    try:
        await app(full_scope, receive, send)
    finally:
        disconnected.set()
    return _result(messages)


def call_asgi(app: ASGIApp, method: str = "GET", path: str = "/", headers: HeadersIn = None,
              **options: Any) -> Result:
    """:func:`acall_asgi` on a fresh event loop, for plain synchronous tests."""
    return asyncio.run(acall_asgi(app, method, path, headers, **options))


async def acall_websocket(app: ASGIApp, path: str = "/", headers: HeadersIn = None, *,
                          http_response_extension: bool = True,
                          client: tuple[str, int] | None = ("127.0.0.1", 50000),
                          scope: Mapping[str, Any] | None = None) -> list[Message]:
    """Open a websocket to ``app``: ``websocket.connect``, then a disconnect. The messages sent.

    ``http_response_extension`` offers ``websocket.http.response``, so the app may
    deny the handshake with a real HTTP response instead of a close.
    """
    extra: dict[str, Any] = {"extensions": {"websocket.http.response": {}}
                             if http_response_extension else {}}
    extra.update(scope or {})
    full_scope = _scope("GET", path, headers, client, "websocket", extra)
    incoming = [{"type": "websocket.connect"}]
    messages: list[Message] = []

    async def receive() -> Message:
        if incoming:
            return incoming.pop(0)
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        messages.append(dict(message))

    await app(full_scope, receive, send)
    return messages


def call_websocket(app: ASGIApp, path: str = "/", headers: HeadersIn = None,
                   **options: Any) -> list[Message]:
    """:func:`acall_websocket` on a fresh event loop."""
    return asyncio.run(acall_websocket(app, path, headers, **options))


def _result(messages: list[Message]) -> Result:
    starts = [m for m in messages if m["type"] == "http.response.start"]
    assert len(starts) == 1, f"expected one http.response.start, got {len(starts)}: {messages}"
    start = starts[0]
    chunks = [bytes(m.get("body", b"")) for m in messages if m["type"] == "http.response.body"]
    headers = [(bytes(k).decode("latin-1").lower(), bytes(v).decode("latin-1"))
               for k, v in start.get("headers", ())]
    return Result(start["status"], headers, b"".join(chunks), chunks, messages)


class RecordingApp:
    """An ASGI app answering ``200 ok`` (or ``status``/``body``) that keeps the scopes it saw.

    A websocket is accepted and closed normally.
    """

    def __init__(self, status: int = 200, body: bytes = b"ok",
                 headers: Iterable[tuple[bytes, bytes]] = ((b"content-type", b"text/plain"),)
                 ) -> None:
        self.status = status
        self.body = body
        self.headers = list(headers)
        self.scopes: list[Scope] = []

    @property
    def scope(self) -> Scope:
        """The scope of the last request (AssertionError if none arrived)."""
        assert self.scopes, "the app was not called"
        return self.scopes[-1]

    def header_values(self, name: str) -> list[bytes]:
        """Values of request header ``name`` in the last scope."""
        raw = name.lower().encode("latin-1")
        return [value for key, value in self.scope["headers"] if key == raw]

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        self.scopes.append(scope)
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1000})
            return
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": self.status,
                    "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})
