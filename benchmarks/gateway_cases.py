"""End to end behind nginx: nginx + the forward-auth service against nginx's own ``auth_basic``.

Both nginx servers run the same way (the configuration ``proxygate gateway-config nginx``
writes, one with ``auth_request`` to ``proxygate forward-auth --gateway nginx``, the
anchor with ``auth_basic`` reading the same users file on every request) in front of the
same upstream: a third nginx answering ``200 ok``, so the upstream never limits either.
wrk alternates between them, A B A B … A (A = the anchor), with a returning user's
credentials; each B is divided by the mean of the A runs on either side of it.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

from drive import basic
from harness import HERE, CaseResult, Settings
from servers import WRK, Server, free_port, launch, tail, wrk

USER, PASSWORD = "alice", "correct horse"
#: Concurrent connections. With a bcrypt cost-12 file nginx's workers block 0.25 s or
#: more on every request: one connection a worker, and wrk waits long for each answer
#: (its default 2 s would count a slow hash as lost, not as a slow request).
CONNECTIONS = {"apr1": 32, "bcrypt12": 2}
WRK_TIMEOUT = {"apr1": None, "bcrypt12": 30.0}


def _nginx() -> str | None:
    import shutil

    return shutil.which("nginx")


def _one_request(server: Server, header: str) -> None:
    import http.client

    name, _, value = header.partition(": ")
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("GET", "/", headers={name: value})
        status = connection.getresponse().status
    finally:
        connection.close()
    if status != 200:
        raise RuntimeError(f"{server.label} answered {status} to the returning user's first request")


def _user_line() -> str:
    """As root, workers run as root too, like the gateway's for a root-owned directory:
    nginx's default worker user could not read a users file in a private directory."""
    return "user root root;\n" if os.geteuid() == 0 else ""


def _main_block(directory: Path) -> str:
    return (f"daemon off;\n{_user_line()}worker_processes auto;\npid {directory}/nginx.pid;\n"
            f"error_log {directory}/error.log warn;\n")


def _upstream_conf(directory: Path, port: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "nginx.conf"
    conf.write_text(
        f"daemon off;\n{_user_line()}worker_processes 1;\n"
        f"pid {directory}/nginx.pid;\nerror_log {directory}/error.log warn;\n"
        "events { worker_connections 1024; }\nhttp {\n"
        f"  access_log off;\n  client_body_temp_path {directory}/client_body_temp;\n"
        f"  proxy_temp_path {directory}/proxy_temp;\n  fastcgi_temp_path {directory}/fastcgi_temp;\n"
        f"  uwsgi_temp_path {directory}/uwsgi_temp;\n  scgi_temp_path {directory}/scgi_temp;\n"
        f"  server {{ listen 127.0.0.1:{port}; location / {{ return 200 'ok'; }} }}\n}}\n"
    )
    return conf


def _anchor_conf(directory: Path, port: int, upstream: int, users: Path) -> Path:
    """The gateway configuration with ``auth_basic`` where ``auth_request`` was."""
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "nginx.conf"
    conf.write_text(
        _main_block(directory) + "events { worker_connections 1024; }\nhttp {\n"
        f"  access_log {directory}/access.log combined buffer=32k flush=1s;\n"
        f"  client_body_temp_path {directory}/client_body_temp;\n"
        f"  proxy_temp_path {directory}/proxy_temp;\n  fastcgi_temp_path {directory}/fastcgi_temp;\n"
        f"  uwsgi_temp_path {directory}/uwsgi_temp;\n  scgi_temp_path {directory}/scgi_temp;\n"
        f"  upstream backend {{ server 127.0.0.1:{upstream}; keepalive 32; }}\n"
        f"  server {{\n    listen 127.0.0.1:{port};\n    location / {{\n"
        f"      auth_basic \"proxygate\";\n      auth_basic_user_file {users};\n"
        "      proxy_pass http://backend;\n      proxy_http_version 1.1;\n"
        "      proxy_set_header Connection \"\";\n      proxy_set_header Authorization \"\";\n"
        "      proxy_set_header X-Authenticated-User $remote_user;\n    }\n  }\n}\n"
    )
    return conf


def compare(settings: Settings, result: CaseResult, *, scheme: str) -> None:
    """nginx + forward-auth (B) against nginx auth_basic (A), one users file hashed ``scheme``."""
    if WRK is None:
        result.error = "skipped: wrk is not installed (apt-get install wrk)"
        return
    nginx = _nginx()
    if nginx is None:
        result.error = "skipped: nginx is not installed (apt-get install nginx-light)"
        return
    from proxygate.auth.hashing import hash_password
    from proxygate.gateways import GatewayOptions, render

    work = (HERE / "out" if settings.out.resolve() == HERE else settings.out) / f"nginx-{scheme}"
    work.mkdir(parents=True, exist_ok=True)
    hashed = (hash_password(PASSWORD, "bcrypt", rounds=12) if scheme == "bcrypt12"
              else hash_password(PASSWORD, "apr_md5_crypt"))
    users = work / "users.htpasswd"
    users.write_text(f"{USER}:{hashed}\n")
    credentials = basic(USER, PASSWORD)
    servers: list[Server] = []
    runs: dict[str, list[float]] = {"anchor": [], "proxygate": []}
    errors: list[str] = []
    s: Server | None = None
    try:
        upstream_port = free_port()
        conf = _upstream_conf(work / "upstream", upstream_port)
        servers.append(launch("upstream", [nginx, "-e", str(work / "upstream" / "error.log"),
                                           "-c", str(conf)], upstream_port,
                              work / "upstream.log"))
        service_port = free_port()
        servers.append(launch("service", [
            sys.executable, "-m", "proxygate", "forward-auth", "--users", str(users),
            "--gateway", "nginx", "--port", str(service_port), "--log-level", "warning",
        ], service_port, work / "service.log"))
        anchor_port = free_port()
        conf = _anchor_conf(work / "anchor", anchor_port, upstream_port, users)
        anchor = launch("anchor", [nginx, "-e", str(work / "anchor" / "error.log"), "-c",
                                   str(conf)], anchor_port, work / "anchor.log")
        servers.append(anchor)
        gateway_port = free_port()
        argv = render("nginx", GatewayOptions(
            listen_host="127.0.0.1", listen_port=gateway_port,
            auth_url=f"http://127.0.0.1:{service_port}/auth",
            upstream=f"http://127.0.0.1:{upstream_port}", directory=work / "gateway"))
        gateway = launch("proxygate", [nginx, *argv[1:]], gateway_port, work / "gateway.log")
        servers.append(gateway)
        headers = {"anchor": "Authorization: " + credentials,
                   "proxygate": "Proxy-Authorization: " + credentials}
        # bcrypt: runs long enough for the anchor to finish a few requests (~4 a second).
        seconds = (settings.e2e_seconds if scheme == "apr1"
                   else 1.0 if settings.smoke else max(5.0, settings.e2e_seconds))
        connections = CONNECTIONS[scheme]
        pairs = settings.e2e_pairs if scheme == "apr1" else max(1, settings.e2e_pairs // 3)
        for s in (anchor, gateway):
            # A returning user: one request first, alone, so the credential is cached before
            # the load (32 first attempts at once would each reserve a throttle slot).
            _one_request(s, headers[s.label])
        for s in (anchor, gateway) if not settings.smoke else ():
            # warm: the CPU's frequency, nginx's keep-alive pools
            wrk(s.url, seconds=1, connections=connections, header=headers[s.label],
                timeout=WRK_TIMEOUT[scheme])
        for s in [*[anchor, gateway] * pairs, anchor]:
            rps, err = wrk(s.url, seconds=seconds, connections=connections,
                           header=headers[s.label], timeout=WRK_TIMEOUT[scheme])
            runs[s.label].append(rps)
            if err:
                errors.append(f"{s.label}: {err}")
    except RuntimeError as exc:
        where = f"\nserver log ({s.label}):\n{tail(s.log)}" if s is not None else ""
        raise RuntimeError(f"{exc}{where}") from None
    finally:
        for server in reversed(servers):
            server.stop()
    a = runs["anchor"]
    if min(a) <= 0:
        message = "the anchor completed no request in a run; no ratio can be formed"
        if settings.smoke:  # a loaded machine in a 2 s run: the scripts still worked
            result.ratio_cell = message
        else:
            result.error = message
        return
    ratios = [r / ((a[i] + a[i + 1]) / 2) for i, r in enumerate(runs["proxygate"])]
    ratio = statistics.median(ratios)
    result.ratio_value = ratio
    result.ratio_cell = f"{ratio:.3f} x auth_basic [{min(ratios):.3f}…{max(ratios):.3f}]"
    result.anchor_cell = f"nginx auth_basic ({scheme}): {statistics.median(a):,.1f} req/s"
    result.proxygate_cell = (f"nginx + forward-auth: {statistics.median(runs['proxygate']):,.1f}"
                             " req/s")
    result.raw.update(runs)
    version = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
    result.details.append(
        f"{version.stderr.strip()} (`worker_processes auto`), `wrk -t1 -c{connections} "
        f"-d{max(1, round(seconds))}s` on 127.0.0.1, one returning user. B = the configuration "
        "`proxygate gateway-config nginx` writes, asking one `proxygate forward-auth "
        "--gateway nginx` (uvicorn, one process; the credential is cached after its first "
        "check); A = the same nginx with `auth_basic`, which checks the users file's hash on "
        f"every request. Both proxy to a third nginx answering 200. Runs A B … A, "
        f"{len(runs['proxygate'])} B runs."
    )
    result.details.append(
        "Requests/s, " + "; ".join(f"{label}: " + ", ".join(f"{r:,.1f}" for r in values)
                                   for label, values in runs.items())
        + ". Ratio = each B ÷ the mean of the A runs on either side; median [min…max]."
    )
    if errors:
        result.details.append("wrk reported " + "; ".join(errors))


def e2e_nginx_apr1(settings: Settings, result: CaseResult) -> None:
    compare(settings, result, scheme="apr1")


def e2e_nginx_bcrypt12(settings: Settings, result: CaseResult) -> None:
    compare(settings, result, scheme="bcrypt12")
