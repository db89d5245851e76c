"""In-process drivers: call an ASGI or WSGI app the way a server would, with no server and no socket.

Each driver turns one request description into a :class:`pairs.Contender`
whose batch runs ``n`` requests back to back. Everything the driver itself
does per request (copying the scope or environ, the receive and send
callables) is the same for every contender, so it cancels in the paired
difference; what remains is the app's own cost.
"""

from __future__ import annotations

import asyncio
import base64
import io
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from pairs import Contender

__all__ = [
    "AsgiDriver",
    "Exchange",
    "Request",
    "basic",
    "wsgi_contender",
    "wsgi_exchange",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def basic(user: str, password: str) -> str:
    """The value of a Basic ``Authorization`` / ``Proxy-Authorization`` header."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


@dataclass(frozen=True)
class Request:
    """A GET as a client sends it: path and extra headers (name, value)."""

    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    client: tuple[str, int] = ("127.0.0.1", 50000)
    method: str = "GET"


@dataclass
class Exchange:
    """What came back for one request, for checking a contender before timing it."""

    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


# --- ASGI -------------------------------------------------------------------


def _asgi_scope(request: Request) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"proxygate-bench")]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request.headers]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        "path": request.path,
        "raw_path": request.path.encode("ascii"),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": request.client,
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


_REQUEST_MESSAGE: dict[str, Any] = {"type": "http.request", "body": b"", "more_body": False}


async def _receive() -> Message:
    # A GET has no body; nothing in these apps reads past it.
    return dict(_REQUEST_MESSAGE)


async def _discard(message: Message) -> None:
    return None


class AsgiDriver:
    """Runs ASGI apps on one private event loop, created once and reused for every batch."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()

    def close(self) -> None:
        self._loop.close()

    def run(self, coro: Awaitable[Any]) -> Any:
        return self._loop.run_until_complete(coro)

    def exchange(self, app: AsgiApp, request: Request) -> Exchange:
        """Send one request and collect the whole response."""
        result = Exchange()

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                result.status = message["status"]
                result.headers = [
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])
                ]
            elif message["type"] == "http.response.body":
                result.body += message.get("body", b"")

        self.run(app(_asgi_scope(request), _receive, send))
        return result

    def contender(self, name: str, app: AsgiApp, request: Request) -> Contender:
        template = _asgi_scope(request)
        headers = template["headers"]
        clock = time.perf_counter_ns

        async def batch(n: int) -> int:
            start = clock()
            for _ in range(n):
                # A fresh scope and header list per request: middleware may
                # add keys or strip a header, and must not see the last one's.
                scope = template.copy()
                scope["headers"] = headers.copy()
                scope["state"] = {}
                await app(scope, _receive, _discard)
            return clock() - start

        def run_batch(n: int) -> int:
            elapsed: int = self._loop.run_until_complete(batch(n))
            return elapsed

        return Contender(name, run_batch)

    def contender_fresh(self, name: str, app: AsgiApp, request: Request,
                        credential: Callable[[], tuple[str, str]]) -> Contender:
        """Like :meth:`contender`, with one header made anew for every request (a Digest
        client's next ``nc``), all made before the clock starts: the client's work is
        not the server's cost. Compare it only with contenders built the same way."""
        template = _asgi_scope(request)
        base = template["headers"]
        clock = time.perf_counter_ns

        async def batch(lists: list[list[tuple[bytes, bytes]]]) -> int:
            start = clock()
            for headers in lists:
                scope = template.copy()
                scope["headers"] = headers
                scope["state"] = {}
                await app(scope, _receive, _discard)
            return clock() - start

        def run_batch(n: int) -> int:
            lists = []
            for _ in range(n):
                key, value = credential()
                lists.append([*base, (key.lower().encode("latin-1"), value.encode("latin-1"))])
            elapsed: int = self._loop.run_until_complete(batch(lists))
            return elapsed

        return Contender(name, run_batch)


# --- WSGI -------------------------------------------------------------------


def _wsgi_environ(request: Request) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": request.path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": request.client[0],
        "REMOTE_PORT": str(request.client[1]),
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "proxygate-bench",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for key, value in request.headers:
        cgi_name = key.upper().replace("-", "_")
        if cgi_name not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            cgi_name = "HTTP_" + cgi_name
        environ[cgi_name] = value
    return environ


def wsgi_exchange(app: WsgiApp, request: Request) -> Exchange:
    result = Exchange()

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        result.status = int(status.split(" ", 1)[0])
        result.headers = list(headers)
        return lambda data: None

    environ = _wsgi_environ(request)
    environ["wsgi.input"] = io.BytesIO(b"")
    body = app(environ, start_response)
    try:
        result.body = b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return result


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return _write


def _write(data: bytes) -> None:
    return None


def wsgi_contender(name: str, app: WsgiApp, request: Request) -> Contender:
    template = _wsgi_environ(request)
    clock = time.perf_counter_ns
    bytes_io = io.BytesIO

    def run_batch(n: int) -> int:
        start = clock()
        for _ in range(n):
            environ = template.copy()
            environ["wsgi.input"] = bytes_io(b"")
            body = app(environ, _start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return clock() - start

    return Contender(name, run_batch)
