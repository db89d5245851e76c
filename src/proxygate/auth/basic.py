"""The Basic scheme (RFC 7617): parse credentials, render the challenge."""

from __future__ import annotations

import binascii
from dataclasses import dataclass

from proxygate._http import is_token, quote_string, split_authorization

__all__ = ["BasicChallenge", "BasicCredentials", "MalformedCredentials"]


class MalformedCredentials(ValueError):
    """Credentials that do not follow RFC 7617. The message says what, never the value."""


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
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
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
