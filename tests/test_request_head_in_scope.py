"""The shell leaves its request head in the scope: one request id inside and outside the app."""

from __future__ import annotations

import base64
import json
from typing import Any

from proxygate.asgi import ErrorEnvelopeMiddleware, ProxyGateMiddleware, request_head
from proxygate.auth.hashing import hash_password
from proxygate.errors.handler import ErrorHandler
from support.asgi_driver import call_asgi

USERS = {"alice": hash_password("pw", "apr_md5_crypt")}
CREDENTIALS = ("Proxy-Authorization", "Basic " + base64.b64encode(b"alice:pw").decode())


class HtmlNotFound:
    """Records the request id it can see, then answers an HTML 404 for the shell to rewrite."""

    def __init__(self) -> None:
        self.handler: ErrorHandler | None = None  # the gate's, set once the gate exists
        self.seen: list[Any] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        head = request_head(scope)
        assert head is not None and self.handler is not None
        self.seen.append((self.handler.request_id(head), list(head.headers)))
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": b"<h1>nope</h1>"})


def test_the_app_sees_the_request_id_the_shell_puts_in_the_envelope() -> None:
    app = HtmlNotFound()
    gate = ProxyGateMiddleware(app, users=USERS)
    app.handler = gate.handler
    result = call_asgi(gate, "GET", "/missing", [CREDENTIALS])
    inner_id, _ = app.seen[0]
    assert result.status == 404
    assert json.loads(result.body)["error"]["request_id"] == inner_id


def test_the_head_in_the_scope_carries_no_credentials() -> None:
    app = HtmlNotFound()
    gate = ProxyGateMiddleware(app, users=USERS)
    app.handler = gate.handler
    call_asgi(gate, "GET", "/missing", [CREDENTIALS, ("Proxy_Authorization", "Basic eA==")])
    _, headers = app.seen[0]
    names = {name for name, _ in headers}
    assert b"proxy-authorization" not in names
    assert b"proxy_authorization" not in names


def test_an_inner_error_middleware_reuses_the_outer_head() -> None:
    inner = HtmlNotFound()
    envelope = ErrorEnvelopeMiddleware(inner)
    gate = ProxyGateMiddleware(envelope, users=USERS)
    inner.handler = gate.handler
    result = call_asgi(gate, "GET", "/missing", [CREDENTIALS])
    assert json.loads(result.body)["error"]["request_id"] == inner.seen[0][0]
