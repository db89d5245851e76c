"""The adapter conformance suite: the same cases against every example, in process and under real servers.

Each example in examples/ serves ``/whoami`` (the identity and the credential headers
the view saw), ``/stream``, ``/boom`` (raises with a secret in the message),
``/forbidden`` (the framework's own 403), ``/healthz`` (exempt) and a GET-only route.
A *target* is one example reached one way: in process through a WSGI or ASGI driver,
or over a socket through gunicorn, uvicorn or Django's runserver.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from support.conformance import Reply, Request, call_asgi, call_http, call_wsgi
from support.framework_servers import (
    DEMO_PASSWORD,
    DEMO_USER,
    demo_users_file,
    load_example,
    server_for,
)
from support.servers import run_server

SECRET = "hunter2"
GOOD = "Basic " + base64.b64encode(f"{DEMO_USER}:{DEMO_PASSWORD}".encode()).decode()
WRONG = "Basic " + base64.b64encode(f"{DEMO_USER}:not-the-password".encode()).decode()
UNKNOWN = "Basic " + base64.b64encode(b"mallory:demo-password").decode()
CHALLENGE = 'Basic realm="examples", charset="UTF-8"'
STREAMED = b"".join(f"report line {n}\n".encode() for n in range(5))

SERVED = [("plain_wsgi", "gunicorn"), ("flask_app", "gunicorn"), ("django_wsgi", "gunicorn"),
          ("django_wsgi", "runserver"), ("plain_asgi", "uvicorn"), ("starlette_app", "uvicorn"),
          ("fastapi_app", "uvicorn"), ("django_asgi", "uvicorn")]
IN_PROCESS_ASGI = ["plain_asgi", "starlette_app", "fastapi_app", "django_asgi"]
IN_PROCESS_WSGI = ["plain_wsgi", "flask_app", "django_wsgi"]
WSGI_EXAMPLES = {"plain_wsgi", "flask_app", "django_wsgi"}


@dataclass
class Target:
    name: str
    example: str
    call: Callable[[Request], Reply]
    #: The client receives Proxy-Authenticate on a 407 (WSGI servers drop it).
    passes_challenge: bool
    #: The server side is real (chunks may coalesce on the socket).
    over_socket: bool

    @property
    def wsgi(self) -> bool:
        return self.example in WSGI_EXAMPLES


def _in_process(example: str) -> Target:
    kind, app = load_example(example)
    if kind == "wsgi":
        return Target(f"{example}-in-process", example, lambda r: call_wsgi(app, r),
                      passes_challenge=True, over_socket=False)
    return Target(f"{example}-in-process", example, lambda r: call_asgi(app, r),
                  passes_challenge=True, over_socket=False)


#: Every target; the in-process WSGI ones last, so the raw-header subset is a prefix and
#: pytest keeps each module-scoped server running across both lists.
TARGETS = [
    *[pytest.param((server, name), id=f"{name}-{server}", marks=pytest.mark.server)
      for name, server in SERVED],
    *[pytest.param(("in-process", name), id=f"{name}-in-process") for name in IN_PROCESS_ASGI],
    *[pytest.param(("in-process", name), id=f"{name}-in-process") for name in IN_PROCESS_WSGI],
]
#: Targets that can send repeated and underscore-spelled headers as such: the in-process
#: WSGI driver folds both into one environ key, as a permissive server would.
RAW_HEADER_TARGETS = TARGETS[:-len(IN_PROCESS_WSGI)]


def raw_headers_only(test: Callable[..., None]) -> Callable[..., None]:
    test.raw_headers_only = True  # type: ignore[attr-defined]
    return test


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" in metafunc.fixturenames:
        raw = getattr(metafunc.function, "raw_headers_only", False)
        metafunc.parametrize("target", RAW_HEADER_TARGETS if raw else TARGETS, indirect=True,
                             scope="module")


@pytest.fixture(scope="module")
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    how, example = request.param
    if how == "in-process":
        yield _in_process(example)
        return
    spec = server_for(example, how)
    env = {"DEMO_USERS_FILE": str(demo_users_file())}
    with run_server(spec.command, env=env, cwd=spec.cwd, ready=spec.ready) as server:
        url = server.url
        yield Target(f"{example}-{how}", example, lambda r: call_http(url, r),
                     passes_challenge=spec.passes_proxy_authenticate,
                     over_socket=True)


def get(path: str, *headers: tuple[str, str], method: str = "GET") -> Request:
    return Request(method, path, tuple(headers))


def authed(path: str, *headers: tuple[str, str], method: str = "GET") -> Request:
    return get(path, ("Proxy-Authorization", GOOD), *headers, method=method)


def assert_envelope(reply: Reply, status: int) -> dict[str, object]:
    assert reply.status == status, reply.body[:500]
    assert reply.header("content-type") == "application/json"
    error = reply.json()["error"]
    assert error["code"] == status
    assert isinstance(error["message"], str) and error["message"]
    assert error["request_id"] == reply.header("x-request-id")
    assert reply.header("content-length") is None or int(reply.header("content-length") or 0) \
        == len(reply.body)
    return error  # type: ignore[no-any-return]


def assert_challenge_where_the_server_lets_it_through(target: Target, reply: Reply) -> None:
    if target.passes_challenge:
        assert reply.header_all("proxy-authenticate") == [CHALLENGE]
    else:
        assert reply.header("proxy-authenticate") in (None, CHALLENGE)


# -- authentication outcomes ------------------------------------------------------------


def test_no_credentials_get_the_407_envelope(target: Target) -> None:
    reply = target.call(get("/whoami"))
    error = assert_envelope(reply, 407)
    assert error["message"] == "Proxy Authentication Required"
    assert reply.header("cache-control") == "no-store"
    assert_challenge_where_the_server_lets_it_through(target, reply)


def test_wrong_password_unknown_user_and_missing_credentials_look_the_same(target: Target) -> None:
    replies = [target.call(get("/whoami", *h)) for h in
               [(), (("Proxy-Authorization", WRONG),), (("Proxy-Authorization", UNKNOWN),)]]
    shapes = set()
    for reply in replies:
        error = assert_envelope(reply, 407)
        error.pop("request_id")
        assert_challenge_where_the_server_lets_it_through(target, reply)
        shapes.add(repr(error))
    assert len(shapes) == 1


@pytest.mark.parametrize("value", [
    "Basic !!!not-base64", "Basic " + base64.b64encode(b"no-colon").decode(), "Basic",
    "Basic ", "Bearer abc", GOOD + "trailing", GOOD + ", " + GOOD,
])
def test_malformed_credentials_get_407_never_500(target: Target, value: str) -> None:
    assert_envelope(target.call(get("/whoami", ("Proxy-Authorization", value))), 407)


@raw_headers_only
def test_two_proxy_authorization_headers_are_denied(target: Target) -> None:
    reply = target.call(get("/whoami", ("Proxy-Authorization", GOOD), ("Proxy-Authorization", GOOD)))
    assert_envelope(reply, 407)


def test_valid_credentials_reach_the_view_with_the_identity(target: Target) -> None:
    reply = target.call(authed("/whoami"))
    assert reply.status == 200, reply.body[:500]
    seen = reply.json()
    assert seen["user"] == DEMO_USER
    if "remote_user" in seen:
        assert seen["remote_user"] == DEMO_USER


def test_the_view_never_sees_proxy_authorization_and_authorization_is_untouched(
        target: Target) -> None:
    reply = target.call(authed("/whoami", ("Authorization", "Bearer app-token")))
    seen = reply.json()
    assert seen["proxy_authorization"] is None
    assert seen["authorization"] == "Bearer app-token"


@raw_headers_only
def test_underscore_credentials_are_never_believed(target: Target) -> None:
    reply = target.call(get("/whoami", ("proxy_authorization", GOOD)))
    assert_envelope(reply, 407)


@raw_headers_only
def test_underscore_twin_of_good_credentials_does_not_reach_the_view(target: Target) -> None:
    reply = target.call(authed("/whoami", ("proxy_authorization", WRONG)))
    assert reply.status == 200, reply.body[:500]
    assert reply.json()["proxy_authorization"] is None


def test_exempt_path_needs_no_credentials(target: Target) -> None:
    reply = target.call(get("/healthz"))
    assert reply.status == 200
    assert reply.json() == {"status": "ok"}


# -- the envelope on every error path ----------------------------------------------------


def test_unknown_route_is_a_404_envelope(target: Target) -> None:
    assert_envelope(target.call(authed("/no-such-report")), 404)


def test_wrong_method_is_a_405_envelope_that_keeps_allow(target: Target) -> None:
    reply = target.call(authed("/whoami", method="POST"))
    assert_envelope(reply, 405)
    allowed = {m.strip() for m in (reply.header("allow") or "").split(",")}
    assert "GET" in allowed


def test_framework_forbidden_is_a_403_envelope(target: Target) -> None:
    assert_envelope(target.call(authed("/forbidden")), 403)


def test_unhandled_exception_is_a_500_envelope_without_its_secret(target: Target) -> None:
    reply = target.call(authed("/boom"))
    error = assert_envelope(reply, 500)
    assert error["message"] == "Internal Server Error"
    for leak in (SECRET.encode(), b"RuntimeError", b"Traceback", b"postgres://"):
        assert leak not in reply.body


def test_head_of_an_error_has_no_body(target: Target) -> None:
    reply = target.call(authed("/no-such-report", method="HEAD"))
    assert reply.status == 404
    assert reply.body == b""


# -- success passes through -----------------------------------------------------------


def test_streamed_response_passes_through_unbuffered(target: Target) -> None:
    reply = target.call(authed("/stream"))
    assert reply.status == 200
    assert reply.body == STREAMED
    assert reply.header("content-length") is None  # nobody buffered it to count its length
    if not target.over_socket:
        assert len(reply.chunks) >= 5
