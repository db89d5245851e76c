"""Issue 13 under real servers: counting before hashing (3), the hash budget under a flood (4)
and the start-up warnings about workers (4, 9), with uvicorn, hypercorn and gunicorn."""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Iterator
from typing import Any

import bcrypt
import pytest

from apps._options import ENV
from support.attack import Flood, raw_request, simultaneous, status_of
from support.redis_server import RedisServer
from support.servers import PYTHON, RunningServer, fetch, run_server, wait_until

pytestmark = pytest.mark.server

PASSWORD = "open:sesame"
ATTEMPTS = 50
LIMIT = 10

UVICORN = [PYTHON, "-m", "uvicorn", "apps.asgi_app:gated", "--host", "127.0.0.1",
           "--port", "{port}", "--log-level", "warning"]
HYPERCORN = [PYTHON, "-m", "hypercorn", "apps.asgi_app:gated", "--bind", "127.0.0.1:{port}"]


def gunicorn(*options: str, app: str = "apps.wsgi_app:gated") -> list[str]:
    return [PYTHON, "-m", "gunicorn", "--bind", "127.0.0.1:{port}", *options, app]


SERVERS: dict[str, list[str]] = {
    "uvicorn": UVICORN,
    "hypercorn": HYPERCORN,
    "gunicorn-gthread": gunicorn("--workers", "1", "--worker-class", "gthread",
                                 "--threads", "64"),
}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def start(command: list[str], options: dict[str, Any]) -> Iterator[RunningServer]:
    with run_server(command, env={ENV: json.dumps(options)}) as server:
        yield server


@pytest.fixture(scope="module")
def cost10_hash() -> str:
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()


@pytest.fixture(scope="module")
def cost12_hash() -> str:
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(12)).decode()


@pytest.fixture(scope="module")
def cheap_hash() -> str:
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()


# -- 3. fifty simultaneous wrong passwords from one address ---------------------------------


@pytest.mark.parametrize("store", ["memory", "redis"])
@pytest.mark.parametrize("server", sorted(SERVERS))
def test_fifty_simultaneous_wrong_passwords_from_one_address_hash_at_most_max_failures(
        server: str, store: str, cost10_hash: str, request: pytest.FixtureRequest) -> None:
    throttle_store = None
    if store == "redis":
        redis: RedisServer = request.getfixturevalue("redis_server")
        throttle_store = redis.url
    options = {
        "users": {"alice": cost10_hash},
        "max_failures": LIMIT,
        "throttle_store": throttle_store,
        # Room in the budget for all fifty: this pins the counting, not the budget.
        "max_concurrent_hashes": 64,
        "cache_ttl": 0,
    }
    with run_server(SERVERS[server], env={ENV: json.dumps(options)}) as running:
        # Distinct passwords: no single flight to share a hash. One client address, the
        # peer's, fresh for this server (and its Redis keys are this test's own below).
        tag = secrets.token_hex(4)
        requests = [raw_request("/", [("Proxy-Authorization", basic("alice", f"{tag}-{n}"))])
                    for n in range(ATTEMPTS)]
        statuses = [status_of(r) for r in simultaneous(running.port, requests)]
        if throttle_store is not None:
            # Leave no count on 127.0.0.1 for the next parametrization sharing this Redis.
            import redis as redis_client

            client = redis_client.Redis.from_url(throttle_store)
            client.delete("proxygate:throttle:c:127.0.0.1")
            client.close()
    assert sorted(statuses) == [407] * LIMIT + [429] * (ATTEMPTS - LIMIT), statuses


# -- 4. a flood of wrong bcrypt-12 passwords: cached users keep flowing ---------------------


def flood_options(cost12: str, cheap: str) -> dict[str, Any]:
    return {
        "users": {"victim": cost12, "regular": cheap},
        "trusted_proxies": ["127.0.0.1/32"],
        "max_concurrent_hashes": 1,
        "max_queued_hashes": 1,
        "exempt_paths": ["/budget"],
    }


def attacker(number: int) -> bytes:
    # Fifty addresses, as the issue measured: each stays under its own limit of ten.
    return raw_request("/", [("Proxy-Authorization", basic("victim", f"guess-{number}")),
                             ("X-Forwarded-For", f"198.51.100.{number % 50}")])


FLOOD_SERVERS: dict[str, list[str]] = {
    "uvicorn": UVICORN,
    "hypercorn": HYPERCORN,
    "gunicorn-gthread": gunicorn("--workers", "1", "--worker-class", "gthread",
                                 "--threads", "16"),
}


@pytest.mark.parametrize("server", sorted(FLOOD_SERVERS))
def test_a_cached_user_gets_through_a_flood_of_wrong_bcrypt_12_passwords(
        server: str, cost12_hash: str, cheap_hash: str) -> None:
    cached = {"Proxy-Authorization": basic("regular", PASSWORD)}
    options = flood_options(cost12_hash, cheap_hash)
    with run_server(FLOOD_SERVERS[server], env={ENV: json.dumps(options)}) as running:
        assert fetch(running.url, "/", cached).status == 200  # now cached
        with Flood(running.port, attacker, threads=8) as flood:
            wait_until(lambda: 503 in flood.statuses() and 407 in flood.statuses(),
                       what="the flood to fill the hash budget", timeout=60)
            for _ in range(20):
                flood.record("cached", fetch(running.url, "/", cached, timeout=60).status)
            # Hashing goes on after the cached requests: they were served during it.
            hashed_before = flood.statuses().count(407)
            wait_until(lambda: flood.statuses().count(407) > hashed_before,
                       what="one more hash to finish", timeout=60)
        budget = fetch(running.url, "/budget").json()
    events = flood.events
    cached_at = [index for index, (who, _) in enumerate(events) if who == "cached"]
    during = events[cached_at[0]:cached_at[-1]]
    hashes_during = sum(1 for who, status in during if who == "flood" and status == 407)
    assert [status for who, status in events if who == "cached"] == [200] * 20
    assert set(flood.statuses()) <= {407, 503}, set(flood.statuses())
    # Twenty cached requests did not each wait for a hash to finish. (Under gunicorn's
    # sync worker, measured once with this very test: 152 hashes finished in between.)
    assert hashes_during < 10, (hashes_during, during)
    assert budget["peak"] == 1
    assert budget["refused"] > 0
    assert not flood.errors


def test_a_503_from_the_budget_carries_retry_after_and_the_envelope(
        cost12_hash: str, cheap_hash: str) -> None:
    with run_server(UVICORN, env={ENV: json.dumps(flood_options(cost12_hash, cheap_hash))}
                    ) as running:
        # Three at once against one slot and one place in the queue: one must be refused.
        responses = simultaneous(running.port, [attacker(n) for n in range(3)])
    refused = [r for r in responses if status_of(r) == 503]
    assert refused, [status_of(r) for r in responses]
    head, _, body = refused[0].partition(b"\r\n\r\n")
    assert b"\r\nretry-after: 1\r\n" in head.lower()
    assert b"proxy-authenticate" not in head.lower()
    assert json.loads(body)["error"]["code"] == 503


# -- 4 and 9. what the server is told at start-up -------------------------------------------

MULTI_WORKER = "each worker counts alone"
SYNC_WORKER = "serves one request at a time"


def users(cheap: str) -> dict[str, str]:
    return {"alice": cheap}


def test_gunicorn_with_two_sync_workers_and_the_memory_store_warns_of_both(
        cheap_hash: str) -> None:
    command = gunicorn("--workers", "2", "--worker-class", "sync")
    with run_server(command, env={ENV: json.dumps({"users": users(cheap_hash)})}) as running:
        wait_until(lambda: running.output().count(SYNC_WORKER) >= 2,
                   what="both workers' warnings", timeout=30)
        output = running.output()
    assert output.count(MULTI_WORKER) == 2  # once per worker process, not per request
    assert "throttle_store='redis://host:6379/0'" in output
    assert output.count(SYNC_WORKER) == 2
    assert "--worker-class gthread --threads N" in output


def test_gunicorn_two_workers_really_count_alone_with_the_memory_store(
        cheap_hash: str) -> None:
    # What the warning is about, measured: two workers, each allowing three failures.
    # Which worker accepts a connection is up to the kernel, so gunicorn's access log
    # names the worker that answered each request, and each worker's answers are judged alone.
    options = {"users": users(cheap_hash), "max_failures": 3, "cache_ttl": 0}
    command = gunicorn("--workers", "2", "--worker-class", "gthread", "--threads", "1",
                       "--access-logfile", "-", "--access-logformat", "answered %(p)s %(s)s")
    with run_server(command, env={ENV: json.dumps(options)}) as running:
        wait_until(lambda: running.output().count(MULTI_WORKER) >= 2, what="two workers")

        def answers() -> list[tuple[str, int]]:
            return [(pid, int(status)) for pid, status
                    in re.findall(r"answered <(\d+)> (\d{3})", running.output())]

        def send_one() -> int:
            before = len(answers())
            fetch(running.url, "/", {"Proxy-Authorization": basic("alice", "no")})
            wait_until(lambda: len(answers()) > before, what="the access log line")
            return before + 1

        sent = 0
        while sent < 12 or (len({pid for pid, _ in answers()}) < 2 and sent < 60):
            sent = send_one()
        by_worker: dict[str, list[int]] = {}
        for pid, status in answers():
            by_worker.setdefault(pid, []).append(status)
    # Both workers answered wrong passwords, so together they allowed more than one
    # worker's three: the split the warning names.
    assert len(by_worker) == 2, by_worker
    for statuses in by_worker.values():
        assert statuses == [407] * min(len(statuses), 3) + [429] * (len(statuses) - 3), by_worker


def test_gunicorn_with_two_workers_and_redis_does_not_warn_of_splitting(
        cheap_hash: str, redis_server: RedisServer) -> None:
    options = {"users": users(cheap_hash), "throttle_store": redis_server.url}
    command = gunicorn("--workers", "2", "--worker-class", "gthread", "--threads", "8")
    with run_server(command, env={ENV: json.dumps(options)}) as running:
        wait_until(lambda: running.output().count("Booting worker") >= 2, what="two workers")
        assert fetch(running.url, "/budget").status in (407, 200)  # every worker is serving
        output = running.output()
    assert MULTI_WORKER not in output
    assert SYNC_WORKER not in output


def test_gunicorn_gthread_with_one_worker_says_nothing(cheap_hash: str) -> None:
    command = gunicorn("--workers", "1", "--threads", "4")  # sync + threads means gthread
    with run_server(command, env={ENV: json.dumps({"users": users(cheap_hash)})}) as running:
        running.wait_for_output("Booting worker", timeout=30)
        assert fetch(running.url, "/").status == 407  # the gate is built and serving
        output = running.output()
    assert MULTI_WORKER not in output
    assert SYNC_WORKER not in output


@pytest.mark.parametrize("command", [
    [*UVICORN, "--workers", "2"],
    [*HYPERCORN, "--workers", "2"],
], ids=["uvicorn", "hypercorn"])
def test_asgi_servers_with_two_workers_and_the_memory_store_warn_once_per_worker(
        command: list[str], cheap_hash: str) -> None:
    with run_server(command, env={ENV: json.dumps({"users": users(cheap_hash)})}) as running:
        wait_until(lambda: running.output().count(MULTI_WORKER) >= 2,
                   what="both workers' warnings", timeout=30)
        output = running.output()
    assert output.count(MULTI_WORKER) == 2
    assert SYNC_WORKER not in output  # ASGI hashes on threads: nothing to warn of


def test_one_uvicorn_worker_says_nothing(cheap_hash: str) -> None:
    with run_server(UVICORN, env={ENV: json.dumps({"users": users(cheap_hash)})}) as running:
        assert fetch(running.url, "/").status == 407
        output = running.output()
    assert MULTI_WORKER not in output
