"""What the gate asks of a scheme: parse a credential, render its challenges, verify."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from proxygate._http import is_token

if TYPE_CHECKING:
    from proxygate.errors.handler import RequestHead

__all__ = ["MalformedCredentials", "Scheme", "Verdict", "scheme_token"]

C = TypeVar("C")

Headers = tuple[tuple[bytes, bytes], ...]


class MalformedCredentials(ValueError):
    """Credentials that break their scheme's grammar. The message says what, never the value."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What verifying one credential found.

    ``username`` is set on success only. ``pin`` is what a cached success must still
    match (the stored hash it was checked against); None means "never cache this".
    ``reason`` names a failure for the audit log (``bad_password``, ``unknown_user``,
    ``stale_nonce``, ``replay``, ``invalid_token``, ...). ``stale`` asks for a fresh
    Digest challenge with ``stale=true`` and counts no failure: the client did nothing
    wrong. ``bad_request`` answers 400 instead of a challenge. ``unavailable`` means a
    store the check needs is down: 503, no failure counted. ``headers`` go on the
    response of a success (``Authentication-Info``).
    """

    username: str | None
    pin: str | None = None
    #: Whom ``Scheme.current`` is asked about for a cached success, when that is not
    #: ``username``: the name as sent, where a directory answered with its own spelling.
    who: str | None = None
    reason: str = "bad_password"
    stale: bool = False
    bad_request: bool = False
    unavailable: bool = False
    headers: Headers = ()

    def __repr__(self) -> str:  # the pin is a stored hash: never shown
        return f"Verdict(username={self.username!r}, reason={self.reason!r})"


class Scheme(ABC, Generic[C]):
    """One authentication scheme. The gate holds a list of them and knows none by name.

    ``name`` is the lower-cased auth-scheme token credentials are matched on; ``label``
    its canonical spelling (``Identity.scheme``, ``AUTH_TYPE``). ``cacheable``: the same
    header value succeeds again as long as ``current(who)`` still returns the pin
    (Basic; never Digest, whose every header is new). ``hashes``: verification runs a
    password hash, so it takes a place in the hash budget and runs on the hash threads.
    ``blocking``: verification may block otherwise (a network store, a callable), so the
    ASGI shell runs it in a worker thread. ``is_async``: it must be awaited (:meth:`averify`).
    """

    name: str
    label: str
    cacheable: bool = False
    hashes: bool = False
    blocking: bool = False
    is_async: bool = False

    @abstractmethod
    def parse(self, value: bytes) -> C:
        """The credentials in a header value naming this scheme; MalformedCredentials if broken."""

    @abstractmethod
    def challenges(self, *, stale: bool = False, rejected: bool = False) -> list[bytes]:
        """The challenge field values, one per line. ``stale``: a Digest nonce ran out;
        ``rejected``: this scheme's credentials were sent and refused (Bearer's
        ``error="invalid_token"``)."""

    @abstractmethod
    def username(self, credentials: C) -> str | None:
        """Who the credentials claim to be, for the per-user throttle and the audit log."""

    @abstractmethod
    def verify(self, credentials: C, head: RequestHead) -> Verdict:
        """Check the credentials. Never raises for anything a client can send."""

    async def averify(self, credentials: C, head: RequestHead) -> Verdict:
        return self.verify(credentials, head)

    def current(self, who: str) -> str | None:
        """What a cached success of ``who`` must still match; only cacheable schemes need it."""
        return None

    def pin_lookup(self) -> Callable[[str], str | None]:
        """The function a cache hit calls for :meth:`current`: a scheme may hand over its
        source's own method, so a cached request pays no call of ours on top."""
        return self.current


def scheme_token(value: bytes) -> bytes | None:
    """The lower-cased auth-scheme a credentials header value starts with; None if it is no token."""
    scheme = value.lstrip(b" \t").partition(b" ")[0]
    return scheme.lower() if is_token(scheme) else None
