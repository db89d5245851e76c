"""Real servers on 127.0.0.1 for the out-of-process cases: start, wait, load with wrk, stop.

Every server starts on a free loopback port with its output in a log file (a pipe could
fill), is waited for until it listens, and is stopped by its process id. ``SERVERS``
holds the command lines of the end-to-end comparisons.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness import subprocess_env

WRK = shutil.which("wrk")

#: uvicorn serving an app factory from ``apps.py``.
_UVICORN = [sys.executable, "-m", "uvicorn", "--factory", "--host", "127.0.0.1", "--port",
            "{port}", "--workers", "1", "--no-access-log", "--log-level", "warning",
            "apps:{app}"]

#: Server command lines; ``{port}`` and ``{app}`` are filled in. One worker
#: each: on a 2-core machine the other core is wrk's.
SERVERS = {
    "uvicorn": {
        "cmd": _UVICORN,
        "apps": {"bare": "starlette_bare", "proxygate": "starlette_proxygate",
                 "anchor": "starlette_auth_anchor"},
        "anchor": "Starlette AuthenticationMiddleware",
        "connections": 32,
    },
    # The app's own 404 (a missing page), answered in each app's way: Starlette's plain
    # text, proxygate's envelope middleware rewriting it, Starlette's JSON handler.
    "uvicorn-404": {
        "cmd": _UVICORN,
        "apps": {"bare": "starlette_bare", "proxygate": "starlette_envelope",
                 "anchor": "starlette_json_errors_anchor"},
        "anchor": "Starlette's HTTPException → JSONResponse handler",
        "connections": 32,
        "path": "no-such-page",
    },
    # The same, proxygate set up as docs/starlette.md shows: its exception handlers
    # inside the app, the envelope middleware outside.
    "uvicorn-404-handlers": {
        "cmd": _UVICORN,
        "apps": {"bare": "starlette_bare", "proxygate": "starlette_envelope_documented",
                 "anchor": "starlette_json_errors_anchor"},
        "anchor": "Starlette's HTTPException → JSONResponse handler",
        "connections": 32,
        "path": "no-such-page",
    },
    "gunicorn": {
        "cmd": [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:{port}", "--workers",
                "1", "--log-level", "warning", "apps:{app}()"],
        "apps": {"bare": "flask_bare", "proxygate": "flask_proxygate",
                 "anchor": "flask_httpauth_anchor"},
        "anchor": "Flask-HTTPAuth",
        # The sync worker serves one connection at a time; more only queue.
        "connections": 4,
    },
}

#: A, B and C of the alternation.
LABELS = ("bare", "proxygate", "anchor")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within {timeout:.0f} s")


@dataclass
class Server:
    label: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start(server: str, label: str, log: Path) -> Server:
    """Start ``server`` serving the ``label`` app; its output goes to ``log`` (a pipe could fill)."""
    spec = SERVERS[server]
    port = free_port()
    cmd = [part.format(port=port, app=spec["apps"][label]) for part in spec["cmd"]]  # type: ignore[index,union-attr]
    return launch(label, cmd, port, log, name=f"{server} ({label})")


def launch(label: str, argv: list[str], port: int, log: Path, *,
           name: str | None = None) -> Server:
    """Run ``argv`` (its output to ``log``) and wait until it listens on ``port``; ``name``
    (the label by default) says which server failed when it does not."""
    with log.open("wb") as sink:
        proc = subprocess.Popen(argv, env=subprocess_env(), stdin=subprocess.DEVNULL,
                                stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc)
    except RuntimeError as exc:
        proc.kill()
        proc.wait(timeout=5)
        raise RuntimeError(f"{name or label}: {exc}:\n{tail(log)}") from None
    return Server(label, port, proc, log)


def tail(log: Path, limit: int = 2000) -> str:
    try:
        return log.read_text(encoding="utf-8", errors="replace")[-limit:]
    except OSError:
        return ""


_RPS = re.compile(r"Requests/sec:\s+([0-9.]+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_ERRORS = re.compile(r"Socket errors:.*")
_SENT = re.compile(r"(\d+) requests in ")


def wrk(url: str, *, seconds: float, connections: int, header: str,
        timeout: float | None = None, errors: bool = False) -> tuple[float, str]:
    """``timeout``: how long wrk waits for a response before counting it lost (its own
    default is 2 s). ``errors``: every response must be an error (a 404 case), where
    otherwise every one must be a success."""
    assert WRK is not None
    cmd = [WRK, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-H", header, url]
    if timeout is not None:
        cmd[1:1] = ["--timeout", f"{max(1, round(timeout))}s"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited {done.returncode}: {(done.stdout + done.stderr)[-1500:]}")
    match = _RPS.search(done.stdout)
    if match is None:
        raise RuntimeError(f"wrk printed no Requests/sec: {done.stdout[-1000:]}")
    bad = _NON_2XX.search(done.stdout)
    if errors:
        sent = _SENT.search(done.stdout)
        if bad is None or sent is None or bad.group(1) != sent.group(1):
            raise RuntimeError(f"{url}: not every response was an error; the comparison "
                               f"would mix paths:\n{done.stdout}")
    elif bad is not None:
        raise RuntimeError(f"{url}: {bad.group(1)} responses were not 2xx/3xx; the comparison "
                           f"would measure an error path:\n{done.stdout}")
    errors = _ERRORS.search(done.stdout)
    return float(match.group(1)), errors.group(0) if errors else ""


def wrk_version() -> str:
    if WRK is None:
        return "not installed"
    done = subprocess.run([WRK, "-v"], capture_output=True, text=True, check=False)
    return (done.stdout + done.stderr).splitlines()[0].split(" Copyright")[0].strip()
