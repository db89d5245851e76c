"""The rewrite policy: which error responses an app emits get replaced, and which headers survive."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable

__all__ = [
    "DROPPED_HEADERS",
    "KEPT_HEADERS",
    "Action",
    "RewritePolicy",
    "is_envelope",
    "kept_headers",
    "media_type",
    "merge_vary",
    "plain_text_details",
]

#: Headers of the app's response that the envelope keeps (lower-case). CORS
#: (``access-control-*``) is kept by prefix; everything else goes with the old body.
KEPT_HEADERS = frozenset(
    {
        b"allow",
        b"www-authenticate",
        b"proxy-authenticate",
        b"retry-after",
        b"set-cookie",
        b"vary",
        b"x-request-id",
        b"request-id",
        b"x-correlation-id",
    }
)
_KEPT_PREFIXES = (b"access-control-",)

#: Headers that describe the old body and so must never travel with the envelope. Listed for
#: the record and for tests: ``kept_headers`` drops everything not kept, these included.
DROPPED_HEADERS = frozenset(
    {
        b"content-encoding",
        b"etag",
        b"content-range",
        b"content-md5",
        b"transfer-encoding",
        b"content-length",
        b"content-type",
        b"last-modified",
    }
)


class Action(enum.Enum):
    PASS = "pass"  # noqa: S105 -- send the app's response untouched
    REPLACE = "replace"  # drop the app's body unread, send the envelope
    INSPECT = "inspect"  # buffer up to max_error_body to see whether it can become details


class RewritePolicy:
    """Decides from the status and headers alone, before any body byte is read.

    Only error responses (``status >= 400``) are ever buffered, and only when the
    body may matter: a short ``text/plain`` 4xx message (it may become ``details``),
    a 4xx JSON or problem+json body (what it says is normalized into the envelope), or
    a 5xx JSON body (only to recognise the very envelope proxygate rendered inside
    the app; whatever else it says is never shown).

    ``pass_json_errors=True`` lets 4xx JSON and problem+json through untouched, for
    teams whose clients read their own JSON errors; a 5xx body is replaced all the same.
    """

    def __init__(self, *, pass_json_errors: bool = False, max_error_body: int = 65536) -> None:
        if max_error_body < 0:
            raise ValueError("max_error_body must be 0 or more bytes")
        self.pass_json_errors = pass_json_errors
        self.max_error_body = max_error_body

    def decide(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> Action:
        if status < 400:
            return Action.PASS  # 1xx, 2xx, 3xx: never touched, never buffered
        content_type = b""
        encoded = False
        for name, value in headers:
            lowered = name.lower()  # ASGI sends lower case; WSGI and Django names may be any
            if lowered == b"content-type":
                content_type = media_type(value)  # the last one counts
            elif lowered == b"content-encoding":
                encoded = encoded or _is_encoded(value)
        can_read = self.max_error_body > 0 and not encoded
        if _is_json(content_type):  # application/json, problem+json, any other +json
            if self.pass_json_errors and status < 500:
                return Action.PASS
            # Read to normalize (4xx) or to recognise our own envelope (5xx: nothing else
            # in it is ever shown); a compressed body is never parsed, just replaced.
            return Action.INSPECT if can_read else Action.REPLACE
        if status >= 500 or not can_read:
            return Action.REPLACE  # 5xx text never reaches a client; compressed text is not parsed
        if content_type == b"text/plain":
            return Action.INSPECT
        return Action.REPLACE  # HTML and everything else: replaced unread


def _is_encoded(content_encoding: bytes) -> bool:
    return content_encoding.strip().lower() not in (b"", b"identity")


def media_type(content_type: bytes) -> bytes:
    """``text/plain; charset=utf-8`` -> ``text/plain``."""
    return content_type.partition(b";")[0].strip().lower()


def _is_json(content_type: bytes) -> bool:
    return content_type == b"application/json" or (
        content_type.startswith(b"application/") and content_type.endswith(b"+json")
    )


def is_envelope(body: bytes, status: int) -> bool:
    """True when ``body`` is already ``{"error": {"code": status, "message": ..., ...}}``."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return False
    if not isinstance(parsed, dict) or set(parsed) != {"error"}:
        return False
    error = parsed["error"]
    return (
        isinstance(error, dict)
        and error.get("code") == status
        and isinstance(error.get("message"), str)
        and "details" in error
    )


def kept_headers(
    headers: Iterable[tuple[bytes, bytes]], *, extra: frozenset[bytes] = frozenset(),
    drop: bytes | None = None,
) -> list[tuple[bytes, bytes]]:
    """The app's headers the envelope carries on; names lower-cased. ``Vary`` is merged later.

    ``extra`` names more headers to keep (lower case). ``drop`` names one kept header to
    leave out after all (the request id header, which the envelope sets itself).
    """
    kept: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered == drop:
            continue
        if lowered in KEPT_HEADERS or lowered.startswith(_KEPT_PREFIXES) or lowered in extra:
            kept.append((lowered, value))
    return kept


def plain_text_details(body: bytes, *, limit: int = 300) -> str | None:
    """A short single-line UTF-8 text a 4xx body said, fit for ``details``; None otherwise."""
    text = body.strip()
    if not text or len(text) > limit:
        return None
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        return None
    # isprintable() refuses every control character (CR and LF, so a second line,
    # included) and other invisible characters.
    if not decoded.isprintable() or "<" in decoded:
        return None
    return decoded


def merge_vary(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Collapse several Vary headers into one, adding Accept once."""
    values: list[bytes] = []
    rest: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if name == b"vary":
            for raw in value.split(b","):
                item = raw.strip()
                if item and item.lower() not in (v.lower() for v in values):
                    values.append(item)
        else:
            rest.append((name, value))
    if b"accept" not in (v.lower() for v in values) and b"*" not in values:
        values.append(b"Accept")
    rest.append((b"vary", b", ".join(values)))
    return rest
