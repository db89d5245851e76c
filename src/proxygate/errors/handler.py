"""The error half: turning exceptions and an app's error responses into the envelope."""

from __future__ import annotations

import itertools
import logging
import os
import secrets
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from proxygate._http import reason_phrase
from proxygate.config import Config, ConfigError
from proxygate.errors.envelope import ErrorRenderer, ErrorResponse, fallback_500
from proxygate.errors.exceptions import ExceptionMap
from proxygate.errors.metrics import ErrorMetrics, make_metrics
from proxygate.errors.normalize import app_error_details
from proxygate.errors.policy import (
    Action,
    RewritePolicy,
    is_envelope,
    kept_headers,
    media_type,
    plain_text_details,
)

__all__ = ["ErrorHandler", "HeadFromPairs", "RequestHead"]

error_log = logging.getLogger("proxygate.errors")

Headers = list[tuple[bytes, bytes]]

_SAFE_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")
#: Longest incoming request id believed; longer ones are replaced by a generated id.
MAX_REQUEST_ID = 128
#: Headers that describe the old body; a passed-through envelope loses them all the same.
_BODY_FRAMING = frozenset({b"content-length", b"transfer-encoding"})


class RequestHead(Protocol):
    """What the core reads of a request. Header names are lower-case, hyphenated bytes."""

    method: str
    path: str
    client: str | None
    request_id: str | None
    #: The envelope proxygate rendered for this request, if any: an outer shell seeing
    #: the app hand back these very bytes (from proxygate's own in-app handlers) passes
    #: them on as they are.
    rendered: bytes | None

    def header_values(self, name: bytes) -> list[bytes]: ...


def _first_request_id() -> int:
    """A random 64-bit per-process prefix followed by a 64-bit counter starting at 1."""
    return (int(secrets.token_hex(8), 16) << 64) | 1


#: The next request id as one int: the per-process prefix and the counter together.
_request_ids = itertools.count(_first_request_id())


def new_request_id() -> str:
    """A request id: a random per-process prefix and a counter, 32 hex digits in all.

    Unique across processes and hosts (64 random bits per process); ids need to be
    unique, not secret, so no random bytes are drawn per request.
    """
    return f"{next(_request_ids):032x}"


def _new_request_id_prefix() -> None:
    global _request_ids  # noqa: PLW0603 -- one counter per process, replaced in a forked child
    _request_ids = itertools.count(_first_request_id())


os.register_at_fork(after_in_child=_new_request_id_prefix)  # forked workers get their own prefix


class HeadFromPairs:
    """A request head over ``(name, value)`` pairs, as ASGI carries them."""

    __slots__ = ("client", "headers", "method", "path", "query", "rendered", "request_id")

    def __init__(self, method: str, path: str, headers: Sequence[tuple[bytes, bytes]],
                 client: str | None = None, query: str | bytes | None = None) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.client = client
        #: The raw query string when the shell knows it (ASGI's bytes, or text), else None:
        #: Digest binds its uri to it. Left undecoded: nothing else reads it.
        self.query = query
        self.request_id: str | None = None
        self.rendered: bytes | None = None

    def header_values(self, name: bytes) -> list[bytes]:
        found: list[bytes] = []
        for key, value in self.headers:
            if key == name:
                found.append(value)
        return found


def _is_safe_id(value: bytes) -> bool:
    if not 0 < len(value) <= MAX_REQUEST_ID:
        return False
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return False
    return all(ch in _SAFE_ID_CHARS for ch in text)


class ErrorHandler:
    """Renders, rewrites and logs errors; built once from a :class:`Config`."""

    def __init__(self, config: Config, *, challenge: bytes | None = None,
                 challenges: Callable[[], Sequence[bytes]] | None = None) -> None:
        self.config = config
        #: The gate's challenges (one per scheme, fresh Digest nonces each time), added to
        #: app 401/407s that carry none. ``challenge`` is the one-value shorthand.
        if challenges is None and challenge is not None:
            fixed = [challenge]
            challenges = fixed.copy
        self.challenges = challenges
        try:
            self.renderer = ErrorRenderer(
                request_id_in_body=config.request_id_in_body,
                request_id_header=config.request_id_header,
                html_errors=config.html_errors,
                html_template=config.html_template,
            )
            self.policy = RewritePolicy(
                pass_json_errors=config.pass_json_errors, max_error_body=config.max_error_body
            )
            self.exceptions = ExceptionMap(config.exception_map)
        except ValueError as exc:  # a bad template or exception_map fails here, clearly
            raise ConfigError(str(exc)) from None
        self.request_id_name = (
            config.request_id_header.lower().encode("latin-1")
            if config.request_id_header else b"x-request-id"
        )
        try:
            #: Prometheus counters, or None (the default): shells test ``is not None``.
            self.metrics: ErrorMetrics | None = make_metrics(
                bool(getattr(config, "metrics", False))
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def request_id(self, head: RequestHead) -> str:
        """The incoming id when it is short and safe, else a new one; stable per request."""
        found = head.request_id
        if found is not None:
            return found
        # An id sent twice is believed in neither copy.
        values = head.header_values(self.request_id_name)
        trusted = len(values) == 1 and _is_safe_id(values[0])
        found = values[0].decode("ascii") if trusted else new_request_id()
        head.request_id = found
        return found

    # -- error responses --------------------------------------------------------------

    def render(self, head: RequestHead, status: int, *, details: Any = None,
               message: str | None = None,
               headers: Iterable[tuple[bytes, bytes]] = ()) -> ErrorResponse:
        """The envelope for ``status`` in the format the client prefers; never raises."""
        try:
            response = self.renderer.render(
                status,
                details=details,
                message=message,
                accept=self._accept(head),
                request_id=self.request_id(head),
                instance=head.path,
                headers=headers,
            )
        except Exception:
            error_log.exception("rendering the error envelope failed; sending the fixed 500")
            return fallback_500()
        if self.metrics is not None:
            self.metrics.rendered(status)
        head.rendered = response.body
        if head.method == "HEAD":
            return response.without_body()
        return response

    def _accept(self, head: RequestHead) -> str:
        """The request's Accept headers as one value (several are joined), or ""."""
        return b", ".join(head.header_values(b"accept")).decode("latin-1")

    def response_action(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> Action:
        """What to do with an app's response; shells ask only when ``status >= 400``."""
        action = self.policy.decide(status, headers)
        if self.metrics is not None and action is Action.PASS and status >= 400:
            self.metrics.error(status, "passed")
        return action

    def with_challenge(self, status: int, headers: Headers) -> Headers:
        """An app's 401/407 gets the gate's challenge when it carries none."""
        name = b"proxy-authenticate" if status == 407 else b"www-authenticate"
        if (
            self.challenges is None
            or status not in (401, 407)
            or any(key.lower() == name for key, _ in headers)
        ):
            return headers
        return [*headers, *((name, value) for value in self.challenges())]

    def replace_response(self, head: RequestHead, status: int,
                         headers: Iterable[tuple[bytes, bytes]],
                         body: bytes | None = None) -> ErrorResponse:
        """The envelope standing in for an app's error response; never raises.

        ``body`` is what was buffered for an ``INSPECT`` decision (None when it ran past
        ``max_error_body``). The envelope proxygate rendered for this very request inside
        the app goes out as it came, and so does a 4xx body that is the envelope already;
        a 4xx JSON error is normalized (its safe text and redacted field errors become
        ``details``); a 5xx body is never shown, whatever its type or shape.
        """
        try:
            headers = headers if isinstance(headers, list) else list(headers)
            content_type = b""
            details: Any = None
            if body is not None:  # only an inspected body needs its type looked at again
                if body and body == head.rendered:
                    return self._as_it_came(head, status, headers, body)
                for name, value in headers:
                    if name.lower() == b"content-type":
                        content_type = media_type(value)
                if status < 500 and content_type.endswith(b"json"):
                    if is_envelope(body, status):
                        return self._as_it_came(head, status, headers, body)
                    details = app_error_details(body, status)
            if self.metrics is not None:
                self.metrics.error(status, "rewritten")
            # Our own request id header goes out once, with the id the body carries.
            kept = kept_headers(headers, drop=self.request_id_name)
            kept = self.with_challenge(status, kept)
            if body is not None and status < 500 and content_type == b"text/plain":
                details = plain_text_details(body)
                # "Not Found" says no more than the message does.
                if details is not None and details.lower() == reason_phrase(status).lower():
                    details = None
            return self.render(head, status, details=details, headers=kept)
        except Exception:
            error_log.exception("replacing an error response failed; sending the fixed 500")
            return fallback_500()

    def _as_it_came(self, head: RequestHead, status: int, headers: Headers,
                    body: bytes) -> ErrorResponse:
        if self.metrics is not None:
            self.metrics.error(status, "passed")
        out = [(name.lower(), value) for name, value in headers
               if name.lower() not in _BODY_FRAMING]
        if head.method == "HEAD":
            return ErrorResponse(status, out, b"")
        out.append((b"content-length", str(len(body)).encode("ascii")))
        return ErrorResponse(status, out, body)

    def exception_response(self, head: RequestHead, exc: BaseException, *,
                           log: bool = True) -> ErrorResponse:
        """The envelope for an exception raised before the response started; never raises.

        Mapped 4xx are the client's doing and logged at DEBUG; everything else is
        logged once at ERROR with its traceback. ``log=False`` is for adapters whose
        framework already logged the exception itself.
        """
        try:
            return self._exception_response(head, exc, log)
        except Exception:
            error_log.exception("rendering the error for an exception failed; sending the fixed 500")
            return fallback_500()

    def _exception_response(self, head: RequestHead, exc: BaseException,
                            log: bool) -> ErrorResponse:
        try:
            mapped = self.exceptions.lookup(exc)
        except Exception:
            mapped = None
        if self.metrics is not None:
            self.metrics.error(mapped.status if mapped is not None else 500, "exception")
        if mapped is not None and mapped.status < 500:
            if error_log.isEnabledFor(logging.DEBUG):
                error_log.debug("%s %s: %s mapped to %d (request_id=%s)", head.method, head.path,
                                type(exc).__name__, mapped.status, self.request_id(head))
            headers = self.with_challenge(mapped.status, list(mapped.headers))
            return self.render(head, mapped.status, details=mapped.details,
                               message=mapped.message, headers=headers)
        status = mapped.status if mapped is not None else 500
        if log:
            self.log_exception(head, exc, status)
        details: Any = mapped.details if mapped is not None else None
        if self.config.debug:
            # proxygate's own flag, never a framework's: the type and message, no traceback
            # (that is in the log, under the same request id).
            details = {"exception": type(exc).__name__, "message": str(exc)}
        return self.render(head, status, details=details,
                           message=mapped.message if mapped is not None else None,
                           headers=mapped.headers if mapped is not None else ())

    def log_exception(self, head: RequestHead, exc: BaseException, status: int | None,
                      note: str = "unhandled exception") -> None:
        """One ERROR record with the traceback, the request id, method, path and status."""
        request_id = self.request_id(head)
        error_log.error(
            "%s while serving %s %s (status %s, request_id=%s)",
            note, head.method, head.path, status if status is not None else "-", request_id,
            exc_info=exc,
            extra={
                "request_id": request_id,
                "proxygate": {"request_id": request_id, "method": head.method,
                              "path": head.path, "status": status},
            },
        )
