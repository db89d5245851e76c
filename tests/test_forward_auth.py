"""The forward-auth service in-process: each dialect's question and answer, no server at all."""

from __future__ import annotations

import asyncio
import base64
import threading

import bcrypt
import pytest

from proxygate.config import ConfigError
from proxygate.forward_auth import (
    DIALECTS,
    ENVOY_REMOVE,
    ForwardAuthApp,
    decode_user,
    encode_user,
)
from support.asgi_driver import acall_asgi, call_asgi

HASH = bcrypt.hashpw(b"s3cret:x", bcrypt.gensalt(4)).decode()
USERS = {"alice": HASH, "zoë": HASH}


def creds(user: str = "alice", password: str = "s3cret:x") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def app(gateway: str = "generic", **options: object) -> ForwardAuthApp:
    options.setdefault("users", USERS)
    return ForwardAuthApp(gateway=gateway, **options)  # type: ignore[arg-type]


# -- construction ------------------------------------------------------------------------


def test_an_unknown_gateway_is_refused_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match="nginx, traefik, envoy, caddy, generic"):
        app("haproxy")


def test_a_bad_user_header_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="user_header"):
        app(user_header="X User")


def test_config_options_are_validated_as_for_the_middleware() -> None:
    with pytest.raises(ConfigError, match="did you mean 'realm'"):
        app(relm="x")
    with pytest.raises(ConfigError, match="users is required"):
        ForwardAuthApp(gateway="nginx")


def test_repr_shows_no_hash() -> None:
    assert "$2b$" not in repr(app())


# -- allowed -------------------------------------------------------------------------------


@pytest.mark.parametrize("gateway", DIALECTS)
def test_good_credentials_get_200_empty_with_the_user_and_request_id(gateway: str) -> None:
    result = call_asgi(app(gateway), "GET", "/auth", {"proxy-authorization": creds(),
                                                      "x-request-id": "req-1"})
    assert result.status == 200
    assert result.body == b""
    assert result.header("x-authenticated-user") == "alice"
    assert result.header("x-request-id") == "req-1"


def test_user_header_name_is_configurable() -> None:
    result = call_asgi(app(user_header="Remote-User"), "GET", "/",
                       {"proxy-authorization": creds()})
    assert result.header("remote-user") == "alice"
    assert result.header("x-authenticated-user") is None


@pytest.mark.parametrize("name", ["zoë", "a%b", "日本", "plain.name-1"])
def test_user_names_round_trip_through_the_header_encoding(name: str) -> None:
    encoded = encode_user(name)
    encoded.decode("ascii")  # always a plain ASCII header value
    assert decode_user(encoded) == name


def test_a_non_ascii_user_name_is_percent_encoded() -> None:
    result = call_asgi(app(), "GET", "/", {"proxy-authorization": creds("zoë")})
    assert result.header("x-authenticated-user") == "zo%C3%AB"


def test_origin_mode_reads_authorization() -> None:
    result = call_asgi(app(mode="origin"), "GET", "/", {"authorization": creds()})
    assert result.status == 200
    assert result.header("x-authenticated-user") == "alice"


# -- the original request, per dialect -----------------------------------------------------


@pytest.mark.parametrize(("gateway", "headers", "path"), [
    ("nginx", {"x-original-method": "GET", "x-original-uri": "/healthz?probe=1"}, "/auth"),
    ("traefik", {"x-forwarded-method": "GET", "x-forwarded-uri": "/healthz?probe=1"}, "/"),
    ("caddy", {"x-forwarded-method": "GET", "x-forwarded-uri": "/healthz"}, "/check"),
    ("envoy", {}, "/healthz?probe=1"),
    ("generic", {"x-forwarded-uri": "/healthz?x"}, "/auth"),
    ("generic", {"x-original-uri": "/healthz"}, "/auth"),
    ("nginx", {"x-original-uri": "http://host.example/healthz?probe=1"}, "/auth"),
])
def test_exempt_paths_are_judged_on_the_original_request(
        gateway: str, headers: dict[str, str], path: str) -> None:
    result = call_asgi(app(gateway, exempt_paths=["/healthz"]), "GET", path,
                       {**headers, "x-authenticated-user": "mallory"})
    assert result.status == 200
    assert result.header("x-authenticated-user") is None


@pytest.mark.parametrize("uri", ["/healthz/../admin", "/static/../admin", "/static/%2e%2e/admin",
                                 "/admin?/healthz", "/healthzz"])
def test_dot_segments_and_queries_do_not_make_a_path_exempt(uri: str) -> None:
    result = call_asgi(app("nginx", exempt_paths=["/healthz", "/static/*"]), "GET", "/auth",
                       {"x-original-uri": uri})
    assert result.status == 401  # nginx's shape of a denial
    assert result.header("x-proxygate-status") == "407"


def test_the_check_request_s_own_path_does_not_count_when_the_gateway_names_one() -> None:
    result = call_asgi(app("traefik", exempt_paths=["/auth"]), "GET", "/auth",
                       {"x-forwarded-uri": "/private"})
    assert result.status == 407


def test_envoy_on_an_exempt_path_asks_envoy_to_remove_the_client_s_user_header() -> None:
    result = call_asgi(app("envoy", exempt_paths=["/open"]), "GET", "/open")
    assert result.status == 200
    assert result.header(ENVOY_REMOVE.decode()) == "x-authenticated-user"
    allowed = call_asgi(app("envoy"), "GET", "/x", {"proxy-authorization": creds()})
    assert allowed.header(ENVOY_REMOVE.decode()) is None


# -- denied, per dialect -------------------------------------------------------------------


@pytest.mark.parametrize("gateway", ["traefik", "envoy", "generic"])
def test_denial_is_the_middleware_s_response(gateway: str) -> None:
    result = call_asgi(app(gateway), "GET", "/", {"x-request-id": "abc"})
    assert result.status == 407
    assert result.header("proxy-authenticate") == 'Basic realm="proxygate", charset="UTF-8"'
    assert result.header("content-type") == "application/json"
    assert result.header("cache-control") == "no-store"
    assert result.json()["error"] == {
        "code": 407, "message": "Proxy Authentication Required",
        "details": "Send valid credentials in the Proxy-Authorization header.",
        "request_id": "abc",
    }


def test_origin_mode_denial_is_401_with_www_authenticate() -> None:
    result = call_asgi(app(mode="origin"), "GET", "/")
    assert result.status == 401
    assert result.header("www-authenticate", ).startswith("Basic realm=")  # type: ignore[union-attr]


def test_nginx_denial_is_a_bare_401_carrying_the_real_response_in_headers() -> None:
    result = call_asgi(app("nginx"), "GET", "/auth", {"x-request-id": "abc",
                                                      "x-original-uri": "/x"})
    assert result.status == 401  # nginx passes 401; a 407 would become its own 500
    assert result.body == b""
    assert result.header("www-authenticate") is None  # nginx would copy it to the client
    assert result.header("proxy-authenticate") is None
    assert result.header("x-proxygate-status") == "407"
    assert result.header("x-proxygate-proxy-authenticate") == \
        'Basic realm="proxygate", charset="UTF-8"'
    assert result.header("x-proxygate-content-type") == "application/json"
    assert result.header("x-proxygate-cache-control") == "no-store"
    assert result.header("x-proxygate-x-request-id") == "abc"
    assert '"request_id": "abc"' in (result.header("x-proxygate-body") or "")


def test_nginx_throttled_denial_carries_429_and_retry_after() -> None:
    service = app("nginx", max_failures=1)
    headers = {"proxy-authorization": creds(password="wrong"), "x-original-uri": "/x"}
    assert call_asgi(service, "GET", "/auth", headers).header("x-proxygate-status") == "407"
    throttled = call_asgi(service, "GET", "/auth", headers)
    assert throttled.status == 401
    assert throttled.header("x-proxygate-status") == "429"
    assert int(throttled.header("x-proxygate-retry-after") or "0") >= 1


def test_caddy_denial_is_the_real_response_unchanged() -> None:
    # The shipped Caddyfile carries Proxy-Authenticate past reverse_proxy itself.
    caddy = call_asgi(app("caddy"), "GET", "/auth", {"x-forwarded-uri": "/x"})
    generic = call_asgi(app("generic"), "GET", "/auth", {"x-forwarded-uri": "/x"})
    assert caddy.status == generic.status == 407
    assert sorted(name for name, _ in caddy.headers) == sorted(name for name, _ in generic.headers)


def test_caddy_s_empty_credential_is_no_credential_and_counts_no_failure() -> None:
    # Caddy's header_up sends "Proxy-Authorization: " when the client sent none.
    service = app("caddy", max_failures=1, trusted_proxies=["127.0.0.1/32"])
    headers = {"proxy-authorization": "", "x-forwarded-uri": "/x",
               "x-forwarded-for": "203.0.113.9"}
    for _ in range(3):
        denied = call_asgi(service, "GET", "/auth", headers, client=("127.0.0.1", 1))
        assert denied.status == 407
    allowed = call_asgi(service, "GET", "/auth",
                        {**headers, "proxy-authorization": creds()}, client=("127.0.0.1", 1))
    assert allowed.status == 200


def test_another_dialect_counts_an_empty_credential_as_malformed() -> None:
    service = app("traefik", max_failures=1, trusted_proxies=["127.0.0.1/32"])
    headers = {"proxy-authorization": "", "x-forwarded-uri": "/x",
               "x-forwarded-for": "203.0.113.10"}
    call_asgi(service, "GET", "/auth", headers, client=("127.0.0.1", 1))
    throttled = call_asgi(service, "GET", "/auth", {**headers, "proxy-authorization": creds()},
                          client=("127.0.0.1", 1))
    assert throttled.status == 429


def test_an_x_proxygate_credentials_header_is_not_a_credential() -> None:
    result = call_asgi(app("caddy"), "GET", "/", {"x-proxygate-credentials": creds()})
    assert result.status == 407


@pytest.mark.parametrize(("method", "uri", "status"), [
    ("DELETE", "/healthz?probe=1", 200), ("DELETE", "/private", 407),
])
def test_envoy_judges_the_request_its_configuration_describes_in_x_forwarded(
        method: str, uri: str, status: int) -> None:
    # Envoy asks PREFIX + path: the check request's own path is /auth/<path>.
    result = call_asgi(app("envoy", exempt_paths=["/healthz"]), "GET", "/auth" + uri,
                       {"x-forwarded-method": method, "x-forwarded-uri": uri})
    assert result.status == status


# -- Traefik's error pages ----------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599])
def test_traefik_error_page_is_the_envelope_for_the_status(status: int) -> None:
    result = call_asgi(app("traefik"), "GET", f"/auth/.proxygate-error/{status}",
                       {"x-request-id": "trace-9", "accept": "application/json"})
    assert result.status == status
    assert result.header("content-type") == "application/json"
    error = result.json()["error"]
    assert (error["code"], error["request_id"]) == (status, "trace-9")


@pytest.mark.parametrize("path", ["/auth/.proxygate-error/200", "/auth/.proxygate-error/407",
                                  "/auth/.proxygate-error/503/x", "/auth/.proxygate-error/5031"])
def test_only_a_5xx_error_page_is_served_and_nothing_else_passes(path: str) -> None:
    result = call_asgi(app("traefik"), "GET", path, {})
    assert result.status == 407  # asked like a check: no credential, the challenge


def test_traefik_error_page_names_the_client_s_path_as_the_problem_instance() -> None:
    result = call_asgi(app("traefik"), "GET",
                       "/auth/.proxygate-error/502?url=http%3A%2F%2Fapp.internal%2Forders%2F7%3Fx%3D1",
                       {"accept": "application/problem+json"})
    assert result.status == 502
    assert result.header("content-type") == "application/problem+json"
    assert result.json()["instance"] == "/orders/7"


def test_a_check_request_is_never_taken_for_an_error_page() -> None:
    result = call_asgi(app("traefik"), "GET", "/auth/.proxygate-error/503",
                       {"x-forwarded-uri": "/x", "proxy-authorization": creds()})
    assert result.status == 200
    assert call_asgi(app("caddy"), "GET", "/auth/.proxygate-error/503", {}).status == 407


def test_two_credentials_are_refused() -> None:
    result = call_asgi(app(), "GET", "/", [("proxy-authorization", creds()),
                                           ("proxy-authorization", creds("zoë"))])
    assert result.status == 407


def test_underscore_credential_spelling_is_never_believed() -> None:
    result = call_asgi(app(), "GET", "/", {"proxy_authorization": creds()})
    assert result.status == 407


# -- the client address --------------------------------------------------------------------


def _attempt(service: ForwardAuthApp, peer: str, **headers: str) -> int:
    result = call_asgi(service, "GET", "/", {"proxy-authorization": creds(password="bad"),
                                             **headers}, client=(peer, 1234))
    return result.status


def test_a_trusted_gateway_s_x_forwarded_for_names_the_client() -> None:
    service = app("traefik", max_failures=1, trusted_proxies=["127.0.0.1/32"])
    assert _attempt(service, "127.0.0.1", **{"x-forwarded-for": "10.0.0.1"}) == 407
    assert _attempt(service, "127.0.0.1", **{"x-forwarded-for": "10.0.0.1"}) == 429
    assert _attempt(service, "127.0.0.1", **{"x-forwarded-for": "10.0.0.2"}) == 407


def test_x_real_ip_from_a_trusted_gateway_names_the_client() -> None:
    service = app("nginx", max_failures=1, trusted_proxies=["127.0.0.1/32"],
                  forwarded_header="X-Real-IP")
    first = call_asgi(service, "GET", "/", {"proxy-authorization": creds(password="bad"),
                                            "x-real-ip": "10.0.0.7"})
    second = call_asgi(service, "GET", "/", {"proxy-authorization": creds(password="bad"),
                                             "x-real-ip": "10.0.0.7"})
    other = call_asgi(service, "GET", "/", {"proxy-authorization": creds(password="bad"),
                                            "x-real-ip": "10.0.0.8"})
    assert first.header("x-proxygate-status") == "407"
    assert second.header("x-proxygate-status") == "429"
    assert other.header("x-proxygate-status") == "407"


def test_an_untrusted_peer_s_forwarding_headers_are_ignored() -> None:
    service = app("generic", max_failures=1, trusted_proxies=["127.0.0.1/32"])
    assert _attempt(service, "192.0.2.9", **{"x-forwarded-for": "10.0.0.1"}) == 407
    # Another claimed address from the same untrusted peer is the same client.
    assert _attempt(service, "192.0.2.9", **{"x-forwarded-for": "10.0.0.2",
                                             "x-real-ip": "10.0.0.3"}) == 429


def test_a_forwarded_header_never_moves_the_throttle_key() -> None:
    service = app("traefik", max_failures=1, trusted_proxies=["127.0.0.1/32"])
    assert _attempt(service, "127.0.0.1", **{"x-forwarded-for": "10.0.0.1",
                                             "forwarded": "for=10.9.9.1"}) == 407
    assert _attempt(service, "127.0.0.1", **{"x-forwarded-for": "10.0.0.1",
                                             "forwarded": "for=10.9.9.2"}) == 429


# -- the event loop ------------------------------------------------------------------------


def test_a_hash_never_runs_on_the_event_loop() -> None:
    loop_threads: set[int] = set()
    hash_threads: set[int] = set()

    def check(username: str, password: str) -> bool:
        hash_threads.add(threading.get_ident())
        return password == "s3cret:x"

    service = ForwardAuthApp(users=check)

    async def run() -> int:
        loop_threads.add(threading.get_ident())
        result = await acall_asgi(service, "GET", "/", {"proxy-authorization": creds()})
        return result.status

    assert asyncio.run(run()) == 200
    assert hash_threads and not hash_threads & loop_threads


def test_lifespan_is_answered() -> None:
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, str]:
        return messages.pop(0)

    async def send(message: dict[str, str]) -> None:
        sent.append(message["type"])

    asyncio.run(app()({"type": "lifespan"}, receive, send))  # type: ignore[arg-type]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
