"""Refused and throttled attempts in the log: per client and window, one record and a summary.

A client hammering wrong passwords gets a 429 for every attempt once it is throttled.
A log record for each would cost more than the 429 itself and bury everything else in
the log. So, per client and kind of refusal (``throttled``, ``failure/bad_password``,
``failure/missing``, ...), the first in each window is logged as its own record, as
before, and the rest are counted; when the window is over, one summary record says how
many more there were. An operator sees a flood start, and how big it was.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["DenialLog"]

#: (client, outcome, reason)
Key = tuple[str, str, str]


class _Window:
    __slots__ = ("level", "more", "start")

    def __init__(self, start: float, level: int) -> None:
        self.start = start
        self.level = level
        self.more = 0  # decisions after the first, not logged one by one


class DenialLog:
    """Decides which refusals get a record of their own, and logs the summaries.

    ``window`` is the throttle's ``failure_window``; ``max_keys`` bounds memory under a
    flood from many addresses (the oldest window is summarised early to make room).
    """

    def __init__(self, logger: logging.Logger, window: float, *, max_keys: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._window = window
        self._max_keys = max_keys
        self._clock = clock
        self._open: OrderedDict[Key, _Window] = OrderedDict()  # oldest window first
        self._lock = threading.Lock()

    def first(self, client: str | None, outcome: str, reason: str, level: int) -> bool:
        """Count one refusal; True when it is the first of its kind from ``client`` in
        the window, so the caller logs it in full."""
        key = (client or "-", outcome, reason)
        now = self._clock()
        with self._lock:
            ended = self._take_ended(now)
            window = self._open.get(key)
            if window is None:
                self._open[key] = _Window(now, level)
                if len(self._open) > self._max_keys:
                    ended.append(self._open.popitem(last=False))
                is_first = True
            else:
                window.more += 1
                is_first = False
        for ended_key, ended_window in ended:
            self._summarise(ended_key, ended_window)
        return is_first

    def flush(self) -> None:
        """Log the summaries of every open window now (at shutdown, or in tests)."""
        with self._lock:
            ended = list(self._open.items())
            self._open.clear()
        for key, window in ended:
            self._summarise(key, window)

    def _take_ended(self, now: float) -> list[tuple[Key, _Window]]:
        ended: list[tuple[Key, _Window]] = []
        cutoff = now - self._window
        while self._open:
            key, window = next(iter(self._open.items()))
            if window.start > cutoff:
                break
            del self._open[key]
            ended.append((key, window))
        return ended

    def _summarise(self, key: Key, window: _Window) -> None:
        if not window.more or not self._logger.isEnabledFor(window.level):
            return
        client, outcome, reason = key
        record: dict[str, Any] = {
            "outcome": outcome,
            "reason": reason,
            "client": client,
            "more": window.more,
            "window": self._window,
        }
        self._logger.log(
            window.level,
            "authentication %s (%s): %d more from client %s within %g s of the one logged",
            outcome, reason, window.more, client, self._window,
            extra={"proxygate": record},
        )
