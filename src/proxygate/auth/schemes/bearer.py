"""The Bearer scheme (RFC 6750): a token in the credentials header, checked against a token source.

Only the header is read: a token in the query string (``access_token=``) or a form body
is never looked at. ``error="invalid_token"`` goes out only when a token was sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from proxygate._http import quote_string, split_authorization
from proxygate.auth.schemes.base import MalformedCredentials, Scheme, Verdict
from proxygate.auth.tokens import TokenSource

if TYPE_CHECKING:
    from proxygate.errors.handler import RequestHead

__all__ = ["BearerCredentials", "BearerScheme"]


@dataclass(frozen=True, slots=True)
class BearerCredentials:
    token: str

    def __repr__(self) -> str:
        return "BearerCredentials(token=<redacted>)"

    @classmethod
    def from_header(cls, value: bytes) -> BearerCredentials:
        """``Bearer <b64token>`` (RFC 6750 §2.1); MalformedCredentials for anything else."""
        parts = split_authorization(value)
        if parts is None or parts[0] != b"bearer":
            raise MalformedCredentials("not 'Bearer <token>'")
        return cls(parts[1].decode("ascii"))

    def to_header(self) -> bytes:
        return b"Bearer " + self.token.encode("ascii")


class BearerScheme(Scheme[BearerCredentials]):
    name = "bearer"
    label = "Bearer"

    def __init__(self, realm: str, tokens: TokenSource) -> None:
        self.tokens = tokens
        self.is_async = tokens.is_async
        self.blocking = tokens.blocking
        quoted = quote_string(realm)
        self._challenge = f"Bearer realm={quoted}".encode("latin-1")
        self._rejected = f'Bearer realm={quoted}, error="invalid_token"'.encode("latin-1")

    def __repr__(self) -> str:
        return f"BearerScheme({self.tokens!r})"

    def parse(self, value: bytes) -> BearerCredentials:
        return BearerCredentials.from_header(value)

    def challenges(self, *, stale: bool = False, rejected: bool = False) -> list[bytes]:
        return [self._rejected if rejected else self._challenge]

    def username(self, credentials: BearerCredentials) -> str | None:
        return None  # a token names nobody until it is found

    def verify(self, credentials: BearerCredentials, head: RequestHead) -> Verdict:
        return _verdict(self.tokens.lookup(credentials.token))

    async def averify(self, credentials: BearerCredentials, head: RequestHead) -> Verdict:
        return _verdict(await self.tokens.alookup(credentials.token))


def _verdict(name: str | None) -> Verdict:
    return Verdict(name) if name is not None else Verdict(None, reason="invalid_token")
