"""The checks every gateway passes with its shipped configuration (issue 10's Tests section).

A gateway's test module is a few lines: it imports everything from here and defines the
``gateway_spec`` fixture::

    from gateway_conformance import *  # noqa: F403

    @pytest.fixture(scope="module")
    def gateway_spec() -> GatewaySpec:
        return GatewaySpec("nginx", require_binary("nginx", install="apt-get install nginx-light"))

One stack (echo upstream, two forward-auth instances sharing Redis, the gateway) is
started per module. Every test that can fail a password uses a client address of its
own (``client`` fixture), so throttle counts never leak between tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import pytest
import requests
from requests.adapters import HTTPAdapter

from proxygate.forward_auth import NGINX_PREFIX, decode_user
from support.gateways import (
    MAX_FAILURES,
    USERS,
    GatewaySpec,
    Stack,
    gateway_stack,
    next_client_address,
    run_gateway,
    wait_for_record,
)
from support.redis_server import RedisServer
from support.servers import Reply, fetch, free_port

__all__ = [
    "GatewaySpec",
    "Stack",
    "client",
    "curl",
    "dead_upstream_gateway",
    "raw_request",
    "stack",
    "test_a_client_cannot_describe_its_request_as_an_exempt_one",
    "test_a_client_cannot_spoof_the_user_header_on_an_exempt_path",
    "test_a_client_s_forwarding_headers_do_not_move_its_throttle_key",
    "test_a_flood_of_concurrent_wrong_passwords_is_held_to_the_limit",
    "test_a_large_body_and_the_method_reach_the_upstream_unchanged",
    "test_a_streamed_chunked_body_reaches_the_upstream_unchanged",
    "test_an_upstream_that_is_down_reaches_the_client_as_the_envelope",
    "test_any_host_is_accepted_in_origin_form",
    "test_dot_segments_do_not_make_a_path_exempt",
    "test_exempt_path_with_a_query_passes_without_credentials",
    "test_good_credentials_reach_the_upstream_as_the_user_and_without_the_credential",
    "test_head_denial_has_the_status_and_headers_and_no_body",
    "test_no_credentials_get_the_challenge_and_the_envelope",
    "test_requests_through_the_gateway_as_a_proxy",
    "test_requests_without_credentials_are_not_counted_as_failures",
    "test_the_client_s_request_id_is_kept",
    "test_the_upstream_s_own_error_response",
    "test_throttle_count_is_shared_by_two_service_instances_through_redis",
    "test_throttled_client_gets_429_with_retry_after_after_the_configured_failures",
    "test_two_clients_behind_the_gateway_do_not_share_a_count",
    "test_two_credentials_are_denied_and_reach_no_upstream",
    "test_underscore_credential_and_user_headers_never_reach_the_upstream",
    "test_unicode_user_name_reaches_the_upstream_encoded",
    "test_wrong_password_and_unknown_user_get_the_same_denial",
]

pytestmark = pytest.mark.server

ALICE = "alice"
PASSWORD = USERS[ALICE]


@pytest.fixture(scope="module")
def stack(gateway_spec: GatewaySpec, redis_server: RedisServer,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp(f"gateway-{gateway_spec.name}")
    os.chmod(workdir, 0o755)
    with gateway_stack(gateway_spec, workdir, redis_server.url) as running:
        yield running


@pytest.fixture(scope="module")
def dead_upstream_gateway(gateway_spec: GatewaySpec, stack: Stack,
                          tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second gateway whose upstream is a port nobody listens on; its URL."""
    directory = tmp_path_factory.mktemp(f"gateway-{gateway_spec.name}-dead-upstream")
    with run_gateway(gateway_spec, directory, auth_urls=[f"{stack.services[0].url}/auth"],
                     upstream=f"http://127.0.0.1:{free_port()}") as gateway:
        yield gateway.url


@pytest.fixture
def client() -> str:
    """A loopback source address of this test's own."""
    return next_client_address()


# -- clients ------------------------------------------------------------------------------


def curl(stack: Stack, url: str, *args: str, source: str, user: str | None = None,
         password: str | None = None) -> Reply:
    """curl -x the gateway, from ``source``; ``--proxy-user`` (or ``-u`` in origin mode)."""
    with tempfile.TemporaryDirectory() as scratch:
        head, body = Path(scratch) / "head", Path(scratch) / "body"
        command = ["curl", "-s", "--max-time", "20", "--interface", source,
                   "-D", str(head), "-o", str(body), *args]
        if stack.spec.mode == "proxy":
            command += ["-x", stack.url]
            if user is not None:
                command += ["--proxy-user", f"{user}:{password}"]
        elif user is not None:
            command += ["-u", f"{user}:{password}"]
        command.append(url)
        done = subprocess.run(command, capture_output=True, timeout=30, check=False,
                              env={k: v for k, v in os.environ.items()
                                   if not k.lower().endswith("_proxy")})
        assert done.returncode == 0, f"curl failed ({done.returncode}): {done.stderr!r}"
        return _parse_head(head.read_bytes(), body.read_bytes())


def _parse_head(raw: bytes, body: bytes) -> Reply:
    # The last response in the file (a CONNECT's 200 comes first).
    blocks = [b for b in raw.split(b"\r\n\r\n") if b.strip()]
    lines = blocks[-1].decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = [(k.strip().lower(), v.strip()) for k, _, v in
               (line.partition(":") for line in lines[1:])]
    return Reply(status, headers, body)


def raw_request(stack: Stack, request: bytes, *, source: str) -> Reply:
    """Bytes straight to the gateway (targets no client library would send), the reply parsed."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=20,
                                  source_address=(source, 0)) as sock:
        sock.sendall(request)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    return _parse_head(head + b"\r\n\r\n", body)


def _proxy_authorization(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class _SourceAdapter(HTTPAdapter):
    """requests from a chosen loopback address, also through a proxy."""

    def __init__(self, source: str) -> None:
        self._source = source
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self._source, 0)
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        kwargs["source_address"] = (self._source, 0)
        return super().proxy_manager_for(proxy, **kwargs)


def _requests_session(source: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", _SourceAdapter(source))
    return session


def _httpx(stack: Stack, source: str, auth: tuple[str, str] | None) -> httpx2.Client:
    proxy = httpx2.Proxy(stack.url, auth=auth) if auth else httpx2.Proxy(stack.url)
    transport = httpx2.HTTPTransport(proxy=proxy, local_address=source)
    return httpx2.Client(transport=transport, trust_env=False, timeout=20)


def _effective(reply_status: int, headers: dict[str, str]) -> int:
    """A service's answer as the client will get it (the nginx dialect folds it in a 401)."""
    folded = headers.get((NGINX_PREFIX + b"status").decode())
    return int(folded) if folded else reply_status


def assert_denied(stack: Stack, reply: Reply, status: int | None = None) -> dict[str, Any]:
    """The response the middleware gives: status, challenge, JSON envelope with the request
    id, no-store. Returns the envelope."""
    spec = stack.spec
    expected = status if status is not None else (407 if spec.mode == "proxy" else 401)
    assert reply.status == expected, reply
    assert reply.header("content-type") == "application/json", reply
    envelope = reply.json()
    error = envelope["error"]
    assert error["code"] == expected
    assert error["request_id"] == reply.header("x-request-id"), reply
    if expected in (401, 407):
        challenge = reply.header("proxy-authenticate" if expected == 407 else "www-authenticate")
        assert challenge == 'Basic realm="proxygate", charset="UTF-8"', reply
        assert reply.header("cache-control") == "no-store", reply
    if expected == 429:
        assert reply.header("cache-control") == "no-store", reply
        assert int(reply.header("retry-after") or "0") >= 1, reply
    assert b"UPSTREAM" not in reply.body
    return envelope


def _seen_headers(seen: dict[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in seen["headers"]:
        found.setdefault(name.lower(), []).append(value)
    return found


# -- denials -------------------------------------------------------------------------------


def test_no_credentials_get_the_challenge_and_the_envelope(stack: Stack, client: str) -> None:
    before = stack.upstream.count()
    reply = curl(stack, "http://app.internal/private", source=client)
    assert_denied(stack, reply)
    assert stack.upstream.count() == before  # never reached


def test_wrong_password_and_unknown_user_get_the_same_denial(stack: Stack, client: str) -> None:
    before = stack.upstream.count()
    wrong = curl(stack, "http://app.internal/x", source=client, user=ALICE, password="nope")
    other = next_client_address()
    unknown = curl(stack, "http://app.internal/x", source=other, user="mallory", password="nope")
    first, second = assert_denied(stack, wrong), assert_denied(stack, unknown)
    first["error"].pop("request_id")
    second["error"].pop("request_id")
    assert first == second
    assert stack.upstream.count() == before


def test_head_denial_has_the_status_and_headers_and_no_body(stack: Stack, client: str) -> None:
    reply = raw_request(stack, b"HEAD http://app.internal/x HTTP/1.1\r\nHost: app.internal\r\n"
                        b"Connection: close\r\n\r\n", source=client)
    assert reply.status == (407 if stack.spec.mode == "proxy" else 401)
    assert reply.body == b""
    assert reply.header("proxy-authenticate" if stack.spec.mode == "proxy"
                        else "www-authenticate")


def test_the_client_s_request_id_is_kept(stack: Stack, client: str) -> None:
    reply = curl(stack, "http://app.internal/x", "-H", "X-Request-ID: trace-42.a", source=client)
    assert assert_denied(stack, reply)["error"]["request_id"] == "trace-42.a"
    before = stack.upstream.count()
    allowed = curl(stack, "http://app.internal/ok", "-H", "X-Request-ID: trace-43.b",
                   source=next_client_address(), user=ALICE, password=PASSWORD)
    assert allowed.status == 200
    seen = wait_for_record(stack.upstream, before + 1)[-1]
    assert _seen_headers(seen)["x-request-id"] == ["trace-43.b"]


# -- allowed -------------------------------------------------------------------------------


def test_good_credentials_reach_the_upstream_as_the_user_and_without_the_credential(
        stack: Stack, client: str) -> None:
    before = stack.upstream.count()
    with _httpx(stack, client, (ALICE, PASSWORD)) as http:
        reply = http.get("http://app.internal/hello?a=1",
                         headers={"X-Authenticated-User": "mallory"})
    assert reply.status_code == 200, reply.text
    seen = reply.json()
    assert seen["target"] in ("/hello?a=1", "http://app.internal/hello?a=1")
    headers = _seen_headers(seen)
    assert headers["x-authenticated-user"] == [ALICE]
    assert "proxy-authorization" not in headers
    assert "authorization" not in headers
    assert wait_for_record(stack.upstream, before + 1)[-1]["target"] == seen["target"]


def test_unicode_user_name_reaches_the_upstream_encoded(stack: Stack, client: str) -> None:
    reply = curl(stack, "http://app.internal/who", source=client, user="zoë",
                 password=USERS["zoë"])
    assert reply.status == 200, reply
    header = _seen_headers(reply.json())["x-authenticated-user"]
    assert header == ["zo%C3%AB"]
    assert decode_user(header[0]) == "zoë"


def test_requests_through_the_gateway_as_a_proxy(stack: Stack, client: str) -> None:
    session = _requests_session(client)
    proxy = stack.url.replace("http://", f"http://{ALICE}:{PASSWORD.replace(':', '%3A')}@")
    reply = session.get("http://anything.example:8123/path", proxies={"http": proxy},
                        timeout=20)
    assert reply.status_code == 200, reply.text
    assert _seen_headers(reply.json())["x-authenticated-user"] == [ALICE]
    denied = _requests_session(next_client_address()).get(
        "http://anything.example/path", proxies={"http": stack.url}, timeout=20)
    assert denied.status_code == 407
    assert denied.headers["Proxy-Authenticate"].startswith("Basic realm=")
    assert denied.json()["error"]["code"] == 407


def test_any_host_is_accepted_in_origin_form(stack: Stack, client: str) -> None:
    reply = raw_request(stack, (
        "GET /origin-form HTTP/1.1\r\nHost: some-other-name.invalid:81\r\n"
        f"Proxy-Authorization: {_proxy_authorization(ALICE, PASSWORD)}\r\n"
        "Connection: close\r\n\r\n").encode(), source=client)
    assert reply.status == 200, reply
    assert _seen_headers(json.loads(reply.body))["x-authenticated-user"] == [ALICE]


def test_underscore_credential_and_user_headers_never_reach_the_upstream(
        stack: Stack, client: str) -> None:
    credential = _proxy_authorization(ALICE, PASSWORD)
    reply = raw_request(stack, (
        "GET http://app.internal/underscores HTTP/1.1\r\nHost: app.internal\r\n"
        f"Proxy-Authorization: {credential}\r\n"
        f"proxy_authorization: {credential}\r\n"
        "X_Authenticated_User: mallory\r\nx-authenticated-user: mallory\r\n"
        "Connection: close\r\n\r\n").encode(), source=client)
    assert reply.status == 200, reply
    headers = _seen_headers(json.loads(reply.body))
    assert headers["x-authenticated-user"] == [ALICE]
    for name in headers:
        assert name.replace("_", "-") not in ("proxy-authorization", "x-authenticated-user") \
            or name == "x-authenticated-user"


def test_a_large_body_and_the_method_reach_the_upstream_unchanged(
        stack: Stack, client: str) -> None:
    body = secrets.token_bytes(3 * 1024 * 1024 + 17)
    session = _requests_session(client)
    proxy = stack.url.replace("http://", f"http://{ALICE}:{PASSWORD.replace(':', '%3A')}@")
    reply = session.request("PATCH", "http://app.internal/upload", data=body,
                            proxies={"http": proxy}, timeout=60)
    assert reply.status_code == 200, reply.text[:500]
    seen = reply.json()
    assert seen["method"] == "PATCH"
    assert seen["body_length"] == len(body)
    assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_a_streamed_chunked_body_reaches_the_upstream_unchanged(
        stack: Stack, client: str) -> None:
    parts = [secrets.token_bytes(64 * 1024) for _ in range(20)]
    with _httpx(stack, client, (ALICE, PASSWORD)) as http:
        reply = http.post("http://app.internal/stream", content=iter(parts))
    assert reply.status_code == 200, reply.text[:500]
    seen = reply.json()
    assert seen["method"] == "POST"
    assert seen["body_sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()


# -- exempt paths --------------------------------------------------------------------------


def test_exempt_path_with_a_query_passes_without_credentials(stack: Stack, client: str) -> None:
    reply = curl(stack, "http://app.internal/healthz?probe=1", source=client)
    assert reply.status == 200, reply
    assert reply.json()["target"].endswith("/healthz?probe=1")


def test_a_client_cannot_spoof_the_user_header_on_an_exempt_path(
        stack: Stack, client: str) -> None:
    reply = raw_request(stack, (
        b"GET http://app.internal/static/app.css HTTP/1.1\r\nHost: app.internal\r\n"
        b"X-Authenticated-User: mallory\r\nX_Authenticated_User: mallory\r\n"
        b"Connection: close\r\n\r\n"), source=client)
    assert reply.status == 200, reply
    headers = _seen_headers(json.loads(reply.body))
    assert "x-authenticated-user" not in headers
    assert "x_authenticated_user" not in headers


@pytest.mark.parametrize("name", ["X-Original-URI", "X-Forwarded-Uri", "X-Envoy-Original-Path"])
def test_a_client_cannot_describe_its_request_as_an_exempt_one(
        stack: Stack, client: str, name: str) -> None:
    # The headers each dialect reads the original request from are the gateway's to write.
    before = stack.upstream.count()
    reply = raw_request(stack, (
        f"GET http://app.internal/private HTTP/1.1\r\nHost: app.internal\r\n"
        f"{name}: /healthz\r\nConnection: close\r\n\r\n").encode(), source=client)
    assert_denied(stack, reply)
    assert stack.upstream.count() == before


@pytest.mark.parametrize("target", ["/healthz/../admin", "/static/../admin",
                                    "/static/%2e%2e/admin", "/healthzz", "/admin?/healthz"])
def test_dot_segments_do_not_make_a_path_exempt(stack: Stack, client: str, target: str) -> None:
    before = stack.upstream.count()
    reply = raw_request(stack, (
        f"GET {target} HTTP/1.1\r\nHost: app.internal\r\nConnection: close\r\n\r\n"
    ).encode(), source=client)
    assert_denied(stack, reply)
    assert stack.upstream.count() == before


def test_two_credentials_are_denied_and_reach_no_upstream(stack: Stack, client: str) -> None:
    # Which one would the gateway have checked? Each gateway passes both (or joins them);
    # the service refuses the pair whoever they name.
    header = "Proxy-Authorization" if stack.spec.mode == "proxy" else "Authorization"
    before = stack.upstream.count()
    reply = raw_request(stack, (
        "GET http://app.internal/two HTTP/1.1\r\nHost: app.internal\r\n"
        f"{header}: {_proxy_authorization(ALICE, PASSWORD)}\r\n"
        f"{header}: {_proxy_authorization('zoë', USERS['zoë'])}\r\n"
        "Connection: close\r\n\r\n").encode(), source=client)
    assert_denied(stack, reply, 400 if stack.spec.refuses_repeated_credentials else None)
    assert stack.upstream.count() == before


# -- throttling ----------------------------------------------------------------------------


def _fail(stack: Stack, source: str, *extra: str) -> Reply:
    return curl(stack, "http://app.internal/x", *extra, source=source, user=ALICE,
                password="wrong")


def test_throttled_client_gets_429_with_retry_after_after_the_configured_failures(
        stack: Stack, client: str) -> None:
    # Exactly MAX_FAILURES challenges: a denial is counted once, not again on the way out.
    for _ in range(MAX_FAILURES):
        assert_denied(stack, _fail(stack, client))
    assert_denied(stack, _fail(stack, client), 429)


def test_requests_without_credentials_are_not_counted_as_failures(
        stack: Stack, client: str) -> None:
    # A client's first request carries no credential (it waits for the challenge): however
    # the gateway passes "none" on (Caddy sends an empty header), it is not a failure.
    for _ in range(MAX_FAILURES + 1):
        assert_denied(stack, curl(stack, "http://app.internal/x", source=client))
    ok = curl(stack, "http://app.internal/x", source=client, user=ALICE, password=PASSWORD)
    assert ok.status == 200, ok


def test_a_flood_of_concurrent_wrong_passwords_is_held_to_the_limit(
        stack: Stack, client: str) -> None:
    # As an attacker would try it: many guesses at once, hoping each is checked before
    # any is counted. Each failure is reserved before its hash, in Redis, shared by both
    # instances: at most MAX_FAILURES guesses are ever judged, the rest are throttled (or,
    # beyond the hash budget's queue, turned away busy with a 503 before any count).
    # Distinct guesses: copies of one guess share one check and count once.
    flood = 4 * MAX_FAILURES
    header = b"Proxy-Authorization" if stack.spec.mode == "proxy" else b"Authorization"

    def guess(n: int) -> Reply:
        request = ("GET http://app.internal/flood HTTP/1.1\r\nHost: app.internal\r\n"
                   f"X: {_proxy_authorization(ALICE, f'guess-{n}')}\r\n"
                   "Connection: close\r\n\r\n").encode().replace(b"X:", header + b":", 1)
        return raw_request(stack, request, source=client)

    before = stack.upstream.count()
    with ThreadPoolExecutor(max_workers=flood) as pool:
        replies = list(pool.map(guess, range(flood)))
    statuses = sorted(reply.status for reply in replies)
    challenged = statuses.count(407 if stack.spec.mode == "proxy" else 401)
    assert challenged <= MAX_FAILURES, statuses
    assert statuses.count(429) + statuses.count(503) == flood - challenged, statuses
    assert statuses.count(429) > 0, statuses
    assert stack.upstream.count() == before
    assert_denied(stack, _fail(stack, client), 429)


def test_two_clients_behind_the_gateway_do_not_share_a_count(stack: Stack, client: str) -> None:
    for _ in range(MAX_FAILURES):
        _fail(stack, client)
    assert _fail(stack, client).status == 429
    neighbour = next_client_address()
    assert_denied(stack, _fail(stack, neighbour))
    ok = curl(stack, "http://app.internal/x", source=neighbour, user=ALICE, password=PASSWORD)
    assert ok.status == 200


def test_a_client_s_forwarding_headers_do_not_move_its_throttle_key(
        stack: Stack, client: str) -> None:
    for n in range(MAX_FAILURES):
        _fail(stack, client, "-H", f"X-Forwarded-For: 10.0.0.{n}", "-H",
              f"Forwarded: for=10.1.0.{n}", "-H", f"X-Real-IP: 10.2.0.{n}")
    reply = _fail(stack, client, "-H", "X-Forwarded-For: 10.0.0.99", "-H",
                  "Forwarded: for=10.1.0.99", "-H", "X-Real-IP: 10.2.0.99")
    assert_denied(stack, reply, 429)


def test_throttle_count_is_shared_by_two_service_instances_through_redis(
        stack: Stack, client: str) -> None:
    for _ in range(MAX_FAILURES):
        _fail(stack, client)
    assert _fail(stack, client).status == 429
    # Each instance, asked directly as the gateway would ask it about this client, knows.
    for service in stack.services:
        direct = fetch(service.url, "/auth", {
            "X-Forwarded-For": client,
            "Proxy-Authorization": _proxy_authorization(ALICE, "wrong"),
            "X-Original-URI": "/x", "X-Forwarded-Uri": "/x",
            "X-Original-Method": "GET", "X-Forwarded-Method": "GET",
        })
        assert _effective(direct.status, dict(direct.headers)) == 429, direct


# -- upstream errors -----------------------------------------------------------------------


def test_the_upstream_s_own_error_response(stack: Stack, client: str) -> None:
    reply = curl(stack, "http://app.internal/status/500", source=client, user=ALICE,
                 password=PASSWORD)
    assert reply.status == 500
    if stack.spec.rewrites_upstream_errors:
        assert reply.header("content-type") == "application/json"
        assert reply.json()["error"]["code"] == 500
        assert b"UPSTREAM-SECRET" not in reply.body
    else:  # passed on as the upstream sent it: its own envelope, or its page
        assert b"UPSTREAM-SECRET" in reply.body
    envelope = curl(stack, "http://app.internal/envelope/409", source=client, user=ALICE,
                    password=PASSWORD)
    assert envelope.status == 409
    assert envelope.json()["error"]["details"] == "from the upstream"


def test_an_upstream_that_is_down_reaches_the_client_as_the_envelope(
        stack: Stack, dead_upstream_gateway: str, client: str) -> None:
    reply = raw_request_to(dead_upstream_gateway, (
        "GET http://app.internal/x HTTP/1.1\r\nHost: app.internal\r\n"
        f"Proxy-Authorization: {_proxy_authorization(ALICE, PASSWORD)}\r\n"
        "Authorization: " + _proxy_authorization(ALICE, PASSWORD) + "\r\n"
        "Connection: close\r\n\r\n").encode(), source=client)
    assert reply.status in (502, 503), reply
    assert reply.header("content-type") == "application/json"
    assert reply.json()["error"]["code"] == reply.status
    assert reply.json()["error"]["request_id"]


def raw_request_to(url: str, request: bytes, *, source: str) -> Reply:
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=20,
                                  source_address=(source, 0)) as sock:
        sock.sendall(request)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    return _parse_head(head + b"\r\n\r\n", body)
