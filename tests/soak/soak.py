"""The bounded soak (issue 13): mixed credentials at high concurrency through uvicorn and
gunicorn for a fixed time, every response checked against what was sent.

    python tests/soak/soak.py                 # both servers, 60 s each
    python tests/soak/soak.py --seconds 20 --server uvicorn

Loopback only, bounded in time, stops by itself. Each client thread sends, at random,
one of:

- *valid*: alice's or bob's right password from a "good" address: always 200, and the
  app sees exactly that user and no credential header;
- *wrong*: a wrong password from one of the "bad" addresses: 407 or 429, and never more
  than ``max_failures`` 407s for one address over the whole run (the window outlasts it);
- *missing*: no credentials: always 407 with the challenge's envelope;
- *malformed*: garbage after ``Basic``: counted like a wrong password;
- *throttled*: carol's right password from a bad address: 200 or 429, never 407.

Then: zero 5xx, zero wrong decisions, resident memory of the server (its workers
included) flat after warm-up, and no more hashes at once than the budget allows.
Exits 1 on any violation, naming it.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import random
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(TESTS), str(TESTS.parent / "src")]

import bcrypt  # noqa: E402

from apps._options import ENV  # noqa: E402
from support.servers import PYTHON, RunningServer, run_server  # noqa: E402

PASSWORD = "soak-right-pw"
MAX_FAILURES = 5
GOOD = [f"192.0.2.{n}" for n in range(1, 41)]
BAD = [f"198.51.100.{n}" for n in range(1, 31)]
USERS = ("alice", "bob")
KINDS = ("valid",) * 5 + ("wrong",) * 3 + ("missing", "malformed", "throttled")
#: Resident memory may grow this much after warm-up (allocator noise), no more.
RSS_SLACK_KIB = 16 * 1024

SERVERS = {
    "uvicorn": [PYTHON, "-m", "uvicorn", "apps.asgi_app:gated", "--host", "127.0.0.1",
                "--port", "{port}", "--log-level", "warning", "--no-access-log"],
    "gunicorn": [PYTHON, "-m", "gunicorn", "--bind", "127.0.0.1:{port}", "--workers", "1",
                 "--worker-class", "gthread", "--threads", "32", "--log-level", "warning",
                 "apps.wsgi_app:gated"],
}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` plus its child processes (gunicorn's workers)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0
    own = next((int(line.split()[1]) for line in status.splitlines()
                if line.startswith("VmRSS:")), 0)
    return own + sum(rss_kib(int(child)) for child in children)


class Checker:
    """Collects every response with what was sent; the rules live in :meth:`check`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.violations: list[str] = []
        self.failures_by_address: defaultdict[str, int] = defaultdict(int)

    def violation(self, text: str) -> None:
        with self.lock:
            if len(self.violations) < 50:
                self.violations.append(text)

    def check(self, kind: str, user: str | None, address: str, status: int,
              body: bytes, server: str) -> None:
        with self.lock:
            self.statuses[(kind, status)] += 1
            if kind in ("wrong", "malformed") and status == 407:
                self.failures_by_address[address] += 1
        if status >= 500:
            self.violation(f"{kind} from {address}: {status} {body[:200]!r}")
            return
        allowed = {"valid": {200}, "wrong": {407, 429}, "missing": {407},
                   "malformed": {407, 429}, "throttled": {200, 429}}[kind]
        if status not in allowed:
            self.violation(f"{kind} ({user}) from {address}: {status}, expected {allowed}")
            return
        document: Any = json.loads(body)
        if status == 200:
            seen = document.get("user") if server == "uvicorn" else document.get("remote_user")
            if seen != user:
                self.violation(f"{kind}: sent {user}, the app saw {seen!r}")
            names = [pair[0] if isinstance(pair, list) else pair
                     for pair in document.get("headers", [])]
            if any("authorization" in str(name).lower() for name in names):
                self.violation(f"{kind}: a credential header reached the app: {names}")
        elif document.get("error", {}).get("code") != status:
            self.violation(f"{kind}: a {status} without its envelope: {body[:200]!r}")


def one_request(port: int, kind: str, rng: random.Random, checker: Checker,
                server: str) -> None:
    headers: dict[str, str] = {}
    user: str | None = None
    if kind == "valid":
        user, address = rng.choice(USERS), rng.choice(GOOD)
        headers["Proxy-Authorization"] = basic(user, PASSWORD)
    elif kind == "throttled":
        user, address = "carol", rng.choice(BAD)
        headers["Proxy-Authorization"] = basic(user, PASSWORD)
    else:
        address = rng.choice(BAD)
        if kind == "wrong":
            headers["Proxy-Authorization"] = basic(rng.choice(USERS), f"no-{rng.random()}")
        elif kind == "malformed":
            headers["Proxy-Authorization"] = "Basic !!" + str(rng.random())
    headers["X-Forwarded-For"] = address
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", "/", headers=headers)
        response = connection.getresponse()
        body = response.read()
    except OSError as exc:
        checker.violation(f"{kind} from {address}: {type(exc).__name__}: {exc}")
        return
    finally:
        connection.close()
    checker.check(kind, user, address, response.status, body, server)


def budget(port: int) -> dict[str, int]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/budget")
        report: dict[str, int] = json.loads(connection.getresponse().read())
        return report
    finally:
        connection.close()


def soak(server: str, seconds: float, threads: int, cost: int) -> list[str]:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(cost)).decode()
    options = {
        "users": {"alice": hashed, "bob": hashed, "carol": hashed},
        "max_failures": MAX_FAILURES,
        "failure_window": 3600,  # outlasts the run: the per-address count is exact
        "trusted_proxies": ["127.0.0.1/32"],
        "exempt_paths": ["/budget"],
        # Room in the queue for every client thread: a 503 here would be a violation.
        "max_queued_hashes": threads,
    }
    checker = Checker()
    with run_server(SERVERS[server], env={ENV: json.dumps(options)}) as running:
        report = soak_against(running, server, seconds, threads, checker)
    problems = list(checker.violations)
    over = {a: n for a, n in checker.failures_by_address.items() if n > MAX_FAILURES}
    if over:
        problems.append(f"addresses with more than {MAX_FAILURES} hashed failures: {over}")
    if report["peak"] > report["concurrency"]:
        problems.append(f"{report['peak']} hashes ran at once; the budget is "
                        f"{report['concurrency']}")
    if report["growth_kib"] > RSS_SLACK_KIB:
        problems.append(f"resident memory grew {report['growth_kib']} KiB after warm-up "
                        f"({report['rss_warm_kib']} -> {report['rss_end_kib']} KiB)")
    counts = {f"{kind} {status}": n for (kind, status), n in checker.statuses.items()}
    print(f"{server}: {sum(checker.statuses.values())} requests in {seconds:.0f} s, "
          f"{json.dumps(counts, sort_keys=True)}; budget peak {report['peak']} of "
          f"{report['concurrency']}, refused {report['refused']}; RSS "
          f"{report['rss_warm_kib']} -> {report['rss_end_kib']} KiB after warm-up", flush=True)
    return [f"{server}: {problem}" for problem in problems]


def soak_against(running: RunningServer, server: str, seconds: float, threads: int,
                 checker: Checker) -> dict[str, int]:
    deadline = time.monotonic() + seconds
    warm_at = time.monotonic() + seconds * 0.3
    samples: list[int] = []

    def client(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            one_request(running.port, rng.choice(KINDS), rng, checker, server)

    workers = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(threads)]
    for worker in workers:
        worker.start()
    while time.monotonic() < deadline:
        if time.monotonic() >= warm_at:
            samples.append(rss_kib(running.pid))
        time.sleep(0.5)
    for worker in workers:
        worker.join(120)
        if worker.is_alive():
            checker.violation("a client thread did not finish within 120 s of the deadline")
    end = rss_kib(running.pid)
    report = budget(running.port)
    warm = samples[0] if samples else end
    return {**report, "rss_warm_kib": warm, "rss_end_kib": end, "growth_kib": end - warm}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="per server (default 60)")
    parser.add_argument("--threads", type=int, default=32, help="client threads (default 32)")
    parser.add_argument("--server", action="append", choices=sorted(SERVERS),
                        help="which server (repeatable; default: all)")
    parser.add_argument("--cost", type=int, default=6, help="bcrypt cost (default 6)")
    args = parser.parse_args()
    if not 1 <= args.seconds <= 600:
        parser.error("--seconds must be between 1 and 600: the soak is bounded")
    problems: list[str] = []
    for server in args.server or sorted(SERVERS):
        problems += soak(server, args.seconds, args.threads, args.cost)
    if problems:
        print("SOAK FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print("soak passed: 0 wrong decisions, 0 5xx, memory flat, hashing bounded")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
