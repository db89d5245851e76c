"""The ASGI shell: pure ASGI middleware around the core. Translates, never decides."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote, unquote

from proxygate.config import Config
from proxygate.errors.envelope import ErrorResponse
from proxygate.errors.handler import ErrorHandler, HeadFromPairs
from proxygate.errors.metrics import ErrorMetrics
from proxygate.errors.policy import Action
from proxygate.gate import AUTHENTICATED, Check, Deny, Forward, Gate, absolute_form

__all__ = ["REQUEST_KEY", "ErrorEnvelopeMiddleware", "ProxyGateMiddleware", "request_head"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("proxygate.errors")


#: The scope key under which the shell leaves its view of the request (method, path,
#: headers without credentials, request id) for error handlers inside the app, so that
#: an envelope rendered there carries the same request id as the shell's logs.
REQUEST_KEY = "proxygate.request"


def request_head(scope: Scope) -> HeadFromPairs | None:
    """The shell's request head for ``scope``, if a proxygate middleware is outside the app."""
    found = scope.get(REQUEST_KEY)
    return found if isinstance(found, HeadFromPairs) else None


class _Anonymous:
    """``scope["user"]`` on exempt paths: Starlette's ``request.user`` works, unauthenticated."""

    __slots__ = ()
    is_authenticated = False
    username = ""
    display_name = ""
    identity = ""

    def __repr__(self) -> str:
        return "AnonymousUser()"


class _NoScopes:
    __slots__ = ()
    scopes: tuple[str, ...] = ()


ANONYMOUS_USER = _Anonymous()
NO_SCOPES = _NoScopes()


def _head(scope: Scope) -> HeadFromPairs:
    client = scope.get("client")
    return HeadFromPairs(
        scope.get("method", "GET"),
        scope["path"],
        scope["headers"],
        client[0] if client else None,
    )


def _from_absolute_form(scope: Scope) -> Scope:
    """A forward-proxy client's ``GET http://host/path?q`` reaches the app as ``/path?q``
    with ``Host`` taken from the target (RFC 9112 §3.2.2).

    The split works on the still-encoded ``raw_path`` where the server gives one, so an
    encoded ``%3F`` stays part of the path instead of starting the query.
    """
    raw = scope.get("raw_path")
    target = raw.decode("latin-1") if isinstance(raw, bytes) else scope["path"]
    split = absolute_form(target)
    if split is None:
        split = absolute_form(scope["path"])
        if split is None:
            return scope
        raw = None
    host, path, query = split
    headers = [(n, v) for n, v in scope["headers"] if n != b"host"]
    headers.append((b"host", host.encode("latin-1", "replace")))
    scope = dict(scope)
    if isinstance(raw, bytes):
        scope["raw_path"] = path.encode("latin-1")
        scope["path"] = unquote(path)
    else:
        scope["path"] = path
        scope["raw_path"] = quote(path, safe="/:@!$&'()*+,;=-._~").encode("ascii")
    if query and not scope.get("query_string"):
        scope["query_string"] = query.encode("latin-1", "replace")
    scope["headers"] = headers
    return scope


async def _send_response(send: Send, response: ErrorResponse,
                         metrics: ErrorMetrics | None = None) -> None:
    if metrics is not None:
        metrics.response(response.status)
    await send({"type": "http.response.start", "status": response.status,
                "headers": response.headers})
    await send({"type": "http.response.body", "body": response.body})


async def _deny_websocket(scope: Scope, send: Send, response: ErrorResponse,
                          close_code: int) -> None:
    """Refuse a websocket before accept: a real HTTP response where the server can send one."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await send({"type": "websocket.http.response.start", "status": response.status,
                    "headers": response.headers})
        await send({"type": "websocket.http.response.body", "body": response.body})
    else:
        await send({"type": "websocket.close", "code": close_code})


def _with_request_id(message: Message, handler: ErrorHandler, head: HeadFromPairs) -> Message:
    """A success start carrying the request id, unless the app already set one."""
    name = handler.renderer.request_id_header or b"x-request-id"
    headers = list(message.get("headers", ()))
    if any(key.lower() == name for key, _ in headers):
        return message
    headers.append((name, handler.request_id(head).encode("latin-1")))
    message = dict(message)
    message["headers"] = headers
    return message


class _ResponseState:
    __slots__ = ("action", "buffer", "client_gone", "complete", "headers", "started", "status")

    def __init__(self) -> None:
        self.started = False  # a response start reached the server
        self.complete = False  # the replacement was sent in full
        self.client_gone = False
        self.action: Action | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.buffer = bytearray()


class ErrorEnvelopeMiddleware:
    """Every error becomes the envelope: exceptions, and error responses the app emits.

    ``ErrorEnvelopeMiddleware(app, debug=False, ...)`` takes the error options of
    :class:`~proxygate.config.Config`; ``users`` is not needed here.
    """

    def __init__(self, app: ASGIApp, *, config: Config | None = None, **options: Any) -> None:
        self.app = app
        self.config = config if config is not None else Config.from_options(**options)
        self.handler: ErrorHandler = self._make_handler(self.config)
        self._id_on_success = (
            self.config.request_id_on_success and self.handler.renderer.request_id_header
        )

    def _make_handler(self, config: Config) -> ErrorHandler:
        return ErrorHandler(config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" or kind == "websocket":
            head = request_head(scope) or _head(scope)
            scope = dict(scope)
            scope[REQUEST_KEY] = head
            if kind == "http":
                await self._serve(scope, receive, send, head)
            else:
                await self._serve_websocket(scope, receive, send, head)
        else:
            await self.app(scope, receive, send)  # lifespan and the unknown pass untouched

    async def _serve(self, scope: Scope, receive: Receive, send: Send,
                     head: HeadFromPairs) -> None:
        handler = self.handler
        state = _ResponseState()
        id_on_success = self._id_on_success
        metrics = handler.metrics

        async def watch_receive() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect":
                state.client_gone = True
            return message

        async def forward(message: Message) -> None:
            try:
                await send(message)
            except Exception:
                state.client_gone = True
                raise

        async def watch_send(message: Message) -> None:
            action = state.action
            if action is Action.PASS:
                await forward(message)
                return
            kind = message["type"]
            if kind == "http.response.start":
                if action is not None:
                    raise RuntimeError("the app started the response twice")
                status = message["status"]
                state.status = status
                if status < 400:
                    if metrics is not None:
                        metrics.response(status)
                    state.action = Action.PASS
                    state.started = True
                    if id_on_success:
                        message = _with_request_id(message, handler, head)
                    await forward(message)
                    return
                headers = list(message.get("headers", ()))
                state.headers = headers
                state.action = action = handler.response_action(status, headers)
                if action is Action.PASS:
                    if metrics is not None:
                        metrics.response(status)
                    patched = handler.with_challenge(status, headers)
                    if patched is not headers:
                        message = dict(message)
                        message["headers"] = patched
                    state.started = True
                    await forward(message)
                elif action is Action.REPLACE:
                    await self._replace(state, forward, head, None)
                return
            if kind != "http.response.body" or state.complete:
                return  # the app's body of a replaced response is dropped, unread
            if action is Action.INSPECT:
                state.buffer += message.get("body", b"")
                too_long = len(state.buffer) > handler.policy.max_error_body
                if too_long or not message.get("more_body", False):
                    await self._replace(state, forward, head,
                                        None if too_long else bytes(state.buffer))
            elif action is None:
                raise RuntimeError("the app sent a body before starting the response")

        try:
            await self.app(scope, watch_receive, watch_send)
        except Exception as exc:
            if state.client_gone:
                # Nobody is left to answer, and a hang-up is not a server error: re-raising
                # would have the server log it as one (and try a 500 on a closed socket).
                logger.debug("%s %s: the client went away; the app then raised %s",
                             head.method, head.path, type(exc).__name__, exc_info=exc)
                return
            if state.complete:
                handler.log_exception(head, exc, state.status,
                                      "exception after the error response was sent")
                return
            if state.started:
                handler.log_exception(head, exc, state.status,
                                      "exception after the response started")
                raise
            await _send_response(send, handler.exception_response(head, exc), metrics)
            return
        if state.action is Action.INSPECT and not state.complete:
            await self._replace(state, forward, head, bytes(state.buffer))

    async def _replace(self, state: _ResponseState, send: Send, head: HeadFromPairs,
                       body: bytes | None) -> None:
        response = self.handler.replace_response(head, state.status, state.headers, body)
        state.started = True
        await _send_response(send, response, self.handler.metrics)
        state.complete = True
        state.buffer = bytearray()

    async def _serve_websocket(self, scope: Scope, receive: Receive, send: Send,
                               head: HeadFromPairs) -> None:
        # What the app has told the server so far: nothing, accept, an HTTP answer, close.
        stage = "new"
        client_gone = False

        async def watch_receive() -> Message:
            nonlocal client_gone
            message = await receive()
            if message["type"] == "websocket.disconnect":
                client_gone = True
            return message

        async def watch_send(message: Message) -> None:
            nonlocal stage
            kind = message["type"]
            if stage == "new":
                if kind == "websocket.accept":
                    stage = "accepted"
                elif kind == "websocket.http.response.start":
                    stage = "responding"
                elif kind == "websocket.close":
                    stage = "closed"
            elif kind == "websocket.close":
                stage = "closed"
            await send(message)

        try:
            await self.app(scope, watch_receive, watch_send)
        except Exception as exc:
            if client_gone:
                logger.debug("%s: the websocket client went away; the app then raised %s",
                             head.path, type(exc).__name__, exc_info=exc)
                return
            if stage == "new":
                await _deny_websocket(scope, send, self.handler.exception_response(head, exc), 1011)
                return
            self.handler.log_exception(head, exc, None, "exception in a websocket")
            if stage == "responding":
                raise  # an HTTP answer is half sent: only the server can cut it off
            if stage == "accepted":
                try:
                    await send({"type": "websocket.close", "code": 1011,
                                "reason": "Internal Error"})
                except Exception:
                    logger.debug("websocket already closed", exc_info=True)


class ProxyGateMiddleware(ErrorEnvelopeMiddleware):
    """Proxy-style authentication (407, or 401 in origin mode) plus the error envelope.

    ``ProxyGateMiddleware(app, users="users.htpasswd", realm="internal")``, or with
    Starlette / FastAPI ``app.add_middleware(ProxyGateMiddleware, users=...)``.
    """

    handler: Gate

    def _make_handler(self, config: Config) -> Gate:
        return Gate(config)

    @property
    def gate(self) -> Gate:
        return self.handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        if not scope["path"].startswith("/"):
            scope = _from_absolute_form(scope)
        gate = self.handler
        head = _head(scope)
        try:
            decision = gate.decide(head)
            if type(decision) is Check:
                decision = await self._check(decision)
        except Exception as exc:  # a fault in the gate still answers in the envelope
            decision = Deny(gate.exception_response(head, exc))
        if type(decision) is Deny:
            if kind == "http":
                await _send_response(send, decision.response, gate.metrics)
            else:
                await _deny_websocket(scope, send, decision.response, 1008)
            return
        assert type(decision) is Forward
        identity = decision.identity
        strip = gate.strip_headers
        scope = dict(scope)
        # The head goes on with the stripped headers: apps may read it (for the request id)
        # and must not find the credentials there.
        scope["headers"] = head.headers = [
            pair for pair in scope["headers"] if pair[0] not in strip
        ]
        scope[REQUEST_KEY] = head
        if identity is not None:
            scope["user"] = identity
            scope["auth"] = AUTHENTICATED
        else:
            scope["user"] = ANONYMOUS_USER
            scope["auth"] = NO_SCOPES
        if kind == "http":
            await self._serve(scope, receive, send, head)
        else:
            await self._serve_websocket(scope, receive, send, head)

    async def _check(self, check: Check) -> Forward | Deny:
        """The slow step, off the event loop: hashes and store round trips run in a thread."""
        if not self.handler.users.is_async:
            return await asyncio.to_thread(check.run)
        denied = await asyncio.to_thread(check.admit) if check.needs_thread else check.admit()
        if denied is not None:
            return denied
        matched = await check.averify()
        if check.needs_thread:
            return await asyncio.to_thread(check.conclude, matched)
        return check.conclude(matched)

