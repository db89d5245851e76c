"""Real gateways for the tests: the echo upstream, ``proxygate forward-auth`` twice, one gateway.

A :class:`Stack` is what every gateway's conformance module runs against::

    with gateway_stack(spec, workdir, redis_url) as stack:
        stack.url            # the gateway, http://127.0.0.1:<port>
        stack.services       # two forward-auth instances sharing throttle counts in Redis
        stack.upstream       # the echo upstream; .requests() is what it received

The gateway is started from the last line ``proxygate gateway-config`` prints, and
nothing else: run in a directory of its own, with only the gateway's binary put first on
PATH. Every process is a subprocess on 127.0.0.1, stopped by its PID.
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from proxygate.auth.hashing import hash_password
from support.servers import (
    PYTHON,
    START_TIMEOUT,
    RunningServer,
    child_env,
    fetch,
    free_port,
    run_server,
    wait_until,
)

__all__ = [
    "EXEMPT",
    "MAX_FAILURES",
    "USERS",
    "GatewaySpec",
    "Stack",
    "Upstream",
    "gateway_stack",
    "next_client_address",
    "run_gateway",
    "run_service",
    "write_users",
]

#: The users every stack knows; one name is not ASCII (the user header encodes it).
USERS = {"alice": "alice-secret:with-colon", "zoë": "pässwörd"}
MAX_FAILURES = 3
EXEMPT = ("/healthz", "/static/*")
#: The gateway's address as the services see it: the only peer whose headers they believe.
TRUSTED = "127.0.0.1/32"

_addresses = itertools.count(10)
_databases = itertools.count(1)


def next_client_address() -> str:
    """A loopback address no other test in this process used: its own throttle count.

    All of 127.0.0.0/8 is loopback on Linux, so a client can bind any of them; the
    gateway then sees a distinct peer, as it would two hosts.
    """
    number = next(_addresses)
    assert number < 65000, "ran out of client addresses"
    return f"127.0.{number // 250}.{number % 250 + 2}"


@dataclass(frozen=True)
class GatewaySpec:
    """How one gateway is run and what its shipped configuration promises."""

    #: The ``gateway-config`` name, also the service's ``--gateway`` dialect.
    name: str
    #: The gateway's binary (from ``require_binary``); its directory goes first on PATH.
    binary: str
    #: The upstream's own 5xx page reaches the client as the envelope (else as it came).
    rewrites_upstream_errors: bool = False
    mode: str = "proxy"
    #: The gateway itself refuses a repeated credential header with a 400 (nginx 1.23+),
    #: before the service is asked.
    refuses_repeated_credentials: bool = False
    #: How many of the stack's two service instances the gateway asks (Traefik asks one
    #: address; the Redis test still asks both instances directly).
    auth_instances: int = 2
    #: More environment for gateway-config and the gateway.
    env: Mapping[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        env = child_env(self.env)
        env["PATH"] = os.pathsep.join([str(Path(self.binary).parent), env.get("PATH", "")])
        return env


class Upstream:
    """The echo upstream: every request it received, in order, from its record file."""

    def __init__(self, server: RunningServer, record: Path) -> None:
        self.server = server
        self.url = server.url
        self.record = record

    def requests(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        lines = self.record.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def count(self) -> int:
        return len(self.requests())


@dataclass
class Stack:
    spec: GatewaySpec
    gateway: RunningServer
    services: list[RunningServer]
    upstream: Upstream
    directory: Path
    users: Path

    @property
    def url(self) -> str:
        return self.gateway.url

    @property
    def port(self) -> int:
        return self.gateway.port


def write_users(path: Path) -> Path:
    """The users file: bcrypt at its lowest cost, so a test pays milliseconds for a hash."""
    lines = [f"{name}:{hash_password(password, 'bcrypt', rounds=4)}\n"
             for name, password in USERS.items()]
    path.write_text("".join(lines), encoding="utf-8")
    return path


@contextmanager
def run_service(users: Path, dialect: str, *, redis_url: str | None = None, mode: str = "proxy",
                extra: Sequence[str] = ()) -> Iterator[RunningServer]:
    """``proxygate forward-auth`` as a subprocess, as the README tells users to run it."""
    command = [PYTHON, "-m", "proxygate", "forward-auth", "--users", str(users),
               "--gateway", dialect, "--port", "{port}", "--mode", mode,
               "--trusted-proxy", TRUSTED, "--log-level", "warning", *extra]
    for path in EXEMPT:
        command += ["--exempt", path]
    if redis_url is not None:
        command += ["--throttle-store", redis_url]
    # The flood checks send 4 x MAX_FAILURES guesses at once to see the throttle hold:
    # a queue that admits them all puts the throttle, not the hash budget, under test.
    env = {"PROXYGATE_MAX_FAILURES": str(MAX_FAILURES),
           "PROXYGATE_MAX_QUEUED_HASHES": str(4 * MAX_FAILURES)}
    with run_server(command, env=env) as server:
        yield server


def _config_command(spec: GatewaySpec, directory: Path, port: int, auth_urls: Sequence[str],
                    upstream: str) -> list[str]:
    """Run ``proxygate gateway-config``; the argv its last line prints."""
    command = [PYTHON, "-m", "proxygate", "gateway-config", spec.name,
               "--listen", f"127.0.0.1:{port}", "--upstream", upstream,
               "--dir", str(directory), "--mode", spec.mode]
    for url in auth_urls:
        command += ["--auth-url", url]
    done = subprocess.run(command, env=spec.environment(), capture_output=True, text=True,
                          timeout=60, check=False)
    if done.returncode != 0:
        pytest.fail(f"gateway-config {spec.name} failed ({done.returncode}):\n{done.stderr}",
                    pytrace=False)
    lines = done.stdout.strip().splitlines()
    assert lines, "gateway-config printed nothing"
    argv = shlex.split(lines[-1])
    assert Path(argv[0]).name == Path(spec.binary).name.removesuffix(".exe") or \
        argv[0] == spec.name, f"the printed command does not start {spec.name}: {argv!r}"
    return argv


def _port_open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _routes_loaded(port: int, deadline: float) -> bool:
    """Whether the gateway routes requests yet: Traefik opens its port before its file
    provider has loaded the routers, and answers 404 until then. A request without
    credentials is enough to tell (the service answers it; it counts no failure)."""
    while time.monotonic() < deadline:
        try:
            reply = fetch(f"http://127.0.0.1:{port}", "/", {"Host": "readiness.invalid"},
                          timeout=5)
        except OSError:
            reply = None
        if reply is not None and reply.status != 404:
            return True
        time.sleep(0.05)
    return False


@contextmanager
def run_gateway(spec: GatewaySpec, directory: Path, *, auth_urls: Sequence[str], upstream: str,
                user: str | None = None) -> Iterator[RunningServer]:
    """Write the gateway's configuration into ``directory`` and run it from the printed
    command alone (in an empty working directory); ``user`` runs it as that user."""
    directory.mkdir(parents=True, exist_ok=True)
    problem = ""
    with tempfile.TemporaryDirectory(prefix="proxygate-gateway-cwd-") as elsewhere:
        os.chmod(elsewhere, 0o755)
        for attempt in range(3):
            port = free_port()
            argv = _config_command(spec, directory, port, auth_urls, upstream)
            log = directory / f"gateway-output-{attempt}.log"
            with log.open("wb") as sink:
                process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT,
                                           env=spec.environment(), cwd=elsewhere, user=user)
            server = RunningServer(process, port, log)
            deadline = time.monotonic() + START_TIMEOUT
            while not _port_open(port) and process.poll() is None \
                    and time.monotonic() < deadline:
                time.sleep(0.02)
            if _port_open(port) and process.poll() is None and _routes_loaded(port, deadline):
                break
            server.stop()
            problem = (f"{argv!r} did not serve on port {port} (exit {process.returncode}):\n"
                       f"{server.output()[-4000:]}")
        else:
            pytest.fail(problem, pytrace=False)
        try:
            yield server
        finally:
            server.stop()


@contextmanager
def gateway_stack(spec: GatewaySpec, workdir: Path, redis_url: str) -> Iterator[Stack]:
    """The echo upstream, two forward-auth instances sharing Redis, and the gateway."""
    import redis

    database = next(_databases)
    assert database < 16, "ran out of Redis databases"
    redis_url = redis_url.rsplit("/", 1)[0] + f"/{database}"
    redis.Redis.from_url(redis_url).flushdb()
    users = write_users(workdir / "users.htpasswd")
    record = workdir / "upstream-record.jsonl"
    with ExitStack() as stack:
        echo = stack.enter_context(run_server(
            [PYTHON, "-m", "apps.echo_upstream", "--port", "{port}", "--record", str(record)]
        ))
        services = [
            stack.enter_context(run_service(users, spec.name, redis_url=redis_url, mode=spec.mode))
            for _ in range(2)
        ]
        directory = workdir / f"{spec.name}-gateway"
        gateway = stack.enter_context(run_gateway(
            spec, directory, auth_urls=[f"{service.url}/auth"
                                       for service in services[:spec.auth_instances]],
            upstream=echo.url,
        ))
        yield Stack(spec, gateway, services, Upstream(echo, record), directory, users)


def wait_for_record(upstream: Upstream, count: int) -> list[dict[str, Any]]:
    """The upstream's requests once it has recorded ``count`` of them (a bounded wait)."""
    wait_until(lambda: upstream.count() >= count, timeout=10, what=f"{count} upstream requests")
    return upstream.requests()
