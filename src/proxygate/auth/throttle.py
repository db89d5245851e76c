"""Brute-force throttling: failure counters per client (and optionally per user) behind a store."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from array import array
from collections import OrderedDict
from typing import Protocol, runtime_checkable

__all__ = ["NOTHING", "MemoryThrottleStore", "Reservation", "Throttle", "ThrottleStore"]

logger = logging.getLogger("proxygate.auth")


@runtime_checkable
class ThrottleStore(Protocol):
    """Where failure timestamps live.

    A store keeps, per key, at most ``limit`` most recent failures inside a
    sliding ``window`` (seconds). That is enough to answer "is this key over
    the limit, and for how long" exactly, with bounded memory per key.

    An attempt is counted *before* its password is checked: :meth:`reserve`
    looks and counts in one atomic step, so ``limit`` concurrent attempts can
    never all see "below the limit" and then all hash. A success gives its
    count back with :meth:`release`.

    ``blocking`` says whether calls do I/O (a network round trip): the ASGI
    shell then makes them from a worker thread, never on the event loop.
    """

    blocking: bool

    def reserve(self, key: str, *, limit: int, window: float) -> tuple[float, object]:
        """Count one attempt for ``key`` now, unless ``key`` is at ``limit`` already.

        Returns ``(0.0, token)`` when counted (``token`` names this attempt for
        :meth:`release`), or ``(seconds, None)`` when blocked: the time until the
        key drops below ``limit``. Look and count happen atomically.
        """
        ...

    def release(self, key: str, token: object) -> None:
        """Uncount the attempt :meth:`reserve` counted as ``token``; a no-op if it aged out."""
        ...

    def blocked_for(self, key: str, *, limit: int, window: float) -> float:
        """Seconds until ``key`` drops below ``limit`` failures; 0.0 when it is below now."""
        ...


class MemoryThrottleStore:
    """Per-process store: an LRU-bounded map of key to its last ``limit`` failure times.

    ``max_keys`` bounds memory when a flood of distinct keys (client addresses,
    user names) arrives; the least recently failed keys are forgotten first.
    Times live in a packed ``array('d')``, not a deque of float objects: about a
    third of the memory per key (some 300 bytes with the key and its map slot,
    so the default 100,000 keys stay near 30 MiB).
    """

    blocking = False

    def __init__(self, *, max_keys: int = 100_000, clock: _Clock = time.monotonic) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._max_keys = max_keys
        self._clock = clock
        self._entries: OrderedDict[str, array[float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def blocked_for(self, key: str, *, limit: int, window: float) -> float:
        with self._lock:
            times = self._entries.get(key)
            if times is None or len(times) < limit:
                return 0.0
            # The limit-th newest failure: the array may hold more entries when an
            # earlier call used a larger limit.
            remaining = times[-limit] + window - self._clock()
            if remaining <= 0:
                return 0.0
            return remaining

    def reserve(self, key: str, *, limit: int, window: float) -> tuple[float, object]:
        with self._lock:
            # Read the clock under the lock so each array stays in time order.
            now = self._clock()
            entries = self._entries
            times = entries.get(key)
            if times is None:
                times = entries[key] = array("d")
            else:
                entries.move_to_end(key)
                cutoff = now - window
                aged = 0
                for stamp in times:
                    if stamp > cutoff:
                        break
                    aged += 1
                if aged:
                    del times[:aged]
                if len(times) >= limit:
                    # Blocked until the limit-th newest attempt leaves the window.
                    return times[-limit] + window - now, None
            times.append(now)
            if len(times) > limit:  # an earlier call used a larger limit
                del times[:len(times) - limit]
            while len(entries) > self._max_keys:
                entries.popitem(last=False)
            return 0.0, now

    def release(self, key: str, token: object) -> None:
        if not isinstance(token, float):
            return
        with self._lock:
            times = self._entries.get(key)
            if times is None:
                return
            # Equal stamps are interchangeable: removing either leaves the same count. A
            # stamp no longer there aged out (or was trimmed): nothing left to give back.
            with contextlib.suppress(ValueError):
                del times[times.index(token)]


#: Seconds between repeated error reports while a throttle store is down.
_REPORT_EVERY = 30.0


class _Clock(Protocol):
    def __call__(self) -> float: ...


class Throttle:
    """The policy over a store: which keys a failure counts against, and fail-open on store errors."""

    def __init__(
        self,
        store: ThrottleStore,
        *,
        max_failures: int,
        window: float,
        max_failures_per_user: int | None = None,
    ) -> None:
        self.store = store
        self.max_failures = max_failures
        self.window = window
        self.max_failures_per_user = max_failures_per_user
        self._failing_since: float | None = None
        self._last_report = -_REPORT_EVERY

    def _store_failed(self, what: str) -> None:
        """Fail open, and say so: the first error with its traceback, then one line every
        ``_REPORT_EVERY`` seconds while the store stays down, not one per request."""
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._last_report >= _REPORT_EVERY:
            self._last_report = now
            logger.error("throttle store unavailable for %.0f s; %s (throttling fails open)",
                         now - self._failing_since, what, exc_info=True)

    def _store_ok(self) -> None:
        if self._failing_since is not None:
            logger.warning("throttle store reachable again after %.0f s",
                           time.monotonic() - self._failing_since)
            self._failing_since = None
            self._last_report = -_REPORT_EVERY

    def reserve(self, client: str | None, username: str | None) -> tuple[float, Reservation]:
        """Count this attempt against the client (and the user name) before it is checked.

        Returns ``(seconds, NOTHING)`` when a key is at its limit (nothing is counted
        then), else ``(0.0, reservation)``: keep it for a failure, :meth:`Reservation.release`
        it for a success. Store errors let the attempt through uncounted (fail open).
        """
        held: list[tuple[str, object]] = []
        store = self.store
        try:
            if client is not None and self.max_failures > 0:
                key = "c:" + client
                wait, token = store.reserve(key, limit=self.max_failures, window=self.window)
                if wait > 0:
                    return wait, NOTHING
                held.append((key, token))
            if username is not None and self.max_failures_per_user:
                key = "u:" + username
                wait, token = store.reserve(
                    key, limit=self.max_failures_per_user, window=self.window
                )
                if wait > 0:
                    Reservation(self, held).release()
                    return wait, NOTHING
                held.append((key, token))
        except Exception:
            # Fail open for throttling only: authentication itself goes on.
            self._store_failed("not throttling this request")
            Reservation(self, held).release()
            return 0.0, NOTHING
        if self._failing_since is not None:
            self._store_ok()
        return 0.0, Reservation(self, held) if held else NOTHING

    def blocked_for(self, client: str | None, username: str | None) -> float:
        """Seconds until neither the client nor the user name is at its limit; counts nothing.

        A look only: :meth:`reserve` still decides, atomically. Store errors answer 0.0
        (fail open, reported by :meth:`reserve` when it runs into the same error).
        """
        store = self.store
        wait = 0.0
        try:
            if client is not None and self.max_failures > 0:
                wait = store.blocked_for("c:" + client, limit=self.max_failures,
                                         window=self.window)
            if wait <= 0 and username is not None and self.max_failures_per_user:
                wait = store.blocked_for("u:" + username, limit=self.max_failures_per_user,
                                         window=self.window)
        except Exception:
            return 0.0
        return wait

    def _release(self, held: list[tuple[str, object]]) -> None:
        try:
            for key, token in held:
                self.store.release(key, token)
        except Exception:
            # The attempt stays counted until it ages out: erring towards the throttle.
            self._store_failed("a successful attempt stays counted")


class Reservation:
    """The counts one attempt holds in the store; :meth:`release` gives them back (once)."""

    __slots__ = ("_held", "_throttle")

    def __init__(self, throttle: Throttle | None, held: list[tuple[str, object]]) -> None:
        self._throttle = throttle
        self._held = held

    def __bool__(self) -> bool:
        return bool(self._held)

    def release(self) -> None:
        held, self._held = self._held, []
        if held and self._throttle is not None:
            self._throttle._release(held)


#: What an attempt holds when nothing was counted: releasing it does nothing.
NOTHING = Reservation(None, [])
