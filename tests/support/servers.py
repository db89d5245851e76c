"""Real servers as subprocesses on 127.0.0.1: start on a free port, wait until it answers, stop by PID.

The whole API::

    with run_server([sys.executable, "-m", "uvicorn", "apps.asgi_app:gated",
                     "--port", "{port}"], env={"PROXYGATE_TEST_GATE": options}) as server:
        requests.get(server.url + "/")   # server.url == "http://127.0.0.1:<port>"
        server.output()                  # everything it printed so far (stdout + stderr)
        reply = fetch(server.url, "/path", {"Proxy-Authorization": "Basic ..."})
        reply.status, reply.header("proxy-authenticate"), reply.json()

``{port}`` anywhere in the command is replaced by a free port. The child gets
``src`` and ``tests`` on ``PYTHONPATH`` and no ``*_proxy`` variables. If the
process dies before its port opens (the port was taken in between), it is
started again on another port, up to three times; otherwise the test fails with
the server's output. On exit the process is terminated, given a bounded wait,
then killed.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

__all__ = [
    "PYTHON",
    "Reply",
    "RunningServer",
    "child_env",
    "fetch",
    "free_port",
    "run_server",
    "wait_until",
]

TESTS = Path(__file__).resolve().parent.parent
SRC = TESTS.parent / "src"
PYTHON = sys.executable
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    """A port nobody listens on right now (it can be taken before you bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without proxy settings, with src/ and tests/ importable."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), str(TESTS), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def wait_until(condition: Callable[[], bool], *, timeout: float = 10.0, what: str = "condition",
               interval: float = 0.01) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}", pytrace=False)
        time.sleep(interval)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class RunningServer:
    """A started server: its ``url``, ``port``, ``pid`` and captured ``output()``."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.pid = process.pid
        self.url = f"http://127.0.0.1:{port}"
        self.log = log

    def output(self) -> str:
        """What the server printed so far, stdout and stderr interleaved."""
        return self.log.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 10.0) -> None:
        """Block until ``text`` appears in the output (a bounded wait)."""
        wait_until(lambda: text in self.output(), timeout=timeout, what=f"{text!r} in the output")

    def stop(self) -> int | None:
        """Terminate by PID, wait a bounded time, kill if still there. Returns the exit status."""
        process = self.process
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        return process.returncode


def _start(command: Sequence[str], env: dict[str, str], cwd: Path | None,
           log: Path) -> tuple[RunningServer | None, str]:
    port = free_port()
    argv = [part.replace("{port}", str(port)) for part in command]
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    server = RunningServer(process, port, log)
    deadline = time.monotonic() + START_TIMEOUT
    while not _port_open(port):
        if process.poll() is not None:
            return None, f"{argv!r} exited with {process.returncode}:\n{server.output()[-4000:]}"
        if time.monotonic() > deadline:
            server.stop()
            return None, f"{argv!r} did not open port {port} in {START_TIMEOUT:.0f}s:\n" \
                f"{server.output()[-4000:]}"
        time.sleep(0.02)
    return server, ""


@contextmanager
def run_server(command: Sequence[str], *, env: Mapping[str, str] | None = None,
               cwd: Path | None = None, ready: str | None = None) -> Iterator[RunningServer]:
    """Run ``command`` (``{port}`` replaced) until the block ends; see the module docstring.

    ``ready``: a line the server prints once it really serves (some bind early).
    """
    full_env = child_env(env)
    with tempfile.TemporaryDirectory(prefix="proxygate-server-") as scratch:
        problem = ""
        server: RunningServer | None = None
        for attempt in range(3):
            server, problem = _start(command, full_env, cwd, Path(scratch) / f"output-{attempt}.log")
            if server is not None:
                break
        if server is None:
            pytest.fail(problem, pytrace=False)
        try:
            if ready is not None:
                server.wait_for_output(ready, timeout=START_TIMEOUT)
            yield server
        finally:
            server.stop()


class Reply:
    """A complete HTTP response: ``status``, ``headers`` (lower-case name, value pairs), ``body``."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        """The first value of ``name`` (case-insensitive), or None."""
        return next((v for k, v in self.headers if k == name.lower()), None)

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.headers!r}, {self.body[:300]!r})"


def fetch(base_url: str, target: str = "/", headers: Mapping[str, str] | None = None, *,
          method: str = "GET", timeout: float = 10.0, body: bytes | None = None) -> Reply:
    """One request on a fresh connection, no proxy settings consulted; the whole reply read."""
    where = urlsplit(base_url)
    connection = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port,
                                            timeout=timeout)
    try:
        connection.request(method, target, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        body = response.read()
        pairs = [(k.lower(), v) for k, v in response.getheaders()]
        return Reply(response.status, pairs, body)
    finally:
        connection.close()


def assert_streams_chunk_by_chunk(port: int, gate: Path, headers: Mapping[str, str]) -> None:
    """GET the test apps' ``/stream``: its second chunk waits for ``gate`` to exist, so the
    first must arrive before it does, or something between app and client buffered."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", f"/stream?gate={gate}", headers=dict(headers))
        response = connection.getresponse()
        assert response.status == 200
        assert response.read1(64) == b"first\n"
        gate.touch()
        assert response.read() == b"second\n"
    finally:
        connection.close()


def assert_cut_off_after_start(port: int, credentials: str, secret: str) -> str:
    """GET the test apps' ``/boom-late`` (a 200 that raises after its first chunk) over a
    raw socket: the server must cut the response off, never start a second one, never
    show the secret. Returns the request id sent, for checking the server's log."""
    request_id = f"late-{secrets.token_hex(4)}"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET /boom-late HTTP/1.1\r\nHost: x\r\nX-Request-ID: {request_id}\r\n"
                     f"Proxy-Authorization: {credentials}\r\n\r\n".encode())
        received = bytearray()
        while chunk := sock.recv(65536):  # the server must close: no complete response is coming
            received += chunk
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0]
    assert received.count(b"HTTP/1.") == 1  # never a second start
    assert b"partial" in body
    assert secret.encode() not in received
    if b"transfer-encoding: chunked" in head.lower():
        assert not body.endswith(b"0\r\n\r\n")  # a truncated stream, not a finished one
    return request_id


def basic(user: str, password: str) -> str:
    """A ``Basic`` credentials header value for ``user:password``."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
