"""A tiny WSGI app for `proxygate serve cli_wsgi_app:app` in tests/test_cli_serve.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Echo what a WSGI app is told: REMOTE_USER (PEP 3333 latin-1 string, decoded here),
    method, PATH_INFO, and the headers a client might try to spoof identity with."""
    remote_user = environ.get("REMOTE_USER")
    body = json.dumps({
        "remote_user": remote_user.encode("latin-1").decode("utf-8") if remote_user else None,
        "auth_type": environ.get("AUTH_TYPE"),
        "method": environ["REQUEST_METHOD"],
        "path": environ["PATH_INFO"],
        "host": environ.get("HTTP_HOST"),
        "proxy_authorization": environ.get("HTTP_PROXY_AUTHORIZATION"),
        "identity_headers": sorted(k for k in environ if "PROXYGATE" in k),
    }).encode("utf-8")
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
