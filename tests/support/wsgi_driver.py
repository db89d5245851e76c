"""Drive a WSGI app in-process: one request in, status, headers and body out, no server.

    result = call_wsgi(app, "GET", "/path", [("Proxy-Authorization", "Basic ...")])
    assert result.status == 407

The environ is built as PEP 3333 servers build it: ``HTTP_*`` keys with ``-``
and ``_`` both mapped to ``_`` and repeated headers joined with ``", "``;
``Content-Type`` / ``Content-Length`` without the prefix. ``RecordingWSGIApp``
answers 200 and keeps the environs it saw.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import unquote

from support.asgi_driver import HeadersIn, Result, encode_headers

__all__ = ["RecordingWSGIApp", "Result", "call_wsgi", "make_environ"]

Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def make_environ(method: str = "GET", path: str = "/", headers: HeadersIn = None, *,
                 body: bytes = b"", client: str | None = "127.0.0.1",
                 server_software: str = "proxygate-test-driver/1") -> Environ:
    """A PEP 3333 environ for ``method path`` (``path`` may carry ``?query``)."""
    raw_path, _, query = path.partition("?")
    environ: Environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote(raw_path, encoding="latin-1"),
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": server_software,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if client is not None:
        environ["REMOTE_ADDR"] = client
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in encode_headers(headers):
        text_name = name.decode("latin-1").upper().replace("-", "_")
        key = text_name if text_name in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + text_name
        text_value = value.decode("latin-1")
        environ[key] = f"{environ[key]}, {text_value}" if key in environ else text_value
    return environ


def call_wsgi(app: WSGIApp, method: str = "GET", path: str = "/", headers: HeadersIn = None,
              *, environ: Mapping[str, Any] | None = None, **options: Any) -> Result:
    """Call ``app`` once and consume its iterable (closing it) like a server would.

    ``environ`` entries override the built environ; ``options`` go to :func:`make_environ`.
    """
    env = make_environ(method, path, headers, **options)
    if environ:
        env.update(environ)
    started: list[tuple[str, list[tuple[str, str]]]] = []
    written: list[bytes] = []

    def start_response(status: str, response_headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], object]:
        if started and exc_info is None:
            raise AssertionError("start_response called twice without exc_info")
        started.append((status, list(response_headers)))
        return written.append

    result = app(env, start_response)
    chunks: list[bytes] = list(written)
    try:
        for chunk in result:
            chunks.append(bytes(chunk))
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    assert started, "the app never called start_response"
    status, response_headers = started[-1]
    headers_out = [(k.lower(), v) for k, v in response_headers]
    return Result(int(status[:3]), headers_out, b"".join(chunks), chunks)


class RecordingWSGIApp:
    """A WSGI app answering ``200 ok`` that keeps the environs it saw."""

    def __init__(self, status: str = "200 OK", body: bytes = b"ok") -> None:
        self.status = status
        self.body = body
        self.environs: list[Environ] = []

    @property
    def environ(self) -> Environ:
        assert self.environs, "the app was not called"
        return self.environs[-1]

    def __call__(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        self.environs.append(environ)
        start_response(self.status, [("Content-Type", "text/plain"),
                                     ("Content-Length", str(len(self.body)))])
        return [self.body]
