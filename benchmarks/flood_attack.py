"""The flood case's attackers, in a process of their own: ``--addresses`` threads, each one
address (``X-Forwarded-For``, believed from the loopback proxy), sending wrong passwords back
to back on fresh connections until its stdin closes (or ``--seconds`` pass). Prints
``flooding`` once its threads run, then one JSON line: the seconds it flooded and the
count of each status it was answered.

    python benchmarks/flood_attack.py --port 8080 --user victim --seconds 10 --addresses 50

With ``--honor-retry-after`` an attacker refused with 503 (or throttled with 429) waits
the ``Retry-After`` it was given before its next guess: the hash flood alone. Without it,
refused attackers come straight back: a plain request flood on top, which costs any
server its latency. ``--path`` sends the guesses elsewhere than ``/``: the flood case's
floor sends them to a path the app answers 503 without any check.
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import sys
import threading
import time
from collections import Counter


def request(path: str, user: str, guess: str, address: str) -> bytes:
    token = base64.b64encode(f"{user}:{guess}".encode()).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nProxy-Authorization: Basic {token}\r\n"
            f"X-Forwarded-For: {address}\r\nConnection: close\r\n\r\n").encode()


def answer(sock: socket.socket) -> tuple[int, float]:
    """The status and the Retry-After seconds (0 when none) of the response on ``sock``."""
    received = bytearray()
    while chunk := sock.recv(65536):
        received += chunk
    head = bytes(received).partition(b"\r\n\r\n")[0]
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        return 0, 0.0
    retry = 0.0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"retry-after":
            retry = float(value.strip())
    return int(parts[1]), retry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--addresses", type=int, default=50)
    parser.add_argument("--path", default="/")
    parser.add_argument("--honor-retry-after", action="store_true")
    args = parser.parse_args()
    counts: Counter[int] = Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def attack(number: int) -> None:
        address = f"198.51.100.{number + 1}"
        guess = 0
        while not stop.is_set():
            guess += 1
            retry = 0.0
            try:
                with socket.create_connection(("127.0.0.1", args.port), timeout=30) as sock:
                    sock.sendall(request(args.path, args.user, f"guess-{number}-{guess}", address))
                    status, retry = answer(sock)
            except OSError:
                status = -1
            with lock:
                counts[status] += 1
            if args.honor_retry_after and status in (429, 503) and retry > 0:
                stop.wait(retry)

    threads = [threading.Thread(target=attack, args=(n,)) for n in range(args.addresses)]
    for thread in threads:
        thread.start()
    print("flooding", flush=True)
    started = time.monotonic()

    def until_stdin_closes() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=until_stdin_closes, daemon=True).start()
    stop.wait(args.seconds)
    stop.set()
    for thread in threads:
        thread.join()
    answers = {str(status): count for status, count in sorted(counts.items())}
    print(json.dumps({"seconds": time.monotonic() - started, "answers": answers}), flush=True)


if __name__ == "__main__":
    main()
