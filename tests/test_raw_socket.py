"""Hand-written request bytes against uvicorn (h11, httptools): what parsers let through, the gate holds."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from typing import Any

import bcrypt
import pytest

from apps._options import ENV
from support.servers import PYTHON, RunningServer, run_server

pytestmark = pytest.mark.server

USER, PASSWORD = "alice", "open:sesame"
UVICORN = [PYTHON, "-m", "uvicorn", "apps.asgi_app:gated", "--host", "127.0.0.1",
           "--port", "{port}", "--log-level", "warning"]
HTTP_OPTIONS = {
    # h11 refuses heads over 16 KiB by default; raise it so the 16 KiB value reaches the gate.
    "h11": ["--http", "h11", "--h11-max-incomplete-event-size", "65536"],
    "httptools": ["--http", "httptools"],
}


def token(user: str | bytes, password: str | bytes) -> bytes:
    raw = (user if isinstance(user, bytes) else user.encode()) + b":" + (
        password if isinstance(password, bytes) else password.encode())
    return base64.b64encode(raw)


GOOD = b"Basic " + token(USER, PASSWORD)


@pytest.fixture(scope="module", params=list(HTTP_OPTIONS))
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    env = {ENV: json.dumps({"users": {USER: hashed}, "realm": "raw"})}
    with run_server([*UVICORN, *HTTP_OPTIONS[request.param]], env=env) as running:
        yield running


class Raw:
    """A parsed response: status, lower-case header pairs, body."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Raw({self.status}, {self.body[:200]!r})"


def exchange(server: RunningServer, *header_lines: bytes, target: bytes = b"/",
             host: bytes = b"127.0.0.1") -> Raw:
    """Send one request exactly as written, with ``Connection: close``; read until EOF."""
    request = b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\n"
    request += b"".join(line + b"\r\n" for line in header_lines)
    request += b"Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        data = bytearray()
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = [(name.strip().lower(), value.strip())
               for name, _, value in (line.partition(b":") for line in lines[1:])]
    return Raw(int(lines[0].split()[1]), headers, body)


def header(response: Raw, name: bytes) -> bytes | None:
    return next((v for k, v in response.headers if k == name), None)


def assert_challenge(response: Raw) -> None:
    assert response.status == 407, response
    assert header(response, b"proxy-authenticate") == b'Basic realm="raw", charset="UTF-8"'
    assert response.json()["error"]["code"] == 407


def assert_still_serving(server: RunningServer) -> None:
    follow_up = exchange(server, b"Proxy-Authorization: " + GOOD)
    assert follow_up.status == 200
    assert follow_up.json()["user"] == USER


def test_valid_credentials_pass(server: RunningServer) -> None:
    assert exchange(server, b"Proxy-Authorization: " + GOOD).json()["user"] == USER


def test_two_proxy_authorization_headers_are_ambiguous_and_denied(server: RunningServer) -> None:
    response = exchange(server, b"Proxy-Authorization: " + GOOD, b"Proxy-Authorization: " + GOOD)
    assert_challenge(response)


def test_underscore_spelling_alone_is_never_believed(server: RunningServer) -> None:
    assert_challenge(exchange(server, b"Proxy_Authorization: " + GOOD))


def test_hyphen_header_passes_and_the_app_sees_neither_spelling(server: RunningServer) -> None:
    response = exchange(server, b"Proxy-Authorization: " + GOOD,
                        b"Proxy_Authorization: " + GOOD)
    assert response.status == 200
    names = {name for name, _ in response.json()["headers"]}
    assert not names & {"proxy-authorization", "proxy_authorization"}


def test_malformed_base64_gets_407_and_the_server_keeps_serving(server: RunningServer) -> None:
    assert_challenge(exchange(server, b"Proxy-Authorization: Basic !!not*base64!!"))
    assert_still_serving(server)


def test_bare_basic_scheme_gets_407(server: RunningServer) -> None:
    assert_challenge(exchange(server, b"Proxy-Authorization: Basic"))
    assert_still_serving(server)


def test_credentials_without_colon_get_407(server: RunningServer) -> None:
    assert_challenge(exchange(server, b"Proxy-Authorization: Basic " + base64.b64encode(b"alice")))


def test_16_kib_header_value_gets_407(server: RunningServer) -> None:
    assert_challenge(exchange(server, b"Proxy-Authorization: Basic " + b"A" * 16384))
    assert_still_serving(server)


def test_non_utf8_header_bytes_get_407(server: RunningServer) -> None:
    assert_challenge(exchange(server, b"Proxy-Authorization: Basic \xff\xfe\x80abc"))
    assert_still_serving(server)


def test_non_utf8_decoded_credentials_get_407(server: RunningServer) -> None:
    assert_challenge(exchange(server, b"Proxy-Authorization: Basic " + token(b"\xffalice", b"\xfe")))
    assert_still_serving(server)


def test_comma_joined_credentials_get_407(server: RunningServer) -> None:
    assert_challenge(exchange(server, b"Proxy-Authorization: " + GOOD + b", " + GOOD))


def test_absolute_form_target_routes_on_path_with_host_from_target(
        server: RunningServer, request: pytest.FixtureRequest) -> None:
    if "httptools" in request.node.callspec.id:
        # uvicorn's httptools protocol keeps only the path of an absolute-form target
        # (httptools.parse_url(...).path), so the shell never learns the authority.
        request.applymarker(pytest.mark.xfail(
            strict=True, reason="uvicorn --http httptools drops the target's authority"))
    response = exchange(server, b"Proxy-Authorization: " + GOOD,
                        target=b"http://example.internal:8080/a/b?q=1", host=b"elsewhere")
    assert response.status == 200
    seen = response.json()
    assert (seen["path"], seen["query"], seen["host"]) == ("/a/b", "q=1", "example.internal:8080")
