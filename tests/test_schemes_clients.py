"""Digest and Bearer with the clients people use, against real servers on 127.0.0.1.

curl (``--proxy-digest``, ``--digest``, ``--proxy-header``, ``-H``), httpx2's
``DigestAuth``, requests' ``HTTPDigestAuth`` and urllib's ``ProxyDigestAuthHandler``,
each against uvicorn serving the test app behind the gate, or ``proxygate serve``.
What each client does with several challenges: curl, httpx and urllib answer the first
Digest line, requests the last (it folds the lines into one and keeps the last value
of each parameter); urllib reads only the first challenge of all and knows MD5 only.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import requests
from requests.auth import HTTPDigestAuth

from apps._options import ENV
from proxygate.auth.digest_file import digest_fields
from proxygate.auth.tokens import hash_token, new_token
from support.binaries import require_binary
from support.digest import answer, challenges
from support.servers import PYTHON, RunningServer, fetch, run_server

pytestmark = pytest.mark.server

REALM = "internal"
USER, PASSWORD = "alice", "wonder land:42"
SECRET = "shared-nonce-secret-0123456789abcdef"
TARGET = "http://example.internal/hello?x=1"
ALL = ("MD5", "SHA-256", "SHA-512-256")


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("digest") / "users.digest"
    path.write_text(f"{USER}:{REALM}:{digest_fields(USER, REALM, PASSWORD, ALL)}\n")
    return path


def uvicorn(options: dict[str, Any], app: str = "apps.asgi_app:gated",
            env: dict[str, str] | None = None) -> Any:
    command = [PYTHON, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", "{port}",
               "--log-level", "info", "--no-proxy-headers"]
    settings = {"realm": REALM, "reload_interval": 0, **options}
    return run_server(command, env={ENV: json.dumps(settings), **(env or {})})


@pytest.fixture(scope="module")
def proxy(users_file: Path) -> Iterator[RunningServer]:
    """Proxy mode (407), Basic and Digest from one file, SHA-256 then MD5."""
    with uvicorn({"users": str(users_file), "schemes": ["basic", "digest"],
                  "digest_algorithms": ["SHA-256", "MD5"], "nonce_secret": SECRET}) as server:
        yield server


@pytest.fixture(scope="module")
def origin(users_file: Path) -> Iterator[RunningServer]:
    """Origin mode (401), the defaults: Digest alone with SHA-256."""
    with uvicorn({"users": str(users_file), "schemes": ["digest"], "mode": "origin",
                  "nonce_secret": SECRET}) as server:
        yield server


def curl(*args: str) -> tuple[int, str, str]:
    """curl's final status, body and verbose trace (request and response headers)."""
    binary = require_binary("curl", install="apt-get install curl")
    done = subprocess.run([binary, "-sS", "-v", "--max-time", "20", "-o", "-",
                           "-w", "\n%{http_code}", *args],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={"PATH": "/usr/bin:/bin"})
    body, _, status = done.stdout.rpartition("\n")
    return int(status or 0), body, done.stderr


def user_of(body: str) -> str | None:
    found: str | None = json.loads(body)["user"]
    return found


# -- curl ---------------------------------------------------------------------------------------


def test_curl_proxy_digest_with_sha256_and_userhash(proxy: RunningServer) -> None:
    status, body, trace = curl("-x", proxy.url, "--proxy-digest", "--proxy-user",
                               f"{USER}:{PASSWORD}", TARGET)
    assert status == 200 and user_of(body) == USER
    sent = re.search(r"> Proxy-Authorization: (Digest .*)", trace)
    assert sent is not None and "algorithm=SHA-256" in sent.group(1)
    assert f'username="{USER}"' not in sent.group(1)  # curl hashed the name: userhash=true


def test_curl_proxy_digest_with_md5(users_file: Path) -> None:
    with uvicorn({"users": str(users_file), "schemes": ["digest"],
                  "digest_algorithms": ["MD5"]}) as server:
        status, body, trace = curl("-x", server.url, "--proxy-digest", "--proxy-user",
                                   f"{USER}:{PASSWORD}", TARGET)
    assert status == 200 and user_of(body) == USER
    assert "algorithm=MD5" in trace


def test_curl_basic_and_digest_pass_on_one_server_from_one_file(proxy: RunningServer) -> None:
    status, body, _ = curl("-x", proxy.url, "--proxy-user", f"{USER}:{PASSWORD}", TARGET)
    assert status == 200 and user_of(body) == USER
    status, _, _ = curl("-x", proxy.url, "--proxy-user", f"{USER}:wrong", TARGET)
    assert status == 407


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_curl_digest_in_origin_mode(users_file: Path, algorithm: str) -> None:
    with uvicorn({"users": str(users_file), "schemes": ["digest"], "mode": "origin",
                  "digest_algorithms": [algorithm]}) as server:
        status, body, trace = curl("--digest", "-u", f"{USER}:{PASSWORD}",
                                   f"{server.url}/hello?x=1")
        wrong, _, _ = curl("--digest", "-u", f"{USER}:nope", f"{server.url}/hello")
    assert status == 200 and user_of(body) == USER and f"algorithm={algorithm}" in trace
    assert wrong == 401


def test_a_replayed_curl_request_is_refused(proxy: RunningServer) -> None:
    status, _, trace = curl("-x", proxy.url, "--proxy-digest", "--proxy-user",
                            f"{USER}:{PASSWORD}", TARGET)
    assert status == 200
    sent = re.search(r"> Proxy-Authorization: (Digest .*)\r?$", trace, re.MULTILINE)
    assert sent is not None
    replayed = fetch(proxy.url, TARGET, {"Proxy-Authorization": sent.group(1).strip()})
    assert replayed.status == 407
    assert "replay" in proxy.output()


def test_curl_retries_a_stale_nonce_without_asking_again(users_file: Path) -> None:
    # The first challenge is held in transit past the nonce's life, so curl's answer
    # carries an expired nonce: the gate says stale=true and curl answers the new one.
    with uvicorn({"users": str(users_file), "schemes": ["digest"], "nonce_ttl": 1},
                 app="apps.slow_challenge:app",
                 env={"PROXYGATE_TEST_CHALLENGE_DELAY": "1.5"}) as server:
        status, body, trace = curl("-x", server.url, "--proxy-digest", "--proxy-user",
                                   f"{USER}:{PASSWORD}", TARGET)
        output = server.output()
    assert status == 200 and user_of(body) == USER
    challenges_seen = re.findall(r"< proxy-authenticate: (Digest .*)", trace)
    assert len(challenges_seen) == 2 and "stale=true" in challenges_seen[1]
    # A stale answer is no failure: nothing logged at WARNING, where failures go.
    assert "authentication failure" not in output


# -- httpx2, requests, urllib ------------------------------------------------------------------


def test_httpx_digest_auth_in_origin_mode_reuses_the_nonce(origin: RunningServer) -> None:
    auth = httpx2.DigestAuth(USER, PASSWORD)
    with httpx2.Client(auth=auth, trust_env=False) as client:
        first = client.get(f"{origin.url}/hello?x=1")
        second = client.get(f"{origin.url}/again")
        wrong = client.get(f"{origin.url}/hello", auth=httpx2.DigestAuth(USER, "nope"))
    assert first.status_code == 200 and first.json()["user"] == USER
    assert [r.status_code for r in first.history] == [401]
    # The second request answers the remembered challenge with nc=2: no round trip.
    assert second.status_code == 200 and second.history == []
    assert wrong.status_code == 401


def test_requests_digest_auth_answers_the_last_line(users_file: Path) -> None:
    with uvicorn({"users": str(users_file), "schemes": ["basic", "digest"], "mode": "origin",
                  "digest_algorithms": ["SHA-256", "MD5"]}) as server:
        session = requests.Session()
        session.trust_env = False
        response = session.get(f"{server.url}/hello?x=1", auth=HTTPDigestAuth(USER, PASSWORD),
                               timeout=10)
        sent = response.request.headers["Authorization"]
        wrong = session.get(f"{server.url}/hello", auth=HTTPDigestAuth(USER, "x"), timeout=10)
    assert response.status_code == 200 and response.json()["user"] == USER
    assert 'algorithm="MD5"' in sent  # the last of the two Digest lines
    assert wrong.status_code == 401


def test_requests_with_the_default_configuration(origin: RunningServer) -> None:
    session = requests.Session()
    session.trust_env = False
    response = session.get(f"{origin.url}/hello", auth=HTTPDigestAuth(USER, PASSWORD), timeout=10)
    assert response.status_code == 200 and 'algorithm="SHA-256"' in \
        response.request.headers["Authorization"]


def test_urllib_proxy_digest_handler_with_md5(users_file: Path) -> None:
    with uvicorn({"users": str(users_file), "schemes": ["digest", "basic"],
                  "digest_algorithms": ["MD5", "SHA-256"]}) as server:
        passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        passwords.add_password(REALM, "http://example.internal/", USER, PASSWORD)
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": server.url}),
            urllib.request.ProxyDigestAuthHandler(passwords),
        )
        with opener.open(TARGET, timeout=10) as response:
            body = json.loads(response.read())
        output = server.output()
    assert body["user"] == USER and body["path"] == "/hello" and body["query"] == "x=1"
    assert "bad_password" not in output


# -- two workers, one secret -----------------------------------------------------------------------


def test_two_workers_with_a_shared_secret_accept_each_others_nonces(
        users_file: Path, redis_server: Any) -> None:
    options = {"users": str(users_file), "schemes": ["digest"], "mode": "origin",
               "nonce_secret": SECRET, "throttle_store": redis_server.url}
    with uvicorn(options) as one, uvicorn(options) as two:
        auth = httpx2.DigestAuth(USER, PASSWORD)
        with httpx2.Client(auth=auth, trust_env=False) as client:
            first = client.get(f"{one.url}/a")
            # httpx answers the nonce worker one issued, unasked, at worker two.
            second = client.get(f"{two.url}/b")
        assert first.status_code == 200 and second.status_code == 200
        assert second.history == []  # accepted at once, no new challenge
        assert first.json()["pid"] != second.json()["pid"]
        # The request worker two accepted, replayed to worker one: Redis remembers it.
        sent = second.request.headers["Authorization"]
        assert fetch(one.url, "/b", {"Authorization": sent}).status == 401
        assert "replay" in one.output()


def test_without_the_shared_secret_the_other_worker_refuses(users_file: Path) -> None:
    base = {"users": str(users_file), "schemes": ["digest"], "mode": "origin"}
    with uvicorn({**base, "nonce_secret": SECRET}) as one, \
            uvicorn({**base, "nonce_secret": SECRET[::-1]}) as two:
        challenge = fetch(one.url, "/a")
        header = answer(challenges([v for k, v in challenge.headers
                                    if k == "www-authenticate"])[0], USER, PASSWORD, uri="/a")
        assert fetch(one.url, "/a", {"Authorization": header}).status == 200
        assert fetch(two.url, "/a", {"Authorization": header.replace("nc=00000001",
                                                                    "nc=00000002")}).status == 401


# -- Bearer -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    token = new_token()
    path = tmp_path_factory.mktemp("tokens") / "tokens"
    path.write_text(f"ci-deploy:{hash_token(token)}\n")
    return path, token


def test_curl_bearer_through_the_proxy_header(users_file: Path, tokens: tuple[Path, str]) -> None:
    path, token = tokens
    with uvicorn({"users": str(users_file), "schemes": ["basic", "bearer"],
                  "tokens": str(path)}) as server:
        status, body, _ = curl("-x", server.url, "--proxy-header",
                               f"Proxy-Authorization: Bearer {token}", TARGET)
        refused, _, trace = curl("-x", server.url, "--proxy-header",
                                 "Proxy-Authorization: Bearer pgt_guess", TARGET)
        bare, _, bare_trace = curl("-x", server.url, f"{TARGET}&access_token={token}")
    assert status == 200 and user_of(body) == "ci-deploy"
    assert refused == 407 and 'error="invalid_token"' in trace
    assert bare == 407 and "invalid_token" not in bare_trace


def test_curl_and_httpx_bearer_in_origin_mode(tokens: tuple[Path, str]) -> None:
    path, token = tokens
    with uvicorn({"schemes": ["bearer"], "tokens": str(path), "mode": "origin"}) as server:
        status, body, _ = curl("-H", f"Authorization: Bearer {token}", f"{server.url}/hello")
        with httpx2.Client(trust_env=False) as client:
            ok = client.get(f"{server.url}/hello", headers={"Authorization": f"Bearer {token}"})
            refused = client.get(f"{server.url}/hello", headers={"Authorization": "Bearer x"})
            missing = client.get(f"{server.url}/hello")
    assert status == 200 and user_of(body) == "ci-deploy"
    assert ok.status_code == 200 and ok.json()["user"] == "ci-deploy"
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == f'Bearer realm="{REALM}", error="invalid_token"'
    assert missing.headers["www-authenticate"] == f'Bearer realm="{REALM}"'
