"""The verification cache: a returning user costs no hash, and nothing stale or secret stays in it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from proxygate.auth.cache import SingleFlight, VerificationCache
from proxygate.auth.hashing import hash_password, verify_password
from proxygate.auth.schemes.basic import BasicCredentials
from proxygate.config import Config
from proxygate.gate import Check, Deny, Forward, Gate, HeadFromPairs, Identity
from support.servers import wait_until


def credential(user: str, password: str) -> bytes:
    return BasicCredentials(user, password).to_header()


def head_with(value: bytes | None, client: str = "10.0.0.1") -> HeadFromPairs:
    headers = [(b"proxy-authorization", value)] if value is not None else []
    return HeadFromPairs("GET", "/", headers, client)


def decide(gate: Gate, value: bytes | None) -> Forward | Deny:
    decision = gate.decide(head_with(value))
    if isinstance(decision, Check):
        return decision.run()
    return decision


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingVerifier:
    """A users callable that counts its calls: each call stands for one password hash."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, username: str, password: str) -> bool:
        with self._lock:
            self.calls += 1
        return self.users.get(username) == password


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Count real password verifications of mapping and file sources (records the stored hash)."""
    calls: list[str] = []
    real = verify_password

    def counting(password: str, stored: str) -> bool:
        calls.append(stored)
        return real(password, stored)

    monkeypatch.setattr("proxygate.auth.users.verify_password", counting)
    yield calls


@pytest.fixture(scope="module")
def alice_hash() -> str:
    return hash_password("wonderland", "bcrypt", rounds=4)


def mapping_gate(users: dict[str, str], **options: Any) -> Gate:
    return Gate(Config(users=users, **options))


# -- hits and misses ------------------------------------------------------------------------------


def test_a_returning_user_is_accepted_without_hashing_again(hash_calls: list[str],
                                                            alice_hash: str) -> None:
    gate = mapping_gate({"alice": alice_hash})
    assert isinstance(decide(gate, credential("alice", "wonderland")), Forward)
    assert isinstance(gate.decide(head_with(credential("alice", "wonderland"))), Forward)
    assert len(hash_calls) == 1


def test_a_cache_hit_is_decided_without_a_check_step(alice_hash: str) -> None:
    gate = mapping_gate({"alice": alice_hash})
    decide(gate, credential("alice", "wonderland"))
    decision = gate.decide(head_with(credential("alice", "wonderland")))
    assert isinstance(decision, Forward)
    assert decision.identity == Identity("alice")


def test_failures_are_never_cached(hash_calls: list[str], alice_hash: str) -> None:
    gate = mapping_gate({"alice": alice_hash})
    for _ in range(2):
        assert isinstance(decide(gate, credential("alice", "wrong")), Deny)
    assert len(hash_calls) == 2
    assert len(gate.cache) == 0


def test_unknown_users_are_never_cached(alice_hash: str) -> None:
    gate = mapping_gate({"alice": alice_hash})
    decide(gate, credential("mallory", "wonderland"))
    assert len(gate.cache) == 0


def test_a_different_password_for_a_cached_user_is_verified_and_refused(
        hash_calls: list[str], alice_hash: str) -> None:
    gate = mapping_gate({"alice": alice_hash})
    decide(gate, credential("alice", "wonderland"))
    assert isinstance(decide(gate, credential("alice", "wonderland2")), Deny)
    assert len(hash_calls) == 2


def test_cache_ttl_zero_turns_the_cache_off(hash_calls: list[str], alice_hash: str) -> None:
    gate = mapping_gate({"alice": alice_hash}, cache_ttl=0)
    for _ in range(2):
        assert isinstance(decide(gate, credential("alice", "wonderland")), Forward)
    assert len(hash_calls) == 2
    assert len(gate.cache) == 0


def test_callable_sources_are_cached_too() -> None:
    verifier = CountingVerifier({"alice": "pw"})
    gate = Gate(Config(users=verifier))
    for _ in range(3):
        assert isinstance(decide(gate, credential("alice", "pw")), Forward)
    assert verifier.calls == 1


# -- what voids an entry --------------------------------------------------------------------------


def test_a_password_change_in_a_live_mapping_voids_the_cached_success(alice_hash: str) -> None:
    users = {"alice": alice_hash}
    gate = mapping_gate(users)
    decide(gate, credential("alice", "wonderland"))
    users["alice"] = hash_password("looking-glass", "bcrypt", rounds=4)
    assert isinstance(gate.decide(head_with(credential("alice", "wonderland"))), Check)
    assert isinstance(decide(gate, credential("alice", "wonderland")), Deny)


def test_a_voided_entry_is_dropped_from_the_cache(alice_hash: str) -> None:
    users = {"alice": alice_hash}
    gate = mapping_gate(users)
    decide(gate, credential("alice", "wonderland"))
    users["alice"] = hash_password("looking-glass", "bcrypt", rounds=4)
    gate.decide(head_with(credential("alice", "wonderland")))
    assert len(gate.cache) == 0


def test_removing_a_user_from_a_live_mapping_refuses_them_at_once(alice_hash: str) -> None:
    users = {"alice": alice_hash}
    gate = mapping_gate(users)
    decide(gate, credential("alice", "wonderland"))
    del users["alice"]
    assert isinstance(decide(gate, credential("alice", "wonderland")), Deny)


def test_the_new_password_works_after_a_change(alice_hash: str) -> None:
    users = {"alice": alice_hash}
    gate = mapping_gate(users)
    decide(gate, credential("alice", "wonderland"))
    users["alice"] = hash_password("looking-glass", "bcrypt", rounds=4)
    assert isinstance(decide(gate, credential("alice", "looking-glass")), Forward)


# -- TTL and size ---------------------------------------------------------------------------------


def test_an_entry_expires_after_the_ttl() -> None:
    clock = FakeClock()
    cache: VerificationCache[str] = VerificationCache(ttl=300, size=10, clock=clock)
    cache.put(b"k", "hash", "alice")
    clock.now += 299.9
    assert cache.get(b"k") == ("hash", "alice")
    clock.now += 0.2
    assert cache.get(b"k") is None


def test_the_gate_hashes_again_once_the_ttl_has_passed(hash_calls: list[str],
                                                       alice_hash: str) -> None:
    clock = FakeClock()
    gate = mapping_gate({"alice": alice_hash}, cache_ttl=5)
    gate.cache = VerificationCache(ttl=5, size=10, clock=clock)
    decide(gate, credential("alice", "wonderland"))
    clock.now += 5.1
    assert isinstance(decide(gate, credential("alice", "wonderland")), Forward)
    assert len(hash_calls) == 2


def test_a_real_short_ttl_expires_without_an_injected_clock(alice_hash: str) -> None:
    gate = mapping_gate({"alice": alice_hash}, cache_ttl=0.02)
    decide(gate, credential("alice", "wonderland"))
    deadline = time.monotonic() + 5
    while isinstance(gate.decide(head_with(credential("alice", "wonderland"))), Forward):
        assert time.monotonic() < deadline, "the entry never expired"
        time.sleep(0.005)
    assert len(gate.cache) == 0


def test_the_cache_never_holds_more_than_its_size() -> None:
    cache: VerificationCache[str] = VerificationCache(ttl=300, size=3)
    for number in range(10):
        cache.put(cache.key(b"cred %d" % number), "h", str(number))
    assert len(cache) == 3


def test_the_least_recently_used_entry_is_evicted_first() -> None:
    cache: VerificationCache[str] = VerificationCache(ttl=300, size=2)
    a, b, c = (cache.key(x) for x in (b"a", b"b", b"c"))
    cache.put(a, "h", "a")
    cache.put(b, "h", "b")
    assert cache.get(a) is not None  # a is now more recently used than b
    cache.put(c, "h", "c")
    assert cache.get(b) is None
    assert cache.get(a) == ("h", "a")
    assert cache.get(c) == ("h", "c")


def test_a_returning_user_survives_a_flood_of_one_off_successes() -> None:
    verifier = CountingVerifier({f"user{n}": "pw" for n in range(20)})
    gate = Gate(Config(users=verifier, cache_size=5))
    decide(gate, credential("user0", "pw"))
    for n in range(1, 20):
        decide(gate, credential(f"user{n}", "pw"))
        decide(gate, credential("user0", "pw"))
    assert verifier.calls == 20


def test_put_with_the_cache_off_stores_nothing() -> None:
    cache: VerificationCache[str] = VerificationCache(ttl=0, size=2)
    cache.put(b"k", "h", "v")
    assert len(cache) == 0


@pytest.mark.parametrize(("ttl", "size"), [(-1, 10), (10, 0)])
def test_the_cache_refuses_a_negative_ttl_or_empty_size(ttl: float, size: int) -> None:
    with pytest.raises(ValueError):
        VerificationCache(ttl=ttl, size=size)


# -- no plaintext ---------------------------------------------------------------------------------


def test_cache_keys_hold_no_plaintext(alice_hash: str) -> None:
    gate = mapping_gate({"alice": alice_hash})
    value = credential("alice", "wonderland")
    decide(gate, value)
    (key,) = gate.cache._entries.keys()
    assert len(key) == 16
    for secret in (b"wonderland", b"alice", value, value.split()[1]):
        assert secret not in key
    stored = repr(gate.cache._entries)
    assert "wonderland" not in stored
    assert value.split()[1].decode() not in stored


def test_cache_keys_differ_between_processes_caches() -> None:
    one: VerificationCache[str] = VerificationCache(ttl=1, size=1)
    two: VerificationCache[str] = VerificationCache(ttl=1, size=1)
    assert one.key(b"Basic YTpi") != two.key(b"Basic YTpi")


def test_cache_key_is_stable_within_a_cache() -> None:
    cache: VerificationCache[str] = VerificationCache(ttl=1, size=1)
    assert cache.key(b"Basic YTpi") == cache.key(b"Basic YTpi")
    assert cache.key(b"Basic YTpi") != cache.key(b"Basic YTpj")


def test_cache_repr_shows_no_entries() -> None:
    cache: VerificationCache[str] = VerificationCache(ttl=1, size=1)
    cache.put(cache.key(b"Basic YTpi"), "$2b$hash", "alice")
    assert "$2b$" not in repr(cache)
    assert "alice" not in repr(cache)


# -- single flight --------------------------------------------------------------------------------


class CountingLock:
    """SingleFlight's lock, counting how many critical sections have completed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.exits = 0

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.exits += 1
        self._lock.release()


def run_concurrently(checks: list[Forward | Deny | Check], gate: Gate,
                     release: threading.Event) -> list[Forward | Deny]:
    """Run each check in its own thread; release the verifier once all joined the flight."""
    lock = CountingLock()
    gate.flight._lock = lock  # type: ignore[assignment]
    results: list[Forward | Deny] = []
    assert all(isinstance(check, Check) for check in checks)
    threads = [threading.Thread(target=lambda c=c: results.append(c.run()))
               for c in checks]
    for thread in threads:
        thread.start()
    # Each run() either finds the flight already running when it enters the budget (it
    # is then joined to it for good) or registers as leader or follower in one critical
    # section; the leader's second one (clean-up) cannot come before the release below.
    wait_until(lambda: lock.exits + sum(
        isinstance(c, Check) and c.joined is not None for c in checks) == len(checks))
    release.set()
    for thread in threads:
        thread.join(5)
    return results


def test_concurrent_identical_misses_hash_once() -> None:
    release = threading.Event()
    verifier = CountingVerifier({"alice": "pw"})

    def slow(username: str, password: str) -> bool:
        release.wait(5)
        return verifier(username, password)

    # A budget with room for all eight: this pins the single flight, not the budget.
    gate = Gate(Config(users=slow, max_concurrent_hashes=8))
    checks = [gate.decide(head_with(credential("alice", "pw"))) for _ in range(8)]
    results = run_concurrently(checks, gate, release)
    assert verifier.calls == 1
    assert len(results) == 8
    assert all(isinstance(result, Forward) for result in results)


def test_concurrent_identical_wrong_passwords_hash_once_and_all_fail() -> None:
    release = threading.Event()
    verifier = CountingVerifier({"alice": "pw"})

    def slow(username: str, password: str) -> bool:
        release.wait(5)
        return verifier(username, password)

    gate = Gate(Config(users=slow, max_failures=0, max_concurrent_hashes=6))
    checks = [gate.decide(head_with(credential("alice", "nope"))) for _ in range(6)]
    results = run_concurrently(checks, gate, release)
    assert verifier.calls == 1
    assert len(results) == 6
    assert all(isinstance(result, Deny) for result in results)


def test_single_flight_runs_different_keys_separately() -> None:
    flight: SingleFlight[int] = SingleFlight()
    assert flight.run(b"a", lambda: 1) == 1
    assert flight.run(b"b", lambda: 2) == 2
    assert len(flight) == 0


def test_concurrent_identical_misses_in_asgi_hash_once_on_one_thread() -> None:
    import asyncio

    from proxygate.asgi import ProxyGateMiddleware
    from support.asgi_driver import RecordingApp, acall_asgi

    release = threading.Event()
    verifier = CountingVerifier({"alice": "pw"})
    threads: set[int] = set()

    def slow(username: str, password: str) -> bool:
        threads.add(threading.get_ident())
        release.wait(5)
        return verifier(username, password)

    # One hash slot and no queue: the five followers must neither need a place in the
    # budget (they would get 503) nor a thread (they would wait behind the leader's).
    middleware = ProxyGateMiddleware(RecordingApp(), users=slow, max_concurrent_hashes=1,
                                     max_queued_hashes=0)
    flight = middleware.gate.flight
    followers: list[object] = []
    current = flight.current

    def counting_current(key: bytes) -> Any:
        found = current(key)
        if found is not None:
            followers.append(found)
        return found

    flight.current = counting_current  # type: ignore[method-assign]

    def release_when_all_joined() -> None:
        wait_until(lambda: len(followers) == 5)
        release.set()

    releaser = threading.Thread(target=release_when_all_joined)
    releaser.start()

    async def six_requests() -> list[int]:
        headers = [("proxy-authorization", credential("alice", "pw"))]
        results = await asyncio.gather(*(acall_asgi(middleware, "GET", "/", headers)
                                         for _ in range(6)))
        return [result.status for result in results]

    statuses = asyncio.run(six_requests())
    releaser.join(5)
    assert statuses == [200] * 6
    assert verifier.calls == 1
    assert len(threads) == 1
    assert middleware.gate.hash_budget.refused == 0
