"""`proxygate serve`: a real uvicorn process behind the gate, driven with real curl."""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from proxygate.auth.hashing import hash_password
from proxygate.cli import detect_interface
from support.binaries import needs_curl
from support.servers import PYTHON, RunningServer, child_env, fetch, run_server

TESTS = Path(__file__).resolve().parent


def serve(*args: str, env: dict[str, str] | None = None) -> AbstractContextManager[RunningServer]:
    return run_server([PYTHON, "-m", "proxygate", "serve", "--port", "{port}", *args], env=env)


@dataclass
class Response:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str:
        (value,) = self.headers[name.lower()]
        return value

    def json(self) -> Any:
        return json.loads(self.body)


def curl(*args: str) -> Response:
    done = subprocess.run(
        ["curl", "-sS", "-i", "--max-time", "10", *args],
        capture_output=True, env=child_env(), timeout=20, check=True,
    )
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return Response(int(status_line.split()[1]), headers, body)


def users_file(path: Path, **passwords: str) -> Path:
    path.write_text("".join(
        f"{user}:{hash_password(pw, 'bcrypt', rounds=4)}\n" for user, pw in passwords.items()
    ))
    return path


# --- the demo: no app, no users file ---------------------------------------------------


@pytest.fixture(scope="module")
def without_bcrypt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A child environment in which ``import bcrypt`` fails, as on an install without the extra."""
    shadow = tmp_path_factory.mktemp("no-bcrypt")
    (shadow / "bcrypt").mkdir()
    (shadow / "bcrypt" / "__init__.py").write_text(
        "raise ImportError('bcrypt is not installed (test shadow)')\n")
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([str(shadow), env["PYTHONPATH"]])
    return env


@pytest.fixture(scope="module")
def demo(without_bcrypt: dict[str, str]) -> Iterator[tuple[RunningServer, str]]:
    # Without the bcrypt extra: the demo must run on an install that has only `serve`.
    with serve(env=without_bcrypt) as server:
        server.wait_for_output("curl -x")
        match = re.search(r"demo user: demo  password: (\S+)", server.output())
        assert match, server.output()
        yield server, match.group(1)


@needs_curl
@pytest.mark.server
def test_demo_credentials_through_curl_as_a_proxy_reach_the_app_as_its_identity(
    demo: tuple[RunningServer, str],
) -> None:
    server, password = demo
    response = curl("-x", server.url, "--proxy-user", f"demo:{password}",
                    "http://example.internal/hello?x=1")
    assert response.status == 200
    assert response.json() == {
        "user": "demo", "method": "GET", "path": "/hello", "query": "x=1",
        "host": "example.internal",
    }


@needs_curl
@pytest.mark.server
def test_the_printed_curl_line_works_as_printed(demo: tuple[RunningServer, str]) -> None:
    server, password = demo
    (line,) = [line for line in server.output().splitlines() if line.startswith("  curl ")]
    argv = shlex.split(line)
    assert argv == ["curl", "-x", server.url, "--proxy-user", f"demo:{password}",
                    "http://example.internal/hello"]
    response = curl(*argv[1:])
    assert response.status == 200
    assert response.json()["user"] == "demo"


@needs_curl
@pytest.mark.server
@pytest.mark.parametrize("credentials", [[], ["--proxy-user", "demo:wrong"],
                                         ["--proxy-user", "nobody:x"]])
def test_without_valid_credentials_the_demo_answers_407_with_a_basic_challenge(
    demo: tuple[RunningServer, str], credentials: list[str],
) -> None:
    server, _ = demo
    response = curl("-x", server.url, *credentials, "http://example.internal/hello")
    assert response.status == 407
    assert response.header("Proxy-Authenticate") == 'Basic realm="proxygate", charset="UTF-8"'
    assert response.json()["error"]["code"] == 407


@needs_curl
@pytest.mark.server
def test_the_failing_demo_route_shows_the_500_envelope_without_internals(
    demo: tuple[RunningServer, str],
) -> None:
    server, password = demo
    response = curl("-x", server.url, "--proxy-user", f"demo:{password}",
                    "http://example.internal/boom")
    assert response.status == 500
    assert response.header("Content-Type") == "application/json"
    error = response.json()["error"]
    assert (error["code"], error["message"]) == (500, "Internal Server Error")
    assert b"DemoError" not in response.body
    assert b"on purpose" not in response.body
    assert "DemoError" in server.output()  # logged server-side instead


@needs_curl
@pytest.mark.server
def test_healthz_is_open_without_credentials(demo: tuple[RunningServer, str]) -> None:
    server, _ = demo
    response = curl("--noproxy", "*", f"{server.url}/healthz")
    assert response.status == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.server
def test_the_demo_users_file_is_removed_when_the_server_stops(tmp_path: Path) -> None:
    with serve("--log-level", "warning", env={"TMPDIR": str(tmp_path)}) as server:
        (demo_dir,) = tmp_path.iterdir()
        assert stat.S_IMODE((demo_dir / "htpasswd").stat().st_mode) == 0o600
        # uvicorn re-raises SIGTERM after its graceful shutdown; older versions exit 0.
        assert server.stop() in (0, -signal.SIGTERM)
    assert list(tmp_path.iterdir()) == []


# --- a WSGI app given as MODULE:APP, with a users file ----------------------------------


@pytest.fixture(scope="module")
def wsgi_users(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return users_file(tmp_path_factory.mktemp("wsgi") / "users",
                      alice="alice-pw", **{"zoë": "zoë-pw"})


@pytest.fixture(scope="module")
def wsgi(wsgi_users: Path) -> Iterator[RunningServer]:
    with serve("cli_wsgi_app:app", "--app-dir", str(TESTS), "--users", str(wsgi_users),
               "--realm", "wsgi test", "--exempt", "/open", "--reload-interval", "0.1") as server:
        yield server


@needs_curl
@pytest.mark.server
def test_a_wsgi_app_is_detected_and_gets_the_identity_in_remote_user(wsgi: RunningServer) -> None:
    response = curl("-x", wsgi.url, "--proxy-user", "alice:alice-pw",
                    "http://example.internal/hello")
    assert response.status == 200
    assert response.json() == {
        "remote_user": "alice", "auth_type": "Basic", "method": "GET", "path": "/hello",
        "host": "example.internal", "proxy_authorization": None, "identity_headers": [],
    }


@needs_curl
@pytest.mark.server
def test_a_non_ascii_identity_reaches_wsgi_as_pep_3333_latin_1(wsgi: RunningServer) -> None:
    response = curl("-x", wsgi.url, "--proxy-user", "zoë:zoë-pw",
                    "http://example.internal/hello")
    assert response.status == 200
    assert response.json()["remote_user"] == "zoë"


@needs_curl
@pytest.mark.server
def test_a_client_cannot_spoof_remote_user_through_headers(wsgi: RunningServer) -> None:
    response = curl("-x", wsgi.url, "--proxy-user", "alice:alice-pw",
                    "-H", "Remote-User: mallory", "-H", "X-Proxygate-Identity: mallory",
                    "http://example.internal/hello")
    assert response.json()["remote_user"] == "alice"
    open_response = curl("-x", wsgi.url, "-H", "Remote-User: mallory",
                         "http://example.internal/open")
    assert open_response.status == 200
    assert open_response.json()["remote_user"] is None


@needs_curl
@pytest.mark.server
def test_a_wsgi_app_without_credentials_gets_the_407_with_the_given_realm(wsgi: RunningServer) -> None:
    response = curl("-x", wsgi.url, "http://example.internal/hello")
    assert response.status == 407
    assert response.header("Proxy-Authenticate") == 'Basic realm="wsgi test", charset="UTF-8"'
    assert "demo user" not in wsgi.output()


@needs_curl
@pytest.mark.server
def test_a_user_added_with_the_cli_while_serving_gets_in_without_a_restart(
    wsgi: RunningServer, wsgi_users: Path
) -> None:
    assert curl("-x", wsgi.url, "--proxy-user", "carol:carol-pw",
                "http://example.internal/hello").status == 407
    added = subprocess.run(
        [PYTHON, "-m", "proxygate", "users", "add", str(wsgi_users), "carol",
         "--password-stdin", "--rounds", "4"],
        input=b"carol-pw\n", capture_output=True, env=child_env(), timeout=30, check=False,
    )
    assert added.returncode == 0, added.stderr
    deadline = time.monotonic() + 10
    while True:
        response = curl("-x", wsgi.url, "--proxy-user", "carol:carol-pw",
                        "http://example.internal/hello")
        if response.status == 200 or time.monotonic() > deadline:
            break
        # Each miss is a failed login the throttle counts: poll no faster than the reload.
        time.sleep(0.25)
    assert response.status == 200
    assert response.json()["remote_user"] == "carol"


# --- origin mode --------------------------------------------------------------------------


@needs_curl
@pytest.mark.server
def test_origin_mode_asks_with_401_and_reads_authorization(tmp_path: Path) -> None:
    users = users_file(tmp_path / "users", alice="alice-pw")
    with serve("--mode", "origin", "--users", str(users), "--log-level", "warning") as server:
        denied = curl(f"{server.url}/hello", "--noproxy", "*")
        assert denied.status == 401
        assert denied.header("WWW-Authenticate") == 'Basic realm="proxygate", charset="UTF-8"'
        allowed = curl(f"{server.url}/hello", "--noproxy", "*", "-u", "alice:alice-pw")
        assert allowed.status == 200
        assert allowed.json()["user"] == "alice"


# --- errors before serving ----------------------------------------------------------------


def serve_fails(tmp_path: Path, *args: str) -> str:
    done = subprocess.run(
        [PYTHON, "-m", "proxygate", "serve", "--port", "1", *args],
        capture_output=True, text=True, env=child_env(), timeout=30, cwd=tmp_path,
        stdin=subprocess.DEVNULL, check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    return done.stderr


def test_an_unknown_module_is_a_usage_error(tmp_path: Path) -> None:
    assert "no such module" in serve_fails(tmp_path, "no_such_module_here:app")


def test_a_missing_attribute_is_a_usage_error(tmp_path: Path) -> None:
    stderr = serve_fails(tmp_path, "cli_wsgi_app:nothing", "--app-dir", str(TESTS))
    assert "has no attribute 'nothing'" in stderr


def test_an_app_module_that_raises_on_import_is_reported_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken_app.py").write_text("raise RuntimeError('cannot start')\n")
    stderr = serve_fails(tmp_path, "broken_app:app")
    assert "RuntimeError: cannot start" in stderr
    assert "broken_app.py:1" in stderr


def test_an_app_of_unclear_interface_asks_for_the_interface_option(tmp_path: Path) -> None:
    (tmp_path / "odd_app.py").write_text("def app(*args):\n    pass\n")
    assert "--interface" in serve_fails(tmp_path, "odd_app:app")


def test_an_unusable_users_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "users").write_text("alice:s3cret-in-clear\n")
    stderr = serve_fails(tmp_path, "--users", str(tmp_path / "users"))
    assert "line 1" in stderr
    assert "s3cret-in-clear" not in stderr


def test_a_realm_with_a_quote_is_refused(tmp_path: Path) -> None:
    assert "realm" in serve_fails(tmp_path, "--realm", 'say "hi"')


# --- interface detection ------------------------------------------------------------------


def wsgi_function(environ: Any, start_response: Any) -> list[bytes]:
    return []


async def asgi_function(scope: Any, receive: Any, send: Any) -> None:
    return None


class WSGIObject:
    def __call__(self, environ: Any, start_response: Any) -> list[bytes]:
        return []


class ASGIObject:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        return None


def sync_three(scope: Any, receive: Any, send: Any) -> Any:
    return asgi_function(scope, receive, send)


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        (wsgi_function, "wsgi"),
        (WSGIObject(), "wsgi"),
        (asgi_function, "asgi"),
        (ASGIObject(), "asgi"),
        (functools.partial(asgi_function), "asgi"),
        (sync_three, "asgi"),
    ],
)
def test_detect_interface_from_the_call_signature(app: object, expected: str) -> None:
    assert detect_interface(app) == expected


def test_detect_interface_knows_flask_and_starlette() -> None:
    flask = pytest.importorskip("flask")
    applications = pytest.importorskip("starlette.applications")
    assert detect_interface(flask.Flask("x")) == "wsgi"
    assert detect_interface(applications.Starlette()) == "asgi"


@pytest.mark.parametrize("app", [lambda *args: None, lambda a, b=None, c=None: None, 42])
def test_detect_interface_refuses_to_guess(app: object) -> None:
    with pytest.raises(ValueError, match=r"."):
        detect_interface(app)


def test_without_the_bcrypt_extra_a_bcrypt_users_file_is_refused_naming_the_extra(
    tmp_path: Path, without_bcrypt: dict[str, str]
) -> None:
    # The demo avoids bcrypt; real use keeps the clear message naming the extra.
    users = users_file(tmp_path / "users", alice="pw")
    done = subprocess.run(
        [PYTHON, "-m", "proxygate", "serve", "--users", str(users), "--port", "0"],
        capture_output=True, text=True, env=without_bcrypt, timeout=60, check=False,
    )
    assert done.returncode == 2
    assert "bcrypt hashes need the 'bcrypt' extra: pip install 'proxygate[bcrypt]'" in done.stderr
    assert "unexpected" not in done.stderr


def test_without_the_bcrypt_extra_adding_a_user_names_the_extra(
    tmp_path: Path, without_bcrypt: dict[str, str]
) -> None:
    done = subprocess.run(
        [PYTHON, "-m", "proxygate", "users", "add", str(tmp_path / "users"), "alice",
         "--password-stdin"],
        input="pw\n", capture_output=True, text=True, env=without_bcrypt, timeout=60, check=False,
    )
    assert done.returncode == 2
    assert "bcrypt needs the 'bcrypt' extra: pip install 'proxygate[bcrypt]'" in done.stderr
    assert not (tmp_path / "users").exists()


@pytest.mark.server
def test_a_fastapi_exception_under_serve_is_logged_as_what_happened(tmp_path: Path) -> None:
    # FastAPI's ServerErrorMiddleware sends its 500, then re-raises: the log says so,
    # not that something raised after proxygate's own response.
    (tmp_path / "reports.py").write_text(
        "from fastapi import FastAPI\n"
        "app = FastAPI()\n"
        "@app.get('/boom')\n"
        "async def boom():\n"
        "    raise RuntimeError('the report failed')\n"
    )
    users = users_file(tmp_path / "users", alice="pw")
    with serve("reports:app", "--app-dir", str(tmp_path), "--users", str(users),
               "--exempt", "/boom", "--exempt", "/healthz") as server:
        server.wait_for_output("Application startup complete")
        reply = fetch(server.url, "/boom")
        assert reply.status == 500
        assert reply.json()["error"]["message"] == "Internal Server Error"
        fetch(server.url, "/healthz")  # logged after everything /boom logged
        server.wait_for_output('"GET /healthz')
        output = server.output()
    assert ("the app sent its own error response, then raised; the client got the envelope "
            "for that response. Exception while serving GET /boom (status 500") in output
    assert "after the error response was sent" not in output
    assert output.count("RuntimeError: the report failed") == 1
