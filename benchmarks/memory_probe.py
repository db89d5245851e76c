"""Resident memory after a flood of failed logins, each with a user name never seen before.

Runs in its own process so that the reading is proxygate's alone: it builds
the WSGI gate (the caches and throttle counters live in the core, shared by
both shells; WSGI reaches them without an event loop in the way), warms it
up, reads ``VmRSS`` from ``/proc/self/status``, sends the flood, collects
garbage and reads it again. Prints one JSON line.

Scenarios:

``one-client``
    Default options, a users mapping with a cheap hash, every attempt from
    the same address: after ``max_failures`` the throttle answers 429 before
    any hashing, so this is what one attacker costs.
``many-clients``
    Default options, every attempt from a new address as well as a new
    name: nothing is throttled and every failure leaves a counter behind,
    the worst case for memory. The users source is a callable that refuses
    at once, because a million password hashes would take minutes of CPU
    and change nothing in memory.

    python benchmarks/memory_probe.py --scenario many-clients --logins 1000000
"""

from __future__ import annotations

import argparse
import base64
import gc
import io
import json
import sys
import time
from collections import Counter
from typing import Any

from checkout import ensure_proxygate_importable

ensure_proxygate_importable()

SCENARIOS = ("one-client", "many-clients")


def status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _refuse(username: str, password: str) -> bool:
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=1_000_000)
    parser.add_argument("--warmup", type=int, default=1_000)
    parser.add_argument("--scenario", choices=SCENARIOS, default="many-clients")
    args = parser.parse_args()

    import logging

    import proxygate.wsgi

    # Failed logins are logged at WARNING; a million log lines would measure the terminal.
    logging.getLogger("proxygate").setLevel(logging.CRITICAL)

    import apps

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    many = args.scenario == "many-clients"
    users: Any = _refuse if many else apps.cheap_users()
    gate = proxygate.wsgi.ProxyGateMiddleware(app, users=users)
    template = {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/", "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    statuses: Counter[str] = Counter()

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses[status[:3]] += 1
        return None

    def flood(first: int, count: int, *, address: str | None = None) -> None:
        b64 = base64.b64encode
        for i in range(first, first + count):
            environ = template.copy()
            token = b64(f"flood-{i:08d}:not-the-password".encode()).decode("ascii")
            environ["HTTP_PROXY_AUTHORIZATION"] = "Basic " + token
            if address is not None:
                environ["REMOTE_ADDR"] = address
            elif many:
                environ["REMOTE_ADDR"] = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
            body = gate(environ, start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()

    # Warm up from an address and with names outside the measured range, so
    # that what is built on first use is in place before the first reading
    # while the flood's own counters all start after it.
    warmup = min(args.warmup, args.logins)
    flood(1 << 24, warmup, address="192.0.2.1")
    gc.collect()
    before = status_kib("VmRSS")
    started = time.perf_counter()
    flood(0, args.logins)
    seconds = time.perf_counter() - started
    gc.collect()
    after = status_kib("VmRSS")
    peak = status_kib("VmHWM")
    if statuses.get("200"):
        raise SystemExit(f"{statuses['200']} of the failed logins were let through")
    users_text = "a callable that refuses" if many else "a users mapping (apr1 hash)"
    clients = "each from a new client address" if many else "all from one client address"
    print(json.dumps({
        "scenario": args.scenario, "logins": args.logins, "rss_before_kib": before,
        "rss_after_kib": after, "hwm_kib": peak, "growth_kib": after - before,
        "seconds": seconds, "statuses": dict(sorted(statuses.items())),
        "setup": f"default options, {users_text}; distinct user names, {clients}",
    }))


if __name__ == "__main__":
    main()
