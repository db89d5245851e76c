"""Throttle stores: the memory and Redis stores count failures alike; Throttle fails open."""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from proxygate.auth.redis_store import RedisThrottleStore
from proxygate.auth.stores import make_throttle_store
from proxygate.auth.throttle import MemoryThrottleStore, Throttle, ThrottleStore
from support.redis_server import RedisServer
from support.servers import wait_until

SECRET = "hunter2-not-for-logs"


def redis_store_for(server: RedisServer, prefix: str, **kwargs: float) -> RedisThrottleStore:
    return RedisThrottleStore(server.url, prefix=prefix, **kwargs)


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own, so tests sharing the server never see each other."""
    return f"test:{uuid.uuid4().hex}:"


@pytest.fixture
def redis_store(redis_server: RedisServer, prefix: str) -> Iterator[RedisThrottleStore]:
    store = redis_store_for(redis_server, prefix)
    yield store
    store.close()


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> ThrottleStore:
    if request.param == "memory":
        return MemoryThrottleStore()
    redis_store: RedisThrottleStore = request.getfixturevalue("redis_store")
    return redis_store


@pytest.fixture
def stopped_redis(redis_server: RedisServer) -> Iterator[RedisServer]:
    """The session's Redis, stopped for this test and running again after it."""
    redis_server.stop()
    try:
        yield redis_server
    finally:
        redis_server.start()


# Counting, for both stores.


def test_failures_below_the_limit_do_not_block(store: ThrottleStore) -> None:
    for _ in range(4):
        store.reserve("c:10.0.0.1", limit=5, window=60)

    assert store.blocked_for("c:10.0.0.1", limit=5, window=60) == 0.0


def test_an_unknown_key_is_not_blocked(store: ThrottleStore) -> None:
    assert store.blocked_for("c:10.0.0.9", limit=1, window=60) == 0.0


def test_reaching_the_limit_blocks_for_about_the_window(store: ThrottleStore) -> None:
    for _ in range(5):
        store.reserve("c:10.0.0.1", limit=5, window=60)

    wait = store.blocked_for("c:10.0.0.1", limit=5, window=60)

    assert 58.0 < wait <= 60.0


def test_failures_older_than_the_window_age_out(store: ThrottleStore) -> None:
    for _ in range(2):
        store.reserve("c:10.0.0.1", limit=2, window=0.3)
    assert 0.0 < store.blocked_for("c:10.0.0.1", limit=2, window=0.3) <= 0.3

    wait_until(lambda: store.blocked_for("c:10.0.0.1", limit=2, window=0.3) == 0.0,
               what="the window to pass")
    # The aged-out failures are gone, not merely ignored: one more does not block.
    store.reserve("c:10.0.0.1", limit=2, window=0.3)
    assert store.blocked_for("c:10.0.0.1", limit=2, window=0.3) == 0.0


def test_keys_are_counted_independently(store: ThrottleStore) -> None:
    for _ in range(3):
        store.reserve("c:10.0.0.1", limit=3, window=60)
    store.reserve("c:10.0.0.2", limit=3, window=60)

    assert store.blocked_for("c:10.0.0.1", limit=3, window=60) > 0.0
    assert store.blocked_for("c:10.0.0.2", limit=3, window=60) == 0.0


def test_concurrent_failures_from_eight_threads_are_all_counted(store: ThrottleStore) -> None:
    threads, per_thread = 8, 50
    total = threads * per_thread
    start = threading.Barrier(threads)

    def fail_repeatedly() -> None:
        start.wait()
        for _ in range(per_thread):
            store.reserve("c:10.0.0.1", limit=total, window=60)

    workers = [threading.Thread(target=fail_repeatedly) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)

    # Exactly `total`: blocked at that limit, not at one more.
    assert store.blocked_for("c:10.0.0.1", limit=total, window=60) > 0.0
    assert store.blocked_for("c:10.0.0.1", limit=total + 1, window=60) == 0.0


# Reserving: look and count in one step, and give a success back.


def test_an_attempt_at_the_limit_is_blocked_and_not_counted(store: ThrottleStore) -> None:
    for _ in range(3):
        assert store.reserve("c:10.0.0.1", limit=3, window=60)[0] == 0.0

    wait, token = store.reserve("c:10.0.0.1", limit=3, window=60)

    assert 58.0 < wait <= 60.0
    assert token is None
    # Nothing was added: one slot above the limit is still free.
    assert store.blocked_for("c:10.0.0.1", limit=4, window=60) == 0.0


def test_a_released_attempt_no_longer_counts(store: ThrottleStore) -> None:
    tokens = [store.reserve("c:10.0.0.1", limit=3, window=60)[1] for _ in range(3)]
    assert store.blocked_for("c:10.0.0.1", limit=3, window=60) > 0.0

    store.release("c:10.0.0.1", tokens[1])

    assert store.blocked_for("c:10.0.0.1", limit=3, window=60) == 0.0
    assert store.reserve("c:10.0.0.1", limit=3, window=60)[0] == 0.0
    assert store.reserve("c:10.0.0.1", limit=3, window=60)[0] > 0.0


def test_releasing_twice_or_after_ageing_out_gives_back_nothing_more(
        store: ThrottleStore) -> None:
    first = store.reserve("c:10.0.0.1", limit=2, window=60)[1]
    store.reserve("c:10.0.0.1", limit=2, window=60)
    store.release("c:10.0.0.1", first)
    store.release("c:10.0.0.1", first)  # the second release must not take another count

    assert store.reserve("c:10.0.0.1", limit=2, window=60)[0] == 0.0
    assert store.reserve("c:10.0.0.1", limit=2, window=60)[0] > 0.0
    store.release("c:10.0.0.9", first)  # a key that never existed: a no-op


def test_fifty_simultaneous_reservations_count_exactly_the_limit(store: ThrottleStore) -> None:
    threads, limit = 50, 10
    start = threading.Barrier(threads)
    outcomes: list[float] = []
    lock = threading.Lock()

    def attempt() -> None:
        start.wait()
        wait, _ = store.reserve("c:10.0.0.1", limit=limit, window=60)
        with lock:
            outcomes.append(wait)

    workers = [threading.Thread(target=attempt) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)

    assert len(outcomes) == threads
    assert sum(1 for wait in outcomes if wait == 0.0) == limit


def test_a_throttled_user_key_gives_back_the_client_count_it_took(store: ThrottleStore) -> None:
    throttle = Throttle(store, max_failures=3, window=60, max_failures_per_user=1)
    assert throttle.reserve("10.0.0.1", "alice")[0] == 0.0  # alice's one failure

    wait, reservation = throttle.reserve("10.0.0.1", "alice")

    assert wait > 0.0 and not reservation
    # The refused attempt left no count on the client: two more fit under its limit of 3.
    assert store.blocked_for("c:10.0.0.1", limit=3, window=60) == 0.0
    assert store.blocked_for("c:10.0.0.1", limit=2, window=60) == 0.0


def test_a_released_reservation_gives_back_both_keys(store: ThrottleStore) -> None:
    throttle = Throttle(store, max_failures=1, window=60, max_failures_per_user=1)
    wait, reservation = throttle.reserve("10.0.0.1", "alice")
    assert wait == 0.0 and reservation

    reservation.release()

    assert store.blocked_for("c:10.0.0.1", limit=1, window=60) == 0.0
    assert store.blocked_for("u:alice", limit=1, window=60) == 0.0


# Memory store specifics.


def test_memory_store_stays_bounded_under_a_flood_of_distinct_keys() -> None:
    store = MemoryThrottleStore(max_keys=10_000)

    for n in range(200_000):
        store.reserve(f"c:{n}", limit=1, window=60)

    assert len(store) == 10_000
    assert store.blocked_for("c:199999", limit=1, window=60) > 0.0
    assert store.blocked_for("c:0", limit=1, window=60) == 0.0


def test_memory_store_forgets_the_least_recently_failed_key_first() -> None:
    store = MemoryThrottleStore(max_keys=2)
    store.reserve("c:a", limit=1, window=60)
    store.reserve("c:b", limit=1, window=60)
    store.reserve("c:a", limit=2, window=60)  # a new limit must still refresh the key

    store.reserve("c:c", limit=1, window=60)

    assert store.blocked_for("c:a", limit=1, window=60) > 0.0
    assert store.blocked_for("c:b", limit=1, window=60) == 0.0


def test_memory_store_measures_a_smaller_limit_from_the_newest_failures() -> None:
    now = [0.0]
    store = MemoryThrottleStore(clock=lambda: now[0])
    for at in (0.0, 10.0, 20.0):
        now[0] = at
        store.reserve("c:10.0.0.1", limit=3, window=60)

    # Below one failure only once the newest (t=20) has left the window.
    assert store.blocked_for("c:10.0.0.1", limit=1, window=60) == 60.0


# Redis store specifics.


def test_two_redis_stores_with_their_own_clients_share_counters(
    redis_server: RedisServer, prefix: str
) -> None:
    worker_a = redis_store_for(redis_server, prefix)
    worker_b = redis_store_for(redis_server, prefix)

    worker_a.reserve("c:10.0.0.1", limit=2, window=60)
    worker_b.reserve("c:10.0.0.1", limit=2, window=60)

    assert worker_a.blocked_for("c:10.0.0.1", limit=2, window=60) > 0.0
    assert worker_b.blocked_for("c:10.0.0.1", limit=2, window=60) > 0.0
    worker_a.close()
    worker_b.close()


def test_redis_keys_expire_with_their_window_and_keep_at_most_limit_entries(
    redis_server: RedisServer, redis_store: RedisThrottleStore, prefix: str
) -> None:
    for _ in range(7):
        redis_store.reserve("c:10.0.0.1", limit=3, window=60)

    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.zcard(prefix + "c:10.0.0.1") == 3
        assert 0 < client.pttl(prefix + "c:10.0.0.1") <= 60_000
    finally:
        client.close()


def test_redis_store_repr_hides_the_password(redis_server: RedisServer) -> None:
    store = RedisThrottleStore(f"redis://default:{SECRET}@127.0.0.1:{redis_server.port}/0")

    assert SECRET not in repr(store)
    assert "***@127.0.0.1" in repr(store)


def test_throttle_fails_open_fast_and_logs_an_error_without_secrets_while_redis_is_down(
    redis_server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://default:{SECRET}@127.0.0.1:{redis_server.port}/0"
    throttle = Throttle(RedisThrottleStore(url, prefix=prefix), max_failures=2, window=60)
    throttle.reserve("10.0.0.1", None)
    throttle.reserve("10.0.0.1", None)
    assert throttle.reserve("10.0.0.1", None)[0] > 0.0

    redis_server.stop()
    try:
        with caplog.at_level(logging.ERROR, logger="proxygate.auth"):
            started = time.monotonic()
            wait, reservation = throttle.reserve("10.0.0.1", None)
            elapsed = time.monotonic() - started
    finally:
        redis_server.start()

    assert wait == 0.0
    assert not reservation  # nothing could be counted
    assert elapsed < 1.0
    errors = [r for r in caplog.records if r.name == "proxygate.auth" and r.levelname == "ERROR"]
    assert errors
    assert SECRET not in caplog.text  # the text includes the logged traceback


def test_counting_an_attempt_while_redis_is_down_does_not_raise(
    stopped_redis: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    throttle = Throttle(
        RedisThrottleStore(stopped_redis.url, prefix=prefix), max_failures=2, window=60
    )

    with caplog.at_level(logging.ERROR, logger="proxygate.auth"):
        wait, reservation = throttle.reserve("10.0.0.1", None)

    assert (wait, bool(reservation)) == (0.0, False)
    assert any(r.name == "proxygate.auth" and r.levelname == "ERROR" for r in caplog.records)


def test_throttle_counts_again_as_soon_as_redis_is_back(
    redis_server: RedisServer, prefix: str
) -> None:
    throttle = Throttle(
        RedisThrottleStore(redis_server.url, prefix=prefix), max_failures=2, window=60
    )
    throttle.reserve("10.0.0.1", None)
    # Restarted with no call in between: the pooled connection is stale, and the
    # new server has no keys and no cached scripts.
    redis_server.stop()
    redis_server.start()

    throttle.reserve("10.0.0.1", None)
    throttle.reserve("10.0.0.1", None)

    assert throttle.reserve("10.0.0.1", None)[0] > 0.0


# Choosing a store.


def test_no_store_option_means_a_memory_store() -> None:
    assert isinstance(make_throttle_store(None), MemoryThrottleStore)


def test_memory_url_means_a_memory_store() -> None:
    assert isinstance(make_throttle_store("memory://"), MemoryThrottleStore)


def test_redis_url_means_a_working_redis_store(redis_server: RedisServer) -> None:
    store = make_throttle_store(redis_server.url)

    assert isinstance(store, RedisThrottleStore)
    assert store.blocking is True
    key = f"c:{uuid.uuid4().hex}"
    store.reserve(key, limit=1, window=60)
    assert store.blocked_for(key, limit=1, window=60) > 0.0


@pytest.mark.parametrize(
    "url", ["rediss://cache.example:6380/0", "unix:///run/redis/redis.sock?db=2"]
)
def test_tls_and_unix_socket_urls_mean_a_redis_store(url: str) -> None:
    assert isinstance(make_throttle_store(url), RedisThrottleStore)


def test_a_store_object_is_used_as_it_is() -> None:
    store = MemoryThrottleStore(max_keys=5)

    assert make_throttle_store(store) is store


def test_a_redis_url_without_the_redis_package_asks_for_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)

    with pytest.raises(ValueError, match=r"pip install 'proxygate\[redis\]'") as excinfo:
        make_throttle_store(f"redis://default:{SECRET}@127.0.0.1:6379/0")

    assert SECRET not in str(excinfo.value)


@pytest.mark.parametrize(
    "url",
    [
        f"postgres://app:{SECRET}@db.example/app",
        f"memcached://app:{SECRET}@cache.example",
        f"app:{SECRET}@cache.example",
        "127.0.0.1:6379",
    ],
)
def test_an_unsupported_url_is_refused_naming_the_accepted_ones_without_the_password(
    url: str,
) -> None:
    with pytest.raises(ValueError, match=r"redis://") as excinfo:
        make_throttle_store(url)

    assert SECRET not in str(excinfo.value)


@pytest.mark.parametrize(
    "url",
    [
        f"redis://default:{SECRET}@127.0.0.1:notaport/0",
        f"redis://default:{SECRET}@127.0.0.1:6379/0?db=notadb",
    ],
)
def test_a_malformed_redis_url_is_refused_without_the_password(url: str) -> None:
    with pytest.raises(ValueError, match="invalid Redis URL") as excinfo:
        make_throttle_store(url)

    assert SECRET not in str(excinfo.value)
    assert excinfo.value.__cause__ is None
    assert excinfo.value.__suppress_context__


def test_password_in_the_query_string_is_redacted_too() -> None:
    with pytest.raises(ValueError) as excinfo:
        make_throttle_store(f"redis://127.0.0.1:notaport/0?password={SECRET}")

    assert SECRET not in str(excinfo.value)


@pytest.mark.parametrize("spec", [42, object(), b"redis://127.0.0.1:6379/0"])
def test_anything_else_is_refused_with_a_clear_message(spec: object) -> None:
    with pytest.raises(ValueError, match="throttle_store must be"):
        make_throttle_store(spec)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis://u:hunter2@localhost:xx/0", "the port is not a number from 0 to 65535"),
        ("foo://u:pw@localhost/0",
         "Redis URL must specify one of the following schemes (redis://, rediss://, unix://)"),
        ("redis://u:s3cret@localhost/0?socket_timeout=u", "Invalid value for 'socket_timeout'"),
    ],
)
def test_a_bad_redis_url_is_refused_with_a_whole_message_and_the_credentials_redacted(
    url: str, says: str
) -> None:
    # Short user names and passwords used to be masked inside every word ("co***ld").
    with pytest.raises(ValueError, match="invalid Redis URL") as info:
        RedisThrottleStore(url)
    message = str(info.value)
    assert says in message, message
    assert "***@localhost" in message
    assert "hunter2" not in message and "s3cret" not in message and ":pw@" not in message


def test_a_redis_message_that_quotes_a_credential_is_withheld_whole() -> None:
    from proxygate.auth.redis_store import _shown

    url = "redis://u:s3cret@localhost/0?password=other-s3cret"
    for quoted in ("s3cret", "other-s3cret", "s3cret%21"):
        shown = _shown(f"cannot use {quoted!r}", url.replace("s3cret@", f"{quoted}@"))
        assert shown == "redis-py refused it (its message is withheld: it quotes a credential)"
    assert _shown(f"bad {url}", url) == "bad redis://***@localhost/0?password=***"
