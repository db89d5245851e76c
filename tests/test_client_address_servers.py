"""Who chooses the throttle key, under real servers (issue 13, findings 1 and 2).

What each server does to the client address before proxygate sees it is pinned here
(docs/deployment.md quotes it), then the attacks: a loopback client with a fresh
``X-Forwarded-For`` per attempt against ``proxygate serve`` and ``forward-auth``, and a
client-sent header of the other kind behind a trusted proxy, under uvicorn and gunicorn.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from apps._options import ENV
from support.servers import PYTHON, RunningServer, child_env, fetch, run_server

pytestmark = pytest.mark.server

PASSWORD = "open:sesame"
LIMIT = 10  # the default max_failures: `serve` has no option for it
SPOOF = {"X-Forwarded-For": "203.0.113.7", "Forwarded": "for=203.0.113.8",
         "X-Real-IP": "203.0.113.9"}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def cheap_hash() -> str:
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory, cheap_hash: str) -> Path:
    path = tmp_path_factory.mktemp("users") / "htpasswd"
    path.write_text(f"alice:{cheap_hash}\n")
    return path


# -- what the servers do, measured -----------------------------------------------------------

ASGI = "apps.asgi_app:gated"
WSGI = "apps.wsgi_app:gated"
SERVERS = {
    # uvicorn 0.54: --proxy-headers is on by default and trusts 127.0.0.1.
    "uvicorn": ([PYTHON, "-m", "uvicorn", ASGI, "--host", "127.0.0.1", "--port", "{port}"],
                "203.0.113.7"),
    "uvicorn --no-proxy-headers": ([PYTHON, "-m", "uvicorn", ASGI, "--host", "127.0.0.1",
                                    "--port", "{port}", "--no-proxy-headers"], "127.0.0.1"),
    "hypercorn": ([PYTHON, "-m", "hypercorn", ASGI, "--bind", "127.0.0.1:{port}"], "127.0.0.1"),
    "gunicorn": ([PYTHON, "-m", "gunicorn", "--bind", "127.0.0.1:{port}", WSGI], "127.0.0.1"),
    # The uvicorn worker class under gunicorn also rewrites, trusting gunicorn's
    # forwarded_allow_ips (127.0.0.1 by default).
    "gunicorn -k uvicorn": ([PYTHON, "-m", "gunicorn", "--bind", "127.0.0.1:{port}",
                             "-k", "uvicorn.workers.UvicornWorker", ASGI], "203.0.113.7"),
    # ...which an empty list turns off (gunicorn passes it on to the worker).
    "gunicorn -k uvicorn --forwarded-allow-ips ''": (
        [PYTHON, "-m", "gunicorn", "--bind", "127.0.0.1:{port}", "-k",
         "uvicorn.workers.UvicornWorker", "--forwarded-allow-ips", "", ASGI], "127.0.0.1"),
}


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_what_each_server_hands_over_as_the_client_address_of_a_loopback_peer(
        server: str, cheap_hash: str) -> None:
    command, expected = SERVERS[server]
    options = {"users": {"alice": cheap_hash}, "exempt_paths": ["/client"]}
    with run_server(command, env={ENV: json.dumps(options)}) as running:
        plain = fetch(running.url, "/client").json()["client"]
        spoofed = fetch(running.url, "/client", SPOOF).json()["client"]
    assert plain == "127.0.0.1"
    assert spoofed == expected


# -- proxygate serve: the server's own handling is off ----------------------------------------


def serve(users: Path, *options: str) -> Iterator[RunningServer]:
    with run_server([PYTHON, "-m", "proxygate", "serve", "--port", "{port}", "--users",
                     str(users), "--log-level", "warning", *options]) as running:
        yield running


def wrong(running: RunningServer, headers: dict[str, str], target: str = "/") -> int:
    return fetch(running.url, target,
                 {"Proxy-Authorization": basic("alice", "wrong"), **headers}).status


def test_serve_does_not_let_a_loopback_client_pick_its_throttle_key(users_file: Path) -> None:
    for running in serve(users_file):
        statuses = [wrong(running, {"X-Forwarded-For": f"10.1.1.{n}"}) for n in range(12)]
    assert statuses == [407] * LIMIT + [429] * 2


def test_serve_with_a_trusted_proxy_counts_per_forwarded_client(users_file: Path) -> None:
    for running in serve(users_file, "--trusted-proxy", "127.0.0.1/32"):
        # The proxy appends the real client: a client-chosen hop before it changes nothing.
        same = [wrong(running, {"X-Forwarded-For": f"10.9.9.{n}, 192.0.2.10"})
                for n in range(12)]
        other = wrong(running, {"X-Forwarded-For": "192.0.2.11"})
    assert same == [407] * LIMIT + [429] * 2
    assert other == 407


def test_serve_behind_x_forwarded_for_ignores_a_client_sent_forwarded(users_file: Path) -> None:
    for running in serve(users_file, "--trusted-proxy", "127.0.0.1/32"):
        statuses = [wrong(running, {"Forwarded": f"for=192.0.2.{n}",
                                    "X-Forwarded-For": "192.0.2.200"}) for n in range(12)]
    assert statuses == [407] * LIMIT + [429] * 2


def test_serve_with_forwarded_ignores_a_client_sent_x_forwarded_for(users_file: Path) -> None:
    for running in serve(users_file, "--trusted-proxy", "127.0.0.1/32",
                         "--forwarded-header", "Forwarded"):
        statuses = [wrong(running, {"X-Forwarded-For": f"192.0.2.{n}",
                                    "Forwarded": "for=192.0.2.200"}) for n in range(12)]
    assert statuses == [407] * LIMIT + [429] * 2


def test_serve_refuses_an_unknown_forwarded_header(users_file: Path) -> None:
    import subprocess

    done = subprocess.run([PYTHON, "-m", "proxygate", "serve", "--users", str(users_file),
                           "--forwarded-header", "X-Client-IP"],
                          capture_output=True, text=True, timeout=60, check=False,
                          env=child_env())
    assert done.returncode == 2
    assert "forwarded_header must be one of 'X-Forwarded-For', 'Forwarded', 'X-Real-IP'" \
        in done.stderr


def test_forward_auth_does_not_let_a_loopback_client_pick_its_throttle_key(
        users_file: Path) -> None:
    command = [PYTHON, "-m", "proxygate", "forward-auth", "--port", "{port}", "--users",
               str(users_file), "--log-level", "warning"]
    with run_server(command) as running:
        statuses = [wrong(running, {"X-Forwarded-For": f"10.1.1.{n}",
                                    "X-Forwarded-Uri": "/", "X-Forwarded-Method": "GET"})
                    for n in range(12)]
    assert statuses[-2:] == [429, 429]
    assert statuses.count(429) == 2


# -- finding 1 under gunicorn, for real -------------------------------------------------------


@pytest.mark.parametrize(("header", "spoof", "real"), [
    ("X-Forwarded-For", "Forwarded", "X-Forwarded-For"),
    ("Forwarded", "X-Forwarded-For", "Forwarded"),
    ("X-Real-IP", "X-Forwarded-For", "X-Real-IP"),
])
def test_gunicorn_behind_a_trusted_proxy_believes_only_the_configured_header(
        header: str, spoof: str, real: str, cheap_hash: str) -> None:
    options = {"users": {"alice": cheap_hash}, "trusted_proxies": ["127.0.0.1/32"],
               "forwarded_header": header, "cache_ttl": 0}

    def value(name: str, address: str) -> str:
        return f"for={address}" if name == "Forwarded" else address

    command = [PYTHON, "-m", "gunicorn", "--bind", "127.0.0.1:{port}", WSGI]
    with run_server(command, env={ENV: json.dumps(options)}) as running:
        statuses = [wrong(running, {spoof: value(spoof, f"192.0.2.{n}"),
                                    real: value(real, "192.0.2.200")}) for n in range(13)]
    assert statuses == [407] * LIMIT + [429] * 3
