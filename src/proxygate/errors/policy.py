"""The rewrite policy: which error responses an app emits get replaced, and which headers survive."""

from __future__ import annotations

import enum
from collections.abc import Iterable

__all__ = [
    "KEPT_HEADERS",
    "Action",
    "RewritePolicy",
    "kept_headers",
    "merge_vary",
    "plain_text_details",
]

#: Headers of the app's response that the envelope keeps (lower-case).
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


class Action(enum.Enum):
    PASS = "pass"  # noqa: S105 -- send the app's response untouched
    REPLACE = "replace"  # drop the app's body, send the envelope
    INSPECT = "inspect"  # buffer a short body to see whether it can become details


class RewritePolicy:
    def __init__(self, *, pass_json_errors: bool = True, max_error_body: int = 65536) -> None:
        if max_error_body < 0:
            raise ValueError("max_error_body must be 0 or more bytes")
        self.pass_json_errors = pass_json_errors
        self.max_error_body = max_error_body

    def decide(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> Action:
        if status < 400:
            return Action.PASS
        content_type = b""
        encoded = False
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"content-type":
                content_type = value.partition(b";")[0].strip().lower()
            elif lowered == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
                encoded = True
        if self.pass_json_errors and _is_json(content_type):
            return Action.PASS
        if encoded or status >= 500:
            # Never parse compressed bodies; never carry a 5xx body anywhere.
            return Action.REPLACE
        if content_type == b"text/plain" and self.max_error_body > 0:
            return Action.INSPECT
        return Action.REPLACE


def _is_json(content_type: bytes) -> bool:
    return content_type == b"application/json" or (
        content_type.startswith(b"application/") and content_type.endswith(b"+json")
    )


def kept_headers(
    headers: Iterable[tuple[bytes, bytes]], *, extra: frozenset[bytes] = frozenset()
) -> list[tuple[bytes, bytes]]:
    """The app's headers the envelope carries on; names lower-cased. ``Vary`` is merged later."""
    kept: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered in KEPT_HEADERS or lowered in extra or lowered.startswith(_KEPT_PREFIXES):
            kept.append((lowered, value))
    return kept


def plain_text_details(body: bytes, *, limit: int = 300) -> str | None:
    """A short single-line UTF-8 text a 4xx body said, fit for ``details``; None otherwise."""
    text = body.strip()
    if not text or len(text) > limit or b"\n" in text or b"\r" in text:
        return None
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in decoded) or "<" in decoded:
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

