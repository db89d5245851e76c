"""An app's JSON errors speak the envelope by default; a 5xx body is never shown, whatever its shape."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.testclient import TestClient

from proxygate.auth.hashing import hash_password
from proxygate.config import Config
from proxygate.contrib.starlette import ProxyGateMiddleware, install_error_handlers
from proxygate.errors.handler import ErrorHandler, HeadFromPairs
from proxygate.errors.normalize import app_error_details

SECRET = "pw-9f3e-in-a-5xx-body"
USERS = {"alice": hash_password("wonderland", "bcrypt", rounds=4)}
GOOD = {"Proxy-Authorization": "Basic " + base64.b64encode(b"alice:wonderland").decode()}
JSON = [(b"content-type", b"application/json")]
PROBLEM = [(b"content-type", b"application/problem+json")]


# -- what a 4xx body says -------------------------------------------------------------------


@pytest.mark.parametrize(("body", "details"), [
    ({"detail": "Item 7 not found"}, "Item 7 not found"),                # FastAPI, Starlette, DRF
    ({"message": "no such user"}, "no such user"),                       # Flask handlers
    ({"error": "quota exceeded"}, "quota exceeded"),
    ({"description": "The browser sent a bad request."}, "The browser sent a bad request."),
    ({"type": "about:blank", "title": "Conflict", "status": 409,         # problem+json
      "detail": "version 3 is stale"}, "version 3 is stale"),
    ({"title": "Order is locked"}, "Order is locked"),
    ({"error": {"code": 404, "message": "Not Found", "details": "x"}}, "x"),
])
def test_known_shapes_carry_their_sentence(body: dict[str, Any], details: str) -> None:
    assert app_error_details(json.dumps(body).encode(), 409) == details


@pytest.mark.parametrize("body", [
    {"detail": "Not Found"},                      # says no more than the reason phrase
    {"detail": "line one\nline two"},
    {"detail": "<script>alert(1)</script>"},
    {"detail": "x" * 301},
    {"detail": {"stack": "File /srv/app.py"}},
    {"detail": 42},
    {"stack": "File /srv/app.py, line 3"},
    [],
    "a string",
])
def test_unfit_or_unknown_text_gives_the_default_sentence(body: Any) -> None:
    assert app_error_details(json.dumps(body).encode(), 404) is None


@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe", b"[" * 100_000, b"null"])
def test_broken_json_gives_the_default_sentence(body: bytes) -> None:
    assert app_error_details(body, 400) is None


def test_a_fastapi_validation_list_is_redacted_to_loc_msg_type() -> None:
    body = {"detail": [{"type": "string_too_short", "loc": ["body", "password"],
                        "msg": "String should have at least 8 characters",
                        "input": "hunter2", "ctx": {"min_length": 8, "given": "hunter2"}}]}
    assert app_error_details(json.dumps(body).encode(), 422) == [
        {"loc": ["body", "password"], "msg": "String should have at least 8 characters",
         "type": "string_too_short"}]


def test_a_problem_json_errors_list_is_redacted() -> None:
    body = {"title": "Unprocessable", "errors": [{"loc": ["q"], "msg": "bad", "type": "t",
                                                 "input": "secret-value"}]}
    assert app_error_details(json.dumps(body).encode(), 422) == [
        {"loc": ["q"], "msg": "bad", "type": "t"}]


def test_drf_field_errors_become_field_errors() -> None:
    body = {"email": ["Enter a valid email address."], "age": ["Must be positive.", "Too big."]}
    assert app_error_details(json.dumps(body).encode(), 400) == [
        {"loc": ["email"], "msg": "Enter a valid email address.", "type": "invalid"},
        {"loc": ["age"], "msg": "Must be positive.", "type": "invalid"},
        {"loc": ["age"], "msg": "Too big.", "type": "invalid"}]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_5xx_body_is_never_read_for_text(status: int) -> None:
    assert app_error_details(json.dumps({"detail": "db at 10.0.0.7 down"}).encode(), status) \
        is None


# -- the handler: 5xx bodies, envelopes, ours and lookalikes ----------------------------------


def _replace(status: int, body: bytes, headers: list[tuple[bytes, bytes]] = JSON,
             **options: Any) -> dict[str, Any]:
    handler = ErrorHandler(Config(users={}, **options))
    response = handler.replace_response(HeadFromPairs("GET", "/x", [], None), status, headers, body)
    assert response.status == status
    parsed: dict[str, Any] = json.loads(response.body)
    return parsed


@pytest.mark.parametrize("passed", [True, False])
@pytest.mark.parametrize("headers", [JSON, PROBLEM], ids=["json", "problem"])
def test_an_envelope_shaped_5xx_is_rendered_anew_without_its_details(
        passed: bool, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"error": {"code": 503, "message": f"down: {SECRET}",
                                 "details": f"Traceback ... {SECRET}"}}).encode()
    error = _replace(503, body, headers, pass_json_errors=passed)["error"]
    assert error["code"] == 503
    assert error["message"] == "Service Unavailable"
    assert error["details"] == "The service is unavailable right now."


def test_the_envelope_rendered_for_this_request_passes_as_it_came() -> None:
    handler = ErrorHandler(Config(users={}, exception_map={TimeoutError: (504, None, "Upstream slow.")}))
    head = HeadFromPairs("GET", "/x", [], None)
    ours = handler.exception_response(head, TimeoutError(), log=False)
    again = handler.replace_response(head, 504, ours.headers, ours.body)
    assert again.body == ours.body
    assert json.loads(again.body)["error"]["details"] == "Upstream slow."


def test_an_envelope_rendered_for_another_request_is_not_believed() -> None:
    handler = ErrorHandler(Config(users={}, exception_map={TimeoutError: (504, None, "Upstream slow.")}))
    other = handler.exception_response(HeadFromPairs("GET", "/a", [], None), TimeoutError(), log=False)
    again = handler.replace_response(HeadFromPairs("GET", "/b", [], None), 504, other.headers, other.body)
    assert json.loads(again.body)["error"]["details"] == "An upstream server did not answer in time."


# -- Starlette / FastAPI in process -----------------------------------------------------------


class Maintenance(HTTPException):
    """Raised in the app, answered by proxygate's in-app handler with a mapped 503."""


class Item(BaseModel):
    name: str
    price: float


def fastapi_app(*, handlers: bool, **options: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{number}")
    async def item(number: int) -> dict[str, int]:
        raise HTTPException(404, f"Item {number} not found")

    @app.post("/items")
    async def create(item: Item) -> Item:
        return item

    @app.get("/problem-500")
    async def problem_500() -> Response:
        return JSONResponse({"type": "about:blank", "title": "Internal Server Error",
                             "status": 500, "detail": f"psycopg: {SECRET}"}, status_code=500,
                            media_type="application/problem+json")

    @app.get("/maintenance")
    async def maintenance(request: Request) -> Response:
        raise Maintenance(503, SECRET)

    if handlers:
        install_error_handlers(app, exception_map={
            Maintenance: (503, "Down for maintenance", "Back at noon.")})
    app.add_middleware(ProxyGateMiddleware, users=USERS, realm="tests", **options)
    return app


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == status
    return error


@pytest.mark.parametrize("handlers", [True, False])
def test_fastapi_404_detail_becomes_the_envelope(handlers: bool) -> None:
    client = TestClient(fastapi_app(handlers=handlers))
    assert _error(client.get("/items/7", headers=GOOD), 404)["details"] == "Item 7 not found"
    assert _error(client.get("/no/such/route", headers=GOOD), 404)["details"] == \
        "Nothing was found at this address."


def test_fastapi_422_without_handlers_is_normalized_and_redacted() -> None:
    client = TestClient(fastapi_app(handlers=False))
    response = client.post("/items", headers=GOOD, json={"name": "x", "price": f"{SECRET}"})
    error = _error(response, 422)
    assert SECRET not in response.text
    assert [entry["loc"] for entry in error["details"]] == [["body", "price"]]
    assert set(error["details"][0]) == {"loc", "msg", "type"}


def test_fastapi_problem_json_500_is_never_shown() -> None:
    client = TestClient(fastapi_app(handlers=False, pass_json_errors=True))
    response = client.get("/problem-500", headers=GOOD)
    assert SECRET not in response.text
    assert _error(response, 500)["details"] == "The server could not complete the request."


def test_fastapi_json_passes_untouched_when_json_errors_are_passed() -> None:
    client = TestClient(fastapi_app(handlers=False, pass_json_errors=True))
    assert client.get("/items/7", headers=GOOD).json() == {"detail": "Item 7 not found"}


def test_an_in_app_mapped_5xx_keeps_its_message_and_details_through_the_middleware() -> None:
    client = TestClient(fastapi_app(handlers=True))
    response = client.get("/maintenance", headers=GOOD)
    assert SECRET not in response.text
    error = _error(response, 503)
    assert (error["message"], error["details"]) == ("Down for maintenance", "Back at noon.")
    assert error["request_id"] == response.headers["x-request-id"]


def test_an_in_app_problem_json_4xx_passes_as_rendered() -> None:
    client = TestClient(fastapi_app(handlers=True))
    response = client.get("/items/7", headers={**GOOD, "Accept": "application/problem+json"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "Item 7 not found"
