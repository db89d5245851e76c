"""Caddy: a Caddyfile whose ``forward_auth`` asks the forward-auth service (caddy dialect).

Caddy's ``reverse_proxy`` (which ``forward_auth`` is built on) treats
``Proxy-Authorization`` and ``Proxy-Authenticate`` as hop-by-hop and strips them both
ways, so the Caddyfile carries the credential to the service with ``header_up`` and the
challenge back to the client with ``copy_response_headers``. docs/gateways.md explains
every line.
"""

from __future__ import annotations

import json
import re

from proxygate.gateways import GatewayError, GatewayOptions, ServiceURL, write_file
from proxygate.gateways._envelopes import (
    AUTH_UNAVAILABLE_DETAILS,
    AUTH_UNAVAILABLE_RETRY_AFTER,
    SERVER_ERRORS,
    envelope,
)

__all__ = ["render", "render_config"]

#: What the Caddyfile puts where the envelope's request id goes: the service's id, copied
#: onto the request by ``copy_headers`` (Caddy's own UUID when the service was not reached).
_REQUEST_ID = "{http.request.header.X-Request-ID}"
#: Caddy's own id for the request: used when the service was not reached, since the
#: client's X-Request-ID has then not been checked (Caddy would write it unescaped).
_OWN_ID = "{http.request.uuid}"
_SAFE_PATH = re.compile(r"[A-Za-z0-9/._~%!$&'()*+,;=:@-]*")


def render(options: GatewayOptions) -> list[str]:
    """Write ``Caddyfile`` into the directory; the argv that runs Caddy in the foreground."""
    (options.directory / "data").mkdir(exist_ok=True)
    path = write_file(options.directory, "Caddyfile", render_config(options))
    return ["caddy", "run", "--config", str(path), "--adapter", "caddyfile"]


def _dial(url: ServiceURL) -> str:
    """An upstream address as ``reverse_proxy`` takes it (``https://`` only when TLS)."""
    return url.authority if url.scheme == "http" else f"https://{url.authority}"


def _status_map() -> str:
    """``map`` entries: each 5xx status to the message and details the service would write."""
    lines = []
    for status in SERVER_ERRORS:
        error = json.loads("".join(envelope(status)))["error"]
        lines.append(f'\t\t{status} "{error["message"]}" "{error["details"]}"\n')
    return "".join(lines)


def _respond(status: str, details: str = "{proxygate_details}",
             message: str = "{proxygate_message}", request_id: str = _REQUEST_ID) -> str:
    """A ``respond`` line sending the envelope; the arguments may be Caddy placeholders.

    The JSON's own braces are escaped (``\\{``) so Caddy does not read them as placeholders.
    """
    body = (f'\\{{"error": \\{{"code": {status}, "message": "{message}", '
            f'"details": "{details}", "request_id": "{request_id}"\\}}\\}}')
    return f"respond `{body}` {status}"


def render_config(options: GatewayOptions) -> str:
    """The whole Caddyfile for ``options``."""
    auth = options.auth
    upstream = options.upstream_url
    if upstream.path != "/":
        raise GatewayError(
            f"the upstream {options.upstream!r} has a path; Caddy's reverse_proxy takes "
            "scheme://host:port only"
        )
    if not _SAFE_PATH.fullmatch(auth.path):
        raise GatewayError(f"the auth URL's path {auth.path!r} has characters a Caddyfile "
                           "would misread")
    directory = options.directory
    listen_host = options.listen_host
    user = options.user_header
    underscored = user.replace("-", "_")
    credential_lines = ""
    challenge_lines = ""
    if options.mode == "proxy":
        # reverse_proxy drops these two as hop-by-hop: carry the credential up and the
        # challenge back down (each challenge line as it came; a placeholder would join them).
        credential_lines = (
            "\t\t\theader_up Proxy-Authorization {http.request.header.Proxy-Authorization}\n"
        )
        challenge_lines = (
            "\t\t\t\tcopy_response_headers {\n"
            "\t\t\t\t\tinclude Proxy-Authenticate\n"
            "\t\t\t\t}\n"
        )
    # In origin mode the credential is Authorization: it stops here too, as the middleware
    # strips it.
    origin_strip = "\t\trequest_header -Authorization\n" if options.mode == "origin" else ""
    auth_dials = " ".join(_dial(url) for url in options.auth_urls)
    balance = ("\t\t\tlb_policy round_robin\n\t\t\tlb_retries 2\n"
               if options.extra_auth_urls else "")
    envelope_headers = (
        "\theader Content-Type application/json\n"
        "\theader Vary Accept\n"
        f"\theader X-Request-ID {_REQUEST_ID}\n"
    )

    def block(indent: int, *lines: str) -> str:
        return "".join("\t" * indent + line + "\n" for line in "".join(lines).splitlines())

    return f"""\
# Written by `proxygate gateway-config caddy`; docs/gateways.md explains every line.
# Start it with:
#   caddy run --config {directory}/Caddyfile --adapter caddyfile
{{
\tadmin off
\tpersist_config off
\tauto_https off
\tstorage file_system {directory}/data
\t# No certificates to tidy, and the tidying would write an instance id under $HOME.
\tstorage_clean_interval off
\tlog {{
\t\toutput stderr
\t\tlevel WARN
\t}}
}}

http://:{options.listen_port} {{
\tbind {listen_host}
\t# A 5xx status -> the message and details of proxygate's envelope.
\tmap {{vars.proxygate_status}} {{proxygate_message}} {{proxygate_details}} {{
{_status_map()}\t\tdefault "Server Error" "The server could not complete the request."
\t}}
\troute {{
\t\t# The user header is the service's alone: copy_headers below replaces the hyphen
\t\t# spelling; the underscore one (read as the same name by CGI/WSGI servers) goes here.
\t\trequest_header -{underscored}
\t\t# Every request has an id before the service is asked (the service keeps a safe one).
\t\t@without_id not header X-Request-ID *
\t\trequest_header @without_id X-Request-ID {{http.request.uuid}}
\t\tvars proxygate_phase auth
\t\tforward_auth {auth_dials} {{
\t\t\turi {auth.path}
{credential_lines}{balance}\t\t\tcopy_headers {user} X-Request-ID
\t\t\t# A denial goes back as the service wrote it (status, headers, envelope).
\t\t\thandle_response {{
{challenge_lines}\t\t\t\tcopy_response
\t\t\t}}
\t\t}}
\t\tvars proxygate_phase upstream
\t\t# The credential stops here, whatever its spelling.
\t\trequest_header -Proxy-Authorization
\t\trequest_header -Proxy_Authorization
{origin_strip}\t\treverse_proxy {_dial(upstream)} {{
\t\t\t# The upstream's own 5xx bodies never reach the client: the envelope instead.
\t\t\t@server_error status 5xx
\t\t\thandle_response @server_error {{
\t\t\t\tvars proxygate_status {{rp.status_code}}
{block(3, envelope_headers)}\t\t\t\t{_respond("{rp.status_code}")}
\t\t\t}}
\t\t}}
\t}}
\thandle_errors {{
\t\t# The service could not be asked: 503, never a 407 that would make clients prompt.
\t\t@auth_unreachable vars proxygate_phase auth
\t\thandle @auth_unreachable {{
{block(2, envelope_headers.replace(_REQUEST_ID, _OWN_ID))}\
\t\t\theader Retry-After {AUTH_UNAVAILABLE_RETRY_AFTER}
\t\t\t{_respond("503", AUTH_UNAVAILABLE_DETAILS, "Service Unavailable", request_id=_OWN_ID)}
\t\t}}
\t\t# The upstream could not be reached, or did not answer in time.
\t\thandle {{
\t\t\tvars proxygate_status {{err.status_code}}
{block(2, envelope_headers)}\t\t\t{_respond("{err.status_code}")}
\t\t}}
\t}}
}}
"""
