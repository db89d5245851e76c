"""The slow step the gate hands back: count the attempt, verify (hash, directory, digest
arithmetic), conclude. Run by the shells: inline (WSGI) or off the event loop (ASGI)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from proxygate.auth.schemes import Scheme, Verdict
from proxygate.auth.throttle import NOTHING, Reservation
from proxygate.auth.users import SourceUnavailable
from proxygate.decisions import Deny, Forward, Identity
from proxygate.errors.handler import RequestHead

if TYPE_CHECKING:
    from proxygate.gate import Gate

__all__ = ["CacheEntry", "Check"]


#: What a cached success remembers: how to look up the pin again, for whom, and the answer.
CacheEntry = tuple[Callable[[str], "str | None"], str, Forward]


class Check:
    """Slow work the core hands back: throttle reservation, the scheme's verification, the verdict.

    The steps, in order, and what each promises:

    1. :meth:`enter_budget` (instant, never blocks): False when the hash budget is
       full; answer :meth:`Gate.busy_response` (503) at once. Nothing is counted.
       Only schemes that hash a password (Basic) take a place.
    2. :meth:`admit`: the attempt is counted against the client (and user) *before*
       any verification; a 429 when a key is at its limit already.
    3. :meth:`verify` (a password hash runs on one of the gate's hash threads: one per
       budget slot, at the lowest CPU priority; other schemes verify in place) or
       :meth:`averify` (async users or tokens callables).
    4. :meth:`conclude`: a failure stays counted, a success (or a stale Digest nonce,
       or an unavailable store) gives its count back. Whatever happens in between,
       :meth:`abandon` gives back what is held.

    :meth:`run` is all of it from the caller's thread (WSGI, sync adapters), which
    waits while its hash runs. The ASGI shell runs the steps itself so that admission
    happens on the event loop, store round trips in worker threads and the hash (with
    :meth:`verify_on_hash_thread`) on the hash threads, awaited.
    """

    __slots__ = ("_credentials", "_entered", "_gate", "_head", "_key", "_reason",
                 "_reservation", "_scheme", "joined")

    def __init__(self, gate: Gate, head: RequestHead, scheme: Scheme[Any] | None,
                 credentials: Any, key: bytes | None, *, reason: str = "bad_password") -> None:
        self._gate = gate
        self._head = head
        self._scheme = scheme
        self._credentials = credentials
        self._key = key
        self._reason = reason
        self._reservation: Reservation = NOTHING
        self._entered = False
        #: The outcome of an identical check already hashing, when this one follows it:
        #: a follower takes no place in the budget and no thread (the ASGI shell awaits it).
        self.joined: Future[Verdict] | None = None

    @property
    def needs_thread(self) -> bool:
        """True when admit/conclude/abandon may block on a store round trip."""
        return bool(self._gate.throttle.store.blocking)

    @property
    def head(self) -> RequestHead:
        return self._head

    @property
    def scheme(self) -> Scheme[Any] | None:
        return self._scheme

    @property
    def hashes(self) -> bool:
        """True when :meth:`verify` will hash a password (malformed credentials are refused
        unhashed; Digest and Bearer never hash)."""
        return self._credentials is not None and self._scheme is not None \
            and self._scheme.hashes

    @property
    def blocks(self) -> bool:
        """True when :meth:`verify` may block without hashing (a network store, a callable)."""
        return self._credentials is not None and self._scheme is not None \
            and self._scheme.blocking

    @property
    def is_async(self) -> bool:
        """True when the verdict must come from :meth:`averify`."""
        return self._credentials is not None and self._scheme is not None \
            and self._scheme.is_async

    @property
    def username(self) -> str | None:
        if self._credentials is None or self._scheme is None:
            return None
        return self._scheme.username(self._credentials)

    def enter_budget(self) -> bool:
        """Take a place in the hash budget (running or queued); False when it is full.

        A check whose twin (the same credential) is hashing already needs no place: it
        waits for that outcome, whenever the twin ends, and never hashes itself.
        """
        if not self.hashes or self.is_async:
            return True  # nothing to hash here, or an awaited check that holds no thread
        if self._key is not None:
            self.joined = self._gate.flight.current(self._key)
            if self.joined is not None:
                return True
        self._entered = self._gate.hash_budget.try_enter()
        return self._entered

    def leave_budget(self) -> None:
        if self._entered:
            self._entered = False
            self._gate.hash_budget.leave()

    def admit(self) -> Deny | None:
        """Count the attempt before any hash; a 429 if the client (or user) is at its limit."""
        gate = self._gate
        client = gate.client_address(self._head)
        if self.joined is not None:
            # The same credential is being checked already: one guess, counted once, by
            # that check. Counting each copy would turn a client's burst of parallel first
            # requests with the right password into 429s.
            wait = gate.throttle.blocked_for(client, self.username)
        else:
            wait, self._reservation = gate.throttle.reserve(client, self.username)
        if wait <= 0:
            return None
        return gate.throttled_response(self._head, self.username, wait, scheme=self._label)

    @property
    def _label(self) -> str | None:
        return self._scheme.label if self._scheme is not None else None

    def verify(self) -> Verdict:
        """The scheme's verdict, from any thread. A password hash runs on one of the gate's
        hash threads (this thread waits) in a budget slot, and identical concurrent checks
        hash once; other schemes verify right here."""
        if not self.hashes:
            return self._verify_here()
        if self.joined is not None:  # uncounted: it must share that outcome, never hash
            return self.joined.result()
        executor = self._gate.hash_executor
        if self._key is None:
            return executor.submit(self._hash).result()
        return self._gate.flight.run(self._key, lambda: executor.submit(self._hash).result())

    def verify_on_hash_thread(self) -> Verdict:
        """:meth:`verify` for a caller that already runs on one of the gate's hash threads
        (the ASGI shell submits this): the hash runs right here."""
        if not self.hashes:
            return self._verify_here()
        if self._key is None:
            return self._hash()
        return self._gate.flight.run(self._key, self._hash)

    def _verify_here(self) -> Verdict:
        credentials, scheme = self._credentials, self._scheme
        if credentials is None or scheme is None:
            return Verdict(None, reason=self._reason)
        return scheme.verify(credentials, self._head)

    def _hash(self) -> Verdict:
        credentials, scheme = self._credentials, self._scheme
        assert credentials is not None and scheme is not None
        gate = self._gate
        with gate.hash_budget.slot():
            verdict = scheme.verify(credentials, self._head)
        key = self._key
        username = verdict.username
        if username is not None and verdict.pin is not None and key is not None:
            # Cached before the flight ends: a request arriving in between finds the
            # success in the cache, not an empty flight it would have to hash again.
            gate.cache.put(key, verdict.pin, (scheme.pin_lookup(), verdict.who or username,
                                              Forward(Identity(username, scheme.label))))
        return verdict

    async def averify(self) -> Verdict:
        credentials = self._credentials
        scheme = self._scheme
        if credentials is None or scheme is None:
            return Verdict(None, reason=self._reason)
        return await scheme.averify(credentials, self._head)

    def conclude(self, verdict: Verdict) -> Forward | Deny:
        gate = self._gate
        head = self._head
        scheme = self._scheme
        username = verdict.username
        if username is None or scheme is None:
            if verdict.unavailable:
                self._reservation.release()  # not the client's doing: nothing counted
                return gate.unavailable_response(head, 1, reason=verdict.reason)
            if verdict.stale:
                # The right answer to an expired nonce: no failure, a fresh challenge.
                self._reservation.release()
                gate.audit("failure", verdict.reason, self.username, head,
                           level=logging.INFO, scheme=self._label)
                return gate.challenge_response(head, stale=True)
            self._reservation = NOTHING  # a failure: it stays counted
            gate.audit("failure", verdict.reason, self.username, head, scheme=self._label)
            if verdict.bad_request:
                return gate.bad_request(head, "The Digest uri does not name the requested "
                                              "resource.")
            return gate.challenge_response(head, rejected=scheme)
        self._reservation.release()  # a success never counts as a failure
        forward = Forward(Identity(username, scheme.label), verdict.headers)
        if self._key is not None and verdict.pin is not None:
            gate.cache.put(self._key, verdict.pin,
                           (scheme.pin_lookup(), verdict.who or username, forward))
        gate.audit("success", "verified", username, head, scheme=scheme.label)
        return forward

    def abandon(self) -> None:
        """Give back what an unfinished check holds (an exception, a cancelled request)."""
        self.leave_budget()
        self._reservation.release()

    def run(self) -> Forward | Deny:
        if not self.enter_budget():
            return self._gate.busy_response(self._head)
        try:
            denied = self.admit()
            if denied is not None:
                return denied
            try:
                verdict = self.verify()
            except SourceUnavailable as exc:  # abandon() below gives the attempt back
                return self._gate.source_unavailable(self._head, self.username, exc)
            return self.conclude(verdict)
        finally:
            self.abandon()
