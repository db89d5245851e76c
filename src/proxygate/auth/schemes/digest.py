"""The Digest scheme (RFC 7616): parse a response, render challenges, verify without a password hash.

A Digest check is HMAC and digest arithmetic, no password hash: the nonce's tag, then
``KD(HA1, nonce:nc:cnonce:qop:H(method:uri))`` against the stored ``HA1``. Replays of
an accepted ``(nonce, nc, cnonce)`` are refused while the nonce lives.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, unquote_to_bytes

from proxygate._http import AuthParamError, parse_auth_params, quote_string, split_absolute_target
from proxygate.auth.digest_file import _HEX_LENGTH, DigestSource, canonical_algorithm, hash_hex
from proxygate.auth.nonces import Nonces, NonceState, ReplayGuard, replay_key
from proxygate.auth.schemes.base import MalformedCredentials, Scheme, Verdict, scheme_token

if TYPE_CHECKING:
    from proxygate.errors.handler import RequestHead

__all__ = ["DigestChallenge", "DigestCredentials", "DigestScheme"]

logger = logging.getLogger("proxygate.auth")

#: Longest nonce, cnonce, uri or user name believed: bounds what a replay key or a
#: hash input can be made to cost.
_MAX_VALUE = 4096
_HEX = frozenset("0123456789abcdefABCDEF")
_ATTR_CHAR = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&+-.^_`|~"
)


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """A Digest ``Authorization`` / ``Proxy-Authorization`` value, parsed and checked for form.

    ``username`` is the name as sent (``H(user:realm)`` in hex when ``userhash``),
    from ``username`` or, for names a quoted-string cannot carry, ``username*``
    (RFC 8187). ``algorithm`` is canonical (``SHA-256``).
    """

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str
    nc: str
    cnonce: str
    qop: str = "auth"
    userhash: bool = False
    opaque: str | None = None
    extended: bool = False  # the name came as username*

    def __repr__(self) -> str:
        return (f"DigestCredentials(username={self.username!r}, realm={self.realm!r}, "
                f"algorithm={self.algorithm!r}, response=<redacted>)")

    @classmethod
    def from_header(cls, value: bytes) -> DigestCredentials:
        """Parse ``Digest k=v, ...``; :class:`MalformedCredentials` for anything off."""
        if scheme_token(value) != b"digest":
            raise MalformedCredentials("not Digest credentials")
        text = value.decode("latin-1").strip(" \t")[len("digest"):]
        if text and text[0] not in " \t":
            raise MalformedCredentials("no space after 'Digest'")
        try:
            params = parse_auth_params(text)
        except AuthParamError as exc:
            raise MalformedCredentials(str(exc)) from None
        if any(len(v) > _MAX_VALUE for v in params.values()):
            raise MalformedCredentials("a parameter is too long")
        missing = [k for k in ("realm", "nonce", "uri", "response", "qop", "nc", "cnonce")
                   if k not in params]
        if missing:
            raise MalformedCredentials(f"missing {', '.join(missing)}")
        algorithm = canonical_algorithm(params.get("algorithm", "MD5"))
        if algorithm is None:
            raise MalformedCredentials("unsupported algorithm")
        if params["qop"].lower() != "auth":
            raise MalformedCredentials("qop must be auth")
        nc = params["nc"]
        if len(nc) != 8 or not set(nc) <= _HEX:
            raise MalformedCredentials("nc must be 8 hex digits")
        response = params["response"].lower()
        if len(response) != _HEX_LENGTH[algorithm] or not set(response) <= _HEX:
            raise MalformedCredentials("response is not a hex digest of the algorithm")
        if not params["cnonce"] or not params["nonce"] or not params["uri"]:
            raise MalformedCredentials("empty nonce, cnonce or uri")
        userhash = params.get("userhash", "false").lower()
        if userhash not in ("true", "false"):
            raise MalformedCredentials("userhash must be true or false")
        if ("username" in params) == ("username*" in params):
            raise MalformedCredentials("exactly one of username and username* is required")
        extended = "username*" in params
        username = (_ext_value(params["username*"]) if extended
                    else _utf8(params["username"], "username"))
        if not username or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in username):
            raise MalformedCredentials("empty user name or a control character in it")
        return cls(username=username, realm=_utf8(params["realm"], "realm"),
                   nonce=params["nonce"], uri=params["uri"], response=response,
                   algorithm=algorithm, nc=nc, cnonce=params["cnonce"], qop="auth",
                   userhash=userhash == "true", opaque=params.get("opaque"), extended=extended)

    def to_header(self) -> bytes:
        """The header value a client would send; ``from_header(to_header())`` gives it back."""
        if self.extended:
            user = "username*=UTF-8''" + quote(self.username, safe="".join(sorted(_ATTR_CHAR)))
        else:
            user = "username=" + quote_string(self.username)
        parts = [user, f"realm={quote_string(self.realm)}", f"nonce={quote_string(self.nonce)}",
                 f"uri={quote_string(self.uri)}", f"algorithm={self.algorithm}",
                 f"response={quote_string(self.response)}", f"qop={self.qop}",
                 f"nc={self.nc}", f"cnonce={quote_string(self.cnonce)}"]
        if self.userhash:
            parts.append("userhash=true")
        if self.opaque is not None:
            parts.append(f"opaque={quote_string(self.opaque)}")
        return ("Digest " + ", ".join(parts)).encode("utf-8")


def _utf8(value: str, what: str) -> str:
    """A quoted-string's Latin-1 text read as the UTF-8 the challenge's charset asked for."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedCredentials(f"{what} is not UTF-8") from None


def _ext_value(value: str) -> str:
    """RFC 8187 ``UTF-8'lang'pct-encoded``: UTF-8 only, strict percent-encoding."""
    charset, sep1, rest = value.partition("'")
    _language, sep2, encoded = rest.partition("'")
    if not sep1 or not sep2 or charset.lower() != "utf-8":
        raise MalformedCredentials("username* must be UTF-8''<percent-encoded>")
    i = 0
    while i < len(encoded):
        ch = encoded[i]
        if ch == "%":
            pair = encoded[i + 1:i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                raise MalformedCredentials("bad percent-encoding in username*")
            i += 3
        elif ch in _ATTR_CHAR:
            i += 1
        else:
            raise MalformedCredentials("username* holds a character it must percent-encode")
    try:
        return unquote_to_bytes(encoded).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedCredentials("username* is not UTF-8") from None


@dataclass(frozen=True, slots=True)
class DigestChallenge:
    """One ``Digest`` challenge line (one algorithm)."""

    realm: str
    nonce: str
    algorithm: str = "SHA-256"
    stale: bool = False
    userhash: bool = True

    def to_header(self) -> bytes:
        value = (f"Digest realm={quote_string(self.realm)}, qop=\"auth\", "
                 f"algorithm={self.algorithm}, nonce={quote_string(self.nonce)}, charset=UTF-8")
        if self.userhash:
            value += ", userhash=true"
        if self.stale:
            value += ", stale=true"
        return value.encode("latin-1")


class DigestScheme(Scheme[DigestCredentials]):
    """Digest over a :class:`~proxygate.auth.digest_file.DigestSource`."""

    name = "digest"
    label = "Digest"
    cacheable = False  # every request carries a new nc/cnonce: nothing to find again

    def __init__(self, realm: str, users: DigestSource, *, algorithms: tuple[str, ...],
                 nonces: Nonces, replays: ReplayGuard, info_header: bytes) -> None:
        self.realm = realm
        self.users = users
        self.algorithms = algorithms
        self.nonces = nonces
        self.replays = replays
        self.blocking = bool(replays.blocking)
        self._info_header = info_header
        # The work of an unknown user: a response computed from a random HA1.
        self._dummy = {alg: secrets.token_hex(_HEX_LENGTH[alg] // 2) for alg in algorithms}

    def __repr__(self) -> str:
        return f"DigestScheme({self.users!r}, algorithms={self.algorithms!r})"

    def parse(self, value: bytes) -> DigestCredentials:
        return DigestCredentials.from_header(value)

    def challenges(self, *, stale: bool = False, rejected: bool = False) -> list[bytes]:
        # One nonce for every line: each line is valid on its own, whichever a client answers
        # (curl, httpx and urllib take the first, requests the last).
        nonce = self.nonces.issue()
        return [DigestChallenge(self.realm, nonce, alg, stale).to_header()
                for alg in self.algorithms]

    def username(self, credentials: DigestCredentials) -> str | None:
        # A hashed name is not a name: the per-user throttle counts the resolved one.
        if credentials.userhash:
            return self.users.digest_user(credentials.username, credentials.algorithm)
        return credentials.username

    def verify(self, credentials: DigestCredentials, head: RequestHead) -> Verdict:
        c = credentials
        if c.algorithm not in self.algorithms or c.realm != self.realm:
            return Verdict(None, reason="malformed")
        if not names_request(c.uri, head):
            return Verdict(None, reason="uri_mismatch", bad_request=True)
        state, left = self.nonces.check(c.nonce)
        if state is NonceState.INVALID:
            return Verdict(None, reason="bad_nonce")
        user = self.username(c)
        ha1 = self.users.digest_ha1(user, c.algorithm) if user is not None else None
        ha2 = hash_hex(c.algorithm, f"{head.method}:{c.uri}")
        expected = hash_hex(c.algorithm, f"{ha1 or self._dummy[c.algorithm]}:{c.nonce}:{c.nc}:"
                                         f"{c.cnonce}:{c.qop}:{ha2}")
        if not hmac.compare_digest(expected, c.response) or ha1 is None or user is None:
            return Verdict(None, reason="bad_password" if ha1 is not None else "unknown_user")
        if state is NonceState.STALE:
            return Verdict(None, reason="stale_nonce", stale=True)
        try:
            first = self.replays.first_use(replay_key(c.nonce, c.nc, c.cnonce), ttl=left + 1)
        except Exception:
            logger.error("the Digest replay store is unavailable; refusing with 503",
                         exc_info=True)
            return Verdict(None, reason="store_unavailable", unavailable=True)
        if not first:
            return Verdict(None, reason="replay")
        headers: tuple[tuple[bytes, bytes], ...] = ()
        if left < self.nonces.ttl / 2:
            # Past half its life: hand over the next nonce now, so a client that reads
            # Authentication-Info never meets a stale round trip.
            next_nonce = self.nonces.issue()
            headers = ((self._info_header, f'nextnonce="{next_nonce}"'.encode("ascii")),)
        return Verdict(user, headers=headers)


def names_request(uri: str, head: RequestHead) -> bool:
    """Whether a Digest ``uri`` names the request: a path (curl) or an absolute URL (urllib
    through a proxy), with the query, compared decoded with the request's own."""
    if uri.startswith("/"):
        path, _, query = uri.partition("?")
    else:
        split = split_absolute_target(uri)
        if split is None:
            return False
        _host, path, query = split
    if unquote(path) != head.path and unquote_to_bytes(path).decode("latin-1") != head.path:
        return False
    known: str | bytes | None = getattr(head, "query", None)
    if isinstance(known, bytes):
        known = known.decode("latin-1")
    return known is None or known == query
