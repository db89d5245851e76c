"""proxygate.contrib.starlette: add_middleware, request.user, in-app handlers, FastAPI 422s and OpenAPI."""

from __future__ import annotations

import base64
import logging
import sys
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.exceptions import HTTPException
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from proxygate.auth.hashing import hash_password
from proxygate.contrib.starlette import (
    ProxyGateMiddleware,
    error_responses,
    install_error_handlers,
)
from support.framework_servers import EXAMPLES, demo_users_file
from support.servers import fetch, run_server, wait_until

SECRET = "hunter2-in-the-traceback"
USERS = {"alice": hash_password("wonderland", "bcrypt", rounds=4)}
GOOD = {"Proxy-Authorization": "Basic " + base64.b64encode(b"alice:wonderland").decode()}


@requires("authenticated")
async def private(request: Request) -> Response:
    return JSONResponse({"user": request.user.username, "display": request.user.display_name,
                         "scopes": list(request.auth.scopes)})


async def forbidden(request: Request) -> Response:
    raise HTTPException(403, "Reports are for staff.")


async def boom(request: Request) -> Response:
    raise RuntimeError(SECRET)


def starlette_app(**handler_options: Any) -> Starlette:
    app = Starlette(routes=[Route("/private", private), Route("/open", private),
                            Route("/forbidden", forbidden), Route("/boom", boom)])
    install_error_handlers(app, **handler_options)
    return app


def gated(app: Starlette) -> Starlette:
    app.add_middleware(ProxyGateMiddleware, users=USERS, realm="tests", exempt_paths=["/open"])
    return app


def envelope(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == status
    assert error["request_id"] == response.headers["x-request-id"]
    return error


# -- the middleware and the user --------------------------------------------------------


def test_add_middleware_answers_407_with_the_challenge() -> None:
    response = TestClient(gated(starlette_app())).get("/private")
    envelope(response, 407)
    assert response.headers["proxy-authenticate"] == 'Basic realm="tests", charset="UTF-8"'


def test_request_user_and_auth_satisfy_requires_authenticated() -> None:
    response = TestClient(gated(starlette_app())).get("/private", headers=GOOD)
    assert response.json() == {"user": "alice", "display": "alice", "scopes": ["authenticated"]}


def test_requires_refuses_the_anonymous_user_of_an_exempt_path_with_a_403_envelope() -> None:
    envelope(TestClient(gated(starlette_app())).get("/open"), 403)


# -- errors answered inside the app -------------------------------------------------------


def test_http_exception_becomes_an_envelope_with_its_detail() -> None:
    response = TestClient(starlette_app()).get("/forbidden")
    assert envelope(response, 403)["details"] == "Reports are for staff."


def test_unknown_route_becomes_a_404_envelope() -> None:
    envelope(TestClient(starlette_app()).get("/nothing"), 404)


def test_wrong_method_becomes_a_405_envelope_that_keeps_allow() -> None:
    response = TestClient(starlette_app()).post("/forbidden")
    envelope(response, 405)
    assert "GET" in response.headers["allow"]


def test_unhandled_exception_becomes_a_500_envelope_without_its_secret() -> None:
    response = TestClient(starlette_app(), raise_server_exceptions=False).get("/boom")
    error = envelope(response, 500)
    assert SECRET not in response.text
    assert error["message"] == "Internal Server Error"


def test_the_500_handler_leaves_logging_to_the_server(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="proxygate"):
        TestClient(starlette_app(), raise_server_exceptions=False).get("/boom")
    assert not [r for r in caplog.records if r.name.startswith("proxygate")]


def test_the_500_exception_still_reaches_the_server_and_the_test() -> None:
    with pytest.raises(RuntimeError, match=SECRET):
        TestClient(starlette_app()).get("/boom")


def test_proxygate_debug_puts_the_exception_in_a_500() -> None:
    response = TestClient(starlette_app(debug=True), raise_server_exceptions=False).get("/boom")
    details = envelope(response, 500)["details"]
    assert (details["exception"], details["message"]) == ("RuntimeError", SECRET)


def test_an_http_exception_raised_in_other_middleware_keeps_its_status() -> None:
    async def refuse(request: Request, call_next: Any) -> Response:
        raise HTTPException(401, "Missing API key.", headers={"WWW-Authenticate": "ApiKey"})

    app = starlette_app()
    app.add_middleware(BaseHTTPMiddleware, dispatch=refuse)
    response = TestClient(app, raise_server_exceptions=False).get("/forbidden")
    assert envelope(response, 401)["details"] == "Missing API key."
    assert response.headers["www-authenticate"] == "ApiKey"


# -- FastAPI ----------------------------------------------------------------------------


class Signup(BaseModel):
    name: str
    password: str
    age: int


def fastapi_app() -> FastAPI:
    app = FastAPI(responses=error_responses())
    install_error_handlers(app)

    @app.post("/signup")
    async def signup(form: Signup) -> dict[str, str]:
        return {"created": form.name}

    return app


def test_validation_error_is_a_422_envelope_listing_each_field() -> None:
    response = TestClient(fastapi_app()).post(
        "/signup", json={"name": "carol", "password": "correct horse", "age": "old"})
    details = envelope(response, 422)["details"]
    assert details == [{"loc": ["body", "age"], "msg": details[0]["msg"], "type": "int_parsing"}]


def test_validation_error_never_echoes_the_input() -> None:
    password = "correct-horse-battery"
    response = TestClient(fastapi_app()).post(
        "/signup", json={"name": "carol", "password": {"secret": password}, "age": 3})
    envelope(response, 422)
    assert password not in response.text
    assert '"input"' not in response.text and '"ctx"' not in response.text


def test_error_responses_put_the_envelope_into_openapi() -> None:
    schema = fastapi_app().openapi()
    responses = schema["paths"]["/signup"]["post"]["responses"]
    for status in ("407", "422", "500"):
        ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorEnvelope")
    error = schema["components"]["schemas"]["ErrorBody"]
    assert {"code", "message"} <= set(error["required"])


def test_error_responses_takes_the_statuses_to_document() -> None:
    assert set(error_responses(404, 409)) == {404, 409}


# -- a real server logs the 500 once ------------------------------------------------------


@pytest.mark.server
@pytest.mark.parametrize("example", ["starlette_app", "fastapi_app"])
def test_a_500_under_uvicorn_is_logged_once(example: str) -> None:
    command = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}",
               f"{example}:app"]
    env = {"DEMO_USERS_FILE": str(demo_users_file())}
    auth = {"Proxy-Authorization": "Basic " + base64.b64encode(b"demo:demo-password").decode()}
    with run_server(command, env=env, cwd=EXAMPLES,
                    ready="Application startup complete") as server:
        reply = fetch(server.url, "/boom", auth)
        assert reply.status == 500
        fetch(server.url, "/healthz")  # logged after everything /boom logged
        wait_until(lambda: '"GET /healthz' in server.output(), what="the access log of /healthz")
        output = server.output()
    assert output.count("Traceback (most recent call last)") == 1
    assert output.count("RuntimeError: lost the connection") == 1


def test_an_exception_fastapi_answered_and_reraised_is_logged_as_what_happened(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from proxygate.asgi import ProxyGateMiddleware as Gate
    from support.asgi_driver import call_asgi

    app = FastAPI()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("the report failed")

    gated = Gate(app, users=USERS, exempt_paths=["/boom"])
    with caplog.at_level(logging.ERROR, logger="proxygate"):
        result = call_asgi(gated, "GET", "/boom")
    assert result.status == 500
    (record,) = [r for r in caplog.records if r.exc_info]
    message = record.getMessage()
    assert message.startswith("the app sent its own error response, then raised; the client got "
                              "the envelope for that response. Exception while serving GET /boom "
                              "(status 500")
    assert "after the error response was sent" not in message
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
