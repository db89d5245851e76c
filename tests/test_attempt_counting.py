"""An attempt is counted before its hash (issue 13, finding 3), and a success gives it back.

Fifty simultaneous wrong passwords from one address must hash at most ``max_failures``
times, with the memory store and with a real Redis: each attempt reserves its count
before hashing, atomically, so none of them can see "below the limit" and all hash.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from proxygate.auth.redis_store import RedisThrottleStore
from proxygate.auth.schemes.basic import BasicCredentials
from proxygate.auth.throttle import MemoryThrottleStore, ThrottleStore
from proxygate.config import Config
from proxygate.gate import Check, Deny, Forward, Gate, HeadFromPairs
from support.redis_server import RedisServer

ATTEMPTS = 50
LIMIT = 10


class HeldVerifier:
    """A users callable that counts its calls (each one a hash) and can be held mid-hash."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, username: str, password: str) -> bool:
        with self.lock:
            self.calls += 1
        assert self.release.wait(10)
        return password == "right"


def head(password: str, client: str = "192.0.2.1") -> HeadFromPairs:
    value = BasicCredentials("alice", password).to_header()
    return HeadFromPairs("GET", "/", [(b"proxy-authorization", value)], client)


def status_of(decision: Forward | Deny) -> int:
    return 200 if isinstance(decision, Forward) else decision.response.status


def run(gate: Gate, password: str, client: str = "192.0.2.1") -> int:
    decision = gate.decide(head(password, client))
    if isinstance(decision, Check):
        decision = decision.run()
    return status_of(decision)


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> ThrottleStore:
    if request.param == "memory":
        return MemoryThrottleStore()
    server: RedisServer = request.getfixturevalue("redis_server")
    return RedisThrottleStore(server.url, prefix=f"test:{uuid.uuid4().hex}:")


def gate_with(store: ThrottleStore, verifier: Callable[[str, str], bool],
              **options: Any) -> Gate:
    # Room in the hash budget for every attempt: this pins the counting, not the budget.
    options.setdefault("max_concurrent_hashes", ATTEMPTS)
    options.setdefault("max_failures", LIMIT)
    return Gate(Config(users=verifier, throttle_store=store, cache_ttl=0, **options))


def test_fifty_simultaneous_wrong_passwords_hash_at_most_max_failures_times(
        store: ThrottleStore) -> None:
    verifier = HeldVerifier()
    gate = gate_with(store, verifier)
    start = threading.Barrier(ATTEMPTS)
    statuses: list[int] = []
    lock = threading.Lock()

    def attempt(n: int) -> None:
        start.wait()
        status = run(gate, f"wrong-{n}")  # distinct: no single flight to hide behind
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(ATTEMPTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert verifier.calls <= LIMIT
    assert sorted(statuses) == [407] * LIMIT + [429] * (ATTEMPTS - LIMIT)


def test_successes_never_count_towards_the_limit(store: ThrottleStore) -> None:
    gate = gate_with(store, HeldVerifier(), max_failures=2)
    assert [run(gate, "right") for _ in range(5)] == [200] * 5
    assert [run(gate, "wrong") for _ in range(3)] == [407, 407, 429]


def test_a_success_in_flight_holds_a_count_until_it_is_done(store: ThrottleStore) -> None:
    # The documented price of counting first: with max_failures=1, a wrong password sent
    # while the right one is still being checked finds the address at its limit.
    verifier = HeldVerifier()
    gate = gate_with(store, verifier, max_failures=1)
    verifier.release.clear()
    statuses: list[int] = []
    check = gate.decide(head("right"))
    assert isinstance(check, Check)
    thread = threading.Thread(target=lambda: statuses.append(status_of(check.run())))
    thread.start()
    deadline = threading.Event()
    while verifier.calls == 0 and not deadline.wait(0.005):
        pass
    assert run(gate, "wrong") == 429
    verifier.release.set()
    thread.join(10)
    assert statuses == [200]
    assert run(gate, "wrong") == 407  # the success gave its count back


def test_an_exception_while_checking_gives_the_count_back(
        store: ThrottleStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # User sources never raise (a broken callable counts as a failed login); a fault in
    # the gate itself still may, and then the attempt must not stay counted.
    gate = gate_with(store, HeldVerifier(), max_failures=1)

    def broken(username: str, password: str) -> str | None:
        raise RuntimeError("a fault while checking")

    monkeypatch.setattr(gate.users, "verify", broken)
    check = gate.decide(head("anything"))
    assert isinstance(check, Check)
    with pytest.raises(RuntimeError):
        check.run()
    assert gate.hash_budget.admitted == 0
    monkeypatch.undo()
    assert run(gate, "wrong") == 407  # the exception did not use up the one failure


def test_malformed_credentials_are_counted_without_a_hash(store: ThrottleStore) -> None:
    verifier = HeldVerifier()
    gate = gate_with(store, verifier, max_failures=2)
    bad = HeadFromPairs("GET", "/", [(b"proxy-authorization", b"Basic !!!")], "192.0.2.1")
    statuses = []
    for _ in range(3):
        decision = gate.decide(bad)
        assert isinstance(decision, Check)
        statuses.append(status_of(decision.run()))
    assert statuses == [407, 407, 429]
    assert verifier.calls == 0


def test_a_per_user_limit_is_reserved_before_the_hash_too(store: ThrottleStore) -> None:
    verifier = HeldVerifier()
    gate = gate_with(store, verifier, max_failures=100, max_failures_per_user=3)
    start = threading.Barrier(20)
    statuses: list[int] = []

    def attempt(n: int) -> None:
        start.wait()
        statuses.append(run(gate, f"wrong-{n}", client=f"198.51.100.{n}"))

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert verifier.calls <= 3
    assert sorted(statuses) == [407] * 3 + [429] * 17


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = threading.Event()
    for _ in range(2000):  # 10 s at most
        if condition():
            return
        deadline.wait(0.005)
    raise AssertionError("condition not reached within 10 s")


def _followers_of_a_held_check(store: ThrottleStore, password: str, copies: int,
                               ) -> tuple[Gate, list[int]]:
    """A first check of ``password`` held mid-hash, then ``copies`` identical checks
    admitted one by one while it runs, then everything released: the statuses."""
    verifier = HeldVerifier()
    gate = gate_with(store, verifier, max_failures=2)
    verifier.release.clear()
    statuses: list[int] = []
    lock = threading.Lock()

    def finish(check: Check) -> None:
        status = status_of(check.run())
        with lock:
            statuses.append(status)

    leader = gate.decide(head(password))
    assert isinstance(leader, Check)
    threads = [threading.Thread(target=finish, args=(leader,))]
    threads[0].start()
    _wait_for(lambda: verifier.calls == 1)
    for _ in range(copies):
        copy = gate.decide(head(password))
        assert isinstance(copy, Check)
        assert copy.enter_budget()
        assert copy.joined is not None  # it shares the running check's outcome
        denied = copy.admit()  # where a copy would have been counted, it is refused here
        assert denied is None
        threads.append(threading.Thread(target=lambda c=copy: statuses.append(
            status_of(c.conclude(c.verify())))))
        threads[-1].start()
    verifier.release.set()
    for thread in threads:
        thread.join(10)
    assert verifier.calls == 1  # one hash for them all
    return gate, statuses


def test_a_burst_of_the_right_password_is_never_throttled(store: ThrottleStore) -> None:
    # A client opening many connections at once with its first credentials (a browser,
    # a CI fan-out) sends one guess many times: it must not count as many.
    gate, statuses = _followers_of_a_held_check(store, "right", copies=20)
    assert statuses == [200] * 21
    assert [run(gate, "wrong"), run(gate, "wrong-again")] == [407, 407]


def test_copies_of_one_wrong_password_are_one_guess(store: ThrottleStore) -> None:
    gate, statuses = _followers_of_a_held_check(store, "wrong", copies=20)
    assert statuses == [407] * 21
    # Counted once: with max_failures=2 one more wrong guess is still answered.
    assert [run(gate, "other"), run(gate, "another")] == [407, 429]
