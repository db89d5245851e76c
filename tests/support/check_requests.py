"""What a real gateway sends its auth service: the gateway run in front of a recorder.

The service's dialects rebuild the client's request from what each gateway sends; these
helpers pin those facts against the real binary::

    with probe_gateway(spec, workdir) as probe:
        asked = probe.ask("POST", "http://app.internal/p?q=1", client, body=b"abc",
                          headers={"X-Forwarded-Uri": "/spoofed"}, credentials=GOOD)
        asked.check        # the check request the recorder received (method, path, headers)
        asked.upstream     # what the echo upstream received, or None if it was not reached
        asked.reply        # what the client got

The recorder is ``apps.recording_auth``; it allows ``alice:secret`` (:data:`GOOD`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from apps.recording_auth import GOOD
from support.gateways import GatewaySpec, Stack, Upstream, run_gateway, run_service
from support.servers import PYTHON, Reply, RunningServer, run_server, wait_until

__all__ = ["GOOD", "Asked", "Probe", "assert_runs_as_an_ordinary_user", "header_map",
           "origin_stack", "probe_gateway"]


def header_map(seen: Mapping[str, Any]) -> dict[str, list[str]]:
    """A recorded request's headers: lower-case name -> values in order."""
    headers: dict[str, list[str]] = {}
    for name, value in seen["headers"]:
        headers.setdefault(name.lower(), []).append(value)
    return headers


def _lines(path: Path) -> list[dict[str, Any]]:
    import json

    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@dataclass
class Asked:
    reply: Reply
    check: dict[str, Any]
    upstream: dict[str, Any] | None

    @property
    def check_headers(self) -> dict[str, list[str]]:
        return header_map(self.check)

    @property
    def upstream_headers(self) -> dict[str, list[str]]:
        assert self.upstream is not None, "the upstream was not reached"
        return header_map(self.upstream)


@dataclass
class Probe:
    gateway: RunningServer
    auth: RunningServer
    upstream: Upstream
    record: Path

    def ask(self, method: str, url: str, source: str, *, body: bytes | None = None,
            headers: Mapping[str, str] | None = None, credentials: str | None = None,
            via: RunningServer | None = None) -> Asked:
        """One request through the gateway (or ``via`` another) as a proxy (curl -x)."""
        checks_before = len(_lines(self.record))
        upstream_before = self.upstream.count()
        with tempfile.TemporaryDirectory() as scratch:
            head, out = Path(scratch) / "head", Path(scratch) / "body"
            command = ["curl", "-s", "--max-time", "20", "--interface", source, "-x",
                       (via or self.gateway).url, "-X", method, "-D", str(head), "-o", str(out)]
            for name, value in (headers or {}).items():
                command += ["-H", f"{name}: {value}"]
            if credentials is not None:
                command += ["-H", f"Proxy-Authorization: {credentials}"]
            if body is not None:
                data = Path(scratch) / "data"
                data.write_bytes(body)
                command += ["--data-binary", f"@{data}"]
            command.append(url)
            done = subprocess.run(command, capture_output=True, timeout=30, check=False,
                                  env={"PATH": "/usr/bin:/bin"})
            assert done.returncode == 0, f"curl failed ({done.returncode}): {done.stderr!r}"
            lines = head.read_bytes().split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
            reply = Reply(int(lines[0].split()[1]),
                          [(k.strip().lower(), v.strip())
                           for k, _, v in (line.partition(":") for line in lines[1:])],
                          out.read_bytes())
        wait_until(lambda: len(_lines(self.record)) > checks_before, timeout=10,
                   what="the check request")
        checks = _lines(self.record)
        assert len(checks) == checks_before + 1, "the gateway asked more than once"
        upstream = self.upstream.requests()
        reached = upstream[-1] if len(upstream) > upstream_before else None
        return Asked(reply, checks[-1], reached)


@contextmanager
def probe_gateway(spec: GatewaySpec, workdir: Path) -> Iterator[Probe]:
    """The echo upstream, the recorder as the auth service, the gateway in front."""
    record = workdir / "check-requests.jsonl"
    upstream_record = workdir / "probe-upstream.jsonl"
    with ExitStack() as stack:
        echo = stack.enter_context(run_server(
            [PYTHON, "-m", "apps.echo_upstream", "--port", "{port}", "--record",
             str(upstream_record)]))
        auth = stack.enter_context(run_server(
            [PYTHON, "-m", "apps.recording_auth", "--port", "{port}", "--record", str(record)]))
        gateway = stack.enter_context(run_gateway(
            spec, workdir / f"{spec.name}-probe", auth_urls=[f"{auth.url}/auth"],
            upstream=echo.url))
        yield Probe(gateway, auth, Upstream(echo, upstream_record), record)


def assert_runs_as_an_ordinary_user(spec: GatewaySpec, probe: Probe, client: str) -> None:
    """The printed command alone runs the gateway as an ordinary user (``nobody`` when the
    tests run as root), and it writes nothing outside its directory: its HOME stays empty."""
    user = "nobody" if os.geteuid() == 0 else None
    scratch = Path(tempfile.mkdtemp(prefix="proxygate-ordinary-user-"))
    try:
        os.chmod(scratch, 0o755)  # pytest's own temporary directories are root's alone
        home, directory = scratch / "home", scratch / "gateway"
        home.mkdir()
        directory.mkdir()
        if user is not None:
            account = pwd.getpwnam(user)
            for path in (home, directory):
                os.chown(path, account.pw_uid, account.pw_gid)
        binary = _reachable_by_anyone(spec.binary, scratch / "bin") if user else spec.binary
        ordinary = replace(spec, binary=binary, env={**spec.env, "HOME": str(home)})
        with run_gateway(ordinary, directory, auth_urls=[f"{probe.auth.url}/auth"],
                         upstream=probe.upstream.url, user=user) as gateway:
            asked = probe.ask("GET", "http://app.internal/as-nobody", client,
                              credentials=GOOD, via=gateway)
            assert asked.reply.status == 200, (asked.reply, gateway.output()[-2000:])
            if user is not None:
                assert _owner(gateway.pid) == user
        assert list(home.iterdir()) == []
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _reachable_by_anyone(binary: str, directory: Path) -> str:
    """``binary``, or a link to it (a copy across file systems) in ``directory`` when a
    directory above it is closed to others (a checkout under /root): ``nobody`` must be
    able to run it; only where it lives is the test's doing, not the gateway's."""
    real = Path(binary).resolve()
    if all(os.stat(part).st_mode & 0o001 for part in real.parents):
        return binary
    directory.mkdir(mode=0o755, exist_ok=True)
    target = directory / real.name
    try:
        os.link(real, target)
    except OSError:
        shutil.copy2(real, target)
    os.chmod(target, 0o755)
    return str(target)


def _owner(pid: int) -> str:
    uid = os.stat(f"/proc/{pid}").st_uid
    return pwd.getpwuid(uid).pw_name


@contextmanager
def origin_stack(spec: GatewaySpec, stack: Stack, directory: Path) -> Iterator[Stack]:
    """The gateway and a service in origin mode (401, ``Authorization``), in front of the
    stack's upstream and users."""
    origin = replace(spec, mode="origin", auth_instances=1)
    with run_service(stack.users, spec.name, mode="origin") as service, run_gateway(
            origin, directory, auth_urls=[f"{service.url}/auth"],
            upstream=stack.upstream.url) as gateway:
        yield Stack(origin, gateway, [service], stack.upstream, stack.directory, stack.users)
