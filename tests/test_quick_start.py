"""The README's quick start, walked from a fresh virtual environment as a new user would.

The two commands run exactly as the README writes them (``python`` and ``proxygate``
are the fresh environment's), then the ``curl -x`` line the demo prints runs as
printed. A dependency missing from the ``serve`` extra, a demo that needs another
extra, or a banner whose line does not work fails here. pip installs from the local
checkout (the command's ``-e "."``) and reuses pip's cache for the dependencies.

It takes about 40 s (a venv, then pip from its cache) and runs in the default suite;
``-m quick_start`` runs it alone. The demo listens on the documented port 8080, so runs
on one machine take turns through a lock file.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.binaries import require_binary
from support.servers import wait_until

ROOT = Path(__file__).resolve().parents[1]
#: How long the install and the demo's start may take under load before the test fails.
START_TIMEOUT = 240.0

pytestmark = [pytest.mark.quick_start, pytest.mark.server]


def quick_start_command() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    (command,) = re.findall(r"```console\n(.*?)\n```", section, re.S)[:1]
    assert "\n" not in command, "the quick start is one line"
    return command


def test_the_quick_start_is_the_two_commands_this_test_runs() -> None:
    assert quick_start_command() == 'python -m pip install -e ".[serve]" && proxygate serve'


@pytest.fixture
def port_8080() -> Iterator[None]:
    """The demo's documented port, held by one quick-start run at a time on this machine."""
    with open(os.path.join(tempfile.gettempdir(), "proxygate-quick-start.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with socket.socket() as probe:
            busy = probe.connect_ex(("127.0.0.1", 8080)) == 0
        assert not busy, "port 8080, where the quick start's demo listens, is taken by another program"
        yield


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


def test_the_quick_start_from_a_fresh_virtual_environment(tmp_path: Path, port_8080: None) -> None:
    require_binary("curl", install="apt-get install curl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV") and not key.lower().endswith("_proxy")}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    log = tmp_path / "quick-start.log"
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(quick_start_command(), shell=True, cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: "curl -x" in log.read_text(errors="replace") or process.poll() is not None,
                   timeout=START_TIMEOUT, what="the demo's banner", interval=0.2)
        output = log.read_text(errors="replace")
        assert process.poll() is None, output
        (line,) = [line.strip() for line in output.splitlines() if line.strip().startswith("curl -x")]
        with socket.socket() as probe:
            wait_until(lambda: probe.connect_ex(("127.0.0.1", 8080)) == 0, timeout=30,
                       what="the demo listening")
        done = subprocess.run(line, shell=True, env=env, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["user"] == "demo", (done.stdout, output)
        status = subprocess.run([*shlex.split(line), "-o", "/dev/null", "-w", "%{http_code}"],
                                env=env, capture_output=True, text=True, timeout=60, check=False)
        assert status.stdout == "200", (status.stdout, status.stderr)
        assert "Traceback" not in log.read_text(errors="replace")
    finally:
        _stop(process)
    print(f"quick start: {time.monotonic() - started:.1f} s from pip install to the 200")
