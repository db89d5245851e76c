"""Attack drivers for real servers: many requests released at once, and a sustained flood.

``simultaneous`` opens one connection per request and sends each request but its last
byte; when every connection holds its request, all last bytes go out together, so the
server sees the requests as close to simultaneously as loopback allows.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Sequence

__all__ = ["Flood", "raw_request", "simultaneous", "status_of"]

TIMEOUT = 60.0


def raw_request(target: str = "/", headers: Sequence[tuple[str, str]] = ()) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP/1.x response; 0 when none arrived."""
    parts = response.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        return 0
    return int(parts[1])


def _read_all(sock: socket.socket) -> bytes:
    received = bytearray()
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(received)
        received += chunk


def simultaneous(port: int, requests: Sequence[bytes]) -> list[bytes]:
    """Send ``requests`` on as many connections at once; the raw responses, in order."""
    count = len(requests)
    ready = threading.Barrier(count + 1, timeout=TIMEOUT)
    go = threading.Event()
    responses: list[bytes] = [b""] * count
    problems: list[BaseException] = []

    def one(index: int) -> None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
                request = requests[index]
                sock.sendall(request[:-1])
                ready.wait()
                go.wait(TIMEOUT)
                sock.sendall(request[-1:])
                responses[index] = _read_all(sock)
        except BaseException as exc:
            problems.append(exc)
            ready.abort()

    threads = [threading.Thread(target=one, args=(n,), daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    ready.wait()
    go.set()
    for thread in threads:
        thread.join(TIMEOUT)
    if problems:
        raise problems[0]
    return responses


class Flood:
    """``threads`` attackers sending ``make_request(n)`` back to back until :meth:`stop`.

    Each response's status is recorded with a global sequence number, so a test can ask
    what completed while something else was going on (an order, not a duration).
    """

    def __init__(self, port: int, make_request: Callable[[int], bytes], threads: int) -> None:
        self._port = port
        self._make = make_request
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.events: list[tuple[str, int]] = []  # ("flood", status) in completion order
        self.errors: list[BaseException] = []
        self._counter = 0
        self._threads = [threading.Thread(target=self._attack, daemon=True)
                         for _ in range(threads)]

    def record(self, who: str, status: int) -> None:
        with self._lock:
            self.events.append((who, status))

    def _attack(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self._counter += 1
                number = self._counter
            try:
                with socket.create_connection(("127.0.0.1", self._port), timeout=TIMEOUT) as s:
                    s.sendall(self._make(number))
                    status = status_of(_read_all(s))
            except OSError as exc:
                self.errors.append(exc)
                return
            self.record("flood", status)

    def statuses(self) -> list[int]:
        with self._lock:
            return [status for who, status in self.events if who == "flood"]

    def __enter__(self) -> Flood:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(TIMEOUT)
