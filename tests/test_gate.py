"""The gate's decisions, through the core and the in-process ASGI and WSGI shells."""

from __future__ import annotations

import base64
import json
import logging
import threading
from typing import Any

import pytest

from proxygate.asgi import ProxyGateMiddleware as AsgiGate
from proxygate.auth.hashing import hash_password
from proxygate.auth.schemes.basic import BasicCredentials
from proxygate.auth.throttle import MemoryThrottleStore
from proxygate.config import Config
from proxygate.gate import Check, Deny, Forward, Gate, HeadFromPairs
from proxygate.wsgi import ProxyGateMiddleware as WsgiGate
from support.asgi_driver import RecordingApp, Result, call_asgi, call_websocket
from support.wsgi_driver import RecordingWSGIApp, call_wsgi

ALICE = hash_password("wonder:land", "bcrypt", rounds=4)
JURGEN = hash_password("pässwörd✓", "bcrypt", rounds=4)
USERS = {"alice": ALICE, "jürgen": JURGEN}
CHALLENGE = 'Basic realm="internal", charset="UTF-8"'


def credential(user: str = "alice", password: str = "wonder:land") -> bytes:
    return BasicCredentials(user, password).to_header()


def gate_for(**options: Any) -> Gate:
    options.setdefault("users", USERS)
    options.setdefault("realm", "internal")
    return Gate(Config.from_options(**options))


def head(*headers: tuple[bytes, bytes], path: str = "/", client: str | None = "10.0.0.1",
         method: str = "GET") -> HeadFromPairs:
    return HeadFromPairs(method, path, list(headers), client)


def decide(gate: Gate, *headers: tuple[bytes, bytes], **options: Any) -> Forward | Deny:
    decision = gate.decide(head(*headers, **options))
    return decision.run() if isinstance(decision, Check) else decision


def auth(value: bytes, name: bytes = b"proxy-authorization") -> tuple[bytes, bytes]:
    return (name, value)


def denied(result: Forward | Deny) -> Deny:
    assert isinstance(result, Deny), f"expected Deny, got {result!r}"
    return result


def header(response: Deny, name: bytes) -> bytes | None:
    values = [value for key, value in response.response.headers if key == name]
    assert len(values) <= 1
    return values[0] if values else None


def asgi_gate(app: RecordingApp | None = None, **options: Any) -> AsgiGate:
    options.setdefault("users", USERS)
    options.setdefault("realm", "internal")
    return AsgiGate(app or RecordingApp(), **options)


def wsgi_gate(app: RecordingWSGIApp | None = None, **options: Any) -> WsgiGate:
    options.setdefault("users", USERS)
    options.setdefault("realm", "internal")
    return WsgiGate(app or RecordingWSGIApp(), **options)


# -- the 407 --------------------------------------------------------------------------------------


def test_missing_credentials_get_407_with_a_basic_challenge_advertising_utf8() -> None:
    response = denied(decide(gate_for()))
    assert response.response.status == 407
    assert header(response, b"proxy-authenticate") == CHALLENGE.encode()


def test_a_407_is_not_cached() -> None:
    assert header(denied(decide(gate_for())), b"cache-control") == b"no-store"


def test_a_407_carries_the_json_envelope() -> None:
    response = denied(decide(gate_for(), (b"x-request-id", b"req-1")))
    assert header(response, b"content-type") == b"application/json"
    assert json.loads(response.response.body) == {"error": {
        "code": 407, "message": "Proxy Authentication Required",
        "details": "Send valid credentials in the Proxy-Authorization header.",
        "request_id": "req-1"}}


def test_a_407_has_the_right_content_length() -> None:
    response = denied(decide(gate_for()))
    assert header(response, b"content-length") == str(len(response.response.body)).encode()


def test_a_407_has_no_www_authenticate() -> None:
    assert header(denied(decide(gate_for())), b"www-authenticate") is None


def test_a_407_body_and_header_carry_the_same_request_id() -> None:
    response = denied(decide(gate_for()))
    request_id = header(response, b"x-request-id")
    assert request_id
    assert json.loads(response.response.body)["error"]["request_id"] == request_id.decode()


def test_a_head_request_gets_the_407_without_a_body() -> None:
    response = denied(decide(gate_for(), method="HEAD"))
    assert response.response.status == 407
    assert response.response.body == b""
    assert header(response, b"proxy-authenticate") == CHALLENGE.encode()


FAILURES: dict[str, list[tuple[bytes, bytes]]] = {
    "missing": [],
    "malformed": [auth(b"Basic !!!")],
    "unknown user": [auth(credential("mallory", "wonder:land"))],
    "wrong password": [auth(credential("alice", "wonderland"))],
    "two headers": [auth(credential()), auth(credential())],
    "other scheme": [auth(b"Bearer abc.def")],
}


def test_every_kind_of_failure_gets_a_byte_identical_response() -> None:
    gate = gate_for()
    responses = {
        name: denied(decide(gate, *headers, (b"x-request-id", b"same-id"))).response
        for name, headers in FAILURES.items()
    }
    first = responses["missing"]
    for name, response in responses.items():
        assert (response.status, response.headers, response.body) == (
            first.status, first.headers, first.body), name


def test_failures_differ_only_in_a_generated_request_id() -> None:
    gate = gate_for()
    seen = set()
    for headers in FAILURES.values():
        response = denied(decide(gate, *headers)).response
        request_id = header(Deny(response), b"x-request-id")
        assert request_id is not None
        seen.add((response.status, response.body.replace(request_id, b"ID"),
                  tuple(h for h in response.headers if h[0] != b"x-request-id")))
    assert len(seen) == 1


# -- valid credentials ----------------------------------------------------------------------------


def test_valid_credentials_are_forwarded_with_the_identity() -> None:
    result = decide(gate_for(), auth(credential()))
    assert isinstance(result, Forward)
    assert result.identity is not None and result.identity.username == "alice"


def test_a_password_with_colons_logs_in() -> None:
    assert isinstance(decide(gate_for(), auth(credential("alice", "wonder:land"))), Forward)


def test_utf8_user_name_and_password_log_in() -> None:
    assert isinstance(decide(gate_for(), auth(credential("jürgen", "pässwörd✓"))), Forward)


def test_a_lower_case_scheme_logs_in() -> None:
    token = base64.b64encode(b"alice:wonder:land")
    assert isinstance(decide(gate_for(), auth(b"basic " + token)), Forward)


def test_two_valid_headers_are_ambiguous_and_denied() -> None:
    response = denied(decide(gate_for(), auth(credential()), auth(credential())))
    assert response.response.status == 407


def test_another_scheme_is_treated_as_missing_without_a_check_step() -> None:
    decision = gate_for().decide(head(auth(b"Bearer abc.def")))
    assert isinstance(decision, Deny)
    assert decision.response.status == 407


def test_the_underscore_spelling_is_never_believed() -> None:
    response = denied(decide(gate_for(), auth(credential(), b"proxy_authorization")))
    assert response.response.status == 407


def test_authorization_is_not_read_in_proxy_mode() -> None:
    denied(decide(gate_for(), auth(credential(), b"authorization")))


# -- malformed input is never a 500 ----------------------------------------------------------------

MALFORMED: dict[str, list[tuple[bytes, bytes]]] = {
    "bad base64": [auth(b"Basic ***")],
    "trailing garbage after valid base64": [auth(credential() + b"garbage")],
    "trailing padding": [auth(credential() + b"=")],
    "no colon": [auth(b"Basic " + base64.b64encode(b"alicewonderland"))],
    "empty value": [auth(b"")],
    "bare scheme": [auth(b"Basic")],
    "comma-joined": [auth(credential() + b", " + credential())],
    "two headers": [auth(credential()), auth(b"Basic YTpi")],
    "non-UTF-8 header bytes": [auth(b"Basic \xff\xfe\xfd")],
    "non-UTF-8 credentials": [auth(b"Basic " + base64.b64encode(b"\xffalice:\xfe"))],
    "64 KiB header": [auth(b"Basic " + b"QUFB" * 16384)],
    "64 KiB of decodable base64": [auth(b"Basic " + base64.b64encode(b"a:" + b"x" * 49152))],
    "NUL in header": [auth(b"Basic\x00YTpi")],
    "NUL in credentials": [auth(b"Basic " + base64.b64encode(b"alice:wonder\x00land"))],
    "CR LF in credentials": [auth(b"Basic " + base64.b64encode(b"alice\r\n:x"))],
    "control char in header": [auth(b"Basic \x07YTpi")],
    "only spaces": [auth(b"   ")],
}


@pytest.mark.parametrize("headers", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_credentials_get_the_407_from_the_core(
        headers: list[tuple[bytes, bytes]]) -> None:
    assert denied(decide(gate_for(), *headers)).response.status == 407


@pytest.mark.parametrize("headers", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_credentials_get_the_407_through_asgi(
        headers: list[tuple[bytes, bytes]]) -> None:
    app = RecordingApp()
    result = call_asgi(asgi_gate(app), "GET", "/", headers)
    assert result.status == 407
    assert result.json()["error"]["code"] == 407
    assert not app.scopes


@pytest.mark.parametrize("headers", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_credentials_get_the_407_through_wsgi(
        headers: list[tuple[bytes, bytes]]) -> None:
    app = RecordingWSGIApp()
    result = call_wsgi(wsgi_gate(app), "GET", "/", headers)
    assert result.status == 407
    assert result.json()["error"]["code"] == 407
    assert not app.environs


# -- what the app sees (ASGI) ----------------------------------------------------------------------


def asgi_ok(app: RecordingApp, *headers: tuple[str | bytes, str | bytes], path: str = "/",
            **options: Any) -> Result:
    result = call_asgi(asgi_gate(app, **options), "GET", path,
                       [("proxy-authorization", credential()), *headers])
    assert result.status == 200, result.body
    return result


def test_asgi_identity_is_in_scope_user() -> None:
    app = RecordingApp()
    asgi_ok(app)
    user = app.scope["user"]
    assert (user.username, user.is_authenticated, user.display_name) == ("alice", True, "alice")


def test_asgi_auth_scopes_contain_authenticated() -> None:
    app = RecordingApp()
    asgi_ok(app)
    assert "authenticated" in app.scope["auth"].scopes


def test_asgi_strips_proxy_authorization() -> None:
    app = RecordingApp()
    asgi_ok(app)
    assert app.header_values("proxy-authorization") == []


def test_asgi_strips_the_underscore_spelling() -> None:
    app = RecordingApp()
    asgi_ok(app, ("proxy_authorization", credential("mallory", "x")))
    assert app.header_values("proxy_authorization") == []


def test_asgi_strips_proxy_connection() -> None:
    app = RecordingApp()
    asgi_ok(app, ("proxy-connection", "keep-alive"))
    assert app.header_values("proxy-connection") == []


def test_asgi_leaves_authorization_untouched_in_proxy_mode() -> None:
    app = RecordingApp()
    asgi_ok(app, ("authorization", "Bearer app-token"))
    assert app.header_values("authorization") == [b"Bearer app-token"]


def test_asgi_keeps_unrelated_headers_in_order() -> None:
    app = RecordingApp()
    asgi_ok(app, ("x-one", "1"), ("x-two", "2"))
    assert [k for k, _ in app.scope["headers"]] == [b"x-one", b"x-two"]


def test_asgi_a_client_cannot_spoof_the_user_with_a_header() -> None:
    app = RecordingApp()
    asgi_ok(app, ("remote-user", "admin"), ("x-remote-user", "admin"), ("user", "admin"))
    assert app.scope["user"].username == "alice"


def test_starlette_request_user_and_requires_work() -> None:
    from starlette.applications import Starlette
    from starlette.authentication import requires
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    @requires("authenticated")
    async def whoami(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.user.display_name)

    app = AsgiGate(Starlette(routes=[Route("/", whoami)]), users=USERS)
    result = call_asgi(app, "GET", "/", [("proxy-authorization", credential())])
    assert (result.status, result.body) == (200, b"alice")


# -- what the app sees (WSGI) ----------------------------------------------------------------------


def wsgi_ok(app: RecordingWSGIApp, *headers: tuple[str | bytes, str | bytes], path: str = "/",
            **options: Any) -> Result:
    result = call_wsgi(wsgi_gate(app, **options), "GET", path,
                       [("proxy-authorization", credential()), *headers])
    assert result.status == 200, result.body
    return result


def test_wsgi_identity_is_remote_user() -> None:
    app = RecordingWSGIApp()
    wsgi_ok(app)
    assert app.environ["REMOTE_USER"] == "alice"


def test_wsgi_a_client_cannot_spoof_remote_user() -> None:
    app = RecordingWSGIApp()
    wsgi_ok(app, ("remote-user", "admin"), ("remote_user", "admin"))
    assert app.environ["REMOTE_USER"] == "alice"


def test_wsgi_an_exempt_path_sets_no_remote_user_whatever_the_client_sends() -> None:
    app = RecordingWSGIApp()
    call_wsgi(wsgi_gate(app, exempt_paths=["/healthz"]), "GET", "/healthz",
              [("remote-user", "admin")])
    assert "REMOTE_USER" not in app.environ


def test_wsgi_strips_proxy_authorization_and_proxy_connection() -> None:
    app = RecordingWSGIApp()
    wsgi_ok(app, ("proxy-connection", "keep-alive"))
    assert "HTTP_PROXY_AUTHORIZATION" not in app.environ
    assert "HTTP_PROXY_CONNECTION" not in app.environ


def test_wsgi_leaves_authorization_untouched_in_proxy_mode() -> None:
    app = RecordingWSGIApp()
    wsgi_ok(app, ("authorization", "Bearer app-token"))
    assert app.environ["HTTP_AUTHORIZATION"] == "Bearer app-token"


def test_wsgi_407_carries_the_challenge() -> None:
    result = call_wsgi(wsgi_gate(), "GET", "/")
    assert (result.status, result.header("proxy-authenticate")) == (407, CHALLENGE)


def test_wsgi_under_wsgiref_the_407_arrives_without_the_hop_by_hop_challenge() -> None:
    result = call_wsgi(wsgi_gate(), "GET", "/", server_software="WSGIServer/0.2")
    assert result.status == 407
    assert result.header("proxy-authenticate") is None
    assert result.json()["error"]["code"] == 407


def test_wsgi_two_headers_joined_by_the_server_are_denied() -> None:
    result = call_wsgi(wsgi_gate(), "GET", "/", [("proxy-authorization", credential()),
                                                  ("proxy-authorization", credential())])
    assert result.status == 407


# -- origin mode ------------------------------------------------------------------------------------


def test_origin_mode_answers_401_with_www_authenticate() -> None:
    response = denied(decide(gate_for(mode="origin")))
    assert response.response.status == 401
    assert header(response, b"www-authenticate") == CHALLENGE.encode()
    assert header(response, b"proxy-authenticate") is None
    assert json.loads(response.response.body)["error"]["message"] == "Unauthorized"


def test_origin_mode_401_is_not_cached() -> None:
    assert header(denied(decide(gate_for(mode="origin"))), b"cache-control") == b"no-store"


def test_origin_mode_reads_authorization() -> None:
    assert isinstance(decide(gate_for(mode="origin"), auth(credential(), b"authorization")),
                      Forward)


def test_origin_mode_ignores_proxy_authorization() -> None:
    denied(decide(gate_for(mode="origin"), auth(credential())))


def test_origin_mode_strips_authorization_before_the_app() -> None:
    app = RecordingApp()
    call_asgi(asgi_gate(app, mode="origin"), "GET", "/", [("authorization", credential())])
    assert app.header_values("authorization") == []


def test_origin_mode_keep_authorization_passes_it_on() -> None:
    app = RecordingApp()
    call_asgi(asgi_gate(app, mode="origin", keep_authorization=True), "GET", "/",
              [("authorization", credential())])
    assert app.header_values("authorization") == [credential()]


def test_origin_mode_wsgi_strips_authorization_and_sets_remote_user() -> None:
    app = RecordingWSGIApp()
    result = call_wsgi(wsgi_gate(app, mode="origin"), "GET", "/",
                       [("authorization", credential())])
    assert result.status == 200
    assert "HTTP_AUTHORIZATION" not in app.environ
    assert app.environ["REMOTE_USER"] == "alice"


def test_origin_mode_wsgi_401_carries_www_authenticate_even_under_wsgiref() -> None:
    result = call_wsgi(wsgi_gate(mode="origin"), "GET", "/", server_software="WSGIServer/0.2")
    assert (result.status, result.header("www-authenticate")) == (401, CHALLENGE)


# -- exempt paths -----------------------------------------------------------------------------------


def test_an_exact_exempt_path_skips_authentication() -> None:
    result = decide(gate_for(exempt_paths=["/healthz"]), path="/healthz")
    assert isinstance(result, Forward) and result.identity is None


def test_an_exact_exempt_path_does_not_exempt_what_lies_below_it() -> None:
    denied(decide(gate_for(exempt_paths=["/healthz"]), path="/healthz/secret"))


@pytest.mark.parametrize("path", ["/static/", "/static/app.css", "/static/a/b/c.js"])
def test_a_prefix_exempt_path_skips_authentication_below_it(path: str) -> None:
    assert isinstance(decide(gate_for(exempt_paths=["/static/*"]), path=path), Forward)


@pytest.mark.parametrize("path", ["/static", "/staticfiles/x", "/", "/other/static/x"])
def test_a_prefix_exempt_path_does_not_exempt_its_neighbours(path: str) -> None:
    denied(decide(gate_for(exempt_paths=["/static/*"]), path=path))


@pytest.mark.parametrize("path", ["/static/../admin", "/static/./../admin", "/static/a/../../x",
                                  "/static/.."])
def test_a_prefix_exempt_path_does_not_exempt_dot_segments_that_climb_out(path: str) -> None:
    denied(decide(gate_for(exempt_paths=["/static/*"]), path=path))


@pytest.mark.parametrize("path", ["/static/.well-known/x", "/static/a..b", "/static/.hidden"])
def test_a_prefix_exempt_path_exempts_names_that_merely_start_with_dots(path: str) -> None:
    assert isinstance(decide(gate_for(exempt_paths=["/static/*"]), path=path), Forward)


def test_an_exempt_path_in_asgi_has_an_unauthenticated_user() -> None:
    app = RecordingApp()
    result = call_asgi(asgi_gate(app, exempt_paths=["/healthz"]), "GET", "/healthz")
    assert result.status == 200
    assert app.scope["user"].is_authenticated is False
    assert "authenticated" not in app.scope["auth"].scopes


def test_an_exempt_path_still_strips_credentials() -> None:
    app = RecordingApp()
    call_asgi(asgi_gate(app, exempt_paths=["/healthz"]), "GET", "/healthz",
              [("proxy-authorization", credential())])
    assert app.header_values("proxy-authorization") == []


# -- absolute-form targets --------------------------------------------------------------------------


def test_asgi_absolute_form_reaches_the_app_as_origin_form() -> None:
    app = RecordingApp()
    asgi_ok(app, ("host", "proxy.local:3128"), path="http://example.com:8080/path?q=1")
    assert (app.scope["path"], app.scope["query_string"]) == ("/path", b"q=1")
    assert app.header_values("host") == [b"example.com:8080"]


def test_asgi_absolute_form_is_matched_against_exempt_paths() -> None:
    app = RecordingApp()
    result = call_asgi(asgi_gate(app, exempt_paths=["/healthz"]), "GET", "http://example.com/healthz")
    assert result.status == 200
    assert app.scope["path"] == "/healthz"


def test_asgi_absolute_form_without_credentials_is_a_407() -> None:
    result = call_asgi(asgi_gate(), "GET", "http://example.com/path")
    assert result.status == 407


def test_wsgi_absolute_form_reaches_the_app_as_origin_form() -> None:
    app = RecordingWSGIApp()
    wsgi_ok(app, ("host", "proxy.local:3128"), path="http://example.com:8080/path?q=1")
    env = app.environ
    assert (env["PATH_INFO"], env["QUERY_STRING"], env["HTTP_HOST"]) == (
        "/path", "q=1", "example.com:8080")
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.com", "8080")


# -- throttling -------------------------------------------------------------------------------------


class CountingStore(MemoryThrottleStore):
    """The memory store, counting every call."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.calls = 0

    def blocked_for(self, key: str, *, limit: int, window: float) -> float:
        self.calls += 1
        return super().blocked_for(key, limit=limit, window=window)

    def add_failure(self, key: str, *, limit: int, window: float) -> None:
        self.calls += 1
        super().add_failure(key, limit=limit, window=window)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(gate: Gate, times: int, client: str = "10.0.0.1", user: str = "alice") -> None:
    for _ in range(times):
        denied(decide(gate, auth(credential(user, "wrong")), client=client))


def test_past_max_failures_even_the_right_password_gets_429() -> None:
    gate = gate_for(max_failures=3)
    fail(gate, 3)
    response = denied(decide(gate, auth(credential())))
    assert response.response.status == 429


def test_the_429_has_retry_after_and_no_challenge() -> None:
    gate = gate_for(max_failures=3, failure_window=60)
    fail(gate, 3)
    response = denied(decide(gate, auth(credential())))
    retry = header(response, b"retry-after")
    assert retry is not None and 1 <= int(retry) <= 60
    assert header(response, b"proxy-authenticate") is None
    assert header(response, b"www-authenticate") is None


def test_the_429_is_an_uncached_envelope() -> None:
    gate = gate_for(max_failures=1)
    fail(gate, 1)
    response = denied(decide(gate, auth(credential())))
    assert header(response, b"cache-control") == b"no-store"
    assert json.loads(response.response.body)["error"]["code"] == 429


def test_the_failure_before_the_limit_still_gets_the_challenge() -> None:
    gate = gate_for(max_failures=3)
    fail(gate, 2)
    assert denied(decide(gate, auth(credential("alice", "wrong")))).response.status == 407


def test_a_throttled_client_hashes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = gate_for(max_failures=2)
    fail(gate, 2)
    calls: list[str] = []

    def counting(password: str, stored: str) -> bool:
        calls.append(stored)
        return False

    monkeypatch.setattr("proxygate.auth.users.verify_password", counting)
    decide(gate, auth(credential()))
    assert calls == []


def test_a_cached_success_passes_while_throttled_without_a_store_call() -> None:
    store = CountingStore()
    gate = gate_for(max_failures=2, throttle_store=store)
    assert isinstance(decide(gate, auth(credential())), Forward)
    fail(gate, 2)
    before = store.calls
    decision = gate.decide(head(auth(credential())))
    assert isinstance(decision, Forward)
    assert store.calls == before


def test_missing_credentials_are_not_counted() -> None:
    store = CountingStore()
    gate = gate_for(max_failures=1, throttle_store=store)
    for _ in range(5):
        denied(decide(gate))
    assert store.calls == 0
    assert isinstance(decide(gate, auth(credential())), Forward)


def test_another_scheme_is_not_counted() -> None:
    gate = gate_for(max_failures=1)
    for _ in range(3):
        denied(decide(gate, auth(b"Bearer abc")))
    assert isinstance(decide(gate, auth(credential())), Forward)


def test_malformed_credentials_are_counted() -> None:
    gate = gate_for(max_failures=2)
    for _ in range(2):
        denied(decide(gate, auth(b"Basic ***")))
    assert denied(decide(gate, auth(credential()))).response.status == 429


def test_unknown_users_are_counted() -> None:
    gate = gate_for(max_failures=2)
    fail(gate, 2, user="mallory")
    assert denied(decide(gate, auth(credential()))).response.status == 429


def test_failures_count_per_client() -> None:
    gate = gate_for(max_failures=2)
    fail(gate, 2, client="10.0.0.1")
    assert isinstance(decide(gate, auth(credential()), client="10.0.0.2"), Forward)


def test_the_client_may_try_again_once_the_window_has_passed() -> None:
    clock = FakeClock()
    gate = gate_for(max_failures=2, failure_window=60,
                    throttle_store=MemoryThrottleStore(clock=clock))
    fail(gate, 2)
    denied(decide(gate, auth(credential())))
    clock.now += 60.5
    assert isinstance(decide(gate, auth(credential())), Forward)


def test_max_failures_zero_turns_the_client_limit_off() -> None:
    gate = gate_for(max_failures=0)
    fail(gate, 20)
    assert isinstance(decide(gate, auth(credential())), Forward)


def test_the_per_user_limit_is_off_by_default() -> None:
    gate = gate_for(max_failures=2)
    for number in range(6):
        fail(gate, 1, client=f"10.0.1.{number}")
    assert isinstance(decide(gate, auth(credential()), client="10.0.2.1"), Forward)


def test_the_per_user_limit_locks_the_user_from_every_client() -> None:
    gate = gate_for(max_failures=100, max_failures_per_user=3)
    for number in range(3):
        fail(gate, 1, client=f"10.0.1.{number}")
    response = denied(decide(gate, auth(credential()), client="10.0.2.1"))
    assert response.response.status == 429


def test_the_per_user_limit_leaves_other_users_alone() -> None:
    gate = gate_for(max_failures=100, max_failures_per_user=2)
    fail(gate, 2, user="alice")
    assert isinstance(decide(gate, auth(credential("jürgen", "pässwörd✓"))), Forward)


def test_asgi_throttled_client_gets_429_with_retry_after() -> None:
    app = asgi_gate(max_failures=1)
    call_asgi(app, "GET", "/", [("proxy-authorization", credential("alice", "wrong"))])
    result = call_asgi(app, "GET", "/", [("proxy-authorization", credential())])
    assert result.status == 429
    assert result.header("retry-after") is not None
    assert result.header("proxy-authenticate") is None


def test_wsgi_throttled_client_gets_429_with_retry_after() -> None:
    app = wsgi_gate(max_failures=1)
    call_wsgi(app, "GET", "/", [("proxy-authorization", credential("alice", "wrong"))])
    result = call_wsgi(app, "GET", "/", [("proxy-authorization", credential())])
    assert result.status == 429
    assert result.header("retry-after") is not None


# -- client address and trusted proxies ------------------------------------------------------------


def test_the_peer_is_the_client_when_no_proxy_is_trusted() -> None:
    gate = gate_for()
    assert gate.client_address(head((b"x-forwarded-for", b"1.2.3.4"), client="10.0.0.1")) == (
        "10.0.0.1")


def test_forwarded_headers_from_an_untrusted_peer_are_ignored() -> None:
    gate = gate_for(trusted_proxies=["10.0.0.0/8"])
    spoofed = head((b"x-forwarded-for", b"1.2.3.4"), (b"forwarded", b"for=5.6.7.8"),
                   client="192.0.2.9")
    assert gate.client_address(spoofed) == "192.0.2.9"


def test_x_forwarded_for_from_a_trusted_peer_names_the_client() -> None:
    gate = gate_for(trusted_proxies=["10.0.0.0/8"])
    assert gate.client_address(head((b"x-forwarded-for", b"1.2.3.4"), client="10.0.0.1")) == (
        "1.2.3.4")


def test_the_rightmost_untrusted_hop_is_the_client() -> None:
    gate = gate_for(trusted_proxies=["10.0.0.0/8"])
    chain = head((b"x-forwarded-for", b"6.6.6.6, 1.2.3.4, 10.0.0.7"), client="10.0.0.1")
    assert gate.client_address(chain) == "1.2.3.4"


def test_forwarded_from_a_trusted_peer_names_the_client_when_configured() -> None:
    gate = gate_for(trusted_proxies=["10.0.0.0/8"], forwarded_header="Forwarded")
    forwarded = head((b"forwarded", b'for=192.0.2.60:8080;proto=http, for="[2001:db8::1]:4711"'),
                     client="10.0.0.1")
    assert gate.client_address(forwarded) == "2001:db8::1"


def test_a_client_sent_forwarded_next_to_the_proxys_x_forwarded_for_is_ignored() -> None:
    gate = gate_for(trusted_proxies=["10.0.0.0/8"])
    both = head((b"forwarded", b"for=192.0.2.60"), (b"x-forwarded-for", b"1.2.3.4"),
                client="10.0.0.1")
    assert gate.client_address(both) == "1.2.3.4"


def test_a_trusted_peer_without_forwarded_headers_is_the_client() -> None:
    gate = gate_for(trusted_proxies=["10.0.0.0/8"])
    assert gate.client_address(head(client="10.0.0.1")) == "10.0.0.1"


def test_failures_behind_a_trusted_proxy_count_per_forwarded_client() -> None:
    gate = gate_for(max_failures=2, trusted_proxies=["10.0.0.1/32"])
    for _ in range(2):
        denied(decide(gate, auth(credential("alice", "wrong")),
                      (b"x-forwarded-for", b"1.2.3.4"), client="10.0.0.1"))
    assert denied(decide(gate, auth(credential()), (b"x-forwarded-for", b"1.2.3.4"),
                         client="10.0.0.1")).response.status == 429
    assert isinstance(decide(gate, auth(credential()), (b"x-forwarded-for", b"5.6.7.8"),
                             client="10.0.0.1"), Forward)


def test_a_spoofed_forwarded_header_does_not_escape_the_throttle() -> None:
    gate = gate_for(max_failures=2, trusted_proxies=["10.0.0.0/8"])
    for number in range(2):
        denied(decide(gate, auth(credential("alice", "wrong")),
                      (b"x-forwarded-for", f"1.2.3.{number}".encode()), client="192.0.2.9"))
    response = denied(decide(gate, auth(credential()), (b"x-forwarded-for", b"9.9.9.9"),
                             client="192.0.2.9"))
    assert response.response.status == 429


# -- audit log --------------------------------------------------------------------------------------

SECRET = "S3cret-Pa55"


def audit_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.proxygate for r in caplog.records
            if r.name == "proxygate.auth" and hasattr(r, "proxygate")]


@pytest.fixture
def audit(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="proxygate")
    return caplog


@pytest.mark.parametrize(
    ("headers", "outcome", "reason", "username", "scheme"),
    [
        ([], "failure", "missing", None, None),
        ([auth(b"Basic ***")], "failure", "malformed", None, "Basic"),
        ([auth(credential("mallory", SECRET))], "failure", "unknown_user", "mallory", "Basic"),
        ([auth(credential("alice", SECRET))], "failure", "bad_password", "alice", "Basic"),
        ([auth(credential())], "success", "verified", "alice", "Basic"),
    ],
    ids=["missing", "malformed", "unknown user", "bad password", "success"],
)
def test_each_decision_writes_one_audit_record(audit: pytest.LogCaptureFixture,
                                               headers: list[tuple[bytes, bytes]], outcome: str,
                                               reason: str, username: str | None,
                                               scheme: str | None) -> None:
    decide(gate_for(), *headers, (b"x-request-id", b"req-42"), client="192.0.2.5")
    assert audit_records(audit) == [{"outcome": outcome, "reason": reason, "username": username,
                                     "scheme": scheme, "client": "192.0.2.5",
                                     "request_id": "req-42"}]


def test_a_cached_success_is_audited(audit: pytest.LogCaptureFixture) -> None:
    gate = gate_for()
    decide(gate, auth(credential()))
    audit.clear()
    decide(gate, auth(credential()))
    assert [(r["outcome"], r["reason"]) for r in audit_records(audit)] == [("success", "cached")]


def test_a_throttled_attempt_is_audited(audit: pytest.LogCaptureFixture) -> None:
    gate = gate_for(max_failures=1)
    fail(gate, 1)
    audit.clear()
    decide(gate, auth(credential()))
    assert [(r["outcome"], r["reason"], r["username"]) for r in audit_records(audit)] == [
        ("throttled", "throttled", "alice")]


def test_audit_records_never_hold_the_password_header_or_hash(
        audit: pytest.LogCaptureFixture) -> None:
    gate = gate_for(max_failures=2)
    value = credential("alice", SECRET)
    for _ in range(3):
        decide(gate, auth(value))
    decide(gate, auth(credential("mallory", SECRET)), client="10.9.9.9")
    decide(gate, auth(credential()), client="10.9.9.8")
    gate.denials.flush()  # the summary of the second wrong password goes out too
    assert len(audit_records(audit)) == 5
    text = audit.text + repr([r.__dict__ for r in audit.records])
    for secret in (SECRET, value.decode(), value.split()[1].decode(), ALICE, "wonder:land"):
        assert secret not in text


def test_a_throttled_flood_writes_one_record_and_one_summary_per_window(
        audit: pytest.LogCaptureFixture) -> None:
    gate = gate_for(max_failures=2)
    fail(gate, 2)
    audit.clear()
    for _ in range(1000):
        assert denied(decide(gate, auth(credential("alice", "wrong")))).response.status == 429
    records = audit_records(audit)
    assert [(r["outcome"], r["username"]) for r in records] == [("throttled", "alice")]
    gate.denials.flush()
    summary = audit_records(audit)[-1]
    assert (summary["outcome"], summary["client"], summary["more"]) == ("throttled", "10.0.0.1", 999)


def test_a_throttled_flood_still_counts_every_429_in_the_metrics() -> None:
    pytest.importorskip("prometheus_client")
    from prometheus_client import CollectorRegistry

    from proxygate.errors.metrics import ErrorMetrics

    gate = gate_for(max_failures=1)
    metrics = gate.errors.metrics = ErrorMetrics(CollectorRegistry())
    fail(gate, 1)
    for _ in range(50):
        decide(gate, auth(credential("alice", "wrong")))
    assert metrics.registry.get_sample_value(
        "proxygate_auth_outcomes_total", {"outcome": "throttled", "reason": "throttled"}) == 50


def test_with_a_memory_store_a_throttled_client_is_answered_without_a_check() -> None:
    """No Check means no place in the hash budget and, in ASGI, no coroutine or thread."""
    gate = gate_for(max_failures=2)
    fail(gate, 2)
    decision = gate.decide(head(auth(credential())))
    assert isinstance(decision, Deny)
    assert decision.response.status == 429


def test_a_throttled_user_is_answered_without_a_check_from_any_address() -> None:
    gate = gate_for(max_failures=100, max_failures_per_user=2)
    fail(gate, 1, client="192.0.2.1")
    fail(gate, 1, client="192.0.2.2")
    decision = gate.decide(head(auth(credential()), client="192.0.2.3"))
    assert isinstance(decision, Deny)
    assert decision.response.status == 429


def test_with_a_blocking_store_the_throttle_is_asked_inside_the_check() -> None:
    """A network store is never called from decide(): the ASGI shell runs decide on the loop."""

    class BlockingStore(MemoryThrottleStore):
        blocking = True
        looked = 0

        def blocked_for(self, key: str, *, limit: int, window: float) -> float:
            type(self).looked += 1
            return super().blocked_for(key, limit=limit, window=window)

    gate = gate_for(max_failures=2, throttle_store=BlockingStore())
    fail(gate, 2)
    decision = gate.decide(head(auth(credential())))
    assert isinstance(decision, Check)
    assert BlockingStore.looked == 0
    assert denied(decision.run()).response.status == 429


def test_failures_log_at_warning_and_missing_at_info(audit: pytest.LogCaptureFixture) -> None:
    gate = gate_for()
    decide(gate)
    decide(gate, auth(credential("alice", "wrong")))
    assert [r.levelno for r in audit.records if r.name == "proxygate.auth"] == [
        logging.INFO, logging.WARNING]


# -- concurrency ----------------------------------------------------------------------------------


def test_decide_is_safe_from_many_threads() -> None:
    gate = gate_for(max_failures=0)
    errors: list[BaseException] = []
    outcomes: list[bool] = []

    def worker(number: int) -> None:
        try:
            for step in range(20):
                good = (number + step) % 2 == 0
                value = credential() if good else credential("alice", f"bad{number}")
                outcomes.append(isinstance(decide(gate, auth(value)), Forward) == good)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(outcomes) == 160 and all(outcomes)


# -- websockets -------------------------------------------------------------------------------------


def test_a_websocket_without_credentials_gets_a_real_407_before_accept() -> None:
    app = RecordingApp()
    messages = call_websocket(asgi_gate(app), "/ws")
    assert [m["type"] for m in messages] == ["websocket.http.response.start",
                                            "websocket.http.response.body"]
    assert messages[0]["status"] == 407
    assert (b"proxy-authenticate", CHALLENGE.encode()) in messages[0]["headers"]
    assert json.loads(messages[1]["body"])["error"]["code"] == 407
    assert not app.scopes


def test_a_websocket_without_the_response_extension_is_closed_before_accept() -> None:
    app = RecordingApp()
    messages = call_websocket(asgi_gate(app), "/ws", http_response_extension=False)
    assert [(m["type"], m.get("code")) for m in messages] == [("websocket.close", 1008)]
    assert not app.scopes


def test_a_websocket_in_origin_mode_gets_a_401() -> None:
    messages = call_websocket(asgi_gate(mode="origin"), "/ws")
    assert messages[0]["status"] == 401
    assert (b"www-authenticate", CHALLENGE.encode()) in messages[0]["headers"]


def test_a_websocket_with_valid_credentials_reaches_the_app_as_the_user() -> None:
    app = RecordingApp()
    messages = call_websocket(asgi_gate(app), "/ws", [("proxy-authorization", credential())])
    assert [m["type"] for m in messages] == ["websocket.accept", "websocket.close"]
    assert app.scope["user"].username == "alice"
    assert app.header_values("proxy-authorization") == []


def test_a_throttled_websocket_gets_a_429() -> None:
    gate = asgi_gate(max_failures=1)
    call_websocket(gate, "/ws", [("proxy-authorization", credential("alice", "wrong"))])
    messages = call_websocket(gate, "/ws", [("proxy-authorization", credential())])
    assert messages[0]["status"] == 429


# -- an app's own 401/407 ---------------------------------------------------------------------------


def test_an_app_407_without_a_challenge_gets_the_gates_challenge_in_asgi() -> None:
    app = RecordingApp(407, b'{"error": "nope"}', [(b"content-type", b"application/json")])
    result = call_asgi(asgi_gate(app), "GET", "/", [("proxy-authorization", credential())])
    assert (result.status, result.header("proxy-authenticate")) == (407, CHALLENGE)


def test_an_app_401_without_a_challenge_gets_www_authenticate_in_asgi() -> None:
    app = RecordingApp(401, b"<h1>no</h1>", [(b"content-type", b"text/html")])
    result = call_asgi(asgi_gate(app), "GET", "/", [("proxy-authorization", credential())])
    assert (result.status, result.header("www-authenticate")) == (401, CHALLENGE)
    assert result.json()["error"]["code"] == 401


def test_an_app_401_with_its_own_challenge_keeps_it_in_asgi() -> None:
    app = RecordingApp(401, b"no", [(b"content-type", b"text/plain"),
                                    (b"www-authenticate", b'Bearer realm="api"')])
    result = call_asgi(asgi_gate(app), "GET", "/", [("proxy-authorization", credential())])
    assert result.header_list("www-authenticate") == ['Bearer realm="api"']


def test_an_app_401_without_a_challenge_gets_www_authenticate_in_wsgi() -> None:
    app = RecordingWSGIApp("401 Unauthorized", b"no")
    result = call_wsgi(wsgi_gate(app), "GET", "/", [("proxy-authorization", credential())])
    assert (result.status, result.header("www-authenticate")) == (401, CHALLENGE)
