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
            return _PASS  # 1xx, 2xx, 3xx: never touched, never buffered
        kind = _OTHER
        encoded = False
        for name, value in headers:
            # The exact lower-case names first: ASGI sends no other kind, and it spares a
            # lower() per header. WSGI and Django names may be any case: lower them then.
            if name == b"content-type":
                kind = _kind_of(value)
            elif name == b"content-length":
                continue
            elif name == b"content-encoding":
                encoded = encoded or _is_encoded(value)
            else:
                lowered = name.lower()
                if lowered == b"content-type":
                    kind = _kind_of(value)
                elif lowered == b"content-encoding":
                    encoded = encoded or _is_encoded(value)
        can_read = self.max_error_body > 0 and not encoded
        if kind is _JSON or kind is _PROBLEM_JSON:
            if self.pass_json_errors and status < 500:
                return _PASS
            # Read to normalize (4xx) or to recognise our own envelope (5xx: nothing else
            # in it is ever shown); a compressed body is never parsed, just replaced.
            return _INSPECT if can_read else _REPLACE
        if status >= 500 or not can_read:
            return _REPLACE  # 5xx text never reaches a client; compressed text is not parsed
        if kind is _TEXT_PLAIN:
            return _INSPECT
        return _REPLACE  # HTML and everything else: replaced unread


# Enum members read once: ``Action.PASS`` costs ~35 ns more than a module global.
_PASS, _REPLACE, _INSPECT = Action.PASS, Action.REPLACE, Action.INSPECT

# What a Content-Type value means to decide(): one of these sentinels, remembered per value.
_PROBLEM_JSON = "problem+json"
_JSON = "json"
_TEXT_PLAIN = "text/plain"
_OTHER = "other"
#: Distinct Content-Type values remembered; apps send a handful.
_TYPES_REMEMBERED = 256
_KINDS: dict[bytes, str] = {}


def _kind_of(content_type: bytes) -> str:
    """What a Content-Type value is, by its media type: ~20 ns for a value seen before,
    against ~160 for parsing it again."""
    try:
        kind = _KINDS.get(content_type)
    except TypeError:  # a bytearray, say: fine to read, not to remember
        return _classify(media_type(content_type))
    if kind is None:
        kind = _classify(media_type(content_type))
        if len(_KINDS) >= _TYPES_REMEMBERED:
            _KINDS.clear()
        _KINDS[content_type] = kind
    return kind


def _classify(media: bytes) -> str:
    if media == b"application/problem+json":
        return _PROBLEM_JSON
    if _is_json(media):
        return _JSON
    if media == b"text/plain":
        return _TEXT_PLAIN
    return _OTHER  # HTML, none at all, anything else


def _is_encoded(content_encoding: bytes) -> bool:
    return content_encoding.strip().lower() not in (b"", b"identity")


def media_type(content_type: bytes) -> bytes:
    """``text/plain; charset=utf-8`` -> ``text/plain``."""
    try:
        found = _MEDIA_TYPES.get(content_type)
    except TypeError:  # a bytearray, say: fine to read, not to remember
        return content_type.partition(b";")[0].strip().lower()
    if found is None:
        found = content_type.partition(b";")[0].strip().lower()
        if len(_MEDIA_TYPES) >= _TYPES_REMEMBERED:
            _MEDIA_TYPES.clear()
        _MEDIA_TYPES[content_type] = found
    return found


#: Content-Type value -> media type: apps send a handful of values, and a hit costs ~20 ns
#: against ~65 for splitting, stripping and lowering the value again.
_MEDIA_TYPES: dict[bytes, bytes] = {}


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

    ``drop`` names one kept header to leave out after all (the request id header, which
    the envelope sets itself).
    """
    kept: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        try:
            lowered = _KEPT_NAMES[name]
        except KeyError:
            lowered = _kept_name(name)
            if len(_KEPT_NAMES) >= _NAMES_REMEMBERED:
                _KEPT_NAMES.clear()
            _KEPT_NAMES[name] = lowered
        if lowered is None:
            if not extra:
                continue
            lowered = name.lower()
            if lowered not in extra:
                continue
        if lowered != drop:
            kept.append((lowered, value))
    return kept


#: A header name as the app sent it -> its lower-case form when the envelope keeps it, None
#: when not (``extra`` aside). Apps send a few dozen names; a hit costs ~20 ns a header
#: against ~100 for lowering and testing the name again.
_KEPT_NAMES: dict[bytes, bytes | None] = {}
_NAMES_REMEMBERED = 512


def _kept_name(name: bytes) -> bytes | None:
    lowered = name.lower()
    return lowered if lowered in KEPT_HEADERS or lowered.startswith(_KEPT_PREFIXES) else None


def plain_text_details(body: bytes, *, limit: int = 300) -> str | None:
    """A short single-line UTF-8 text a 4xx body said, fit for ``details``; None otherwise."""
    text = body.strip()
    if not text or len(text) > limit:
        return None
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        return None
    # isprintable() refuses every control character (CR and LF, so a second line, included)
    # and other invisibles in one C pass; ``b"\n" in text`` alone cost ~100 ns.
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
