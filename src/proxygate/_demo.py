"""The app ``proxygate serve`` runs when given none: shows what the gate lets through.

Pure ASGI, no framework. Every path answers JSON echoing who the gate says the
caller is (``scope["user"].username``), the method, path and Host the app sees;
``/boom`` raises, to show the 500 envelope; ``/healthz`` is the path ``serve``
exempts from authentication by default.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["demo_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class DemoError(RuntimeError):
    """Raised on purpose by ``/boom``."""


async def demo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The demo: JSON echo of identity and request line, a failing route, a health check."""
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    if scope["type"] != "http":
        await send({"type": "websocket.close", "code": 1000})
        return
    path: str = scope["path"]
    if path == "/boom":
        raise DemoError("the demo app failed on purpose; the client sees only the envelope")
    if path == "/healthz":
        await _json(send, {"status": "ok"})
        return
    user = getattr(scope.get("user"), "username", None)
    host = next((value.decode("latin-1") for name, value in scope.get("headers", [])
                 if name == b"host"), None)
    await _json(send, {
        "user": user if isinstance(user, str) and user else None,
        "method": scope["method"],
        "path": path,
        "query": scope.get("query_string", b"").decode("latin-1"),
        "host": host,
    })


async def _json(send: Send, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode("utf-8")
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode("ascii")),
        ],
    })
    await send({"type": "http.response.body", "body": body})


async def answer_lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge startup and shutdown: an app with nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
