"""One rule for the details of a raised 4xx in Flask, Starlette and FastAPI (docs/errors.md).

The message the app gave is the envelope's ``details``; with none, or only the
framework's stock text, ``details`` is proxygate's sentence for the status; a 5xx
never carries the app's text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from proxygate.auth.hashing import hash_password
from support.asgi_driver import call_asgi

USERS = {"alice": hash_password("pw", "bcrypt", rounds=4)}
MESSAGE = "You may not see the reports."
SECRET = "postgres://app:hunter2@db/reports"


def flask_app() -> Callable[[str], tuple[int, dict[str, Any]]]:
    from flask import Flask, abort

    from proxygate.contrib.flask import ProxyGate

    app = Flask(__name__)
    app.config.update(PROXYGATE_USERS=USERS, PROXYGATE_EXEMPT_PATHS=["/*"],
                      PROXYGATE_MODE="origin")
    ProxyGate(app)

    @app.get("/message")
    def message() -> None:
        abort(403, MESSAGE)

    @app.get("/bare")
    def bare() -> None:
        abort(403)

    @app.get("/server")
    def server() -> None:
        abort(503, SECRET)

    client = app.test_client()

    def get(path: str) -> tuple[int, dict[str, Any]]:
        reply = client.get(path)
        return reply.status_code, json.loads(reply.data)

    return get


def _asgi(app: Any) -> Callable[[str], tuple[int, dict[str, Any]]]:
    def get(path: str) -> tuple[int, dict[str, Any]]:
        result = call_asgi(app, "GET", path)
        return result.status, json.loads(result.body)

    return get


def starlette_app() -> Callable[[str], tuple[int, dict[str, Any]]]:
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.routing import Route

    from proxygate.contrib.starlette import ProxyGateMiddleware, install_error_handlers

    def raising(status: int, detail: str | None) -> Any:
        async def endpoint(request: Request) -> None:
            raise HTTPException(status, detail)
        return endpoint

    app = Starlette(routes=[Route("/message", raising(403, MESSAGE)),
                            Route("/bare", raising(403, None)),
                            Route("/server", raising(503, SECRET))])
    install_error_handlers(app)
    app.add_middleware(ProxyGateMiddleware, users=USERS, exempt_paths=["/*"])
    return _asgi(app)


def fastapi_app() -> Callable[[str], tuple[int, dict[str, Any]]]:
    from fastapi import FastAPI, HTTPException

    from proxygate.contrib.starlette import ProxyGateMiddleware, install_error_handlers

    app = FastAPI()

    @app.get("/message")
    async def message() -> None:
        raise HTTPException(403, MESSAGE)

    @app.get("/bare")
    async def bare() -> None:
        raise HTTPException(403)

    @app.get("/server")
    async def server() -> None:
        raise HTTPException(503, SECRET)

    install_error_handlers(app)
    app.add_middleware(ProxyGateMiddleware, users=USERS, exempt_paths=["/*"])
    return _asgi(app)


FRAMEWORKS = pytest.mark.parametrize("make", [flask_app, starlette_app, fastapi_app],
                                     ids=["flask", "starlette", "fastapi"])


@FRAMEWORKS
def test_the_apps_own_message_is_the_details(make: Callable[[], Any]) -> None:
    status, body = make()("/message")
    assert status == 403
    assert body["error"]["details"] == MESSAGE


@FRAMEWORKS
def test_without_a_message_the_details_are_proxygates_sentence(make: Callable[[], Any]) -> None:
    status, body = make()("/bare")
    assert status == 403
    assert body["error"]["message"] == "Forbidden"
    assert body["error"]["details"] == "You are not allowed to do this."


@FRAMEWORKS
def test_a_5xx_never_carries_the_apps_text(make: Callable[[], Any]) -> None:
    status, body = make()("/server")
    assert status == 503
    assert SECRET not in json.dumps(body)
    assert body["error"]["message"] == "Service Unavailable"
