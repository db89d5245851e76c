"""The hash budget (issue 13, finding 4): few hashes at once, a short queue, 503 beyond it,
and a cached user never waits behind any of it, in the core and in the ASGI shell."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from typing import Any

import pytest

from proxygate.asgi import ProxyGateMiddleware
from proxygate.auth import budget
from proxygate.auth.budget import HashBudget, default_concurrency, usable_cpus
from proxygate.auth.schemes.basic import BasicCredentials
from proxygate.config import Config, ConfigError
from proxygate.gate import HASH_NICE, Check, Deny, Forward, Gate, HeadFromPairs
from support.asgi_driver import RecordingApp, acall_asgi
from support.servers import wait_until


class HeldVerifier:
    """A users callable standing for a slow hash: counts calls, held until released."""

    def __init__(self) -> None:
        self.calls = 0
        self.running = 0
        self.peak = 0
        self.lock = threading.Lock()
        self.release = threading.Event()

    def __call__(self, username: str, password: str) -> bool:
        with self.lock:
            self.calls += 1
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            assert self.release.wait(10)
        finally:
            with self.lock:
                self.running -= 1
        return password == "right"

    def wait_for_calls(self, count: int) -> None:
        wait_until(lambda: self.calls >= count, what=f"{count} hashes to start")


def credential(user: str, password: str) -> bytes:
    return BasicCredentials(user, password).to_header()


def head(user: str, password: str, client: str = "192.0.2.1") -> HeadFromPairs:
    return HeadFromPairs("GET", "/", [(b"proxy-authorization", credential(user, password))],
                         client)


def gate_with(verifier: HeldVerifier, **options: Any) -> Gate:
    return Gate(Config(users=verifier, max_failures=0, **options))


def test_beyond_the_running_and_queued_hashes_an_attempt_gets_503_at_once() -> None:
    verifier = HeldVerifier()
    gate = gate_with(verifier, max_concurrent_hashes=1, max_queued_hashes=1)
    results: list[Forward | Deny] = []
    checks = [gate.decide(head("alice", f"guess-{n}")) for n in range(2)]
    threads = [threading.Thread(target=lambda c=c: results.append(c.run())) for c in checks]
    for thread in threads:
        thread.start()
    verifier.wait_for_calls(1)
    wait_until(lambda: gate.hash_budget.admitted == 2, what="two admitted")

    third = gate.decide(head("alice", "guess-3"))
    assert isinstance(third, Check)
    refused = third.run()  # answered in this thread, with the other two still held

    assert isinstance(refused, Deny)
    response = refused.response
    assert response.status == 503
    assert dict(response.headers)[b"retry-after"] == b"1"
    body = json.loads(response.body)
    assert body["error"]["code"] == 503
    assert body["error"]["message"] == "Service Unavailable"
    assert b"proxy-authenticate" not in dict(response.headers)
    assert verifier.calls == 1  # the queued one waits for the slot, the third never hashed
    verifier.release.set()
    for thread in threads:
        thread.join(10)
    assert sorted(status(result) for result in results) == [407, 407]
    assert gate.hash_budget.admitted == 0
    assert gate.hash_budget.refused == 1


def status(decision: Forward | Deny) -> int:
    return 200 if isinstance(decision, Forward) else decision.response.status


def test_hashes_never_run_more_at_once_than_the_budget_allows() -> None:
    verifier = HeldVerifier()
    gate = gate_with(verifier, max_concurrent_hashes=2, max_queued_hashes=30)
    results: list[Forward | Deny] = []
    checks = [gate.decide(head("alice", f"guess-{n}")) for n in range(20)]
    threads = [threading.Thread(target=lambda c=c: results.append(c.run())) for c in checks]
    for thread in threads:
        thread.start()
    verifier.wait_for_calls(2)
    wait_until(lambda: gate.hash_budget.admitted == 20, what="twenty admitted")
    assert verifier.calls == 2  # eighteen wait their turn
    verifier.release.set()
    for thread in threads:
        thread.join(10)
    assert verifier.peak == 2
    assert gate.hash_budget.peak == 2
    assert len(results) == 20 and all(status(r) == 407 for r in results)


def test_a_cached_user_is_decided_with_every_hash_slot_and_the_queue_taken() -> None:
    verifier = HeldVerifier()
    verifier.release.set()
    gate = gate_with(verifier, max_concurrent_hashes=1, max_queued_hashes=0)
    first = gate.decide(head("bob", "right"))
    assert isinstance(first, Check) and isinstance(first.run(), Forward)  # now cached
    verifier.release.clear()
    held = gate.decide(head("alice", "guess"))
    assert isinstance(held, Check)
    thread = threading.Thread(target=held.run)
    thread.start()
    verifier.wait_for_calls(2)

    assert isinstance(gate.decide(head("bob", "right")), Forward)  # no Check: no slot needed
    assert status(gate.decide(head("carol", "x")).run()) == 503  # type: ignore[union-attr]
    verifier.release.set()
    thread.join(10)


def test_a_refused_attempt_is_not_counted_as_a_failure() -> None:
    verifier = HeldVerifier()
    gate = Gate(Config(users=verifier, max_failures=1, max_concurrent_hashes=1,
                       max_queued_hashes=0))
    held = gate.decide(head("alice", "guess", client="198.51.100.1"))
    assert isinstance(held, Check)
    thread = threading.Thread(target=held.run)
    thread.start()
    verifier.wait_for_calls(1)
    refused = gate.decide(head("alice", "guess-2"))
    assert isinstance(refused, Check) and status(refused.run()) == 503
    verifier.release.set()
    thread.join(10)
    # 192.0.2.1's only failure is still available: the 503 did not use it up.
    assert status(gate.decide(head("alice", "guess-3")).run()) == 407  # type: ignore[union-attr]


def never(username: str, password: str) -> bool:
    return False


@pytest.mark.parametrize(("cpus", "hashing"), [(1, 1), (2, 1), (4, 3), (8, 7)])
def test_the_default_budget_leaves_a_cpu_free_and_queues_twice_the_hashes(
        monkeypatch: pytest.MonkeyPatch, cpus: int, hashing: int) -> None:
    monkeypatch.setattr(budget, "usable_cpus", lambda: cpus)
    assert default_concurrency() == hashing
    gate = Gate(Config(users=never))
    assert (gate.hash_budget.concurrency, gate.hash_budget.queue) == (hashing, 2 * hashing)
    assert Gate(Config(users=never, max_concurrent_hashes=3)).hash_budget.queue == 6
    assert Gate(Config(users=never, max_queued_hashes=0)).hash_budget.queue == 0
    # An explicit setting is taken as it is, even where it leaves no CPU free.
    assert Gate(Config(users=never, max_concurrent_hashes=cpus)).hash_budget.concurrency == cpus


def test_usable_cpus_counts_the_cpus_this_process_may_run_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "process_cpu_count", raising=False)  # Python 3.13+ asks it
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert usable_cpus() == 3


@pytest.mark.parametrize(("name", "value", "message"), [
    ("max_concurrent_hashes", 0, "max_concurrent_hashes must be at least 1"),
    ("max_concurrent_hashes", 1.5, "max_concurrent_hashes must be a whole number"),
    ("max_concurrent_hashes", True, "max_concurrent_hashes must be a whole number"),
    ("max_queued_hashes", -1, "max_queued_hashes must be at least 0"),
    ("max_queued_hashes", "4", "max_queued_hashes must be a whole number"),
])
def test_bad_budget_options_are_refused_at_construction(name: str, value: Any,
                                                        message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config(**{name: value})


def test_budget_options_come_from_the_environment() -> None:
    config = Config.from_env({"PROXYGATE_MAX_CONCURRENT_HASHES": "3",
                              "PROXYGATE_MAX_QUEUED_HASHES": "0"})
    assert (config.max_concurrent_hashes, config.max_queued_hashes) == (3, 0)


def test_the_budget_refuses_beyond_running_plus_queued() -> None:
    budget = HashBudget(2, 1)
    assert [budget.try_enter() for _ in range(4)] == [True, True, True, False]
    budget.leave()
    assert budget.try_enter() is True


def test_unavailable_response_is_a_503_envelope_with_retry_after_for_any_cause() -> None:
    gate = Gate(Config(users=never))
    denied = gate.unavailable_response(head("alice", "x"), 4.2,
                                       details="The user directory is not answering.")
    assert denied.response.status == 503
    assert dict(denied.response.headers)[b"retry-after"] == b"5"
    body = json.loads(denied.response.body)["error"]
    assert (body["code"], body["details"]) == (503, "The user directory is not answering.")


# -- the ASGI shell ------------------------------------------------------------------------


def asgi_headers(user: str, password: str) -> list[tuple[str, bytes]]:
    return [("proxy-authorization", credential(user, password))]


def test_asgi_cached_users_and_503s_never_wait_for_a_hash_thread() -> None:
    verifier = HeldVerifier()
    verifier.release.set()
    middleware = ProxyGateMiddleware(RecordingApp(), users=verifier, max_failures=0,
                                     max_concurrent_hashes=1, max_queued_hashes=1)

    async def scenario() -> tuple[int, int, list[int]]:
        assert (await acall_asgi(middleware, "GET", "/", asgi_headers("bob", "right"))
                ).status == 200
        verifier.release.clear()
        # One attempt hashing, one queued: every hash thread busy, the queue full.
        pending = [asyncio.ensure_future(acall_asgi(middleware, "GET", "/",
                                                    asgi_headers("alice", f"guess-{n}")))
                   for n in range(2)]
        deadline = time.monotonic() + 10
        while verifier.calls < 2 or middleware.gate.hash_budget.admitted < 2:
            assert time.monotonic() < deadline, "two attempts never held the budget"
            await asyncio.sleep(0.002)
        cached = await acall_asgi(middleware, "GET", "/", asgi_headers("bob", "right"))
        refused = await acall_asgi(middleware, "GET", "/", asgi_headers("carol", "x"))
        verifier.release.set()
        rest = await asyncio.gather(*pending)
        return cached.status, refused.status, [result.status for result in rest]

    cached, refused, rest = asyncio.run(scenario())
    assert cached == 200
    assert refused == 503
    assert rest == [407, 407]
    assert middleware.gate.hash_budget.peak == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a per-thread nice is Linux's")
def test_hashes_run_on_the_gates_threads_at_the_lowest_cpu_priority() -> None:
    seen: list[tuple[str, int]] = []

    def verifier(username: str, password: str) -> bool:
        thread = threading.current_thread()
        seen.append((thread.name, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
        return True

    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    gate = Gate(Config(users=verifier))
    decision = gate.decide(head("alice", "x"))
    assert isinstance(decision, Check) and isinstance(decision.run(), Forward)
    [(name, nice)] = seen
    assert name.startswith("proxygate-hash")
    assert nice == HASH_NICE == 19
    # Only the hash thread: the request's own thread keeps its priority.
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own
