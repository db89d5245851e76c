"""A plain ASGI service behind proxygate: no framework, just the ASGI spec.

Needs ``pip install "proxygate[serve]"``. From the checkout's root, start the server
and try it (demo user ``demo``, password ``demo-password``, from ``users.htpasswd``)::

    uvicorn --app-dir examples plain_asgi:app --port 8000
    curl -x http://127.0.0.1:8000 --proxy-user demo:demo-password http://127.0.0.1:8000/whoami

Set ``DEMO_USERS_FILE`` to use another htpasswd file (``proxygate users add FILE NAME``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from proxygate.asgi import ProxyGateMiddleware

USERS = os.environ.get("DEMO_USERS_FILE", str(Path(__file__).with_name("users.htpasswd")))

Send = Callable[[dict[str, Any]], Awaitable[None]]


async def _send(send: Send, status: int, body: bytes, content_type: bytes,
                extra: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, payload: object) -> None:
    await _send(send, 200, json.dumps(payload).encode(), b"application/json")


async def service(scope: dict[str, Any], receive: Any, send: Send) -> None:
    if scope["type"] != "http":
        return  # lifespan: nothing to set up
    method, path = scope["method"], scope["path"]
    headers = dict(scope["headers"])
    if path == "/whoami":
        if method not in ("GET", "HEAD"):
            await _send(send, 405, b"<h1>Method Not Allowed</h1>", b"text/html",
                        [(b"allow", b"GET, HEAD")])
            return
        user = scope.get("user")
        seen = headers.get(b"proxy-authorization")
        authorization = headers.get(b"authorization")
        await _json(send, {
            "user": user.username if user is not None and user.is_authenticated else None,
            "proxy_authorization": seen.decode() if seen else None,
            "authorization": authorization.decode() if authorization else None,
        })
    elif path == "/":
        await _json(send, {"service": "plain-asgi", "user": scope["user"].username})
    elif path == "/healthz":
        await _json(send, {"status": "ok"})
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for number in range(5):
            await send({"type": "http.response.body", "more_body": True,
                        "body": f"report line {number}\n".encode()})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/boom":
        raise RuntimeError("lost the connection to postgres://reports:hunter2@db.internal")
    elif path == "/forbidden":
        await _send(send, 403, b"You may not see the reports.", b"text/plain")
    else:
        await _send(send, 404, b"<h1>Not Found</h1>", b"text/html")


app = ProxyGateMiddleware(service, users=USERS, realm="examples", exempt_paths=["/healthz"])
