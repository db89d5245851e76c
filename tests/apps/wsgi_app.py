"""A plain WSGI app for real-server tests; ``gated`` is it behind proxygate's WSGI middleware.

Routes (as in :mod:`apps.asgi_app`):
  /                  200 JSON: path, query, host, server_name, remote_user, headers (HTTP_* keys), pid
  /boom              raises an exception whose message holds ``SECRET``
  /html404           an HTML 404
  /boom-late         starts a 200, yields part of the body, then raises
  /json407           the app's own JSON 407 with its own Proxy-Authenticate
  /stream?gate=F     200, chunk "first", waits (bounded) until file F exists, chunk "second"
  /problem500, /json404   the app's own JSON errors, as in :mod:`apps.asgi_app`
  /slow?started=S&release=R   writes its pid to S, waits until R exists, then 200
  /budget            200 JSON: this process's hash budget (peak, refused, admitted), pid
  /client            200 JSON: the client address as the server handed it over

Runners for servers without an import-string CLI: ``python -m apps.wsgi_app wsgiref PORT``
and ``python -m apps.wsgi_app werkzeug PORT``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from apps._options import SECRET, WAIT_LIMIT, budget_report, gate_options
from proxygate.wsgi import Environ, ProxyGateMiddleware, StartResponse


def _wait_for(path: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def _query(environ: Environ) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def describe(environ: Environ) -> dict[str, Any]:
    return {
        "path": environ.get("PATH_INFO"),
        "query": environ.get("QUERY_STRING", ""),
        "host": environ.get("HTTP_HOST"),
        "server_name": environ.get("SERVER_NAME"),
        "remote_user": environ.get("REMOTE_USER"),
        "headers": sorted(k for k in environ if k.startswith("HTTP_")),
        "pid": os.getpid(),
    }


def _json(start_response: StartResponse, payload: Any) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _stream(gate: str) -> Iterator[bytes]:
    yield b"first\n"
    _wait_for(gate)
    yield b"second\n"


def _late_failure() -> Iterator[bytes]:
    yield b"partial"
    raise RuntimeError(f"late failure with {SECRET}")


def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/boom":
        raise RuntimeError(f"database password is {SECRET}")
    if path == "/boom-late":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _late_failure()
    if path == "/html404":
        body = b"<!doctype html><html><body><h1>Not Found</h1><p>no such page</p></body></html>"
        start_response("404 Not Found", [("Content-Type", "text/html; charset=utf-8"),
                                         ("Content-Length", str(len(body)))])
        return [body]
    if path == "/json407":
        body = b'{"error": "log in to the proxy"}'
        start_response("407 Proxy Authentication Required", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
            ("Proxy-Authenticate", 'Basic realm="app"')])
        return [body]
    if path in _JSON_ERRORS:
        status, content_type, body = _JSON_ERRORS[path]
        start_response(status, [("Content-Type", content_type),
                                ("Content-Length", str(len(body)))])
        return [body]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _stream(_query(environ)["gate"])
    if path == "/slow":
        query = _query(environ)
        Path(query["started"]).write_text(str(os.getpid()))
        _wait_for(query["release"])
        return _json(start_response, {"pid": os.getpid()})
    if path == "/budget":
        return _json(start_response, budget_report(gated.gate.hash_budget))
    if path == "/client":
        return _json(start_response, {"client": environ.get("REMOTE_ADDR")})
    return _json(start_response, describe(environ))


_JSON_ERRORS = {
    "/problem500": ("500 Internal Server Error", "application/problem+json", json.dumps(
        {"type": "about:blank", "title": "Internal Server Error", "status": 500,
         "detail": f"psycopg: password {SECRET} rejected"}).encode()),
    "/json404": ("404 Not Found", "application/json", b'{"detail": "no order 7"}'),
}

#: ``app`` behind ProxyGateMiddleware with the options in ``$PROXYGATE_TEST_GATE``.
gated = ProxyGateMiddleware(app, **gate_options())


def _serve(server: str, port: int) -> None:
    if server == "wsgiref":
        from wsgiref.simple_server import make_server

        with make_server("127.0.0.1", port, gated) as httpd:
            print(f"serving on {port}", flush=True)
            httpd.serve_forever()
    elif server == "werkzeug":
        from werkzeug.serving import run_simple

        run_simple("127.0.0.1", port, gated, threaded=True)
    else:
        raise SystemExit(f"unknown server {server!r}: use wsgiref or werkzeug")


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]))
