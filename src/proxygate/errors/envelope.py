"""The error envelope: one JSON shape (or problem+json, or HTML) for every error response."""

from __future__ import annotations

import json
import logging
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from proxygate._http import preferred_media_type, reason_phrase
from proxygate.errors.policy import merge_vary

__all__ = ["DEFAULT_HTML_TEMPLATE", "ErrorRenderer", "ErrorResponse", "fallback_500"]

logger = logging.getLogger("proxygate.errors")

Headers = list[tuple[bytes, bytes]]

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
HTML = "text/html"

#: The sentence in ``details`` when nothing more specific is known.
DEFAULT_DETAILS: dict[int, str] = {
    400: "The request could not be understood.",
    401: "Send valid credentials in the Authorization header.",
    403: "You are not allowed to do this.",
    404: "Nothing was found at this address.",
    405: "This method is not allowed here.",
    407: "Send valid credentials in the Proxy-Authorization header.",
    408: "The request took too long to arrive.",
    413: "The request body is too large.",
    415: "The request body has a media type this endpoint does not accept.",
    422: "The request was well-formed but could not be processed.",
    429: "Too many failed attempts; wait before trying again.",
    500: "The server could not complete the request.",
    502: "An upstream server answered badly.",
    503: "The service is unavailable right now.",
    504: "An upstream server did not answer in time.",
}

DEFAULT_HTML_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>$code $message</title></head>
<body><h1>$code $message</h1><p>$details</p><p><small>Request id: $request_id</small></p></body>
</html>
"""

_NO_BODY_STATUSES = frozenset({204, 205, 304})
#: Authentication and throttle errors: a cache must not answer the next request with them.
_NOT_STORED = frozenset({401, 407, 429})


def default_details(status: int) -> str:
    found = DEFAULT_DETAILS.get(status)
    if found is not None:
        return found
    if status >= 500:
        return DEFAULT_DETAILS[500]
    return "The request could not be completed."


@dataclass(slots=True)
class ErrorResponse:
    """A complete error response: what a shell sends as is. Treated as a value."""

    status: int
    headers: Headers = field(default_factory=list)
    body: bytes = b""

    def without_body(self) -> ErrorResponse:
        """The same response for a HEAD request: headers (with the length a GET would get), no body."""
        return ErrorResponse(self.status, self.headers, b"")


class ErrorRenderer:
    """Renders envelopes, negotiating the format on ``Accept``.

    Every format carries the same facts: status, reason phrase, details, request id.
    """

    def __init__(
        self,
        *,
        request_id_in_body: bool = True,
        request_id_header: str | None = "X-Request-ID",
        html_errors: bool = False,
        html_template: str | None = None,
    ) -> None:
        self.request_id_in_body = request_id_in_body
        #: The request id header's name, lower-cased bytes as ASGI wants them; None: send none.
        self.request_id_header = (
            request_id_header.lower().encode("latin-1") if request_id_header else None
        )
        self.html_errors = html_errors
        self._template = string.Template(html_template or DEFAULT_HTML_TEMPLATE)
        # Fail at construction, not on the first error, if the template is broken.
        try:
            self._template.substitute(code="", message="", details="", request_id="")
        except (KeyError, ValueError) as exc:
            raise ValueError(
                f"html_template cannot be used ({type(exc).__name__}: {exc}); it may use only "
                "$code, $message, $details and $request_id, and $$ for a dollar sign"
            ) from None
        #: The standard envelope per status: its bytes without an id, and around one.
        self._templates: dict[int, tuple[bytes, bytes, bytes]] = {}
        self.offers: tuple[str, ...] = (JSON, PROBLEM_JSON, HTML) if html_errors else (
            JSON,
            PROBLEM_JSON,
        )

    def render(
        self,
        status: int,
        *,
        details: Any = None,
        message: str | None = None,
        accept: str = "",
        request_id: str | None = None,
        instance: str | None = None,
        headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> ErrorResponse:
        """The envelope for ``status``; ``headers`` are added as given (challenge, Allow, ...)."""
        media = self.negotiate(accept)
        if (media == JSON and details is None and message is None
                and (not request_id or _is_plain_id(request_id))):
            # Most errors: the standard envelope. Serialised once per status, with the id
            # set between its two halves (asgi-404 and asgi-denied time this path).
            template = self._templates.get(status) or self._standard_template(status)
            body = (template[1] + request_id.encode() + template[2]
                    if request_id and self.request_id_in_body else template[0])
            content_type = b"application/json"
        else:
            body, content_type = self._body(status, details, message, media,
                                            request_id=request_id, instance=instance)
        out: Headers = [(b"content-type", content_type),
                        (b"content-length", str(len(body)).encode("ascii")),
                        (b"vary", b"Accept")]
        if status in _NOT_STORED:
            out.append((b"cache-control", b"no-store"))
        if request_id and self.request_id_header:
            out.append((self.request_id_header, request_id.encode("latin-1")))
        if headers:
            extra = list(headers)
            out.extend(extra)
            if any(name == b"vary" for name, _ in extra):
                out = merge_vary(out)
        if status < 200 or status in _NO_BODY_STATUSES:
            return ErrorResponse(status, [h for h in out if h[0] != b"content-length"], b"")
        return ErrorResponse(status, out, body)

    def negotiate(self, accept: str) -> str:
        """The offer an ``Accept`` value prefers; JSON when there is none."""
        return preferred_media_type(accept, self.offers) if accept else JSON

    def _standard_template(self, status: int) -> tuple[bytes, bytes, bytes]:
        """The standard envelope for ``status`` without an id, and the parts around one."""
        error = {"code": status, "message": reason_phrase(status),
                 "details": default_details(status)}
        without = _dumps({"error": error})
        error["request_id"] = "\x00"
        before, _, after = _dumps({"error": error}).partition(b"\\u0000")
        template = self._templates[status] = (without, before, after)
        return template

    def _body(self, status: int, details: Any, message: str | None, media: str, *,
              request_id: str | None, instance: str | None) -> tuple[bytes, bytes]:
        """The body and content type of every envelope but the standard JSON one."""
        message = message or reason_phrase(status)
        if details is None:
            details = default_details(status)
        if media == PROBLEM_JSON:
            problem: dict[str, Any] = {
                "type": "about:blank",
                "title": message,
                "status": status,
                "detail": details if isinstance(details, str) else message,
            }
            if not isinstance(details, str):
                problem["errors"] = details
            if instance:
                problem["instance"] = instance
            if request_id and self.request_id_in_body:
                problem["request_id"] = request_id
            return _dumps(problem), b"application/problem+json"
        if media == HTML:
            import html  # only for clients that ask for HTML errors

            text = details if isinstance(details, str) else json.dumps(details, ensure_ascii=False)
            body = self._template.substitute(
                code=status,
                message=html.escape(message),
                details=html.escape(text),
                request_id=html.escape(request_id or ""),
            ).encode("utf-8")
            return body, b"text/html; charset=utf-8"
        error: dict[str, Any] = {"code": status, "message": message, "details": details}
        if request_id and self.request_id_in_body:
            error["request_id"] = request_id
        return _dumps({"error": error}), b"application/json"


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "), default=str)


def _is_plain_id(request_id: str) -> bool:
    """Ids that need no JSON escaping: all that proxygate generates or accepts."""
    return (request_id.isascii() and request_id.isprintable()
            and '"' not in request_id and "\\" not in request_id)


def _dumps(value: Any) -> bytes:
    # One encoder for the module: json.dumps with options builds a new one per call.
    return _ENCODER.encode(value).encode()


_FALLBACK_BODY = (
    b'{"error": {"code": 500, "message": "Internal Server Error", '
    b'"details": "The server could not complete the request."}}'
)


def fallback_500() -> ErrorResponse:
    """The fixed minimal envelope used when rendering itself fails."""
    return ErrorResponse(
        500,
        [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(_FALLBACK_BODY)).encode("ascii")),
        ],
        _FALLBACK_BODY,
    )
