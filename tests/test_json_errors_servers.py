"""FastAPI's own JSON errors behind the middleware under real uvicorn: the envelope, never a 5xx body."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import bcrypt
import pytest

from apps._options import ENV, SECRET
from support.servers import PYTHON, RunningServer, fetch, run_server

pytestmark = pytest.mark.server

GOOD = {"Proxy-Authorization": "Basic " + base64.b64encode(b"alice:wonderland").decode()}


def _uvicorn(http: str) -> list[str]:
    return [PYTHON, "-m", "uvicorn", "apps.fastapi_app:app", "--host", "127.0.0.1",
            "--port", "{port}", "--http", http, "--log-level", "warning"]


@pytest.fixture(scope="module", params=["h11", "httptools"])
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    hashed = bcrypt.hashpw(b"wonderland", bcrypt.gensalt(4)).decode()
    env = {ENV: json.dumps({"users": {"alice": hashed}, "realm": "fastapi"})}
    with run_server(_uvicorn(request.param), env=env) as running:
        yield running


@pytest.fixture(scope="module")
def passing_server() -> Iterator[RunningServer]:
    hashed = bcrypt.hashpw(b"wonderland", bcrypt.gensalt(4)).decode()
    env = {ENV: json.dumps({"users": {"alice": hashed}, "pass_json_errors": True})}
    with run_server(_uvicorn("h11"), env=env) as running:
        yield running


def test_fastapi_404_detail_arrives_as_the_envelope(server: RunningServer) -> None:
    reply = fetch(server.url, "/items/7", GOOD)
    assert reply.status == 404
    assert reply.header("content-type") == "application/json"
    error = reply.json()["error"]
    assert (error["code"], error["message"], error["details"]) == (404, "Not Found",
                                                                   "Item 7 not found")


def test_fastapis_own_route_404_arrives_as_the_envelope(server: RunningServer) -> None:
    reply = fetch(server.url, "/no/such/route", GOOD)
    assert reply.json()["error"] == {"code": 404, "message": "Not Found",
                                     "details": "Nothing was found at this address.",
                                     "request_id": reply.header("x-request-id")}


def test_fastapi_422_arrives_redacted(server: RunningServer) -> None:
    body = json.dumps({"name": "x", "price": SECRET})
    reply = fetch(server.url, "/items", {**GOOD, "Content-Type": "application/json",
                                         "Content-Length": str(len(body))},
                  method="POST", body=body.encode())
    assert reply.status == 422
    assert SECRET.encode() not in reply.body
    [field] = reply.json()["error"]["details"]
    assert set(field) == {"loc", "msg", "type"} and field["loc"] == ["body", "price"]


def _assert_problem_500_replaced(running: RunningServer) -> None:
    reply = fetch(running.url, "/problem-500", GOOD)
    assert reply.status == 500
    assert SECRET.encode() not in reply.body and b"psycopg" not in reply.body
    assert reply.json()["error"]["details"] == "The server could not complete the request."


def test_a_problem_json_500_never_reaches_the_client(server: RunningServer) -> None:
    _assert_problem_500_replaced(server)


def test_a_problem_json_500_never_reaches_the_client_though_json_errors_are_passed(
        passing_server: RunningServer) -> None:
    _assert_problem_500_replaced(passing_server)


def test_fastapi_json_passes_untouched_when_asked(passing_server: RunningServer) -> None:
    reply = fetch(passing_server.url, "/items/7", GOOD)
    assert (reply.status, reply.json()) == (404, {"detail": "Item 7 not found"})
