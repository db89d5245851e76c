"""Paired rounds: time the bare app and its contenders side by side, many short times over.

A shared machine moves a bare route's time by tens of percent between
processes and between seconds, so two numbers taken apart cannot be
compared. Every round here times each contender once, back to back, in an
order rotated from round to round and with the garbage collector paused; a
contender's *added cost* in that round is its time per request minus the bare
app's time per request in the same round. Drift that is slow compared with a
round cancels in that difference, and the median over rounds ignores the
rounds a neighbour's burst spoiled.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "Contender",
    "PairedResult",
    "Spread",
    "calibrate_batch",
    "measure_pairs",
    "summarize",
]

#: Runs ``n`` requests and returns the nanoseconds they took (the contender
#: times itself so that setup such as entering an event loop stays outside).
BatchRunner = Callable[[int], int]


@dataclass(frozen=True)
class Contender:
    """One way of serving the same request: the bare app, an anchor, or proxygate."""

    name: str
    run_batch: BatchRunner


@dataclass(frozen=True)
class Spread:
    """Median of a sample with its quartiles and median absolute deviation."""

    median: float
    q1: float
    q3: float
    mad: float
    n: int

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1


def summarize(values: Sequence[float]) -> Spread:
    if not values:
        raise ValueError("cannot summarize an empty sample")
    ordered = sorted(values)
    median = statistics.median(ordered)
    if len(ordered) >= 4:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1, q3 = ordered[0], ordered[-1]
    mad = statistics.median(abs(v - median) for v in ordered)
    return Spread(median=median, q1=q1, q3=q3, mad=mad, n=len(ordered))


@dataclass
class PairedResult:
    """Per-round nanoseconds per request for every contender, the first being the baseline."""

    baseline: str
    per_request_ns: dict[str, list[float]] = field(default_factory=dict)
    batch: int = 0

    @property
    def rounds(self) -> int:
        return len(self.per_request_ns[self.baseline])

    def time_per_request(self, name: str) -> Spread:
        return summarize(self.per_request_ns[name])

    def added_cost_per_round(self, name: str) -> list[float]:
        """``name``'s time per request minus the baseline's, round by round."""
        base = self.per_request_ns[self.baseline]
        return [c - b for c, b in zip(self.per_request_ns[name], base, strict=True)]

    def added_cost(self, name: str) -> Spread:
        return summarize(self.added_cost_per_round(name))

    def cost_ratio(self, name: str, anchor: str) -> Spread:
        """Round by round, ``name``'s added cost divided by ``anchor``'s added cost."""
        ratios = [
            c / a
            for c, a in zip(
                self.added_cost_per_round(name), self.added_cost_per_round(anchor), strict=True
            )
            if a != 0
        ]
        return summarize(ratios)

    def throughput_ratio(self, name: str, reference: str) -> Spread:
        """Round by round, ``name``'s requests per second over ``reference``'s."""
        return summarize(
            [
                r / c
                for c, r in zip(
                    self.per_request_ns[name], self.per_request_ns[reference], strict=True
                )
            ]
        )


def _rotated(items: Sequence[Contender], by: int) -> list[Contender]:
    k = by % len(items)
    return [*items[k:], *items[:k]]


def calibrate_batch(
    contenders: Sequence[Contender], *, target_ms: float, minimum: int = 5, maximum: int = 20_000
) -> int:
    """How many requests make the slowest contender's share of a round last about ``target_ms``."""
    probe = 20
    slowest = 0.0
    for contender in contenders:
        contender.run_batch(probe)  # warm caches, lazy imports and the like first
        slowest = max(slowest, contender.run_batch(probe) / probe)
    wanted = int(target_ms * 1e6 / max(slowest, 1.0))
    return max(minimum, min(maximum, wanted))


def measure_pairs(
    contenders: Sequence[Contender],
    *,
    rounds: int,
    batch: int,
    warmup_rounds: int = 2,
    on_round: Callable[[int], None] | None = None,
) -> PairedResult:
    """Time every contender ``batch`` requests per round for ``rounds`` rounds.

    The first contender is the baseline that added costs are measured from.
    Round ``r`` runs the contenders rotated left by ``r``, so each one goes
    first, second and third equally often and no position's bias (a warm
    branch predictor, a timer tick) lands on one contender only.
    """
    if len(contenders) < 2:
        raise ValueError("a paired measurement needs a baseline and at least one contender")
    names = [c.name for c in contenders]
    if len(set(names)) != len(names):
        raise ValueError(f"contender names must be distinct: {names}")
    result = PairedResult(baseline=names[0], batch=batch)
    for name in names:
        result.per_request_ns[name] = []

    gc_was_enabled = gc.isenabled()
    try:
        for r in range(-warmup_rounds, rounds):
            # Collect between rounds, outside the clock, so that each round
            # starts from the same heap and none pays for another's garbage.
            gc.collect()
            gc.disable()
            try:
                timings = [(c.name, c.run_batch(batch)) for c in _rotated(contenders, r)]
            finally:
                gc.enable()
            if r < 0:
                continue
            for name, elapsed in timings:
                result.per_request_ns[name].append(elapsed / batch)
            if on_round is not None:
                on_round(r)
    finally:
        if not gc_was_enabled:
            gc.disable()
    return result


def timed(fn: Callable[[], object], n: int) -> int:
    """Call ``fn`` ``n`` times and return the elapsed nanoseconds (for synchronous callables)."""
    clock = time.perf_counter_ns
    start = clock()
    for _ in range(n):
        fn()
    return clock() - start
