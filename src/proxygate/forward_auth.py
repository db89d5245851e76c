"""The forward-auth service: a gateway asks "may this request pass, and as whom?".

nginx ``auth_request``, Traefik ``ForwardAuth``, Envoy HTTP ``ext_authz`` and Caddy
``forward_auth`` each send a small check request describing the client's request. The
service rebuilds that original request from what its gateway sends (the *dialect*),
asks the same :class:`~proxygate.gate.Gate` as the middleware (same decision, cache,
throttle and envelope) and answers in the shape that gateway passes on.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from proxygate._http import split_absolute_target
from proxygate.asgi import settle
from proxygate.config import Config, ConfigError
from proxygate.errors.envelope import ErrorResponse
from proxygate.errors.handler import HeadFromPairs
from proxygate.gate import Check, Deny, Forward, Gate

__all__ = ["DIALECTS", "NGINX_PREFIX", "ForwardAuthApp", "decode_user", "encode_user"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DIALECTS = ("nginx", "traefik", "envoy", "caddy", "generic")

#: nginx passes only 2xx, 401 and 403 from its auth service and drops the body, so the
#: nginx dialect answers every denial with a bare 401 carrying the real response in
#: headers named ``X-Proxygate-<name>`` (``-Status``, ``-Body``, ``-Proxy-Authenticate``,
#: ...); the shipped nginx configuration turns them back into that response.
NGINX_PREFIX = b"x-proxygate-"
#: The Traefik configuration's error pages: Traefik cannot write a body itself, so its
#: ``errors`` middleware asks ``<auth path>/.proxygate-error/<status>?url=<the client's
#: URL>`` for an upstream 5xx.
TRAEFIK_ERROR_PAGE = re.compile(r"/\.proxygate-error/(5\d\d)")
#: Envoy's ext_authz removes the request headers named here from the original request:
#: on an exempt path (no user to set) this is how the client's own user header goes.
ENVOY_REMOVE = b"x-envoy-auth-headers-to-remove"

#: Printable ASCII but ``%`` stays as it is in the user header; everything else is
#: percent-encoded UTF-8, so ``unquote`` always gives back the name.
_USER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%") + " "
_EMPTY_BODY_LENGTH = (b"content-length", b"0")


def encode_user(name: str) -> bytes:
    """The user header's value: ``alice`` stays ``alice``; ``zoë`` becomes ``zo%C3%AB``."""
    return quote(name, safe=_USER_SAFE).encode("ascii")


def decode_user(value: str | bytes) -> str:
    """The user name back from the user header (what an upstream app calls)."""
    text = value.decode("ascii") if isinstance(value, bytes) else value
    return unquote(text, errors="strict")


def _first(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


class ForwardAuthApp:
    """The forward-auth service as an ASGI app.

    ``ForwardAuthApp(gateway="nginx", users="users.htpasswd", realm="internal")``;
    ``options`` are :class:`~proxygate.config.Config` options, validated the same way.
    """

    def __init__(self, *, gateway: str = "generic", user_header: str = "X-Authenticated-User",
                 config: Config | None = None, **options: Any) -> None:
        if gateway not in DIALECTS:
            raise ConfigError(f"gateway must be one of {', '.join(DIALECTS)}, not {gateway!r}")
        if (not isinstance(user_header, str) or not user_header
                or not all(ch.isascii() and (ch.isalnum() or ch == "-") for ch in user_header)):
            raise ConfigError(
                f"user_header {user_header!r} must be a header name: letters, digits and '-'"
            )
        self.config = config if config is not None else Config.from_options(**options)
        self.gate = Gate(self.config)
        self.gateway = gateway
        self.user_header = user_header.lower().encode("ascii")
        self._request_id_name = self.gate.errors.request_id_name

    def __repr__(self) -> str:
        return f"ForwardAuthApp(gateway={self.gateway!r}, {self.config!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":  # a gateway never sends a websocket to its auth service
            await send({"type": "websocket.close", "code": 1008})
            return
        if self.gateway == "traefik":
            page = self.error_page(scope)
            if page is not None:
                await _send(send, page)
                return
        head = self.original_request(scope)
        gate = self.gate
        try:
            decision = gate.decide(head)
            if type(decision) is Check:
                decision = await settle(gate, decision)
        except Exception as exc:  # a fault in the gate still answers in the envelope
            decision = Deny(gate.errors.exception_response(head, exc))
        if type(decision) is Deny:
            response = self.denied(decision.response)
        else:
            assert type(decision) is Forward
            response = self.allowed(head, decision.identity.username
                                    if decision.identity is not None else None)
        if gate.errors.metrics is not None:
            gate.errors.metrics.response(response.status)
        await _send(send, response)

    # -- the question -------------------------------------------------------------------

    def original_request(self, scope: Scope) -> HeadFromPairs:
        """The client's request as the gateway describes it: method, path, headers, peer."""
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        gateway = self.gateway
        method: bytes | None = None
        target: bytes | None = None
        if gateway == "nginx":
            method = _first(headers, b"x-original-method")
            target = _first(headers, b"x-original-uri")
        elif gateway in ("traefik", "caddy", "envoy"):
            # Written by the gateway over anything the client sent under these names
            # (Envoy's shipped configuration writes them in its header_mutation filter).
            method = _first(headers, b"x-forwarded-method")
            target = _first(headers, b"x-forwarded-uri")
        elif gateway == "generic":
            method = _first(headers, b"x-forwarded-method") or _first(headers, b"x-original-method")
            target = _first(headers, b"x-forwarded-uri") or _first(headers, b"x-original-uri")
        # A gateway that sent nothing (Envoy configured without the header_mutation): the
        # check request is the request.
        method_text = method.decode("latin-1") if method else scope.get("method", "GET")
        if target:
            path = _path_of(target.decode("latin-1"))
            query = _query_of(target.decode("latin-1"))
        else:
            raw = scope.get("raw_path")
            path = _path_of(raw.decode("latin-1")) if isinstance(raw, bytes) else scope["path"]
            query = scope.get("query_string", b"").decode("latin-1")
        # The client address is the Gate's to find: the configured forwarding header
        # (X-Forwarded-For, X-Real-IP or Forwarded), believed only from a trusted peer.
        if gateway == "caddy" and _first(headers, self.gate.credential_header) == b"":
            # Caddy's header_up writes the credential from a placeholder that is empty when
            # the client sent none: that is no credential, not a malformed one to count.
            credential = self.gate.credential_header
            headers = [pair for pair in headers if pair != (credential, b"")]
        client = scope.get("client")
        return HeadFromPairs(method_text, path, headers, client[0] if client else None, query)

    # -- the answers --------------------------------------------------------------------

    def allowed(self, head: HeadFromPairs, username: str | None) -> ErrorResponse:
        """200, no body, the user header (absent on exempt paths) and the request id."""
        headers = [_EMPTY_BODY_LENGTH,
                   (self._request_id_name, self.gate.errors.request_id(head).encode("latin-1"))]
        if username is not None:
            headers.append((self.user_header, encode_user(username)))
        elif self.gateway == "envoy":
            # Nothing to overwrite the client's copy with: have Envoy remove it.
            headers.append((ENVOY_REMOVE, self.user_header))
        return ErrorResponse(200, headers, b"")

    def denied(self, response: ErrorResponse) -> ErrorResponse:
        """The denial in the shape the gateway passes on to the client."""
        if self.gateway == "nginx":
            return _for_nginx(response)
        return response

    def error_page(self, scope: Scope) -> ErrorResponse | None:
        """The envelope Traefik's ``errors`` middleware asks for, or None for a check.

        An error page is never an allow: whoever asks for one gets a 5xx, so a client
        who reaches this URL gains nothing by it.
        """
        if _first(scope["headers"], b"x-forwarded-uri") is not None:
            return None  # a check request: its path is the auth URL's, not a page's
        match = TRAEFIK_ERROR_PAGE.search(scope.get("path", ""))
        if match is None or match.end() != len(scope["path"]):
            return None
        # ``?url=`` is the client's URL (Traefik's {url}): the envelope's instance is its
        # path, never this page's.
        original = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("url")
        path = _path_of(original[0]) if original else "/"
        head = HeadFromPairs("GET", path, scope["headers"], None)
        return self.gate.errors.render(head, int(match.group(1)))


def _path_of(target: str) -> str:
    """The decoded path of a request target (origin- or absolute-form), without the query."""
    if not target.startswith("/"):
        split = split_absolute_target(target)
        if split is not None:
            target = split[1]
    path = target.partition("?")[0]
    return unquote(path) or "/"


def _query_of(target: str) -> str:
    """The raw query of a request target (Digest binds its ``uri`` to path and query)."""
    return target.partition("#")[0].partition("?")[2]


def _for_nginx(response: ErrorResponse) -> ErrorResponse:
    """A 401 that nginx passes, the real response folded into ``X-Proxygate-*`` headers."""
    headers = [(NGINX_PREFIX + b"status", b"%d" % response.status)]
    for name, value in response.headers:
        if name != b"content-length":
            headers.append((NGINX_PREFIX + name.lower(), value))
    # A header value cannot hold a line break; JSON bodies have none, an HTML one may.
    body = response.body.replace(b"\r", b"").replace(b"\n", b" ")
    headers.append((NGINX_PREFIX + b"body", body))
    headers.append(_EMPTY_BODY_LENGTH)
    return ErrorResponse(401, headers, b"")


async def _send(send: Send, response: ErrorResponse) -> None:
    await send({"type": "http.response.start", "status": response.status,
                "headers": response.headers})
    await send({"type": "http.response.body", "body": response.body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
