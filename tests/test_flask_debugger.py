"""Werkzeug's debugger sits outside proxygate: said loudly at startup, refused without its PIN."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from flask import Flask
from werkzeug.debug import DebuggedApplication
from werkzeug.test import Client

from apps._options import ENV
from proxygate.auth.hashing import hash_password
from proxygate.config import ConfigError
from proxygate.contrib.flask import ProxyGate
from support.servers import PYTHON, fetch, run_server

USERS = {"alice": hash_password("wonderland", "bcrypt", rounds=4)}


def flask_app(**config: Any) -> Flask:
    app = Flask("debugged")
    app.config.update(**config)

    @app.get("/")
    def index() -> dict[str, str]:
        return {"hello": "gated"}

    return app


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "proxygate.flask" and r.levelno == logging.WARNING]


def test_debug_mode_warns_at_init_app_that_the_console_is_outside_the_gate(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "proxygate.flask"):
        ProxyGate(flask_app(DEBUG=True), users=USERS)
    [message] = _warnings(caplog)
    assert "/console" in message and "'debugged'" in message and "PIN" in message


def test_no_warning_without_debug_mode(caplog: pytest.LogCaptureFixture) -> None:
    app = flask_app()
    with caplog.at_level(logging.WARNING, "proxygate.flask"):
        ProxyGate(app, users=USERS)
        assert app.test_client().get("/").status_code == 407
    assert _warnings(caplog) == []


def test_a_debugger_wrapping_the_app_later_is_named_at_its_first_request_once(
        caplog: pytest.LogCaptureFixture) -> None:
    app = flask_app()
    ProxyGate(app, users=USERS)
    client = Client(DebuggedApplication(app, evalex=True))  # what app.run(debug=True) does
    with caplog.at_level(logging.WARNING, "proxygate.flask"):
        assert client.get("/").status_code == 407
        assert client.get("/").status_code == 407
    assert len(_warnings(caplog)) == 1


def test_debug_mode_with_the_pin_off_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WERKZEUG_DEBUG_PIN", "off")
    with pytest.raises(ConfigError, match="WERKZEUG_DEBUG_PIN=off"):
        ProxyGate(flask_app(DEBUG=True), users=USERS)


def test_the_pin_off_without_debug_mode_is_no_concern(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WERKZEUG_DEBUG_PIN", "off")
    ProxyGate(app := flask_app(), users=USERS)
    assert app.test_client().get("/").status_code == 407


def _env() -> dict[str, str]:
    return {ENV: json.dumps({"users": USERS, "mode": "origin"})}


@pytest.mark.server
def test_flask_run_debug_warns_and_the_console_really_is_outside_the_gate() -> None:
    command = [PYTHON, "-m", "flask", "--app", "apps.flask_debug_app", "run", "--debug",
               "--no-reload", "--host", "127.0.0.1", "--port", "{port}"]
    with run_server(command, env=_env()) as server:
        assert "Werkzeug's debugger is on" in server.output()
        assert fetch(server.url, "/").status == 401  # the app's routes are gated
        console = fetch(server.url, "/console")
        assert console.status == 200 and b"Console" in console.body  # the debugger's own


@pytest.mark.server
def test_app_run_debug_warns_at_the_first_request() -> None:
    with run_server([PYTHON, "-m", "apps.flask_debug_app", "{port}"], env=_env()) as server:
        assert "Werkzeug's debugger is on" not in server.output()
        assert fetch(server.url, "/").status == 401
        server.wait_for_output("Werkzeug's debugger is on")


@pytest.mark.server
def test_flask_run_debug_with_the_pin_off_does_not_start() -> None:
    command = [PYTHON, "-m", "flask", "--app", "apps.flask_debug_app", "run", "--debug",
               "--no-reload", "--host", "127.0.0.1", "--port", "{port}"]
    env = {**_env(), "WERKZEUG_DEBUG_PIN": "off"}
    with pytest.raises(pytest.fail.Exception, match="WERKZEUG_DEBUG_PIN=off"), \
            run_server(command, env=env):
        pass  # run_server fails the test with the output of a server that never opened its port
