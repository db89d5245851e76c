"""The ASGI shell under real servers: uvicorn (h11, httptools), hypercorn; curl, requests, httpx2."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import httpx2
import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from apps._options import ENV, SECRET
from support.binaries import needs_curl
from support.servers import (
    PYTHON,
    RunningServer,
    assert_cut_off_after_start,
    assert_streams_chunk_by_chunk,
    basic,
    child_env,
    fetch,
    run_server,
    wait_until,
)

pytestmark = pytest.mark.server

USER, PASSWORD = "alice", "open:sesame"  # a colon in the password on purpose
REALM = "asgi-tests"
CHALLENGE = f'Basic realm="{REALM}", charset="UTF-8"'

SERVERS = {
    "uvicorn-h11": [PYTHON, "-m", "uvicorn", "apps.asgi_app:gated", "--host", "127.0.0.1",
                    "--port", "{port}", "--http", "h11", "--lifespan", "on",
                    "--log-level", "warning"],
    "uvicorn-httptools": [PYTHON, "-m", "uvicorn", "apps.asgi_app:gated", "--host", "127.0.0.1",
                          "--port", "{port}", "--http", "httptools", "--lifespan", "on",
                          "--log-level", "warning"],
    "hypercorn": [PYTHON, "-m", "hypercorn", "apps.asgi_app:gated", "--bind", "127.0.0.1:{port}"],
}


GOOD = {"Proxy-Authorization": basic(USER, PASSWORD)}


@pytest.fixture(scope="module", params=list(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    options = {"users": {USER: hashed}, "realm": REALM}
    with run_server(SERVERS[request.param], env={ENV: json.dumps(options)}) as running:
        yield running


def assert_407(status: int, challenge: str | None, body: bytes) -> None:
    assert status == 407
    assert challenge == CHALLENGE
    error = json.loads(body)["error"]
    assert error["code"] == 407
    assert error["message"] == "Proxy Authentication Required"


# -- the gate ---------------------------------------------------------------------------


def test_no_credentials_get_407_with_basic_challenge(server: RunningServer) -> None:
    reply = fetch(server.url, "/")
    assert_407(reply.status, reply.header("proxy-authenticate"), reply.body)
    assert reply.header("content-type") == "application/json"


def test_wrong_password_gets_the_same_407(server: RunningServer) -> None:
    reply = fetch(server.url, "/", {"Proxy-Authorization": basic(USER, "wrong")})
    assert_407(reply.status, reply.header("proxy-authenticate"), reply.body)


def test_valid_credentials_reach_the_app_with_identity(server: RunningServer) -> None:
    reply = fetch(server.url, "/hello?x=1", GOOD)
    assert reply.status == 200
    seen = reply.json()
    assert (seen["user"], seen["path"], seen["query"]) == (USER, "/hello", "x=1")


def test_proxy_credentials_and_proxy_connection_are_stripped(server: RunningServer) -> None:
    headers = {**GOOD, "Proxy_Authorization": basic(USER, PASSWORD),
               "Proxy-Connection": "keep-alive", "X-Kept": "yes"}
    reply = fetch(server.url, "/", headers)
    assert reply.status == 200
    names = {name for name, _ in reply.json()["headers"]}
    assert "x-kept" in names
    assert not names & {"proxy-authorization", "proxy_authorization", "proxy-connection"}


def test_lifespan_startup_passes_through_to_the_app(server: RunningServer) -> None:
    assert fetch(server.url, "/", GOOD).json()["lifespan"] is True


# -- the envelope -----------------------------------------------------------------------


def test_exception_becomes_500_envelope_without_secret_or_traceback(server: RunningServer) -> None:
    reply = fetch(server.url, "/boom", GOOD)
    assert reply.status == 500
    assert reply.json()["error"]["message"] == "Internal Server Error"
    text = reply.body.decode()
    for leak in (SECRET, "Traceback", "RuntimeError", "asgi_app.py"):
        assert leak not in text


def test_exception_traceback_is_logged_on_the_server(server: RunningServer) -> None:
    request_id = "trace-me-123"
    fetch(server.url, "/boom", {**GOOD, "X-Request-ID": request_id})
    server.wait_for_output(f"request_id={request_id}")
    assert "RuntimeError" in server.output()


def test_exception_after_the_response_started_cuts_it_off(server: RunningServer) -> None:
    request_id = assert_cut_off_after_start(server.port, GOOD["Proxy-Authorization"], SECRET)
    assert server.output().count(f"exception after the response started while serving GET "
                                 f"/boom-late (status 200, request_id={request_id})") == 1


def test_html_404_becomes_json_envelope(server: RunningServer) -> None:
    reply = fetch(server.url, "/html404", GOOD)
    assert reply.status == 404
    assert reply.header("content-type") == "application/json"
    assert reply.json()["error"]["code"] == 404
    assert b"<html" not in reply.body


def test_head_error_has_no_body(server: RunningServer) -> None:
    reply = fetch(server.url, "/html404", GOOD, method="HEAD")
    assert (reply.status, reply.body) == (404, b"")


def test_streamed_chunks_arrive_before_the_stream_ends(server: RunningServer,
                                                       tmp_path: Path) -> None:
    assert_streams_chunk_by_chunk(server.port, tmp_path / "go", GOOD)


def test_client_disconnect_is_not_reported_as_a_500(server: RunningServer, tmp_path: Path) -> None:
    marker = tmp_path / "gone"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"GET /hangup?marker={marker} HTTP/1.1\r\nHost: x\r\n"
                     f"Proxy-Authorization: {GOOD['Proxy-Authorization']}\r\n\r\n".encode())
    wait_until(marker.exists, what="the app to see the disconnect")
    # A request logged after the hang-up: once its line is out, any log of the hang-up is too.
    fetch(server.url, "/boom", {**GOOD, "X-Request-ID": "after-hangup"})
    server.wait_for_output("request_id=after-hangup")
    before = server.output().split("request_id=after-hangup")[0]
    assert "/hangup" not in before
    assert "went away" not in before


def test_sending_after_the_client_hung_up_is_not_reported_as_an_error(
        server: RunningServer, tmp_path: Path) -> None:
    # These three servers drop sends to a closed connection; a server that raises instead
    # is pinned in process, in test_asgi_send_failures.py.
    gate, marker = tmp_path / "gate", tmp_path / "done"
    earlier = len(server.output())  # the module's server has served other tests before
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"GET /stream-past-hangup?gate={gate}&marker={marker} HTTP/1.1\r\n"
                     f"Host: x\r\nProxy-Authorization: {GOOD['Proxy-Authorization']}\r\n"
                     "\r\n".encode())
        received = b""
        while b"first" not in received:  # bounded by the socket's timeout
            chunk = sock.recv(4096)
            assert chunk, f"the stream ended before its first chunk: {received!r}"
            received += chunk
    gate.write_text("go")  # the client is gone; the app sends 3 MiB more
    wait_until(marker.exists, what="the app to finish sending past the hang-up")
    fetch(server.url, "/boom", {**GOOD, "X-Request-ID": "after-stream-hangup"})
    server.wait_for_output("request_id=after-stream-hangup")
    before = server.output()[earlier:].split("request_id=after-stream-hangup")[0]
    assert "/stream-past-hangup" not in before  # proxygate names the path when it logs
    for server_error in ("Exception in ASGI application", "Error in ASGI Framework"):
        assert server_error not in before  # uvicorn's and hypercorn's words for a raise


# -- websockets -------------------------------------------------------------------------


def ws_url(server: RunningServer) -> str:
    return server.url.replace("http://", "ws://") + "/ws"


def test_websocket_without_credentials_is_refused_with_407_before_accept(
        server: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(server), proxy=None, open_timeout=10)
    response = refused.value.response
    assert_407(response.status_code, response.headers.get("Proxy-Authenticate"), bytes(response.body))


def test_websocket_with_credentials_reaches_the_app_with_identity(server: RunningServer) -> None:
    with connect(ws_url(server), proxy=None, open_timeout=10, additional_headers=GOOD) as ws:
        seen = json.loads(ws.recv(timeout=10))
        ws.send("ping")
        assert ws.recv(timeout=10) == "ping"
    assert seen["user"] == USER
    assert "proxy-authorization" not in {name for name, _ in seen["headers"]}


@pytest.fixture(scope="module", params=["websockets-sansio", "wsproto"])
def other_ws_server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """uvicorn's other websocket protocols: each offers the websocket.http.response extension."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    command = [*SERVERS["uvicorn-h11"], "--ws", request.param]
    with run_server(command, env={ENV: json.dumps({"users": {USER: hashed}, "realm": REALM})}) as s:
        yield s


def test_other_uvicorn_websocket_protocols_refuse_with_407_too(other_ws_server: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(other_ws_server), proxy=None, open_timeout=10)
    response = refused.value.response
    assert_407(response.status_code, response.headers.get("Proxy-Authenticate"), bytes(response.body))


def test_websocket_app_failing_before_accept_gets_500_envelope(server: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(server) + "-boom", proxy=None, open_timeout=10, additional_headers=GOOD)
    response = refused.value.response
    assert response.status_code == 500
    assert json.loads(response.body)["error"]["message"] == "Internal Server Error"
    assert SECRET.encode() not in response.body


# -- forward-proxy clients --------------------------------------------------------------



def curl(server: RunningServer, *extra: str) -> tuple[int, dict[str, str], str]:
    """curl through the gate as its HTTP proxy; (status, headers, body)."""
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "-D", "-", "-x", server.url, *extra,
         "http://example.internal/path?q=1"],
        capture_output=True, env=child_env(), timeout=20, check=True,
    )
    head, _, body = result.stdout.decode("latin-1").partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


@needs_curl
def test_curl_through_the_gate_reaches_the_app_with_path_query_host(server: RunningServer) -> None:
    status, _, body = curl(server, "--proxy-user", f"{USER}:{PASSWORD}")
    assert status == 200
    seen = json.loads(body)
    assert (seen["path"], seen["query"], seen["host"], seen["user"]) == (
        "/path", "q=1", "example.internal", USER)


@needs_curl
def test_curl_without_proxy_user_gets_407_challenge(server: RunningServer) -> None:
    status, headers, body = curl(server)
    assert_407(status, headers.get("proxy-authenticate"), body.encode())


@needs_curl
def test_curl_with_wrong_password_gets_407(server: RunningServer) -> None:
    status, headers, body = curl(server, "--proxy-user", f"{USER}:nope")
    assert_407(status, headers.get("proxy-authenticate"), body.encode())


def test_requests_with_proxy_url_credentials_reaches_the_app(server: RunningServer) -> None:
    proxy = server.url.replace("http://", f"http://{USER}:{PASSWORD.replace(':', '%3A')}@")
    with requests.Session() as session:
        session.trust_env = False
        response = session.get("http://example.internal/path?q=1",
                               proxies={"http": proxy}, timeout=10)
    assert response.status_code == 200
    seen: dict[str, Any] = response.json()
    assert (seen["path"], seen["query"], seen["user"]) == ("/path", "q=1", USER)


def test_httpx2_with_proxy_reaches_the_app(server: RunningServer) -> None:
    proxy = server.url.replace("http://", f"http://{USER}:{PASSWORD.replace(':', '%3A')}@")
    with httpx2.Client(proxy=proxy, trust_env=False, timeout=10) as client:
        response = client.get("http://example.internal/path?q=1")
    assert response.status_code == 200
    seen = response.json()
    assert (seen["path"], seen["query"], seen["host"], seen["user"]) == (
        "/path", "q=1", "example.internal", USER)
