"""A raw ASGI app for real-server tests; ``gated`` is it behind proxygate's ASGI middleware.

Routes:
  /                  200 JSON: path, query, host, user, headers (as the app got them), lifespan, pid
  /boom              raises an exception whose message holds ``SECRET``
  /html404           an HTML 404, as a framework would send
  /boom-late         starts a 200, sends part of the body, then raises
  /stream?gate=F     200, chunk "first", waits (bounded) until file F exists, chunk "second"
  /slow?started=S&release=R   writes its pid to S, waits until R exists, then 200
  /budget            200 JSON: this process's hash budget (peak, refused, admitted), pid
  /client            200 JSON: the client address as the server handed it over
  /hangup?marker=M   reads until the client disconnects, writes M, then raises OSError
  /problem500        a problem+json 500 whose ``detail`` holds ``SECRET``
  /json404           FastAPI's shape: 404 ``{"detail": "no order 7"}``
  /ws (websocket)    accepts, sends the JSON of /, then echoes text until the client closes
  /ws-boom (websocket) raises before accepting

Run it with ``uvicorn apps.asgi_app:gated`` and the options in ``$PROXYGATE_TEST_GATE``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from apps._options import SECRET, WAIT_LIMIT, budget_report, gate_options
from proxygate.asgi import ProxyGateMiddleware, Receive, Scope, Send

STATE = {"lifespan": False}


async def _wait_for(path: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while not Path(path).exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def _query(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string", b"").decode("latin-1")
    return {k: v[0] for k, v in parse_qs(raw).items()}


def describe(scope: Scope) -> dict[str, Any]:
    """What the app knows of the request: the facts the tests assert on."""
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    user = scope.get("user")
    return {
        "path": scope["path"],
        "query": scope.get("query_string", b"").decode("latin-1"),
        "host": next((v for k, v in headers if k == "host"), None),
        "user": getattr(user, "username", None) or None,
        "headers": headers,
        "lifespan": STATE["lifespan"],
        "pid": os.getpid(),
    }


async def _json(send: Send, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            STATE["lifespan"] = True
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _websocket(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()  # websocket.connect
    if scope["path"] == "/ws-boom":
        raise RuntimeError(f"websocket password is {SECRET}")
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": json.dumps(describe(scope))})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message.get("text") or ""})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    kind = scope["type"]
    if kind == "lifespan":
        await _lifespan(receive, send)
        return
    if kind == "websocket":
        await _websocket(scope, receive, send)
        return
    path = scope["path"]
    if path == "/boom":
        raise RuntimeError(f"database password is {SECRET}")
    if path == "/boom-late":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError(f"late failure with {SECRET}")
    if path == "/html404":
        body = b"<!doctype html><html><body><h1>Not Found</h1><p>no such page</p></body></html>"
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-type", b"text/html; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return
    if path in _JSON_ERRORS:
        status, content_type, body = _JSON_ERRORS[path]
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        await _wait_for(_query(scope)["gate"])
        await send({"type": "http.response.body", "body": b"second\n", "more_body": False})
        return
    if path == "/stream-past-hangup":
        # Keeps sending after the client closed: the server may drop or refuse the chunks.
        query = _query(scope)
        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
            await _wait_for(query["gate"])
            for _ in range(50):
                await send({"type": "http.response.body", "body": b"x" * 65536,
                            "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            Path(query["marker"]).write_text("done")
        return
    if path == "/hangup":
        while (await receive())["type"] != "http.disconnect":
            pass
        Path(_query(scope)["marker"]).write_text("gone")
        raise OSError("the client went away")
    if path == "/slow":
        query = _query(scope)
        Path(query["started"]).write_text(str(os.getpid()))
        await _wait_for(query["release"])
        await _json(send, 200, {"pid": os.getpid()})
        return
    if path == "/budget":
        await _json(send, 200, budget_report(gated.gate.hash_budget))
        return
    if path == "/client":
        client = scope.get("client")
        await _json(send, 200, {"client": client[0] if client else None})
        return
    await _json(send, 200, describe(scope))


#: The app's own JSON errors: a 5xx body that must never be shown, a 4xx to be normalized.
_JSON_ERRORS = {
    "/problem500": (500, b"application/problem+json", json.dumps(
        {"type": "about:blank", "title": "Internal Server Error", "status": 500,
         "detail": f"psycopg: password {SECRET} rejected"}).encode()),
    "/json404": (404, b"application/json", b'{"detail": "no order 7"}'),
}

#: ``app`` behind ProxyGateMiddleware with the options in ``$PROXYGATE_TEST_GATE``.
gated = ProxyGateMiddleware(app, **gate_options())
