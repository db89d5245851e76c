"""Refusals are logged per client and window: the first as a record, the rest as one summary."""

from __future__ import annotations

import logging
import threading

import pytest

from proxygate.auth.denial_log import DenialLog

LOGGER = logging.getLogger("proxygate.auth")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="proxygate.auth")
    return caplog


def summaries(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [r.proxygate for r in caplog.records if hasattr(r, "proxygate")]


def test_only_the_first_refusal_of_a_client_in_a_window_is_logged_in_full(clock: Clock) -> None:
    log = DenialLog(LOGGER, 60, clock=clock)
    answers = [log.first("192.0.2.1", "throttled", "throttled", logging.WARNING)
               for _ in range(500)]
    assert answers == [True] + [False] * 499


def test_the_rest_are_summarised_once_the_window_is_over(
        clock: Clock, records: pytest.LogCaptureFixture) -> None:
    log = DenialLog(LOGGER, 60, clock=clock)
    for _ in range(500):
        log.first("192.0.2.1", "throttled", "throttled", logging.WARNING)
    assert summaries(records) == []  # nothing while the window runs
    clock.now += 60
    assert log.first("192.0.2.9", "failure", "bad_password", logging.WARNING) is True
    assert summaries(records) == [{"outcome": "throttled", "reason": "throttled",
                                   "client": "192.0.2.1", "more": 499, "window": 60}]
    (summary,) = [r for r in records.records if hasattr(r, "proxygate")]
    assert summary.levelno == logging.WARNING
    assert "499 more from client 192.0.2.1" in summary.getMessage()


def test_a_new_window_starts_with_a_full_record_again(clock: Clock) -> None:
    log = DenialLog(LOGGER, 60, clock=clock)
    assert log.first("192.0.2.1", "throttled", "throttled", logging.WARNING)
    clock.now += 59.9
    assert not log.first("192.0.2.1", "throttled", "throttled", logging.WARNING)
    clock.now += 0.1
    assert log.first("192.0.2.1", "throttled", "throttled", logging.WARNING)


def test_each_kind_of_refusal_gets_its_own_first_record(clock: Clock) -> None:
    """A browser's credential-less first request must not hide the wrong password after it."""
    log = DenialLog(LOGGER, 60, clock=clock)
    assert log.first("192.0.2.1", "failure", "missing", logging.INFO)
    assert log.first("192.0.2.1", "failure", "bad_password", logging.WARNING)
    assert log.first("192.0.2.1", "throttled", "throttled", logging.WARNING)
    assert log.first("192.0.2.2", "throttled", "throttled", logging.WARNING)


def test_a_lone_refusal_leaves_no_summary(clock: Clock, records: pytest.LogCaptureFixture) -> None:
    log = DenialLog(LOGGER, 60, clock=clock)
    log.first("192.0.2.1", "failure", "bad_password", logging.WARNING)
    log.flush()
    assert summaries(records) == []


def test_a_flood_from_many_addresses_stays_bounded_and_loses_no_count(
        clock: Clock, records: pytest.LogCaptureFixture) -> None:
    log = DenialLog(LOGGER, 60, max_keys=100, clock=clock)
    for _ in range(3):
        log.first("198.51.100.1", "throttled", "throttled", logging.WARNING)
    for number in range(10_000):
        log.first(f"10.0.{number // 256}.{number % 256}", "failure", "bad_password",
                  logging.WARNING)
    assert len(log._open) <= 100
    # The oldest window made room early, and its count was logged, not dropped.
    assert {"outcome": "throttled", "reason": "throttled", "client": "198.51.100.1",
            "more": 2, "window": 60} in summaries(records)


def test_flush_logs_every_open_window(clock: Clock, records: pytest.LogCaptureFixture) -> None:
    log = DenialLog(LOGGER, 60, clock=clock)
    for _ in range(4):
        log.first(None, "failure", "missing", logging.INFO)
    log.flush()
    assert summaries(records) == [{"outcome": "failure", "reason": "missing", "client": "-",
                                   "more": 3, "window": 60}]


def test_no_count_is_lost_between_threads(clock: Clock, records: pytest.LogCaptureFixture) -> None:
    log = DenialLog(LOGGER, 60, clock=clock)
    firsts: list[bool] = []

    def flood() -> None:
        for _ in range(2000):
            firsts.append(log.first("192.0.2.1", "throttled", "throttled", logging.WARNING))

    threads = [threading.Thread(target=flood) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.flush()
    assert firsts.count(True) == 1
    assert summaries(records)[0]["more"] == 7999
