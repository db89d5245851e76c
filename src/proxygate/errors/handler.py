"""The error half: turning exceptions and an app's error responses into the envelope."""

from __future__ import annotations

import logging
import secrets
import traceback
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from proxygate._http import reason_phrase
from proxygate.config import Config
from proxygate.errors.envelope import ErrorRenderer, ErrorResponse, fallback_500
from proxygate.errors.exceptions import ExceptionMap
from proxygate.errors.policy import Action, RewritePolicy, kept_headers, plain_text_details

__all__ = ["ErrorHandler", "HeadFromPairs", "RequestHead"]

error_log = logging.getLogger("proxygate.errors")

Headers = list[tuple[bytes, bytes]]

_SAFE_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


class RequestHead(Protocol):
    """What the core reads of a request. Header names are lower-case, hyphenated bytes."""

    method: str
    path: str
    client: str | None
    request_id: str | None

    def header_values(self, name: bytes) -> list[bytes]: ...


class HeadFromPairs:
    """A request head over ``(name, value)`` pairs, as ASGI carries them."""

    __slots__ = ("client", "headers", "method", "path", "request_id")

    def __init__(self, method: str, path: str, headers: Sequence[tuple[bytes, bytes]],
                 client: str | None = None) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.client = client
        self.request_id: str | None = None

    def header_values(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key == name]


class ErrorHandler:
    """Renders, rewrites and logs errors; built once from a :class:`Config`."""

    def __init__(self, config: Config, *, challenge: bytes | None = None) -> None:
        self.config = config
        #: The gate's ``Basic realm=...`` challenge, added to app 401/407s that lack one.
        self.challenge = challenge
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
        self.request_id_name = (
            config.request_id_header.lower().encode("latin-1")
            if config.request_id_header else b"x-request-id"
        )

    def request_id(self, head: RequestHead) -> str:
        """The incoming id when it is short and safe, else a new one; stable per request."""
        found = head.request_id
        if found is not None:
            return found
        values = head.header_values(self.request_id_name)
        if len(values) == 1 and 0 < len(values[0]) <= 128:
            try:
                candidate = values[0].decode("ascii")
            except UnicodeDecodeError:
                candidate = ""
            if candidate and all(ch in _SAFE_ID_CHARS for ch in candidate):
                head.request_id = candidate
                return candidate
        head.request_id = secrets.token_hex(16)
        return head.request_id

    # -- error responses --------------------------------------------------------------

    def render(self, head: RequestHead, status: int, *, details: Any = None,
               message: str | None = None,
               headers: Iterable[tuple[bytes, bytes]] = ()) -> ErrorResponse:
        accept = head.header_values(b"accept")
        try:
            response = self.renderer.render(
                status,
                details=details,
                message=message,
                accept=b", ".join(accept).decode("latin-1") if accept else "",
                request_id=self.request_id(head),
                instance=head.path,
                headers=headers,
            )
        except Exception:
            error_log.exception("rendering the error envelope failed; sending the fixed 500")
            return fallback_500()
        if head.method == "HEAD":
            return response.without_body()
        return response

    def response_action(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> Action:
        """What to do with an app's response; shells ask only when ``status >= 400``."""
        return self.policy.decide(status, headers)

    def with_challenge(self, status: int, headers: Headers) -> Headers:
        """An app's 401/407 gets the gate's challenge when it carries none."""
        name = b"proxy-authenticate" if status == 407 else b"www-authenticate"
        if (
            self.challenge is None
            or status not in (401, 407)
            or any(key.lower() == name for key, _ in headers)
        ):
            return headers
        return [*headers, (name, self.challenge)]

    def replace_response(self, head: RequestHead, status: int,
                         headers: Iterable[tuple[bytes, bytes]],
                         body: bytes | None = None) -> ErrorResponse:
        """The envelope standing in for an app's error response."""
        kept = self.with_challenge(status, kept_headers(headers))
        details = None
        if body is not None and status < 500:
            details = plain_text_details(body)
        return self.render(head, status, details=details, headers=kept)

    def exception_response(self, head: RequestHead, exc: BaseException) -> ErrorResponse:
        """The envelope for an exception raised before the response started, logged once."""
        try:
            mapped = self.exceptions.lookup(exc)
        except Exception:
            mapped = None
        if mapped is not None and mapped.status < 500:
            error_log.debug("%s %s mapped %s to %d", head.method, head.path,
                            type(exc).__name__, mapped.status)
            headers = self.with_challenge(mapped.status, list(mapped.headers))
            return self.render(head, mapped.status, details=mapped.details,
                               message=mapped.message, headers=headers)
        status = mapped.status if mapped is not None else 500
        self.log_exception(head, exc, status)
        details: Any = mapped.details if mapped is not None else None
        if self.config.debug:
            details = {
                "exception": type(exc).__name__,
                "message": str(exc),
                "traceback": traceback.format_exception(exc),
            }
        return self.render(head, status, details=details,
                           message=mapped.message if mapped is not None else None,
                           headers=mapped.headers if mapped is not None else ())

    def log_exception(self, head: RequestHead, exc: BaseException, status: int | None,
                      note: str = "unhandled exception") -> None:
        request_id = self.request_id(head)
        error_log.error(
            "%s while serving %s %s (status %s, request_id=%s)",
            note, head.method, head.path, status if status is not None else "-", request_id,
            exc_info=exc,
            extra={"proxygate": {"request_id": request_id, "method": head.method,
                                 "path": head.path, "status": status}},
        )

    @staticmethod
    def reason(status: int) -> str:
        return reason_phrase(status)


