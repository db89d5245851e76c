"""Traefik: a static and a dynamic file whose ``ForwardAuth`` middleware asks the service.

Traefik's ForwardAuth passes ``Proxy-Authorization`` to the service (traefik#7433) and
any non-2xx answer to the client with its headers and body, so denials need no
translation (traefik dialect). Traefik cannot write a response body of its own, so an
upstream 5xx (or Traefik's own 502 when the upstream is down) is replaced by the envelope
the service renders at ``ERROR_PAGE`` under its path. docs/gateways.md explains every line.
"""

from __future__ import annotations

import json
import re

from proxygate.gateways import GatewayError, GatewayOptions, write_file

__all__ = ["ERROR_PAGE", "render", "render_dynamic", "render_static", "user_header_pattern"]

#: Where under the auth URL's path the service renders the envelope for a status (the
#: traefik dialect answers ``<path>/.proxygate-error/503`` with the 503 envelope).
ERROR_PAGE = ".proxygate-error"
#: The most a denial from the service may weigh (an envelope is a few hundred bytes).
MAX_AUTH_RESPONSE_BYTES = 1 << 20


def render(options: GatewayOptions) -> list[str]:
    """Write ``traefik.yml`` and ``dynamic.yml``; the argv that runs Traefik in the foreground."""
    if options.extra_auth_urls:
        raise GatewayError(
            "Traefik's ForwardAuth asks one address: put the service instances behind one "
            "load-balanced address (nginx, Envoy or a Traefik service) and give that"
        )
    directory = options.directory
    write_file(directory, "dynamic.yml", render_dynamic(options))
    static = write_file(directory, "traefik.yml", render_static(options))
    return ["traefik", f"--configFile={static}"]


def user_header_pattern(user_header: str) -> str:
    """A Go regexp matching the user header in either spelling, any case
    (``X-Authenticated-User``, ``x_authenticated_user``)."""
    return "(?i)^" + "[-_]".join(re.escape(part) for part in user_header.split("-")) + "$"


def render_static(options: GatewayOptions) -> str:
    """``traefik.yml``: the entry point and where the routing lives."""
    host = options.listen_host
    address = f"[{host}]:{options.listen_port}" if ":" in host else f"{host}:{options.listen_port}"
    return f"""\
# Written by `proxygate gateway-config traefik`; docs/gateways.md explains every line.
# Start it with:
#   traefik --configFile={options.directory}/traefik.yml
global:
  checkNewVersion: false
  sendAnonymousUsage: false
entryPoints:
  proxygate:
    address: {json.dumps(address)}
providers:
  file:
    filename: {json.dumps(str(options.directory / "dynamic.yml"))}
    watch: false
log:
  level: WARN
"""


def render_dynamic(options: GatewayOptions) -> str:
    """``dynamic.yml``: one router for every request, the ForwardAuth, the upstream."""
    upstream = options.upstream_url
    if upstream.path != "/":
        raise GatewayError(f"the upstream {options.upstream!r} has a path; give scheme://host:port")
    credential = options.credential_header
    auth = options.auth
    error_query = f"{auth.path.rstrip('/')}/{ERROR_PAGE}/{{status}}?url={{url}}"
    # In origin mode the credential is Authorization: it stops here too, as the
    # middleware strips it (unless keep_authorization, which a gateway cannot know).
    origin_strip = '          Authorization: ""\n' if options.mode == "origin" else ""
    return f"""\
# Written by `proxygate gateway-config traefik`; docs/gateways.md explains every line.
http:
  routers:
    proxygate:
      entryPoints: [proxygate]
      # Any Host, and absolute-form targets (curl -x): no Host rule.
      rule: "PathPrefix(`/`)"
      # In this order: ask the service, drop the credential, watch the upstream's answer.
      middlewares: [proxygate-auth, proxygate-strip-credentials, proxygate-upstream-errors]
      service: proxygate-upstream
  middlewares:
    proxygate-auth:
      forwardAuth:
        address: {json.dumps(options.auth_url)}
        # X-Forwarded-* are Traefik's own (a client's are dropped): the service believes them.
        trustForwardHeader: false
        # Only what the service needs; Traefik adds X-Forwarded-For, -Method, -Uri, -Host,
        # -Proto and -Port.
        authRequestHeaders: [{credential}, Accept, X-Request-ID]
        # On 200 the client's headers matching this are removed, the service's copied in:
        # the user header in either spelling, on every path (an exempt one sends none).
        authResponseHeadersRegex: {json.dumps(user_header_pattern(options.user_header))}
        authResponseHeaders: [X-Request-ID]
        maxResponseBodySize: {MAX_AUTH_RESPONSE_BYTES}
    proxygate-strip-credentials:
      headers:
        # An empty value removes the header: the credential stops here, in both spellings.
        customRequestHeaders:
          Proxy-Authorization: ""
          Proxy_Authorization: ""
{origin_strip}    proxygate-upstream-errors:
      errors:
        # The upstream's own 5xx (or Traefik's 502 when it is down) is replaced by the
        # envelope the service renders for that status; the client keeps the status.
        status: ["500-599"]
        service: proxygate-envelope
        query: {json.dumps(error_query)}
        errorRequestHeaders: [Accept, X-Request-ID]
  services:
    proxygate-envelope:
      loadBalancer:
        servers:
        - url: {json.dumps(auth.origin)}
    proxygate-upstream:
      loadBalancer:
        passHostHeader: true
        servers:
        - url: {json.dumps(upstream.origin)}
"""
