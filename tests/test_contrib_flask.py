"""proxygate.contrib.flask: the extension, its config keys, Flask's error paths and abort(407)."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest
from flask import Flask, abort, g, jsonify, request
from werkzeug.test import TestResponse

from proxygate import ConfigError
from proxygate.auth.hashing import hash_password
from proxygate.contrib.flask import ProxyAuthenticationRequired, ProxyGate, current_user
from support.conformance import Reply, Request, call_wsgi

SECRET = "hunter2-in-the-traceback"
USERS = {"alice": hash_password("wonderland", "bcrypt", rounds=4)}
GOOD = {"Proxy-Authorization": "Basic " + base64.b64encode(b"alice:wonderland").decode()}


class OutOfStock(Exception):
    pass


def make_app(**config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(PROXYGATE_USERS=USERS, PROXYGATE_REALM="tests",
                      PROXYGATE_EXEMPT_PATHS=["/open"], **config)

    @app.get("/whoami")
    def whoami() -> Any:
        return jsonify(user=g.proxygate_user.username, remote_user=request.remote_user,
                       current=current_user().username if current_user() else None,
                       seen=request.headers.get("Proxy-Authorization"))

    @app.get("/open")
    def open_view() -> Any:
        return jsonify(user=g.proxygate_user)

    @app.get("/boom")
    def boom() -> Any:
        raise RuntimeError(SECRET)

    @app.get("/out-of-stock")
    def out_of_stock() -> Any:
        raise OutOfStock(SECRET)

    @app.get("/proxy-login")
    def proxy_login() -> Any:
        abort(407)

    @app.get("/teapot")
    def teapot() -> Any:
        abort(418)

    @app.errorhandler(418)
    def json_teapot(error: Exception) -> Any:
        return jsonify(detail="short and stout"), 418

    return app


def envelope(response: TestResponse, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.data[:300]
    assert response.content_type == "application/json"
    error: dict[str, Any] = response.get_json()["error"]
    assert error["code"] == status
    return error


@pytest.fixture
def app() -> Flask:
    app = make_app()
    ProxyGate(app)
    return app


# -- setup ----------------------------------------------------------------------------


def test_no_credentials_get_the_407_envelope_with_the_challenge(app: Flask) -> None:
    response = app.test_client().get("/whoami")
    envelope(response, 407)
    assert response.headers["Proxy-Authenticate"] == 'Basic realm="tests", charset="UTF-8"'


def test_the_user_is_in_g_and_remote_user(app: Flask) -> None:
    seen = app.test_client().get("/whoami", headers=GOOD).get_json()
    assert (seen["user"], seen["remote_user"], seen["current"]) == ("alice", "alice", "alice")


def test_the_view_never_sees_proxy_authorization(app: Flask) -> None:
    assert app.test_client().get("/whoami", headers=GOOD).get_json()["seen"] is None


def test_exempt_paths_have_no_user(app: Flask) -> None:
    assert app.test_client().get("/open").get_json() == {"user": None}


def test_the_factory_form_registers_the_extension() -> None:
    gate = ProxyGate()
    app = make_app()
    gate.init_app(app)
    assert app.extensions["proxygate"] is gate
    assert gate.gate_for(app).config.realm == "tests"
    assert app.test_client().get("/whoami", headers=GOOD).status_code == 200


def test_config_keys_win_over_constructor_defaults() -> None:
    app = make_app()
    gate = ProxyGate(app, realm="from-code", mode="origin")
    config = gate.gate_for(app).config
    assert (config.realm, config.mode) == ("tests", "origin")


def test_a_misspelled_config_key_fails_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"PROXYGATE_REAML.*did you mean 'PROXYGATE_REALM'"):
        ProxyGate(make_app(PROXYGATE_REAML="x"))


def test_a_missing_users_key_fails_at_init() -> None:
    app = Flask(__name__)
    with pytest.raises(ConfigError, match="users is required"):
        ProxyGate(app)


def test_a_misspelled_constructor_option_fails_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"'reaml'.*did you mean 'realm'"):
        ProxyGate(reaml="x")


# -- Flask's error paths ----------------------------------------------------------------


def test_unknown_route_is_a_404_envelope(app: Flask) -> None:
    envelope(app.test_client().get("/nothing-here", headers=GOOD), 404)


def test_wrong_method_is_a_405_envelope_that_keeps_allow(app: Flask) -> None:
    response = app.test_client().post("/whoami", headers=GOOD)
    envelope(response, 405)
    assert "GET" in response.headers["Allow"]


def test_abort_407_is_an_envelope_with_the_challenge(app: Flask) -> None:
    response = app.test_client().get("/proxy-login", headers=GOOD)
    envelope(response, 407)
    assert response.headers["Proxy-Authenticate"].startswith("Basic ")


def test_the_407_exception_is_what_abort_raises(app: Flask) -> None:
    with app.test_request_context(), pytest.raises(ProxyAuthenticationRequired):
        abort(407)


def test_a_json_error_handlers_message_is_normalized_into_the_envelope(app: Flask) -> None:
    response = app.test_client().get("/teapot", headers=GOOD)
    assert envelope(response, 418)["details"] == "short and stout"


def test_a_json_error_handler_passes_through_when_json_errors_are_passed() -> None:
    app = make_app(PROXYGATE_PASS_JSON_ERRORS=True)
    ProxyGate(app)
    response = app.test_client().get("/teapot", headers=GOOD)
    assert response.status_code == 418
    assert response.get_json() == {"detail": "short and stout"}


def test_unhandled_exception_is_a_500_envelope_when_flask_does_not_propagate(
        caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(PROPAGATE_EXCEPTIONS=False)
    ProxyGate(app)
    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/boom", headers=GOOD)
    envelope(response, 500)
    assert SECRET.encode() not in response.data
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None  # Flask's own record, once


# Werkzeug's test client re-raises any exc_info handed to start_response, even before
# headers went out; a server does not. These two tests drive the app as a server would.


def serve(app: Flask, path: str) -> Reply:
    return call_wsgi(app, Request("GET", path, tuple(GOOD.items())))


def test_propagated_exceptions_reach_proxygate_and_its_exception_map() -> None:
    app = make_app(PROPAGATE_EXCEPTIONS=True,
                   PROXYGATE_EXCEPTION_MAP={OutOfStock: (409, "Out of stock")})
    ProxyGate(app)
    reply = serve(app, "/out-of-stock")
    assert reply.status == 409
    assert reply.json()["error"]["message"] == "Out of stock"


def test_propagated_500_is_logged_once_by_proxygate(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(PROPAGATE_EXCEPTIONS=True)
    ProxyGate(app)
    with caplog.at_level(logging.ERROR):
        reply = serve(app, "/boom")
    assert reply.status == 500
    assert SECRET.encode() not in reply.body
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.name for r in errors] == ["proxygate.errors"]


def test_with_app_testing_the_test_sees_the_raised_exception() -> None:
    app = make_app(TESTING=True)
    ProxyGate(app)
    with pytest.raises(RuntimeError, match=SECRET):
        app.test_client().get("/boom", headers=GOOD)


def test_with_app_testing_and_propagation_off_the_test_sees_the_envelope() -> None:
    app = make_app(TESTING=True, PROPAGATE_EXCEPTIONS=False)
    ProxyGate(app)
    envelope(app.test_client().get("/boom", headers=GOOD), 500)


def test_with_app_testing_the_exception_passes_the_gate_not_only_the_test_client() -> None:
    app = make_app(TESTING=True)
    ProxyGate(app)
    with pytest.raises(RuntimeError, match=SECRET):
        serve(app, "/boom")


def test_bearer_from_flask_config_keys() -> None:
    from proxygate.auth.tokens import hash_token

    app = make_app(PROXYGATE_SCHEMES=["basic", "bearer"],
                   PROXYGATE_TOKENS={"ci": hash_token("pgt_flask")})
    ProxyGate(app)
    client = app.test_client()
    response = client.get("/whoami", headers={"Proxy-Authorization": "Bearer pgt_flask"})
    assert response.status_code == 200
    assert response.json["user"] == "ci" and response.json["remote_user"] == "ci"
    refused = client.get("/whoami", headers={"Proxy-Authorization": "Bearer nope"})
    assert refused.status_code == 407
    assert refused.headers.getlist("Proxy-Authenticate")[1].endswith('error="invalid_token"')
