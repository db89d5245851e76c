"""The hash budget: how many password checks run at once, and how few may wait for a turn."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["HashBudget", "default_concurrency", "usable_cpus"]


def usable_cpus() -> int:
    """The CPUs this process may run on (at least 1)."""
    counter = getattr(os, "process_cpu_count", None)  # Python 3.13+
    if counter is not None:
        found: int | None = counter()
    else:
        try:
            found = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            found = os.cpu_count()
    return max(1, found or 1)


def default_concurrency() -> int:
    """One hash per CPU but one, at least 1: a core stays free for the requests that need
    no hash. With every core hashing, a cached user's request waits for the scheduler to
    preempt a hash on each thread hand-off (measured under gunicorn gthread: its p99 went
    from 1 ms to 4 ms during a flood); with one core left, and hashes at nice 19, it was
    1.2-3.0 x its quiet p99, median 1.8 x (the hash-flood row in benchmarks/README.md)."""
    return max(1, usable_cpus() - 1)


class HashBudget:
    """At most ``concurrency`` checks hash at once; at most ``queue`` more wait for a slot.

    :meth:`try_enter` is the admission, answered at once and never blocking: it
    refuses when ``concurrency + queue`` attempts are already admitted, and the
    caller answers 503 instead of waiting. :meth:`slot` is the turn itself, a
    semaphore held for the length of one hash. Splitting the two lets the ASGI
    shell admit on the event loop and hash on its own threads, while WSGI
    threads wait for a slot in place; both share one bound per process.
    """

    def __init__(self, concurrency: int, queue: int) -> None:
        if concurrency < 1:
            raise ValueError("max_concurrent_hashes must be at least 1")
        if queue < 0:
            raise ValueError("max_queued_hashes cannot be negative")
        self.concurrency = concurrency
        self.queue = queue
        self._admitted = 0
        self._running = 0
        #: The most hashes seen running at once, and how many attempts were refused:
        #: what a soak or an operator checks the bound against.
        self.peak = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(concurrency)

    def __repr__(self) -> str:
        return (f"HashBudget(concurrency={self.concurrency}, queue={self.queue}, "
                f"admitted={self._admitted}, peak={self.peak}, refused={self.refused})")

    @property
    def admitted(self) -> int:
        return self._admitted

    def try_enter(self) -> bool:
        """Admit one attempt (running or waiting); False, at once, when the budget is full."""
        with self._lock:
            if self._admitted >= self.concurrency + self.queue:
                self.refused += 1
                return False
            self._admitted += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._admitted -= 1

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the ``concurrency`` hashing slots (waiting for it if need be)."""
        with self._slots:
            with self._lock:
                self._running += 1
                self.peak = max(self.peak, self._running)
            try:
                yield
            finally:
                with self._lock:
                    self._running -= 1
