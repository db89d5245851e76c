"""The Basic scheme (RFC 7617): parse credentials, render the challenge, verify a password."""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from proxygate._http import is_token, quote_string, split_authorization
from proxygate.auth.schemes.base import MalformedCredentials, Scheme, Verdict
from proxygate.auth.users import UserSource

if TYPE_CHECKING:
    from proxygate.errors.handler import RequestHead

__all__ = ["BasicChallenge", "BasicCredentials", "BasicScheme", "MalformedCredentials"]

_CONTROL = re.compile("[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class BasicCredentials:
    username: str
    password: str

    def __repr__(self) -> str:
        return f"BasicCredentials(username={self.username!r}, password=<redacted>)"

    @classmethod
    def from_header(cls, value: bytes) -> BasicCredentials | None:
        """Parse a credentials header value.

        Returns None when the value names another scheme (the gate treats that
        like missing credentials); raises :class:`MalformedCredentials` when it
        is Basic but broken: bad or padded-wrong base64, trailing garbage, no
        colon, invalid UTF-8, control characters, an empty user name.
        """
        scheme = value.lstrip(b" \t").partition(b" ")[0]
        if is_token(scheme) and scheme.lower() != b"basic":
            return None
        parts = split_authorization(value)
        if parts is None:
            raise MalformedCredentials("not 'Basic <token68>'")
        token = parts[1]
        if len(token) % 4:
            # binascii's strict mode still accepts "=" after a complete quantum
            # ("dXNlcjpwYXNz="): canonical base64 comes in whole 4-character groups.
            raise MalformedCredentials("invalid base64")
        try:
            decoded = binascii.a2b_base64(token, strict_mode=True)
        except (binascii.Error, ValueError):
            raise MalformedCredentials("invalid base64") from None
        try:
            text = decoded.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedCredentials("credentials are not UTF-8") from None
        username, colon, password = text.partition(":")
        if not colon:
            raise MalformedCredentials("no colon between user and password")
        if not username:
            raise MalformedCredentials("empty user name")
        if _CONTROL.search(text):
            raise MalformedCredentials("control character in credentials")
        return cls(username, password)

    def to_header(self) -> bytes:
        raw = f"{self.username}:{self.password}".encode()
        return b"Basic " + binascii.b2a_base64(raw, newline=False)


@dataclass(frozen=True, slots=True)
class BasicChallenge:
    realm: str

    def __post_init__(self) -> None:
        # Refuse rather than escape: a realm with quotes or backslashes is almost
        # always a configuration slip, and many clients unescape it wrongly.
        if any(ch in self.realm for ch in '"\\') or any(
            ord(ch) < 0x20 or ord(ch) == 0x7F for ch in self.realm
        ):
            raise ValueError(
                f"realm {self.realm!r} contains a quote, backslash or control character; "
                "choose a realm of plain printable text"
            )

    def to_header(self) -> bytes:
        # Header values are Latin-1 on the wire; a non-Latin-1 realm is refused at config time.
        return f"Basic realm={quote_string(self.realm)}, charset=\"UTF-8\"".encode("latin-1")


class BasicScheme(Scheme[BasicCredentials]):
    """Basic over a user source: a password hash per uncached check, so it blocks."""

    name = "basic"
    label = "Basic"
    cacheable = True
    hashes = True
    blocking = True

    def __init__(self, realm: str, users: UserSource) -> None:
        self.users = users
        self.is_async = users.is_async
        self._challenge = BasicChallenge(realm).to_header()

    def __repr__(self) -> str:
        return f"BasicScheme({self.users!r})"

    def parse(self, value: bytes) -> BasicCredentials:
        parsed = BasicCredentials.from_header(value)
        if parsed is None:  # the gate matched the scheme name first: cannot happen
            raise MalformedCredentials("not Basic credentials")
        return parsed

    def challenges(self, *, stale: bool = False, rejected: bool = False) -> list[bytes]:
        return [self._challenge]

    def username(self, credentials: BasicCredentials) -> str | None:
        return credentials.username

    def verify(self, credentials: BasicCredentials, head: RequestHead) -> Verdict:
        return self.verdict(credentials.username,
                            self.users.verify(credentials.username, credentials.password))

    async def averify(self, credentials: BasicCredentials, head: RequestHead) -> Verdict:
        return self.verdict(credentials.username,
                            await self.users.averify(credentials.username, credentials.password))

    def verdict(self, username: str, matched: str | None) -> Verdict:
        """The verdict for a source's answer. A directory may know the user by another
        spelling (``ALICE`` logs in as ``alice``): that is the identity, while the cache
        keeps asking the source about the name as sent."""
        if matched is not None:
            known_as: str = getattr(matched, "username", username)
            return Verdict(known_as, pin=matched, who=username)
        known = self.users.current_hash(username) is not None
        return Verdict(None, reason="bad_password" if known else "unknown_user")

    def current(self, who: str) -> str | None:
        return self.users.current_hash(who)

    def pin_lookup(self) -> Callable[[str], str | None]:
        return self.users.current_hash
