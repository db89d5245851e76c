"""A plain WSGI service behind proxygate: no framework, just PEP 3333.

Needs ``pip install "proxygate[gunicorn]"``. From the checkout's root, start the server
and try it (demo user ``demo``, password ``demo-password``, from ``users.htpasswd``)::

    gunicorn --chdir examples plain_wsgi:application --bind 127.0.0.1:8000
    curl -x http://127.0.0.1:8000 --proxy-user demo:demo-password http://127.0.0.1:8000/whoami

Set ``DEMO_USERS_FILE`` to use another htpasswd file (``proxygate users add FILE NAME``).
Not with the standard library's ``wsgiref`` server: it files a ``proxy_authorization``
header under the same environ key as ``Proxy-Authorization``, so the app could not
tell a smuggled credential from a real one. gunicorn drops underscore headers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from proxygate.wsgi import ProxyGateMiddleware

USERS = os.environ.get("DEMO_USERS_FILE", str(Path(__file__).with_name("users.htpasswd")))

StartResponse = Callable[..., Any]


def _json(start_response: StartResponse, payload: object, status: str = "200 OK") -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def _stream() -> Iterator[bytes]:
    for number in range(5):
        yield f"report line {number}\n".encode()


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
    if path == "/whoami":
        if method not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Content-Type", "text/html"),
                                                      ("Allow", "GET, HEAD")])
            return [b"<h1>Method Not Allowed</h1>"]
        user = environ.get("proxygate.user")
        return _json(start_response, {
            "user": user.username if user else None,
            "remote_user": environ.get("REMOTE_USER"),
            "proxy_authorization": environ.get("HTTP_PROXY_AUTHORIZATION"),
            "authorization": environ.get("HTTP_AUTHORIZATION"),
        })
    if path == "/":
        return _json(start_response, {"service": "plain-wsgi",
                                      "user": environ.get("REMOTE_USER")})
    if path == "/healthz":
        return _json(start_response, {"status": "ok"})
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _stream()
    if path == "/boom":
        raise RuntimeError("lost the connection to postgres://reports:hunter2@db.internal")
    if path == "/forbidden":
        start_response("403 Forbidden", [("Content-Type", "text/plain")])
        return [b"You may not see the reports."]
    start_response("404 Not Found", [("Content-Type", "text/html")])
    return [b"<h1>Not Found</h1>"]


application = ProxyGateMiddleware(app, users=USERS, realm="examples", exempt_paths=["/healthz"])

