"""The flood case's server side: a plain ASGI and a plain WSGI app behind proxygate.

Options come as JSON in ``$PROXYGATE_FLOOD_OPTIONS`` (the parent made the hashes, so it
knows the passwords); ``$PROXYGATE_FLOOD_SHELL`` says which shell ``app`` is (``asgi`` for
uvicorn, ``wsgi`` for gunicorn). ``/budget`` (exempt) reports the process's hash budget.
``/busy`` (exempt) is the floor: the app itself answers ``503`` with ``Retry-After: 1``,
as the budget would, with no credential check and no hash, and counts its answers.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

import proxygate.asgi
import proxygate.wsgi

_OPTIONS: dict[str, Any] = json.loads(os.environ.get("PROXYGATE_FLOOD_OPTIONS", "{}"))
_OPTIONS.setdefault("exempt_paths", ["/budget", "/busy"])
_OPTIONS["exempt_paths"] = tuple(_OPTIONS["exempt_paths"])
_OPTIONS["trusted_proxies"] = tuple(_OPTIONS.get("trusted_proxies", ()))


_BUSY_HEADERS = [("Content-Type", "text/plain"), ("Retry-After", "1"), ("Content-Length", "4")]
_answered = {"busy": 0}
_answered_lock = threading.Lock()


def _busy() -> bytes:
    with _answered_lock:
        _answered["busy"] += 1
    return b"busy"


def _report(gate: Any) -> bytes:
    budget = gate.hash_budget
    return json.dumps({"peak": budget.peak, "refused": budget.refused,
                       "admitted": budget.admitted, "busy": _answered["busy"],
                       "concurrency": budget.concurrency, "queue": budget.queue}).encode()


async def _asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/busy":
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(k.lower().encode(), v.encode()) for k, v in _BUSY_HEADERS]})
        await send({"type": "http.response.body", "body": _busy()})
        return
    body = _report(app.gate) if scope["path"] == "/budget" else b"hello"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/busy":
        start_response("503 Service Unavailable", _BUSY_HEADERS)
        return [_busy()]
    body = _report(app.gate) if environ.get("PATH_INFO") == "/budget" else b"hello"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


app: Any
if os.environ.get("PROXYGATE_FLOOD_SHELL", "asgi") == "asgi":
    app = proxygate.asgi.ProxyGateMiddleware(_asgi, **_OPTIONS)
else:
    app = proxygate.wsgi.ProxyGateMiddleware(_wsgi, **_OPTIONS)
