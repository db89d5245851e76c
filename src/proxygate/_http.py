"""HTTP grammar shared by every room: tokens, quoted-strings, auth headers, reasons, Accept."""

from __future__ import annotations

import http
import re
from functools import cache, lru_cache

__all__ = [
    "AuthParamError",
    "is_token",
    "parse_accept",
    "parse_auth_params",
    "preferred_media_type",
    "quote_string",
    "reason_phrase",
    "split_absolute_target",
    "split_authorization",
]

# RFC 9110 §5.6.2: token = 1*tchar; tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" /
# "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 §11.2: token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_TOKEN68 = re.compile(rb"[\-._~+/0-9A-Za-z]+=*")


def is_token(value: bytes) -> bool:
    return _TOKEN.fullmatch(value) is not None


def quote_string(value: str) -> str:
    """Render ``value`` as an RFC 9110 quoted-string. CR, LF and other controls cannot be quoted."""
    if any((ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F for ch in value):
        raise ValueError("a quoted-string cannot contain control characters (CR, LF, ...)")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_authorization(value: bytes) -> tuple[bytes, bytes] | None:
    """Split ``<scheme> <token68>`` into (lower-cased scheme, token68).

    Returns None for anything else: an empty value, a bare scheme, a scheme
    that is not a token, auth-param lists, several comma-joined credentials.
    """
    scheme, sep, rest = value.strip(b" \t").partition(b" ")
    if not sep or not is_token(scheme):
        return None
    credentials = rest.lstrip(b" ")
    if _TOKEN68.fullmatch(credentials) is None:
        return None
    return scheme.lower(), credentials


class AuthParamError(ValueError):
    """An auth-param list that breaks RFC 9110 §11.2. The message says where, never a value."""


_TOKEN_RE = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"  # noqa: S105 -- a token pattern
# One auth-param and the OWS around it: token BWS "=" BWS ( token / quoted-string ).
# qdtext and quoted-pair admit HTAB, SP, VCHAR and obs-text (the text is Latin-1).
_AUTH_PARAM = re.compile(
    r"[ \t]*(" + _TOKEN_RE + r")[ \t]*=[ \t]*(?:(" + _TOKEN_RE + r")|"
    # The quoted-string as an unrolled loop (runs of qdtext between quoted-pairs): one
    # character class per run instead of an alternation per character, ~10x faster.
    r'"([\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]*'
    r'(?:\\[\t\x20-\x7e\x80-\xff][\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]*)*)")[ \t]*'
)
_LIST_GAP = re.compile(r"[ \t]*(?:,[ \t]*)*")
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


def parse_auth_params(text: str) -> dict[str, str]:
    """Parse an auth-param list (``a=b, c="d \\"e\\""``) into ``{lower-cased name: value}``.

    ``text`` is the header value after the scheme, decoded as Latin-1 (lossless). Empty list
    elements are skipped (RFC 9110 §5.6.1); a parameter named twice, a name that is not a
    token, a value that is neither a token nor a well-formed quoted-string, a control
    character or a missing comma is :class:`AuthParamError`.
    """
    params: dict[str, str] = {}
    end = len(text)
    position = _LIST_GAP.match(text).end()  # type: ignore[union-attr]  # matches the empty string
    while position < end:
        found = _AUTH_PARAM.match(text, position)
        if found is None:
            raise AuthParamError(f"malformed auth-param at offset {position}")
        name, token, quoted = found.groups()
        name = name.lower()
        if name in params:
            raise AuthParamError(f"parameter {name!r} is given twice")
        if token is not None:
            params[name] = token
        else:
            params[name] = _QUOTED_PAIR.sub(r"\1", quoted) if "\\" in quoted else quoted
        position = found.end()
        if position < end and text[position] != ",":
            raise AuthParamError(f"expected ',' after parameter {name!r}")
        position = _LIST_GAP.match(text, position).end()  # type: ignore[union-attr]
    return params


@cache
def reason_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        if 400 <= status < 500:
            return "Client Error"
        if 500 <= status < 600:
            return "Server Error"
        return "Unknown Status"


def parse_accept(value: str) -> list[tuple[str, float]]:
    """Media ranges with their q-values, in header order. Bad q-values count as q=0."""
    ranges: list[tuple[str, float]] = []
    for item in value.split(","):
        media, *params = item.split(";")
        media = media.strip().lower()
        if not media:
            continue
        quality = 1.0
        for param in params:
            name, _, raw = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(raw.strip())
                except ValueError:
                    quality = 0.0
                if not 0.0 <= quality <= 1.0:
                    quality = 0.0
        ranges.append((media, quality))
    return ranges


def _match_quality(ranges: list[tuple[str, float]], offer: str) -> tuple[float, int]:
    """The q-value the most specific matching range gives ``offer``, and that specificity."""
    kind, _, _sub = offer.partition("/")
    best = (0.0, -1)
    for media, quality in ranges:
        if media == offer:
            specificity = 2
        elif media == kind + "/*":
            specificity = 1
        elif media == "*/*":
            specificity = 0
        else:
            continue
        if specificity > best[1]:
            best = (quality, specificity)
    return best


@lru_cache(maxsize=256)
def preferred_media_type(accept: str, offers: tuple[str, ...]) -> str:
    """The offer the client prefers (RFC 9110 §12.5.1); the first offer on ties or no match.

    Cached by header value: clients send a handful of distinct Accept headers.
    """
    if not accept:
        return offers[0]
    ranges = parse_accept(accept)
    best_offer, best_q = offers[0], -1.0
    for offer in offers:
        quality, specificity = _match_quality(ranges, offer)
        if specificity >= 0 and quality > best_q:
            best_offer, best_q = offer, quality
    if best_q <= 0.0:
        return offers[0]
    return best_offer


def split_absolute_target(target: str) -> tuple[str, str, str] | None:
    """Split an absolute-form request target (RFC 9112 §3.2.2) into (host, path, query).

    ``http://example.com:8080/a/b?q=1`` → ``("example.com:8080", "/a/b", "q=1")``.
    Returns None when ``target`` is not absolute-form.
    """
    lowered = target[:8].lower()
    if lowered.startswith("http://"):
        rest = target[7:]
    elif lowered.startswith("https://"):
        rest = target[8:]
    else:
        return None
    authority_end = len(rest)
    for sep in "/?#":
        found = rest.find(sep)
        if found != -1 and found < authority_end:
            authority_end = found
    authority, remainder = rest[:authority_end], rest[authority_end:]
    if "@" in authority:
        # userinfo is deprecated in http(s) URIs (RFC 9110 §4.2.4); never pass it on.
        authority = authority.rpartition("@")[2]
    remainder = remainder.partition("#")[0]
    path, _, query = remainder.partition("?")
    return authority, path or "/", query
