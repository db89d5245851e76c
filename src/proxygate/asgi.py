"""The ASGI shell: pure ASGI middleware around the core. Translates, never decides."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any
from urllib.parse import quote, unquote

from proxygate._server import warn_about_server
from proxygate.auth.users import SourceUnavailable
from proxygate.config import Config
from proxygate.errors.envelope import ErrorResponse
from proxygate.errors.handler import ErrorHandler, HeadFromPairs
from proxygate.errors.metrics import ErrorMetrics
from proxygate.errors.policy import Action
from proxygate.gate import AUTHENTICATED, Check, Deny, Forward, Gate, absolute_form

__all__ = [
    "REQUEST_KEY",
    "ErrorEnvelopeMiddleware",
    "ProxyGateMiddleware",
    "request_head",
    "settle",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("proxygate.errors")

#: The scope types proxygate answers; lifespan and anything unknown pass untouched.
_OURS = frozenset({"http", "websocket"})

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


def _head(scope: Scope, headers: list[tuple[bytes, bytes]] | None = None) -> HeadFromPairs:
    client = scope.get("client")
    return HeadFromPairs(
        scope.get("method", "GET"),
        scope["path"],
        scope["headers"] if headers is None else headers,
        client[0] if client else None,
        scope.get("query_string", b""),  # raw: decoded only by the one reader, Digest
    )


def _split_headers(headers: list[tuple[bytes, bytes]], credential: bytes,
                   strip: frozenset[bytes]) -> tuple[list[bytes], list[tuple[bytes, bytes]]]:
    """The credential header's values, and the headers the app will see: without the
    credentials (nor their underscore spellings) nor ``Proxy-Connection``."""
    credentials: list[bytes] = []
    kept: list[tuple[bytes, bytes]] = []
    for pair in headers:
        if pair[0] == credential:
            credentials.append(pair[1])
        if pair[0] not in strip:
            kept.append(pair)
    return credentials, kept


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


def _messages(response: ErrorResponse) -> tuple[Message, Message]:
    return ({"type": "http.response.start", "status": response.status,
             "headers": response.headers},
            {"type": "http.response.body", "body": response.body})


async def _send_response(send: Send, response: ErrorResponse,
                         metrics: ErrorMetrics | None = None) -> None:
    if metrics is not None:
        metrics.response(response.status)
    for message in _messages(response):
        await send(message)


async def _deny_websocket(scope: Scope, send: Send, response: ErrorResponse,
                          close_code: int) -> None:
    """Refuse a websocket before accept: a real HTTP response where the server can send one."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await send({"type": "websocket.http.response.start", "status": response.status,
                    "headers": response.headers})
        await send({"type": "websocket.http.response.body", "body": response.body})
    else:
        await send({"type": "websocket.close", "code": close_code})


def _adding(send: Send, headers: tuple[tuple[bytes, bytes], ...]) -> Send:
    """``send`` with ``headers`` added to the response start."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = [*message.get("headers", ()), *headers]
        await send(message)

    return sending


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


class _Exchange:
    """One HTTP request's response, watched on its way out.

    A success goes straight to the server. An error response is held while the rewrite
    policy decides: passed on as it is, or replaced by the envelope (its body read first
    when the policy wants to see it). :meth:`_outgoing` decides, without I/O, what each
    message of the app's turns into; :meth:`_deliver` is the one place that writes.
    """

    __slots__ = ("action", "buffer", "client_gone", "complete", "handler", "head", "headers",
                 "send_failed", "server_send", "started", "status", "upstream")

    def __init__(self, handler: ErrorHandler, head: HeadFromPairs, send: Send,
                 receive: Receive) -> None:
        self.handler = handler
        self.head = head
        self.server_send = send
        self.upstream = receive
        self.action: Action | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        #: The error body being inspected; None when there is none (or it was replaced).
        self.buffer: bytearray | None = None
        self.started = False  # a response start went to the server
        self.complete = False  # the replacement went to the server in full
        self.client_gone = False  # the app's receive said so
        self.send_failed = False  # the server's send raised OSError: the client hung up

    async def receive(self) -> Message:
        """The app's ``receive``, noting a client that hangs up."""
        message = await self.upstream()
        if message["type"] == "http.disconnect":
            self.client_gone = True
        return message

    def send(self, message: Message) -> Awaitable[None]:
        """The app's ``send``: what the watch lets out, delivered."""
        return self._deliver(self._outgoing(message))

    async def _deliver(self, messages: Sequence[Message]) -> None:
        for message in messages:
            try:
                await self.server_send(message)
            except OSError:  # ASGI: what a send to a closed connection raises
                self.send_failed = True
                raise

    def _outgoing(self, message: Message) -> Sequence[Message]:
        if self.action is Action.PASS:
            return (message,)
        kind = message["type"]
        if kind == "http.response.start":
            return self._start(message)
        if kind == "http.response.body" and not self.complete:
            return self._body(message)
        return ()  # anything else before a passed-through start, or after a replacement

    def _start(self, message: Message) -> Sequence[Message]:
        if self.action is not None:
            raise RuntimeError("the app started the response twice")
        handler = self.handler
        status = message["status"]
        self.status = status
        if status < 400:
            self.action = Action.PASS
            if handler.metrics is not None:
                handler.metrics.response(status)
            if handler.config.request_id_on_success and handler.renderer.request_id_header:
                message = _with_request_id(message, handler, self.head)
            self.started = True
            return (message,)
        self.headers = list(message.get("headers", ()))
        self.action = handler.response_action(status, self.headers)
        if self.action is Action.PASS:
            if handler.metrics is not None:
                handler.metrics.response(status)
            patched = handler.with_challenge(status, self.headers)
            if patched is not self.headers:
                message = dict(message)
                message["headers"] = patched
            self.started = True
            return (message,)
        if self.action is Action.REPLACE:
            return self._replace(None)
        self.buffer = bytearray()  # INSPECT: read the body, then decide what goes out
        return ()

    def _body(self, message: Message) -> Sequence[Message]:
        if self.action is None:
            raise RuntimeError("the app sent a body before starting the response")
        if self.buffer is None:
            return ()  # the app's body of a replaced response is dropped, unread
        self.buffer += message.get("body", b"")
        too_long = len(self.buffer) > self.handler.policy.max_error_body
        if too_long or not message.get("more_body", False):
            return self._replace(None if too_long else bytes(self.buffer))
        return ()

    def _replace(self, body: bytes | None) -> Sequence[Message]:
        """The envelope standing in for the app's error response."""
        self.buffer = None
        response = self.handler.replace_response(self.head, self.status, self.headers, body)
        if self.handler.metrics is not None:
            self.handler.metrics.response(response.status)
        self.started = True
        self.complete = True
        return _messages(response)

    async def finish(self) -> None:
        """The app returned: a body still being inspected goes out now."""
        if self.buffer is not None and not self.complete:
            await self._deliver(self._replace(bytes(self.buffer)))

    async def failed(self, exc: Exception) -> None:
        """The app raised: answer with the envelope while nothing is sent, else log and re-raise."""
        handler, head = self.handler, self.head
        if self.client_gone or self.send_failed:
            # Nobody is left to answer, and a hang-up is not a server error: re-raising
            # would have the server log it as one (and try a 500 on a closed socket).
            logger.debug("%s %s: the client went away; the app then raised %s",
                         head.method, head.path, type(exc).__name__, exc_info=exc)
            return
        if self.complete:
            # What Starlette's and FastAPI's ServerErrorMiddleware do: send a 500, then
            # re-raise for the server to log. The client already has the envelope.
            handler.log_exception(
                head, exc, self.status,
                "the app sent its own error response, then raised; the client got the "
                "envelope for that response. Exception",
            )
            return
        if self.started:
            handler.log_exception(head, exc, self.status, "exception after the response started")
            raise exc
        await _send_response(self.server_send, handler.exception_response(head, exc),
                             handler.metrics)


class ErrorEnvelopeMiddleware:
    """Every error becomes the envelope: exceptions, and error responses the app emits.

    ``ErrorEnvelopeMiddleware(app, debug=False, ...)`` takes the error options of
    :class:`~proxygate.config.Config`; ``users`` is not needed here.
    """

    def __init__(self, app: ASGIApp, *, config: Config | None = None, **options: Any) -> None:
        self.app = app
        self.config = config if config is not None else Config.from_options(**options)
        self.handler: ErrorHandler = self._make_handler(self.config)

    def _make_handler(self, config: Config) -> ErrorHandler:
        return ErrorHandler(config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in _OURS:
            await self.app(scope, receive, send)
            return
        head = request_head(scope) or _head(scope)
        scope = dict(scope)  # ASGI: copy a scope before changing it
        scope[REQUEST_KEY] = head
        await self._serve(scope, receive, send, head)

    async def _serve(self, scope: Scope, receive: Receive, send: Send,
                     head: HeadFromPairs) -> None:
        """Run the app, every error it raises or sends turned into the envelope."""
        if scope["type"] == "websocket":
            await self._serve_websocket(scope, receive, send, head)
            return
        exchange = _Exchange(self.handler, head, send, receive)
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except Exception as exc:
            await exchange.failed(exc)
            return
        await exchange.finish()

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

    gate: Gate

    def __init__(self, app: ASGIApp, *, config: Config | None = None, **options: Any) -> None:
        super().__init__(app, config=config, **options)
        warn_about_server(self.gate, wsgi=False)

    def _make_handler(self, config: Config) -> ErrorHandler:
        #: The authenticator; it renders through the error handler it holds.
        self.gate = Gate(config)
        return self.gate.errors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in _OURS:
            await self.app(scope, receive, send)
            return
        if not scope["path"].startswith("/"):
            scope = _from_absolute_form(scope)
        gate = self.gate
        errors = self.handler
        credentials, headers = _split_headers(scope["headers"], gate.credential_header,
                                              gate.strip_headers)
        # The head carries the stripped headers: apps may read it (for the request id)
        # and must not find the credentials there.
        head = _head(scope, headers)
        try:
            decision = gate.decide(head, credentials)
            if isinstance(decision, Check):
                decision = await settle(gate, decision)
        except Exception as exc:  # a fault in the gate still answers in the envelope
            decision = Deny(errors.exception_response(head, exc))
        if isinstance(decision, Deny):
            if scope["type"] == "http":
                await _send_response(send, decision.response, errors.metrics)
            else:
                await _deny_websocket(scope, send, decision.response, 1008)
            return
        scope = dict(scope)  # ASGI: copy a scope before changing it
        scope["headers"] = headers
        if decision.identity is not None:
            scope["user"] = decision.identity
            scope["auth"] = AUTHENTICATED
        else:
            scope["user"] = ANONYMOUS_USER
            scope["auth"] = NO_SCOPES
        scope[REQUEST_KEY] = head
        if decision.headers and scope["type"] == "http":
            send = _adding(send, decision.headers)  # Digest's Authentication-Info: rare
        await self._serve(scope, receive, send, head)


async def settle(gate: Gate, check: Check) -> Forward | Deny:
    """The slow step, off the event loop: store round trips in worker threads, hashes on
    the gate's hash threads. Admission to the hash budget is decided here, at once, so
    an attempt beyond it never waits for a thread, and a cached request never needs one.

    Shared by every ASGI shell (the middleware and the forward-auth service).
    """
    if not check.enter_budget():
        return gate.busy_response(check.head)
    blocking = check.needs_thread
    try:
        denied = await asyncio.to_thread(check.admit) if blocking else check.admit()
        if denied is not None:
            return denied
        if check.is_async:
            verdict = await check.averify()
        elif check.joined is not None:  # an identical check is hashing: share it
            verdict = await asyncio.wrap_future(check.joined)
        elif check.hashes:
            loop = asyncio.get_running_loop()
            verdict = await loop.run_in_executor(gate.hash_executor,
                                                 check.verify_on_hash_thread)
        elif check.blocks:  # a network store or a callable: a worker thread
            verdict = await asyncio.to_thread(check.verify)
        else:  # Digest arithmetic, a token look-up, a refusal: cheaper than a thread hop
            verdict = check.verify()
        if blocking:
            return await asyncio.to_thread(check.conclude, verdict)
        return check.conclude(verdict)
    except SourceUnavailable as exc:  # a directory down: 503, and the attempt given back
        if blocking:
            await asyncio.to_thread(check.abandon)
        else:
            check.abandon()
        return gate.source_unavailable(check.head, check.username, exc)
    except BaseException:
        if blocking:
            await asyncio.to_thread(check.abandon)
        else:
            check.abandon()
        raise
    finally:
        check.leave_budget()
