"""A raw HTTP/1.1 client for hostile requests: bytes sent exactly as written, a bounded read back.

::

    reply = send_raw(port, b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
    reply.status, reply.header(b"proxy-authenticate"), reply.json(), reply.interim

``send_raw`` can send the head a byte at a time, and send a body only in part (the rest
never comes): the reply must arrive all the same, within ``timeout`` seconds, or the test
fails saying so. ``None`` means the server closed the connection without answering.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterable
from typing import Any

import pytest

__all__ = ["Raw", "send_raw"]


class Raw:
    """A parsed final response: status, lower-case header pairs, body, 1xx statuses before it."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes,
                 interim: list[int], raw: bytes) -> None:
        self.status, self.headers, self.body, self.interim = status, headers, body, interim
        #: Everything the server sent, for "was this echoed anywhere?" checks.
        self.raw = raw

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Raw({self.status}, {self.headers!r}, {self.body[:200]!r})"


class _Reader:
    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock, self.deadline = sock, deadline
        self.data = bytearray()
        self.eof = False

    def more(self) -> bool:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0 or self.eof:
            return False
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return False
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.data += chunk
        return True


def _read_response(reader: _Reader, timeout: float) -> Raw | None:
    interim: list[int] = []
    start = 0
    while True:
        while b"\r\n\r\n" not in reader.data[start:]:
            if not reader.more():
                if reader.eof and len(reader.data) == start:
                    return None  # closed without (another) answer
                pytest.fail(f"no complete response head within {timeout:.0f}s: "
                            f"{bytes(reader.data[start:start + 300])!r}", pytrace=False)
        end = reader.data.index(b"\r\n\r\n", start)
        head = bytes(reader.data[start:end])
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = [(name.strip().lower(), value.strip())
                   for name, _, value in (line.partition(b":") for line in lines[1:])]
        start = end + 4
        if 100 <= status < 200:
            interim.append(status)
            continue
        break
    length = next((int(v) for k, v in headers if k == b"content-length"), None)
    chunked = any(k == b"transfer-encoding" and b"chunked" in v.lower() for k, v in headers)
    if length is not None:
        while len(reader.data) - start < length and reader.more():
            pass
        body = bytes(reader.data[start:start + length])
    elif chunked:
        while not reader.data.endswith(b"0\r\n\r\n") and reader.more():
            pass
        body = _dechunk(bytes(reader.data[start:]))
    else:
        while reader.more():
            pass
        body = bytes(reader.data[start:])
    return Raw(status, headers, body, interim, bytes(reader.data))


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2:]
    return bytes(out)


def send_raw(port: int, head: bytes, body: Iterable[bytes] = (), *, byte_by_byte: bool = False,
             timeout: float = 10.0) -> Raw | None:
    """Send ``head`` (then each piece of ``body``) on a fresh connection and read one reply.

    ``byte_by_byte`` sends the head and body one byte per ``send``. The body is whatever
    the caller chooses to send, typically less than its declared length: the answer must
    not wait for the rest.
    """
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for piece in (head, *body):
                if byte_by_byte:
                    for index in range(len(piece)):
                        sock.sendall(piece[index:index + 1])
                else:
                    sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed early: read what it said
        return _read_response(_Reader(sock, deadline), timeout)
