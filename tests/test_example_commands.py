"""Every example's documented commands, run as written in its docstring, with real curl.

Each example's docstring has one literal block of shell lines, run from the checkout's
root: ``cd`` lines move, ``curl`` lines are the client, a line starting a server is one
alternative (each is started in turn, in its own process group, and every ``curl`` line
is run against it), and any other line must simply succeed. Only the port changes:
``8000`` becomes a free port everywhere in the block, so parallel runs do not collide;
a server and its ``curl`` line that disagree on the port still fail.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import json
import os
import re
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.binaries import require_binary
from support.servers import child_env, free_port, wait_until

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SOURCES = sorted([*EXAMPLES.glob("*.py"), EXAMPLES / "django_site" / "manage.py"])
#: The program that starts each kind of server, and the extra that installs it.
SERVERS = {"gunicorn": "gunicorn", "uvicorn": "serve", "flask": "flask",
           "python manage.py runserver": "django"}
START_TIMEOUT = 60.0


@dataclass
class Recipe:
    example: str
    extras: list[str]
    lines: list[str]


def recipe(path: Path) -> Recipe:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    extras = re.findall(r'pip install "proxygate\[([^\]]+)\]"', doc)
    assert len(extras) == 1, f"{path.name}: the docstring must name its extras once"
    blocks = re.findall(r"::\n\n((?:    .*\n?)+)", doc)
    assert len(blocks) == 1, f"{path.name}: the docstring must have one block of commands"
    lines = [line.strip() for line in blocks[0].splitlines() if line.strip()]
    return Recipe(path.relative_to(ROOT).as_posix(), extras[0].split(","), lines)


RECIPES = [recipe(path) for path in SOURCES]


def _server(line: str) -> str | None:
    return next((name for name in SERVERS if line.startswith(name + " ")), None)


def _env() -> dict[str, str]:
    env = child_env()
    env.pop("DEMO_USERS_FILE", None)  # the documented users.htpasswd, as a reader has it
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    """The server and whatever it started (runserver's autoreloader child), by process group."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):  # children left behind by their parent
        os.killpg(process.pid, signal.SIGKILL)


def _listening_or_gone(process: subprocess.Popen[bytes], port: int) -> bool:
    return _port_open(port) or process.poll() is not None


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _cases() -> Iterator[object]:
    for item in RECIPES:
        for line in item.lines:
            server = _server(line)
            if server is not None:
                yield pytest.param(item, line, id=f"{Path(item.example).stem}-{server.split()[-1]}")


def test_every_example_documents_a_server_and_a_curl_line() -> None:
    assert len(RECIPES) == 6
    for item in RECIPES:
        assert any(_server(line) for line in item.lines), item.example
        assert any(line.startswith("curl -x ") for line in item.lines), item.example


def test_each_examples_extras_exist_and_install_its_servers() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for item in RECIPES:
        assert set(item.extras) <= set(extras), item.example
        for line in item.lines:
            server = _server(line)
            if server is not None:
                assert SERVERS[server] in item.extras, (item.example, line)
    (everything,) = extras["all"]
    in_all = set(re.fullmatch(r"proxygate\[(.*)\]", everything)[1].split(","))  # type: ignore[index]
    assert {extra for item in RECIPES for extra in item.extras} <= in_all


@pytest.mark.server
@pytest.mark.parametrize(("item", "server_line"), list(_cases()))
def test_the_documented_commands_work_as_written(item: Recipe, server_line: str,
                                                 tmp_path: Path) -> None:
    require_binary("curl", install="apt-get install curl")
    port = free_port()
    env = _env()
    cwd = ROOT
    process: subprocess.Popen[bytes] | None = None
    log = tmp_path / "server.log"
    try:
        for written in item.lines:
            line = re.sub(r"\b8000\b", str(port), written)
            if line.startswith("cd "):
                cwd = (cwd / line.split(maxsplit=1)[1]).resolve()
                assert cwd.is_dir(), written
            elif _server(line) is not None:
                if written != server_line:
                    continue  # another alternative
                with log.open("wb") as out:
                    process = started = subprocess.Popen(
                        line, shell=True, cwd=cwd, env=env, stdout=out,
                        stderr=subprocess.STDOUT, start_new_session=True)
                wait_until(functools.partial(_listening_or_gone, started, port),
                           timeout=START_TIMEOUT, what=f"{written!r} listening")
                assert started.poll() is None, log.read_text(errors="replace")
            elif line.startswith("curl "):
                assert process is not None, f"{written!r} comes before any server"
                done = subprocess.run(line, shell=True, cwd=cwd, env=env, text=True,
                                      capture_output=True, timeout=60, check=False)
                assert done.returncode == 0, done.stderr
                assert json.loads(done.stdout)["user"] == "demo", (
                    done.stdout, log.read_text(errors="replace"))
            else:
                done = subprocess.run(line, shell=True, cwd=cwd, env=env, text=True,
                                      capture_output=True, timeout=120, check=False)
                assert done.returncode == 0, (written, done.stdout, done.stderr)
        assert process is not None, "the server line was never reached"
    finally:
        if process is not None:
            _stop(process)
