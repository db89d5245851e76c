"""The WSGI shell (PEP 3333): the same core behind a WSGI callable. Translates, never decides."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any
from urllib.parse import unquote_to_bytes

from proxygate._http import reason_phrase
from proxygate._server import warn_about_server
from proxygate.config import Config
from proxygate.errors.envelope import ErrorResponse
from proxygate.errors.handler import ErrorHandler
from proxygate.errors.metrics import ErrorMetrics
from proxygate.errors.policy import Action
from proxygate.gate import Check, Deny, Forward, Gate, absolute_form

__all__ = [
    "REQUEST_KEY",
    "EnvironHead",
    "ErrorEnvelopeMiddleware",
    "ProxyGateMiddleware",
    "from_absolute_form",
    "refuses_hop_by_hop",
    "request_head",
]

logger = logging.getLogger("proxygate")

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def _status_line(status: int) -> str:
    return f"{status} {reason_phrase(status)}"


def environ_key(name: bytes) -> str:
    """The CGI environ key of a request header: ``b"proxy-authorization"`` -> ``HTTP_PROXY_AUTHORIZATION``."""
    return "HTTP_" + name.decode("latin-1").upper().replace("-", "_")


#: The environ key holding the shell's :class:`EnvironHead`, as ``scope`` does under ASGI.
REQUEST_KEY = "proxygate.request"


def request_head(environ: Environ) -> EnvironHead:
    """The shell's request head for ``environ``, or a new one when no shell is outside."""
    found = environ.get(REQUEST_KEY)
    return found if isinstance(found, EnvironHead) else EnvironHead(environ)


class EnvironHead:
    """A request head read from a WSGI environ, without copying its headers."""

    __slots__ = ("client", "environ", "method", "path", "query", "rendered", "request_id")

    def __init__(self, environ: Environ) -> None:
        self.environ = environ
        self.method: str = environ.get("REQUEST_METHOD", "GET")
        self.path: str = environ.get("PATH_INFO", "") or "/"
        self.client: str | None = environ.get("REMOTE_ADDR") or None
        self.query: str = environ.get("QUERY_STRING", "")
        self.request_id: str | None = None
        self.rendered: bytes | None = None

    def header_values(self, name: bytes) -> list[bytes]:
        if name == b"content-type" or name == b"content-length":
            key = name.decode("latin-1").upper().replace("-", "_")
        else:
            key = _KEYS.get(name) or environ_key(name)
        value = self.environ.get(key)
        if value is None:
            return []
        return [value.encode("latin-1", "replace")]


_KEYS = {
    name: environ_key(name)
    for name in (b"proxy-authorization", b"authorization", b"accept", b"x-request-id",
                 b"forwarded", b"x-forwarded-for")
}


def from_absolute_form(environ: Environ) -> None:
    """``GET http://host/path?q`` from a forward-proxy client reaches the app as ``/path?q``.

    Split the raw request URI where the server keeps one (gunicorn's ``RAW_URI``, others'
    ``REQUEST_URI``), so an encoded ``%3F`` stays in the path; ``PATH_INFO`` is decoded.
    """
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    split = absolute_form(raw) if isinstance(raw, str) else None
    if split is not None:
        host, raw_path, query = split
        path = unquote_to_bytes(raw_path).decode("latin-1")  # PEP 3333: bytes as latin-1
    else:
        split = absolute_form(environ.get("PATH_INFO", ""))
        if split is None:
            return
        host, path, query = split
    environ["PATH_INFO"] = path
    if query and not environ.get("QUERY_STRING"):
        environ["QUERY_STRING"] = query
    environ["HTTP_HOST"] = host
    name, _, port = host.rpartition(":")
    if name and port.isdigit() and not host.endswith("]"):
        environ["SERVER_NAME"], environ["SERVER_PORT"] = name, port
    else:
        environ["SERVER_NAME"] = host


def refuses_hop_by_hop(environ: Environ) -> bool:
    """wsgiref (and so Django's runserver) answers 500 to a hop-by-hop header from the app."""
    return str(environ.get("SERVER_SOFTWARE", "")).startswith("WSGIServer/")


def _wsgi_headers(response_headers: list[tuple[bytes, bytes]],
                  environ: Environ) -> list[tuple[str, str]]:
    drop_hop = refuses_hop_by_hop(environ)
    return [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in response_headers
        if not (drop_hop and name == b"proxy-authenticate")
    ]


def _as_bytes_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]


def _respond(start_response: StartResponse, environ: Environ, response: ErrorResponse,
             exc_info: ExcInfo | None = None, metrics: ErrorMetrics | None = None) -> list[bytes]:
    if metrics is not None:
        metrics.response(response.status)
    start_response(_status_line(response.status), _wsgi_headers(response.headers, environ),
                   exc_info)
    return [response.body] if response.body else []


def _close(iterable: object) -> None:
    close = getattr(iterable, "close", None)
    if close is not None:
        close()


class _Exchange:
    """One request's response, watched through ``start_response``."""

    __slots__ = ("action", "environ", "handler", "head", "headers", "start_response", "status")

    def __init__(self, handler: ErrorHandler, environ: Environ, head: EnvironHead,
                 start_response: StartResponse) -> None:
        self.handler = handler
        self.environ = environ
        # Read before the app runs: an app may rewrite PATH_INFO (mounts do), and errors
        # must name the path the client asked for.
        self.head = head
        self.start_response = start_response
        self.action: Action | None = None
        self.status = 0
        self.headers: list[tuple[str, str]] = []

    def watch_start(self, status: str, headers: list[tuple[str, str]],
                    exc_info: ExcInfo | None = None) -> Callable[[bytes], object]:
        if exc_info is not None and self.action is Action.PASS:
            raise exc_info[1].with_traceback(exc_info[2])  # PEP 3333: too late to change
        code = int(status[:3])
        self.status = code
        handler = self.handler
        if code < 400:
            self.action = Action.PASS
            if handler.metrics is not None:
                handler.metrics.response(code)
            name = handler.renderer.request_id_header
            if handler.config.request_id_on_success and name:
                text = name.decode("latin-1")
                if not any(key.lower() == text for key, _ in headers):
                    headers = [*headers, (text, handler.request_id(self.head))]
            return self.start_response(status, headers, exc_info)
        raw = _as_bytes_headers(headers)
        self.action = action = self.handler.response_action(code, raw)
        if action is Action.PASS:
            if handler.metrics is not None:
                handler.metrics.response(code)
            patched = self.handler.with_challenge(code, raw)
            if patched is not raw or refuses_hop_by_hop(self.environ):
                # Under wsgiref the app's own Proxy-Authenticate would be refused too.
                headers = _wsgi_headers(patched, self.environ)
            return self.start_response(status, headers, exc_info)
        self.headers = headers
        return self._discard

    @staticmethod
    def _discard(data: bytes) -> None:
        """The legacy write() of a response being replaced: its bytes are dropped."""

    def replacement(self, body: bytes | None) -> list[bytes]:
        response = self.handler.replace_response(
            self.head, self.status, _as_bytes_headers(self.headers), body
        )
        return _respond(self.start_response, self.environ, response,
                        metrics=self.handler.metrics)

    def finish(self, result: Iterable[bytes]) -> Iterable[bytes]:
        """What the server gets back: the app's iterable untouched, or the envelope."""
        action = self.action
        if action is Action.PASS:
            if type(result) in (list, tuple):
                return result  # iterating it cannot raise (a subclass might: it is watched)
            wrapper = self.environ.get("wsgi.file_wrapper")
            if isinstance(wrapper, type) and isinstance(result, wrapper):
                return result  # keep the server's sendfile path
            return _Watched(self, result)
        if action is None:
            return _Closing(self._late_start(result), result)
        try:
            return self._replace(result, iter(result))
        finally:
            _close(result)

    def _replace(self, result: Iterable[bytes], chunks: Iterator[bytes]) -> list[bytes]:
        body: bytes | None = None
        if self.action is Action.INSPECT:
            limit = self.handler.policy.max_error_body
            buffer = bytearray()
            for chunk in chunks:
                buffer += chunk
                if len(buffer) > limit:
                    break
            else:
                body = bytes(buffer)
        return self.replacement(body)

    def _late_start(self, result: Iterable[bytes]) -> Iterator[bytes]:
        """Apps that call start_response from inside their iterator (generators).

        The caller wraps this generator in :class:`_Closing`, which closes the app's
        iterable even when the server closes before iterating at all.
        """
        chunks = iter(result)
        try:
            first = next(chunks)
            while not first and self.action is None:
                first = next(chunks)
        except StopIteration:
            first = None
        except Exception as exc:
            if self.action is None:
                yield from self.error(exc)
                return
            raise
        if self.action is Action.PASS:
            if first is not None:
                yield first
            try:
                yield from chunks
            except Exception as exc:
                self.handler.log_exception(self.head, exc, self.status,
                                           "exception after the response started")
                raise
        elif self.action is None:
            raise RuntimeError("the WSGI app returned without calling start_response")
        else:
            rest = [first] if first else []
            yield from self._replace(result, iter([*rest, *chunks]))

    def error(self, exc: BaseException) -> list[bytes]:
        response = self.handler.exception_response(self.head, exc)
        return _respond(self.start_response, self.environ, response,
                        sys.exc_info(), self.handler.metrics)  # type: ignore[arg-type]


class _Closing:
    """An iterator whose ``close()`` also reaches the app's iterable, exactly once."""

    __slots__ = ("_chunks", "_result")

    def __init__(self, chunks: Iterator[bytes], result: Iterable[bytes] | None) -> None:
        self._chunks = chunks
        self._result = result

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        result, self._result = self._result, None
        try:
            _close(self._chunks)
        finally:
            if result is not None:
                _close(result)


class _Watched:
    """A passed-through body. An exception before its first chunk still becomes the envelope
    (the server has sent nothing yet); after it, it is logged once and re-raised so the
    server cuts the connection. ``close()`` always reaches the app's iterable.
    """

    __slots__ = ("_exchange", "_result")

    def __init__(self, exchange: _Exchange, result: Iterable[bytes]) -> None:
        self._exchange = exchange
        self._result = result

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks()

    def _chunks(self) -> Iterator[bytes]:
        started = False
        try:
            for chunk in self._result:
                started = True
                yield chunk
        except Exception as exc:
            exchange = self._exchange
            if started:
                exchange.handler.log_exception(exchange.head, exc, exchange.status,
                                               "exception after the response started")
                raise
            yield from exchange.error(exc)

    def close(self) -> None:
        _close(self._result)


class ErrorEnvelopeMiddleware:
    """Every error becomes the envelope: exceptions, and error responses the app emits."""

    def __init__(self, app: WSGIApp, *, config: Config | None = None, **options: Any) -> None:
        self.app = app
        self.config = config if config is not None else Config.from_options(**options)
        self.handler: ErrorHandler = self._make_handler(self.config)

    def _make_handler(self, config: Config) -> ErrorHandler:
        return ErrorHandler(config)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        return self._serve(environ, start_response, EnvironHead(environ))

    def _serve(self, environ: Environ, start_response: StartResponse,
               head: EnvironHead) -> Iterable[bytes]:
        # Adapters inside (Flask's error handler) render with this head: one request id.
        environ[REQUEST_KEY] = head
        exchange = _Exchange(self.handler, environ, head, start_response)
        try:
            result = self.app(environ, exchange.watch_start)
        except Exception as exc:
            # Even after a 2xx start_response nothing was sent yet (the app returned no
            # iterable): start_response with exc_info replaces it, or re-raises if write()
            # already sent headers, after the one ERROR record.
            return exchange.error(exc)
        return exchange.finish(result)


class ProxyGateMiddleware(ErrorEnvelopeMiddleware):
    """Proxy-style authentication (407, or 401 in origin mode) plus the error envelope.

    PEP 3333 servers treat ``Proxy-Authenticate`` as hop-by-hop: gunicorn drops it,
    wsgiref refuses it. The 407 envelope always arrives; for the challenge to reach
    clients too, serve the app through the ASGI shell (``proxygate serve``) or use
    origin mode.
    """

    gate: Gate

    def __init__(self, app: WSGIApp, *, config: Config | None = None, **options: Any) -> None:
        super().__init__(app, config=config, **options)
        gate = self.gate
        if gate.is_async:
            raise TypeError("an async users or tokens callable needs "
                            "proxygate.asgi.ProxyGateMiddleware")
        self._credential_key = environ_key(gate.credential_header)
        self._strip_keys = tuple(
            environ_key(name)
            for name in gate.strip_headers
            if b"_" not in name  # the underscore spelling lands on the same key
        )
        warn_about_server(gate, wsgi=True)
        if self.config.mode == "proxy":
            logger.warning(
                "proxygate WSGI proxy mode: WSGI servers treat Proxy-Authenticate as hop-by-hop "
                "(gunicorn drops it, wsgiref refuses it), so the 407 challenge may not reach "
                "clients. Serve the app through proxygate.asgi (proxygate serve) or use "
                "mode='origin' for a complete challenge."
            )

    def _make_handler(self, config: Config) -> ErrorHandler:
        #: The authenticator; it renders through the error handler it holds.
        self.gate = Gate(config)
        return self.gate.errors

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path and not path.startswith("/"):
            from_absolute_form(environ)
        head = EnvironHead(environ)
        gate = self.gate
        errors = self.handler
        # The credential read straight from the environ: CGI keeps one value per name.
        value = environ.get(self._credential_key)
        try:
            decision = gate.decide(head, [value.encode("latin-1", "replace")]
                                   if value is not None else [])
            if isinstance(decision, Check):
                decision = decision.run()
        except Exception as exc:  # a fault in the gate still answers in the envelope
            decision = Deny(errors.exception_response(head, exc))
        if isinstance(decision, Deny):
            return _respond(start_response, environ, decision.response, metrics=errors.metrics)
        assert isinstance(decision, Forward)
        for key in self._strip_keys:
            environ.pop(key, None)
        identity = decision.identity
        if identity is not None:
            environ["REMOTE_USER"] = identity.username
            environ["AUTH_TYPE"] = identity.scheme
            environ["proxygate.user"] = identity
        if decision.headers:  # Digest's Authentication-Info: rare, so wrapped only then
            start_response = _adding(start_response, decision.headers)
        return self._serve(environ, start_response, head)


def _adding(start_response: StartResponse,
            headers: tuple[tuple[bytes, bytes], ...]) -> StartResponse:
    """``start_response`` with ``headers`` added to every start."""
    extra = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]

    def starting(status: str, response_headers: list[tuple[str, str]],
                 exc_info: Any = None) -> Callable[[bytes], object]:
        return start_response(status, [*response_headers, *extra], exc_info)

    return starting
