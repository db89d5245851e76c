"""nginx (Debian's nginx-light) with the shipped auth_request configuration: the gateway
conformance checks, plus what only nginx does (its own errors, origin mode, who runs it)."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_conformance import *  # noqa: F403
from gateway_conformance import _proxy_authorization, curl, raw_request_to
from gateway_origin import *  # noqa: F403
from support.binaries import require_binary
from support.gateways import (
    USERS,
    GatewaySpec,
    Stack,
    next_client_address,
    run_gateway,
    run_service,
    wait_for_record,
)
from support.servers import free_port

NGINX_INSTALL = "apt-get install nginx-light"


@pytest.fixture(scope="module")
def gateway_spec() -> GatewaySpec:
    return GatewaySpec("nginx", require_binary("nginx", install=NGINX_INSTALL))


def test_the_auth_service_down_is_a_503_envelope_with_retry_after(
        gateway_spec: GatewaySpec, stack: Stack, tmp_path: Path) -> None:
    with run_gateway(gateway_spec, tmp_path / "gw", upstream=stack.upstream.url,
                     auth_urls=[f"http://127.0.0.1:{free_port()}/auth"]) as gateway:
        before = stack.upstream.count()
        reply = raw_request_to(gateway.url, (
            "GET http://app.internal/x HTTP/1.1\r\nHost: app.internal\r\n"
            f"Proxy-Authorization: {_proxy_authorization('alice', USERS['alice'])}\r\n"
            "Connection: close\r\n\r\n").encode(), source=next_client_address())
    assert reply.status == 503, reply  # never a 407: the password may well be right
    assert reply.header("retry-after") == "5"
    assert reply.header("content-type") == "application/json"
    assert reply.json()["error"]["request_id"] == reply.header("x-request-id")
    assert stack.upstream.count() == before


def test_the_config_has_no_tunnel_for_an_nginx_without_the_module(stack: Stack) -> None:
    text = (stack.directory / "nginx.conf").read_text()
    assert "tunnel_pass" not in text
    assert "refuses CONNECT" in text


def test_the_config_keeps_every_file_nginx_writes_under_its_directory(stack: Stack) -> None:
    text = (stack.directory / "nginx.conf").read_text()
    for directive in ("pid", "lock_file", "error_log", "client_body_temp_path",
                      "proxy_temp_path", "fastcgi_temp_path", "uwsgi_temp_path",
                      "scgi_temp_path", "access_log"):
        line = next(line for line in text.splitlines() if line.strip().startswith(directive))
        assert str(stack.directory) in line, line
    assert (stack.directory / "nginx.pid").exists()
    assert (stack.directory / "proxy_temp").is_dir()


# -- as an ordinary user ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def ordinary_user() -> str | None:
    """``nobody`` when the tests run as root; else None: the tests' user is ordinary."""
    if os.geteuid() != 0:
        return None
    return "nobody"


def test_nginx_runs_from_the_printed_command_as_an_ordinary_user(
        gateway_spec: GatewaySpec, stack: Stack, ordinary_user: str | None) -> None:
    directory = Path(tempfile.mkdtemp(prefix="proxygate-nginx-ordinary-"))
    try:
        if ordinary_user is not None:
            entry = pwd.getpwnam(ordinary_user)
            os.chown(directory, entry.pw_uid, entry.pw_gid)
        with run_gateway(gateway_spec, directory / "gw" if ordinary_user is None else directory,
                         auth_urls=[f"{stack.services[0].url}/auth"],
                         upstream=stack.upstream.url, user=ordinary_user) as gateway:
            before = stack.upstream.count()
            reply = raw_request_to(gateway.url, (
                "POST http://app.internal/as-nobody HTTP/1.1\r\nHost: app.internal\r\n"
                f"Proxy-Authorization: {_proxy_authorization('alice', USERS['alice'])}\r\n"
                "Content-Length: 5\r\nConnection: close\r\n\r\nhello").encode(),
                source=next_client_address())
            assert reply.status == 200, reply
            assert wait_for_record(stack.upstream, before + 1)[-1]["body_length"] == 5
            pid = (directory / "nginx.pid").read_text().strip() if ordinary_user else None
            if pid is not None:
                assert os.stat(f"/proc/{pid}").st_uid == pwd.getpwnam("nobody").pw_uid
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# -- origin mode -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def origin_gateway(gateway_spec: GatewaySpec, stack: Stack,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    spec = GatewaySpec("nginx", gateway_spec.binary, mode="origin")
    with run_service(stack.users, "nginx", mode="origin") as service, run_gateway(
            spec, tmp_path_factory.mktemp("nginx-origin"), auth_urls=[f"{service.url}/auth"],
            upstream=stack.upstream.url) as gateway:
        yield Stack(spec, gateway, [service], stack.upstream, stack.directory, stack.users)


def test_a_denial_follows_the_client_s_accept_like_the_middleware(stack: Stack) -> None:
    reply = curl(stack, "http://app.internal/private", "-H", "Accept: application/problem+json",
                 source=next_client_address())
    assert reply.status == 407
    assert reply.header("content-type") == "application/problem+json"
    problem = reply.json()
    assert problem["status"] == 407
    assert problem["instance"] == "/private"
    assert len([k for k, _ in reply.headers if k == "content-type"]) == 1
