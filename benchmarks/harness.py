"""The shared harness: settings, results, targets, and the helpers every case family uses.

A case is a function ``run(settings, result)`` that measures and fills a
:class:`CaseResult`: its cells in the results table, a ratio judged against its
:class:`Target`, and the details that explain how the number was made.
In-process cases time their contenders with :mod:`pairs` through the drivers of
:mod:`drive`; out-of-process ones start servers with :mod:`servers`.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pairs import Contender, PairedResult, Spread, calibrate_batch, measure_pairs

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Settings:
    smoke: bool
    rounds: int
    #: Wall time one contender's share of a round aims for (full runs).
    block_ms: float
    #: Requests per contender per round when set (smoke runs), instead of calibrating.
    fixed_batch: int | None
    memory_logins: int
    e2e_seconds: float
    #: How many A-then-B pairs each end-to-end comparison runs.
    e2e_pairs: int
    out: Path

    @classmethod
    def full(cls, out: Path) -> Settings:
        return cls(smoke=False, rounds=151, block_ms=10.0, fixed_batch=None,
                   memory_logins=1_000_000, e2e_seconds=3.0, e2e_pairs=10, out=out)

    @classmethod
    def quick(cls, out: Path) -> Settings:
        return cls(smoke=True, rounds=3, block_ms=1.0, fixed_batch=10,
                   memory_logins=2_000, e2e_seconds=1.0, e2e_pairs=1, out=out)


@dataclass(frozen=True)
class Target:
    """``value <op> bound``, e.g. ratio <= 0.5."""

    op: str
    bound: float
    unit: str = "x"

    def met_by(self, value: float) -> bool:
        compare: Callable[[float, float], bool] = {"<=": operator.le, ">=": operator.ge}[self.op]
        return compare(value, self.bound)

    def __str__(self) -> str:
        return f"{'≤' if self.op == '<=' else '≥'} {self.bound:g}{self.unit}"


@dataclass(frozen=True)
class Bar:
    """One bar of the chart: added cost per request in microseconds, with its quartiles."""

    case: str
    contender: str
    is_proxygate: bool
    median_us: float
    q1_us: float
    q3_us: float


@dataclass
class CaseResult:
    case_id: str
    title: str
    anchor: str
    anchor_cell: str = "—"
    proxygate_cell: str = "—"
    ratio_cell: str = "—"
    target: Target | None = None
    target_text: str = "report only"
    ratio_value: float | None = None
    #: True / False against the target, None when there is none or in a smoke run.
    met: bool | None = None
    error: str | None = None
    details: list[str] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def judge(self, settings: Settings) -> None:
        if self.target is not None and self.ratio_value is not None and not settings.smoke:
            self.met = self.target.met_by(self.ratio_value)


@dataclass(frozen=True)
class Case:
    case_id: str
    title: str
    anchor: str
    target: Target | None
    run: Callable[[Settings, CaseResult], None]


# --- helpers ----------------------------------------------------------------


def us(ns: float) -> str:
    return f"{ns / 1000:.2f}"


def spread_us(s: Spread) -> str:
    return f"{us(s.median)} µs [IQR {us(s.q1)}…{us(s.q3)}]"


def signed(s: Spread) -> str:
    """An added cost with its sign: a denial can cost less than serving the route."""
    return ("+" if s.median >= 0 else "") + spread_us(s)


def spread_ratio(s: Spread) -> str:
    return f"{s.median:.3f} [IQR {s.q1:.3f}…{s.q3:.3f}]"


def expect(label: str, got: Any, status: int, *, body_has: bytes | None = None,
           header: str | None = None) -> None:
    if got.status != status:
        raise AssertionError(f"{label}: expected HTTP {status}, got {got.status} {got.body[:200]!r}")
    if body_has is not None and body_has not in got.body:
        raise AssertionError(f"{label}: body lacks {body_has!r}: {got.body[:200]!r}")
    if header is not None and got.header(header) is None:
        raise AssertionError(f"{label}: response lacks the {header} header")


def added(measured: PairedResult, name: str) -> tuple[float, float, float]:
    """``name``'s added cost over the baseline: median, first and third quartile (ns)."""
    s = measured.added_cost(name)
    return s.median, s.q1, s.q3


def run_pairs(settings: Settings, contenders: list[Contender]) -> PairedResult:
    if settings.fixed_batch is not None:
        batch = settings.fixed_batch
        for c in contenders:
            c.run_batch(batch)
    else:
        batch = calibrate_batch(contenders, target_ms=settings.block_ms)
    return measure_pairs(contenders, rounds=settings.rounds, batch=batch,
                         warmup_rounds=1 if settings.smoke else 3)


def describe_pairs(result: CaseResult, measured: PairedResult) -> None:
    """Fill the per-case details with every contender's time and added cost."""
    result.details.append(
        f"{measured.rounds} rounds x {measured.batch} requests per contender, order rotated "
        f"each round, GC paused; medians over rounds with interquartile range."
    )
    result.details.append("")
    result.details.append("| contender | time per request | added over bare (paired) | MAD |")
    result.details.append("|---|---|---|---|")
    for name in measured.per_request_ns:
        own = measured.time_per_request(name)
        if name == measured.baseline:
            result.details.append(f"| {name} (baseline) | {spread_us(own)} | — | — |")
            continue
        added = measured.added_cost(name)
        result.details.append(
            f"| {name} | {spread_us(own)} | {spread_us(added)} | {us(added.mad)} µs |"
        )
    result.raw["per_request_ns"] = measured.per_request_ns
    result.raw["batch"] = measured.batch


def cost_comparison(result: CaseResult, measured: PairedResult, *, proxygate: str,
                    anchor: str, extra_anchors: tuple[str, ...] = ()) -> None:
    """The common shape of a cost case: proxygate's added cost over the anchor's."""
    describe_pairs(result, measured)
    pg = measured.added_cost(proxygate)
    an = measured.added_cost(anchor)
    ratio = measured.cost_ratio(proxygate, anchor)
    result.anchor_cell = signed(an)
    result.proxygate_cell = signed(pg)
    result.ratio_value = ratio.median
    result.ratio_cell = spread_ratio(ratio)
    result.details.append("")
    result.details.append(
        f"Ratio = proxygate's added cost ÷ {anchor}'s added cost, computed round by round "
        f"(a slow round slows both): median {spread_ratio(ratio)}; ratio of the medians "
        f"{pg.median / an.median if an.median else float('nan'):.3f}."
    )
    for other in extra_anchors:
        r = measured.cost_ratio(proxygate, other)
        result.details.append(f"Against {other}: ratio {spread_ratio(r)}.")
    for name in (anchor, *extra_anchors, proxygate):
        s = measured.added_cost(name)
        result.bars.append(Bar(result.case_id, name, name == proxygate,
                               s.median / 1000, s.q1 / 1000, s.q3 / 1000))


def subprocess_env() -> dict[str, str]:
    """Environment for child processes: this directory and the checkout's src importable."""
    env = dict(os.environ)
    parts = [str(HERE)]
    src = HERE.parent / "src"
    if (src / "proxygate").is_dir():
        parts.append(str(src))
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env
