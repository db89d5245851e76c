"""Envoy: a bootstrap whose HTTP ``ext_authz`` filter asks the forward-auth service (envoy dialect).

Envoy's ext_authz allows only on 200 and passes any other answer (status, headers, body)
to the client, but it turns a 5xx from the service into its own ``status_on_error``
reply with no body; ``local_reply_config`` below makes that the 503 envelope. Client
headers reach the service only when listed in ``allowed_headers``. docs/gateways.md
explains every line.
"""

from __future__ import annotations

import ipaddress
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

#: Envoy's response flags for an upstream it could not use: connection failure, no healthy
#: host, retries exhausted, overflow, connection cut. Answered 502, as nginx and Caddy do.
_UPSTREAM_FAILED = ("UF", "UH", "URX", "UO", "UC", "UR")
#: The ``@type`` of each typed config below (Envoy's v3 API names, too long to inline).
_TYPE = "type.googleapis.com/envoy."
_HCM = _TYPE + "extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_STATUS_INPUT = _TYPE + "type.matcher.v3.HttpResponseStatusCodeMatchInput"
_STATUS_CLASS_INPUT = _TYPE + "type.matcher.v3.HttpResponseStatusCodeClassMatchInput"
_LOCAL_RESPONSE = (_TYPE + "extensions.http.custom_response.local_response_policy.v3."
                   "LocalResponsePolicy")
_SAFE_PATH = re.compile(r"[A-Za-z0-9/._~%!$&'()*+,;=:@-]*")


def render(options: GatewayOptions) -> list[str]:
    """Write ``envoy.yaml`` into the directory; the argv that runs Envoy in the foreground."""
    path = write_file(options.directory, "envoy.yaml", render_config(options))
    # No hot restart: it needs shared memory named by a base id, and two Envoys on one
    # host (two tests, two deployments) would collide on the default one.
    return ["envoy", "-c", str(path), "--disable-hot-restart", "--log-level", "warn"]


def _address(host: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        raise GatewayError(f"{what} {host!r} must be an IP address for Envoy") from None


def _cluster(name: str, urls: tuple[ServiceURL, ...]) -> str:
    for url in urls:
        if url.scheme != "http":
            raise GatewayError(
                f"{url.origin}: this Envoy configuration speaks plain http:// to its clusters; "
                "keep the service and upstream local, or add a transport_socket yourself"
            )
    numeric = all(_is_ip(url.host) for url in urls)
    endpoints = "".join(
        f"""\
        - endpoint:
            address:
              socket_address: {{address: {json.dumps(url.host)}, port_value: {url.port}}}
"""
        for url in urls
    )
    return f"""\
  - name: {name}
    type: {"STATIC" if numeric else "STRICT_DNS"}
    connect_timeout: 5s
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
{endpoints}"""


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _json_envelope(status: int | str, details: str | None = None) -> str:
    """The envelope as an Envoy ``json_format`` (which escapes the request id it inserts).

    ``status`` is a number, or ``%RESPONSE_CODE%`` for a 5xx without a name.
    """
    error = json.loads("".join(envelope(status if isinstance(status, int) else 599,
                                        details)))["error"]
    code = status if isinstance(status, int) else f'"{status}"'
    return (f"{{error: {{code: {code}, message: {json.dumps(error['message'])}, "
            f"details: {json.dumps(error['details'])}, "
            f"request_id: \"%REQ(X-REQUEST-ID)%\"}}}}")


def _upstream_error_matcher(name: str, input_name: str, input_type: str, value: str,
                            json_format: str) -> str:
    """One custom_response matcher: a response whose status matches gets the envelope."""
    return f"""\
                  - predicate:
                      single_predicate:
                        input:
                          name: {input_name}
                          typed_config:
                            "@type": {input_type}
                        value_match: {{exact: "{value}"}}
                    on_match:
                      action:
                        name: {name}
                        typed_config:
                          "@type": {_LOCAL_RESPONSE}
                          body_format:
                            json_format: {json_format}
                          response_headers_to_add:
                          - header: {{key: content-type, value: application/json}}
                            append_action: OVERWRITE_IF_EXISTS_OR_ADD
                          - header: {{key: vary, value: Accept}}
                            append_action: OVERWRITE_IF_EXISTS_OR_ADD
"""


def _upstream_error_matchers() -> str:
    """Each named 5xx the upstream sends becomes that status's envelope; any other 5xx the
    generic server-error one (first match wins)."""
    named = "".join(
        _upstream_error_matcher(f"envelope_{status}", "status_code", _STATUS_INPUT, str(status),
                                _json_envelope(status))
        for status in SERVER_ERRORS
    )
    return named + _upstream_error_matcher("envelope_other_5xx", "status_code_class",
                                           _STATUS_CLASS_INPUT, "5xx",
                                           _json_envelope("%RESPONSE_CODE%"))


def render_config(options: GatewayOptions) -> str:
    """The whole Envoy bootstrap (v3 API) for ``options``."""
    listen = _address(options.listen_host, "the listen host")
    auth = options.auth
    upstream = options.upstream_url
    if upstream.path != "/":
        raise GatewayError(f"the upstream {options.upstream!r} has a path; give scheme://host:port")
    if not _SAFE_PATH.fullmatch(auth.path):
        raise GatewayError(f"the auth URL's path {auth.path!r} has characters Envoy would misread")
    prefix = auth.path.rstrip("/")
    credential = options.credential_header.lower()
    removed = "proxy-authorization" if options.mode == "proxy" \
        else "proxy-authorization, authorization"
    user = options.user_header.lower()
    return f"""\
# Written by `proxygate gateway-config envoy`; docs/gateways.md explains every line.
# Start it with:
#   envoy -c {options.directory}/envoy.yaml --disable-hot-restart --log-level warn
static_resources:
  listeners:
  - name: proxygate
    address:
      socket_address: {{address: {json.dumps(listen)}, port_value: {options.listen_port}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {_HCM}
          stat_prefix: proxygate
          # Envoy is the edge: the peer is the client, and x-envoy-* headers from it are dropped.
          use_remote_address: true
          # ...but for a loopback peer Envoy would append its own address, not the peer's;
          # the header_mutation filter below writes X-Forwarded-For itself.
          skip_xff_append: true
          # A client's X-Request-ID reaches the service, which keeps it only if it is safe.
          preserve_external_request_id: true
          # The service judges the path the upstream will get: /a/../b is /b for both.
          normalize_path: true
          merge_slashes: true
          common_http_protocol_options:
            # X_Authenticated_User, Proxy_Authorization: some servers read '_' as '-'.
            headers_with_underscores_action: DROP_HEADER
          local_reply_config:
            mappers:
            # ext_authz could not ask the service (status_on_error below): the 503 envelope.
            - filter:
                and_filter:
                  filters:
                  - status_code_filter:
                      comparison: {{op: EQ, value: {{default_value: 503, runtime_key: proxygate.unused}}}}
                  - response_flag_filter: {{flags: [UAEX]}}
              headers_to_add:
              - header: {{key: retry-after, value: "{AUTH_UNAVAILABLE_RETRY_AFTER}"}}
                append_action: OVERWRITE_IF_EXISTS_OR_ADD
              - header: {{key: vary, value: Accept}}
                append_action: OVERWRITE_IF_EXISTS_OR_ADD
              body_format_override:
                json_format: {_json_envelope(503, AUTH_UNAVAILABLE_DETAILS)}
            # The upstream could not be reached: 502, as nginx and Caddy answer.
            - filter:
                response_flag_filter: {{flags: [{", ".join(_UPSTREAM_FAILED)}]}}
              status_code: 502
              headers_to_add:
              - header: {{key: vary, value: Accept}}
                append_action: OVERWRITE_IF_EXISTS_OR_ADD
              body_format_override:
                json_format: {_json_envelope(502)}
            # The upstream did not answer in time.
            - filter:
                response_flag_filter: {{flags: [UT]}}
              status_code: 504
              headers_to_add:
              - header: {{key: vary, value: Accept}}
                append_action: OVERWRITE_IF_EXISTS_OR_ADD
              body_format_override:
                json_format: {_json_envelope(504)}
          route_config:
            name: proxygate
            virtual_hosts:
            - name: any_host
              # Any Host, and absolute-form targets (curl -x): one virtual host for all.
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                # No route timeout: long uploads and downloads are the upstream's business.
                route: {{cluster: proxygate_upstream, timeout: 0s}}
              # The credential stops here (the service has seen it by now).
              request_headers_to_remove: [{removed}]
          http_filters:
          - name: envoy.filters.http.header_mutation
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation
              mutations:
                request_mutations:
                # The user header is the service's alone: the client's copy goes before
                # anything else runs, so an exempt path (no user) cannot keep it either.
                - remove: {user}
                # What the service needs to know about the client's request, written by
                # Envoy over anything the client sent under these names.
                - append:
                    header: {{key: x-forwarded-for, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"}}
                    append_action: OVERWRITE_IF_EXISTS_OR_ADD
                - append:
                    header: {{key: x-forwarded-method, value: "%REQ(:METHOD)%"}}
                    append_action: OVERWRITE_IF_EXISTS_OR_ADD
                - append:
                    header: {{key: x-forwarded-uri, value: "%REQ(:PATH)%"}}
                    append_action: OVERWRITE_IF_EXISTS_OR_ADD
          - name: envoy.filters.http.custom_response
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.custom_response.v3.CustomResponse
              # The upstream's own 5xx bodies never reach the client: the envelope instead.
              custom_response_matcher:
                matcher_list:
                  matchers:
{_upstream_error_matchers()}\
          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              transport_api_version: V3
              # The service unreachable, or answering 5xx: 503 (the envelope above), not 403.
              status_on_error: {{code: ServiceUnavailable}}
              # The client headers the service sees (Host, method, path and Authorization
              # always go too).
              allowed_headers:
                patterns:
                - exact: {credential}
                - exact: accept
                - exact: x-request-id
                - exact: x-forwarded-for
                - exact: x-forwarded-proto
                - exact: x-forwarded-method
                - exact: x-forwarded-uri
              http_service:
                server_uri:
                  uri: {json.dumps(auth.origin + auth.path)}
                  cluster: proxygate_auth
                  timeout: 10s
                # Envoy asks PREFIX + the client's path, with the client's method.
                path_prefix: {json.dumps(prefix)}
                authorization_response:
                  # On 200 these replace the client's request headers of the same name.
                  allowed_upstream_headers:
                    patterns:
                    - exact: {user}
                    - exact: x-request-id
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
{_cluster("proxygate_upstream", (upstream,))}\
{_cluster("proxygate_auth", options.auth_urls)}"""
