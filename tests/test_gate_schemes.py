"""Schemes through the gate and the shells, no server: challenges, matching, identity, attacks."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from proxygate import asgi, wsgi
from proxygate.auth.digest_file import digest_fields
from proxygate.auth.hashing import hash_password
from proxygate.auth.nonces import Nonces
from proxygate.auth.tokens import hash_token, new_token
from proxygate.config import ConfigError
from proxygate.gate import Gate
from support.asgi_driver import RecordingApp, call_asgi
from support.digest import answer, challenges
from support.wsgi_driver import RecordingWSGIApp, call_wsgi

REALM = "internal"
SECRET = "n0nce-secret-for-tests-0123456789"
ALL = ("MD5", "SHA-256", "SHA-512-256")
TOKEN = new_token()


@pytest.fixture
def digest_file(tmp_path: Path) -> Path:
    path = tmp_path / "digest"
    path.write_text(f"alice:{REALM}:{digest_fields('alice', REALM, 'wonderland', ALL)}\n")
    return path


def gate_app(digest_file: Path, app: Any = None, **options: Any) -> asgi.ProxyGateMiddleware:
    settings: dict[str, Any] = {"realm": REALM, "reload_interval": 0, "nonce_secret": SECRET}
    settings.update(options)
    schemes = settings.setdefault("schemes", ("basic", "digest"))
    if "basic" in schemes or "digest" in schemes:
        settings.setdefault("users", str(digest_file))
    if "bearer" in schemes:
        settings.setdefault("tokens", {"ci": hash_token(TOKEN)})
    return asgi.ProxyGateMiddleware(app or RecordingApp(), **settings)


def basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def digest_for(result: Any, user: str = "alice", password: str = "wonderland", *,
               index: int = 0, uri: str = "/a", **kwargs: Any) -> str:
    lines = result.header_list("proxy-authenticate") or result.header_list("www-authenticate")
    return answer(challenges(lines)[index], user, password, uri=uri, **kwargs)


# -- one challenge line per scheme (and per Digest algorithm), in order ------------------


@pytest.mark.parametrize("schemes", [("basic", "digest", "bearer"), ("bearer", "digest", "basic"),
                                     ("digest",), ("bearer",)])
def test_one_challenge_field_line_per_scheme_in_the_configured_order(
        digest_file: Path, schemes: tuple[str, ...]) -> None:
    result = call_asgi(gate_app(digest_file, schemes=schemes), "GET", "/a")
    assert result.status == 407
    lines = result.header_list("proxy-authenticate")
    assert [line.split(" ", 1)[0] for line in lines] == [s.capitalize() for s in schemes]


def test_digest_gets_one_line_per_algorithm(digest_file: Path) -> None:
    result = call_asgi(gate_app(digest_file, schemes=("basic", "digest"),
                                digest_algorithms=("SHA-256", "SHA-512-256", "MD5")), "GET", "/a")
    lines = result.header_list("proxy-authenticate")
    assert lines[0].startswith("Basic ")
    assert [c["algorithm"] for c in challenges(lines)] == ["SHA-256", "SHA-512-256", "MD5"]


def test_origin_mode_challenges_in_www_authenticate(digest_file: Path) -> None:
    result = call_asgi(gate_app(digest_file, mode="origin"), "GET", "/a")
    assert result.status == 401 and len(result.header_list("www-authenticate")) == 2
    assert result.header_list("proxy-authenticate") == []


def test_an_apps_own_407_gets_every_challenge_with_a_live_nonce(digest_file: Path) -> None:
    app = gate_app(digest_file, app=RecordingApp(status=407, body=b"no"))
    ok = call_asgi(app, "GET", "/a", [("proxy-authorization", basic("alice", "wonderland"))])
    assert ok.status == 407
    lines = ok.header_list("proxy-authenticate")
    assert len(lines) == 2 and lines[1].startswith("Digest ")
    follow = digest_for(ok)  # its nonce is a real one: another worker with the secret takes it
    assert call_asgi(gate_app(digest_file), "GET", "/a",
                     [("proxy-authorization", follow)]).status == 200


# -- matching credentials to schemes ------------------------------------------------------


def test_basic_and_digest_both_pass_from_one_file(digest_file: Path) -> None:
    app = RecordingApp()
    gate = gate_app(digest_file, app=app)
    ok = call_asgi(gate, "GET", "/a", [("proxy-authorization", basic("alice", "wonderland"))])
    assert ok.status == 200 and app.scope["user"].scheme == "Basic"
    challenge = call_asgi(gate, "GET", "/a")
    done = call_asgi(gate, "GET", "/a", [("proxy-authorization", digest_for(challenge))])
    assert done.status == 200
    assert app.scope["user"].username == "alice" and app.scope["user"].scheme == "Digest"
    assert app.header_values("proxy-authorization") == []


def test_scheme_names_match_case_insensitively(digest_file: Path) -> None:
    gate = gate_app(digest_file)
    header = digest_for(call_asgi(gate, "GET", "/a")).replace("Digest ", "dIGEST ", 1)
    assert call_asgi(gate, "GET", "/a", [("proxy-authorization", header)]).status == 200
    lower = "basic " + basic("alice", "wonderland").split(" ", 1)[1]
    assert call_asgi(gate, "GET", "/a", [("proxy-authorization", lower)]).status == 200


def test_a_scheme_not_configured_counts_as_no_credentials(digest_file: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    gate = gate_app(digest_file, schemes=("digest",), max_failures=1)
    caplog.set_level(logging.INFO, "proxygate.auth")
    for _ in range(3):  # never counted as a failure: no 429 follows
        result = call_asgi(gate, "GET", "/a",
                           [("proxy-authorization", basic("alice", "wonderland"))])
        assert result.status == 407
    assert "(missing)" in caplog.text and "bad_password" not in caplog.text


def test_the_wsgi_identity_carries_auth_type(digest_file: Path) -> None:
    app = RecordingWSGIApp()
    gate = wsgi.ProxyGateMiddleware(app, users=str(digest_file), realm=REALM,
                                    schemes=("digest", "bearer"), mode="origin",
                                    tokens={"ci": hash_token(TOKEN)}, reload_interval=0)
    challenge = call_wsgi(gate, "GET", "/a?x=1")
    assert challenge.status == 401
    header = digest_for(challenge, uri="/a?x=1")
    assert call_wsgi(gate, "GET", "/a?x=1", [("authorization", header)]).status == 200
    assert app.environ["REMOTE_USER"] == "alice" and app.environ["AUTH_TYPE"] == "Digest"
    assert call_wsgi(gate, "GET", "/", [("authorization", f"Bearer {TOKEN}")]).status == 200
    assert app.environ["REMOTE_USER"] == "ci" and app.environ["AUTH_TYPE"] == "Bearer"


# -- Digest through the gate ---------------------------------------------------------------


def test_a_replayed_digest_request_is_refused_and_counted(digest_file: Path) -> None:
    gate = gate_app(digest_file, max_failures=1)
    header = digest_for(call_asgi(gate, "GET", "/a"))
    assert call_asgi(gate, "GET", "/a", [("proxy-authorization", header)]).status == 200
    assert call_asgi(gate, "GET", "/a", [("proxy-authorization", header)]).status == 407
    assert call_asgi(gate, "GET", "/a", [("proxy-authorization", header)]).status == 429


def test_a_stale_nonce_gets_stale_true_and_is_not_counted(digest_file: Path) -> None:
    gate = gate_app(digest_file, max_failures=1, nonce_ttl=60)
    old = Nonces(SECRET.encode(), realm=REALM, ttl=60, clock=lambda: time.time() - 61).issue()
    header = answer({"realm": REALM, "nonce": old, "algorithm": "SHA-256"}, "alice",
                    "wonderland", uri="/a")
    for _ in range(3):
        result = call_asgi(gate, "GET", "/a", [("proxy-authorization", header)])
        assert result.status == 407
        [digest_line] = [v for v in result.header_list("proxy-authenticate")
                         if v.startswith("Digest")]
        assert "stale=true" in digest_line
    retry = digest_for(result)
    assert call_asgi(gate, "GET", "/a", [("proxy-authorization", retry)]).status == 200


def test_a_uri_for_another_resource_is_a_400(digest_file: Path) -> None:
    gate = gate_app(digest_file)
    header = digest_for(call_asgi(gate, "GET", "/a"), uri="/admin")
    result = call_asgi(gate, "GET", "/a", [("proxy-authorization", header)])
    assert result.status == 400 and result.json()["error"]["code"] == 400
    query = digest_for(call_asgi(gate, "GET", "/a"), uri="/a?user=bob")
    assert call_asgi(gate, "GET", "/a?user=alice",
                     [("proxy-authorization", query)]).status == 400


def test_an_absolute_form_proxy_request_with_an_absolute_uri(digest_file: Path) -> None:
    app = RecordingApp()
    gate = gate_app(digest_file, app=app, schemes=("digest",), digest_algorithms=("MD5",))
    target = "http://example.internal/a?b=1"
    header = digest_for(call_asgi(gate, "GET", target), uri=target)
    assert call_asgi(gate, "GET", target, [("proxy-authorization", header)]).status == 200
    assert app.scope["path"] == "/a"


def test_a_replay_to_another_worker_is_refused_through_redis(digest_file: Path,
                                                             redis_server: Any) -> None:
    one = gate_app(digest_file, throttle_store=redis_server.url)
    two = gate_app(digest_file, throttle_store=redis_server.url)
    header = digest_for(call_asgi(one, "GET", "/a"))
    assert call_asgi(two, "GET", "/a", [("proxy-authorization", header)]).status == 200
    assert call_asgi(one, "GET", "/a", [("proxy-authorization", header)]).status == 407
    next_nc = digest_for(call_asgi(one, "GET", "/a"), nc=2)
    assert call_asgi(one, "GET", "/a", [("proxy-authorization", next_nc)]).status == 200


def test_a_redis_outage_answers_503_not_a_challenge(digest_file: Path, redis_server: Any) -> None:
    gate = gate_app(digest_file, throttle_store=redis_server.url)
    header = digest_for(call_asgi(gate, "GET", "/a"))
    redis_server.stop()
    try:
        result = call_asgi(gate, "GET", "/a", [("proxy-authorization", header)])
    finally:
        redis_server.start()
    assert result.status == 503 and result.header("retry-after") == "1"


def test_unknown_users_and_wrong_passwords_are_throttled_alike(digest_file: Path) -> None:
    gate = gate_app(digest_file, max_failures=2)
    for user in ("mallory", "alice"):
        header = digest_for(call_asgi(gate, "GET", "/a"), user=user, password="guess")
        assert call_asgi(gate, "GET", "/a", [("proxy-authorization", header)]).status == 407
    header = digest_for(call_asgi(gate, "GET", "/a"))
    assert call_asgi(gate, "GET", "/a", [("proxy-authorization", header)]).status == 429


def test_nextnonce_reaches_the_client_in_asgi_and_wsgi(digest_file: Path) -> None:
    old = Nonces(SECRET.encode(), realm=REALM, ttl=300, clock=lambda: time.time() - 200).issue()
    header = answer({"realm": REALM, "nonce": old, "algorithm": "SHA-256"}, "alice",
                    "wonderland", uri="/a")
    result = call_asgi(gate_app(digest_file), "GET", "/a", [("proxy-authorization", header)])
    assert result.status == 200
    info = result.header("proxy-authentication-info")
    assert info is not None and info.startswith('nextnonce="')
    fresh = gate_app(digest_file, mode="origin")
    result = call_wsgi(wsgi.ProxyGateMiddleware(RecordingWSGIApp(), config=fresh.config),
                       "GET", "/a", [("authorization", header)])
    assert result.status == 200 and result.header("authentication-info").startswith("nextnonce=")


def test_the_audit_record_names_the_scheme_and_no_secret(digest_file: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "proxygate.auth")
    gate = gate_app(digest_file, schemes=("digest", "bearer"))
    header = digest_for(call_asgi(gate, "GET", "/a"))
    call_asgi(gate, "GET", "/a", [("proxy-authorization", header)])
    call_asgi(gate, "GET", "/a", [("proxy-authorization", f"Bearer {TOKEN}x")])
    schemes = [getattr(r, "proxygate", {}).get("scheme") for r in caplog.records]
    assert "Digest" in schemes and "Bearer" in schemes
    response = header.split('response="')[1][:64]
    assert response not in caplog.text and TOKEN not in caplog.text


# -- Bearer through the gate -----------------------------------------------------------------


def test_a_missing_token_gets_a_plain_bearer_challenge(digest_file: Path) -> None:
    result = call_asgi(gate_app(digest_file, schemes=("bearer",)), "GET", "/a")
    assert result.header_list("proxy-authenticate") == ['Bearer realm="internal"']


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}x", "Bearer", "Bearer a b", "bearer ***"])
def test_a_bad_token_gets_invalid_token(digest_file: Path, header: str) -> None:
    result = call_asgi(gate_app(digest_file, schemes=("basic", "bearer")), "GET", "/a",
                       [("proxy-authorization", header)])
    assert result.status == 407
    assert result.header_list("proxy-authenticate") == [
        'Basic realm="internal", charset="UTF-8"', 'Bearer realm="internal", error="invalid_token"']


def test_a_token_in_the_query_string_is_never_accepted(digest_file: Path) -> None:
    gate = gate_app(digest_file, schemes=("bearer",))
    result = call_asgi(gate, "GET", f"/a?access_token={TOKEN}")
    assert result.status == 407 and "invalid_token" not in str(result.headers)
    assert call_asgi(gate, "GET", "/a", [("proxy-authorization", f"Bearer {TOKEN}")]).status == 200


def test_bad_tokens_are_throttled(digest_file: Path) -> None:
    gate = gate_app(digest_file, schemes=("bearer",), max_failures=2)
    for _ in range(2):
        assert call_asgi(gate, "GET", "/", [("proxy-authorization", "Bearer guess")]).status == 407
    assert call_asgi(gate, "GET", "/", [("proxy-authorization", f"Bearer {TOKEN}")]).status == 429


def test_an_async_tokens_callable_is_awaited_in_asgi(digest_file: Path) -> None:
    async def lookup(token: str) -> str | None:
        await asyncio.sleep(0)
        return "svc" if token == "good" else None

    app = RecordingApp()
    gate = gate_app(digest_file, app=app, schemes=("bearer",), tokens=lookup)
    assert call_asgi(gate, "GET", "/", [("proxy-authorization", "Bearer good")]).status == 200
    assert app.scope["user"].username == "svc"
    assert call_asgi(gate, "GET", "/", [("proxy-authorization", "Bearer bad")]).status == 407
    with pytest.raises(TypeError, match="async"):
        wsgi.ProxyGateMiddleware(RecordingWSGIApp(), config=gate.config)


# -- configuration errors --------------------------------------------------------------------


def make_gate(**options: Any) -> Gate:
    from proxygate.config import Config

    return Gate(Config(reload_interval=0, **options))


def test_digest_over_an_htpasswd_file_is_a_startup_error_naming_digest(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{hash_password('pw', 'apr_md5_crypt')}\n")
    with pytest.raises(ConfigError, match=r"digest.*HtpasswdUsers.*proxygate users add"):
        make_gate(users=str(path), schemes=("basic", "digest"))


@pytest.mark.parametrize("users", [lambda u, p: True, {"alice": hash_password("pw", "apr_md5_crypt")}])
def test_digest_over_a_callable_or_mapping_is_a_startup_error(users: Any) -> None:
    with pytest.raises(ConfigError, match="cannot serve digest"):
        make_gate(users=users, schemes=("digest",))


def test_a_realm_mismatch_names_both(digest_file: Path) -> None:
    with pytest.raises(ConfigError, match=r"'internal'.*realm is 'elsewhere'"):
        make_gate(users=str(digest_file), realm="elsewhere", schemes=("digest",))


def test_a_non_ascii_realm_cannot_serve_digest(tmp_path: Path) -> None:
    path = tmp_path / "digest"
    path.write_text(f"alice:Bücher:{digest_fields('alice', 'Bücher', 'pw', ALL)}\n")
    with pytest.raises(ConfigError, match="ASCII"):
        make_gate(users=str(path), realm="Bücher", schemes=("digest",))


def test_bearer_needs_tokens_and_users_need_a_scheme(digest_file: Path) -> None:
    with pytest.raises(ConfigError, match="tokens is required"):
        make_gate(schemes=("bearer",))
    with pytest.raises(ConfigError, match="neither 'basic' nor 'digest'"):
        make_gate(users=str(digest_file), schemes=("bearer",), tokens={})
    assert make_gate(schemes=("bearer",), tokens={"ci": hash_token(TOKEN)}).users is None


def test_an_unknown_scheme_is_named(digest_file: Path) -> None:
    with pytest.raises(ConfigError, match="'ntlm'"):
        make_gate(users=str(digest_file), schemes=("ntlm",))


def test_without_a_secret_several_workers_get_a_warning(digest_file: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    with caplog.at_level(logging.WARNING, "proxygate.auth"):
        make_gate(users=str(digest_file), realm=REALM, schemes=("digest",))
    assert "nonce_secret" in caplog.text and "throttle_store='redis://" in caplog.text
    caplog.clear()
    monkeypatch.setenv("WEB_CONCURRENCY", "1")
    with caplog.at_level(logging.WARNING, "proxygate.auth"):
        make_gate(users=str(digest_file), realm=REALM, schemes=("digest",))
    assert "nonce_secret" not in caplog.text


def test_the_config_repr_hides_the_nonce_secret(digest_file: Path) -> None:
    gate = make_gate(users=str(digest_file), realm=REALM, schemes=("digest",),
                     nonce_secret=SECRET)
    assert SECRET not in repr(gate) and SECRET not in repr(gate.config)


def test_digest_over_a_directory_is_a_startup_error_naming_digest() -> None:
    with pytest.raises(ConfigError, match=r"cannot serve digest.*LdapUsers|LdapUsers.*digest"):
        make_gate(users="ldap://127.0.0.1:1/dc=example,dc=com?uid?sub", schemes=("digest",))
