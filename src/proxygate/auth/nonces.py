"""Digest nonces that need no server state, and the memory of (nonce, nc, cnonce) triples seen.

A nonce is ``base64url(issued-at ms | 8 random bytes | HMAC-SHA256 tag)``: any worker or
host holding the same ``nonce_secret`` accepts it, and its age is read from the nonce
itself. Only replays need memory, and only of triples already accepted, for as long as
their nonce lives.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import secrets
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["MAX_CLOCK_SKEW", "MemoryReplayGuard", "NonceState", "Nonces", "ReplayGuard",
           "replay_key"]

#: How far in the future a nonce's issue time may lie: hosts sharing a secret have clocks
#: that agree only so well. A minute is generous for NTP and far below any useful replay.
MAX_CLOCK_SKEW = 60.0
_CONTEXT = b"proxygate digest nonce\x00"
_TAG = 16
_RANDOM = 8
_LENGTH = 8 + _RANDOM + _TAG


class NonceState(enum.Enum):
    VALID = "valid"
    STALE = "stale"  # genuine, but older than nonce_ttl
    INVALID = "invalid"  # not ours: forged, mangled, from another secret or realm


class Nonces:
    """Issues and checks nonces under one secret, for one realm."""

    def __init__(self, secret: bytes, *, realm: str, ttl: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._key = hmac.new(secret, _CONTEXT + realm.encode("utf-8") + b"\x00", hashlib.sha256)
        self.ttl = ttl
        self._clock = clock

    def __repr__(self) -> str:
        return f"Nonces(ttl={self.ttl})"

    def _tag(self, body: bytes) -> bytes:
        mac = self._key.copy()
        mac.update(body)
        return mac.digest()[:_TAG]

    def issue(self) -> str:
        body = struct.pack(">Q", int(self._clock() * 1000)) + secrets.token_bytes(_RANDOM)
        return base64.urlsafe_b64encode(body + self._tag(body)).rstrip(b"=").decode("ascii")

    def check(self, nonce: str) -> tuple[NonceState, float]:
        """The nonce's state and the seconds it has left to live (0 unless VALID)."""
        issued = self.issued_at(nonce)
        if issued is None:
            return NonceState.INVALID, 0.0
        now = self._clock()
        if issued > now + MAX_CLOCK_SKEW:
            return NonceState.INVALID, 0.0
        left = issued + self.ttl - now
        if left <= 0:
            return NonceState.STALE, 0.0
        return NonceState.VALID, left

    def issued_at(self, nonce: str) -> float | None:
        """When a genuine nonce was issued (epoch seconds); None for anything else."""
        if len(nonce) != 43:  # base64 of 32 bytes, unpadded
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce + "=")
        except (binascii.Error, ValueError):
            return None
        if len(raw) != _LENGTH or base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != nonce:
            return None  # only the one canonical spelling of each nonce
        body, tag = raw[:-_TAG], raw[-_TAG:]
        if not hmac.compare_digest(tag, self._tag(body)):
            return None
        (millis,) = struct.unpack(">Q", body[:8])
        return float(millis) / 1000


@runtime_checkable
class ReplayGuard(Protocol):
    """Remembers keys for a while. ``blocking``: calls do I/O (run them off the event loop)."""

    blocking: bool

    def first_use(self, key: str, *, ttl: float) -> bool:
        """Record ``key`` for ``ttl`` seconds; True if it was not recorded already. Atomic."""
        ...


def replay_key(nonce: str, nc: str, cnonce: str) -> str:
    """A short fixed-size key for the triple: cnonce is client-chosen and may be long."""
    digest = hashlib.blake2s(f"{nonce}\x00{nc.lower()}\x00{cnonce}".encode(), digest_size=16)
    return "r:" + digest.hexdigest()


class MemoryReplayGuard:
    """Per-process replay memory, bounded: expired keys go first, then the oldest.

    Only triples whose digest was right are recorded, so filling it takes valid
    credentials. ``max_keys`` bounds memory (some 150 bytes a key); a key pushed out
    early by ``max_keys`` newer ones could be replayed once, which is why the bound is
    well above what a server sees in a nonce's life.
    """

    blocking = False

    def __init__(self, *, max_keys: int = 200_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._max_keys = max_keys
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()  # insertion order ~ expiry order
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def first_use(self, key: str, *, ttl: float) -> bool:
        with self._lock:
            now = self._clock()
            entries = self._expiry
            # Drop expired keys from the old end; nonce lives are alike, so the oldest
            # inserted expire first (near enough: a stale key costs memory, not safety).
            while entries:
                oldest, expires = next(iter(entries.items()))
                if expires > now:
                    break
                del entries[oldest]
            known = entries.get(key)
            if known is not None and known > now:
                return False
            entries[key] = now + ttl
            entries.move_to_end(key)
            while len(entries) > self._max_keys:
                entries.popitem(last=False)
            return True
