"""Issue 3 across real processes: a Redis-shared failure limit under gunicorn's 4 workers,
fail-open when Redis goes away, and an event loop that keeps serving during a cost-12 hash."""

from __future__ import annotations

import base64
import json
import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from apps._options import ENV
from support.redis_server import RedisServer
from support.servers import PYTHON, Reply, RunningServer, fetch, run_server, wait_until

pytestmark = pytest.mark.server

PASSWORD = "open:sesame"
MAX_FAILURES = 5
WORKERS = 4


def basic(user: str, password: str) -> dict[str, str]:
    return {"Proxy-Authorization":
            "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def fresh_client() -> str:
    """A client address of its own per test: counters never leak between tests or runs."""
    return "10." + ".".join(str(b) for b in secrets.token_bytes(3))


def attempt(server: RunningServer, client: str, password: str, user: str = "alice") -> Reply:
    """One authentication attempt on a fresh connection, as ``client`` (via X-Forwarded-For)."""
    return fetch(server.url, "/", {**basic(user, password), "X-Forwarded-For": client})


GUNICORN = [PYTHON, "-m", "gunicorn", "--bind", "127.0.0.1:{port}", "--workers", str(WORKERS),
            "--worker-class", "sync", "apps.wsgi_app:gated"]


def gate_env(throttle_store: str | None) -> dict[str, str]:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    options = {
        "users": {"alice": hashed, "bob": hashed},
        "max_failures": MAX_FAILURES,
        "throttle_store": throttle_store,
        # Every request hashes, so each one consults the throttle store (no cache hits).
        "cache_ttl": 0,
        "trusted_proxies": ["127.0.0.1/32"],
        "exempt_paths": ["/slow"],
    }
    return {ENV: json.dumps(options)}


def start_gunicorn(throttle_store: str | None) -> Iterator[RunningServer]:
    with run_server(GUNICORN, env=gate_env(throttle_store)) as server:
        # Every worker must be accepting before the tests count on four of them.
        server.wait_for_output("Booting worker", timeout=20)
        wait_until(lambda: server.output().count("Booting worker") >= WORKERS,
                   what=f"{WORKERS} gunicorn workers to boot", timeout=20)
        yield server


@pytest.fixture(scope="module")
def redis_gunicorn(redis_server: RedisServer) -> Iterator[RunningServer]:
    yield from start_gunicorn(redis_server.url)


@pytest.fixture(scope="module")
def memory_gunicorn() -> Iterator[RunningServer]:
    yield from start_gunicorn(None)


class SlowRequest:
    """A request to the exempt /slow route that holds one sync worker until released."""

    def __init__(self, server: RunningServer, folder: Path, name: str, release: Path) -> None:
        self.started = folder / f"started-{name}"
        self.reply: Reply | None = None
        target = f"/slow?started={self.started}&release={release}"
        self.thread = threading.Thread(target=self._run, args=(server, target), daemon=True)
        self.thread.start()

    def _run(self, server: RunningServer, target: str) -> None:
        self.reply = fetch(server.url, target, timeout=30)

    def pid(self) -> int:
        wait_until(lambda: self.started.exists() and self.started.read_text() != "",
                   what=f"{self.started.name} to hold a worker")
        return int(self.started.read_text())

    def join(self) -> None:
        self.thread.join(timeout=30)
        assert self.reply is not None and self.reply.status == 200


def fail_on_one_worker_then_ask_another(server: RunningServer, folder: Path) -> Reply:
    """Five failures all served by one worker, then the right password served by another.

    Three workers are held on /slow, so the failures can only reach the fourth;
    then that one is held too and the others are let go, so the last attempt
    lands on a worker that saw no failure itself.
    """
    client = fresh_client()
    first_release, last_release = folder / "release-first", folder / "release-last"
    held = [SlowRequest(server, folder, str(n), first_release) for n in range(WORKERS - 1)]
    others = {request.pid() for request in held}
    assert len(others) == WORKERS - 1
    for _ in range(MAX_FAILURES):
        assert attempt(server, client, "wrong").status == 407
    last = SlowRequest(server, folder, "last", last_release)
    failing_worker = last.pid()
    assert failing_worker not in others
    first_release.touch()
    for request in held:
        request.join()
    try:
        return attempt(server, client, PASSWORD)
    finally:
        last_release.touch()
        last.join()


def test_redis_limit_holds_on_a_worker_that_saw_no_failure(redis_gunicorn: RunningServer,
                                                            tmp_path: Path) -> None:
    reply = fail_on_one_worker_then_ask_another(redis_gunicorn, tmp_path)
    assert reply.status == 429
    assert reply.header("retry-after") is not None
    assert reply.header("proxy-authenticate") is None


def test_memory_store_limit_is_per_worker(memory_gunicorn: RunningServer, tmp_path: Path) -> None:
    # The contrast that makes the Redis test mean something: per-process counters let it through.
    assert fail_on_one_worker_then_ask_another(memory_gunicorn, tmp_path).status == 200


def test_redis_limit_is_exact_across_fresh_connections(redis_gunicorn: RunningServer) -> None:
    client = fresh_client()
    statuses = [attempt(redis_gunicorn, client, "wrong").status for _ in range(MAX_FAILURES + 3)]
    assert statuses == [407] * MAX_FAILURES + [429] * 3


def test_redis_throttled_client_gets_429_with_retry_after_even_with_right_password(
        redis_gunicorn: RunningServer) -> None:
    client = fresh_client()
    for _ in range(MAX_FAILURES):
        attempt(redis_gunicorn, client, "wrong")
    replies = [attempt(redis_gunicorn, client, PASSWORD) for _ in range(WORKERS)]
    assert [reply.status for reply in replies] == [429] * WORKERS
    assert all(int(reply.header("retry-after") or 0) >= 1 for reply in replies)
    assert replies[0].json()["error"]["code"] == 429


def test_other_clients_are_not_throttled(redis_gunicorn: RunningServer) -> None:
    throttled, bystander = fresh_client(), fresh_client()
    for _ in range(MAX_FAILURES + 1):
        attempt(redis_gunicorn, throttled, "wrong")
    assert attempt(redis_gunicorn, bystander, PASSWORD).status == 200


def test_redis_outage_fails_open_and_throttling_resumes_after_restart(
        redis_gunicorn: RunningServer, redis_server: RedisServer) -> None:
    redis_server.stop()
    try:
        during = fresh_client()
        assert attempt(redis_gunicorn, during, PASSWORD).status == 200
        # Failures cannot be counted: wrong passwords keep getting the challenge, not 429.
        statuses = {attempt(redis_gunicorn, during, "wrong").status
                    for _ in range(MAX_FAILURES + 1)}
        assert statuses == {407}
        redis_gunicorn.wait_for_output("throttle store unavailable")
        assert attempt(redis_gunicorn, during, PASSWORD, user="bob").status == 200
    finally:
        redis_server.start()
    after = fresh_client()
    statuses_after = [attempt(redis_gunicorn, after, "wrong").status
                      for _ in range(MAX_FAILURES + 1)]
    assert statuses_after == [407] * MAX_FAILURES + [429]


# -- the event loop keeps serving while a cost-12 hash runs -------------------------------


@pytest.fixture(scope="session")
def cost12_hash() -> str:
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(12)).decode()


@pytest.fixture(scope="module")
def uvicorn_gate(cost12_hash: str) -> Iterator[RunningServer]:
    cheap = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    env = {ENV: json.dumps({"users": {"slow": cost12_hash, "fast": cheap}})}
    command = [PYTHON, "-m", "uvicorn", "apps.asgi_app:gated", "--host", "127.0.0.1",
               "--port", "{port}", "--log-level", "warning"]
    with run_server(command, env=env) as server:
        yield server


def test_cached_requests_answer_while_a_cost_12_check_is_in_flight(
        uvicorn_gate: RunningServer) -> None:
    assert fetch(uvicorn_gate.url, "/", basic("fast", PASSWORD)).status == 200  # now cached
    order: list[str] = []
    sent = threading.Event()
    slow_status: list[int] = []

    def slow() -> None:
        header = basic("slow", PASSWORD)["Proxy-Authorization"]
        with socket.create_connection(("127.0.0.1", uvicorn_gate.port), timeout=30) as sock:
            sock.sendall(f"GET / HTTP/1.1\r\nHost: x\r\nProxy-Authorization: {header}\r\n"
                         "Connection: close\r\n\r\n".encode())
            sent.set()
            first = sock.recv(64)
        order.append("slow")
        slow_status.append(int(first.split()[1]))

    thread = threading.Thread(target=slow, daemon=True)
    thread.start()
    assert sent.wait(timeout=10)
    for _ in range(10):
        assert fetch(uvicorn_gate.url, "/", basic("fast", PASSWORD)).status == 200
        order.append("fast")
    thread.join(timeout=30)
    assert slow_status == [200]
    # A loop blocked by the hash would let at most one cached request slip in first.
    assert order.index("slow") >= 5, order
