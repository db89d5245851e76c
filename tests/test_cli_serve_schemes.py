"""`proxygate serve --auth-scheme ... --tokens ...`: the schemes option from the command line."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from proxygate.auth.digest_file import digest_fields
from proxygate.auth.tokens import hash_token, new_token
from support.binaries import require_binary
from support.servers import PYTHON, RunningServer, run_server
from test_cli_serve import serve, serve_fails

pytestmark = pytest.mark.server

ALL = ("MD5", "SHA-256", "SHA-512-256")


def curl(server: RunningServer, *args: str) -> tuple[int, str]:
    binary = require_binary("curl", install="apt-get install curl")
    done = subprocess.run([binary, "-sS", "--max-time", "20", "-x", server.url, "-o", "-",
                           "-w", "\n%{http_code}", *args, "http://example.internal/hello"],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={"PATH": "/usr/bin:/bin"})
    body, _, status = done.stdout.rpartition("\n")
    return int(status or 0), body


def test_digest_and_basic_from_one_file_through_serve(tmp_path: Path) -> None:
    users = tmp_path / "users.digest"
    users.write_text(f"alice:team:{digest_fields('alice', 'team', 'pw', ALL)}\n")
    with serve("--users", str(users), "--realm", "team", "--auth-scheme", "digest",
               "--auth-scheme", "basic", "--digest-algorithm", "MD5") as server:
        digest = curl(server, "--proxy-digest", "--proxy-user", "alice:pw")
        basic = curl(server, "--proxy-user", "alice:pw")
        assert "schemes digest, basic" in server.output()
    assert digest[0] == 200 and json.loads(digest[1])["user"] == "alice"
    assert basic[0] == 200


def test_bearer_with_a_tokens_file_through_serve(tmp_path: Path) -> None:
    token = new_token()
    tokens = tmp_path / "tokens"
    tokens.write_text(f"ci:{hash_token(token)}\n")
    with serve("--auth-scheme", "bearer", "--tokens", str(tokens)) as server:
        ok = curl(server, "--proxy-header", f"Proxy-Authorization: Bearer {token}")
        refused = curl(server, "--proxy-header", "Proxy-Authorization: Bearer nope")
    assert ok[0] == 200 and json.loads(ok[1])["user"] == "ci"
    assert refused[0] == 407


def test_the_digest_demo_prints_a_curl_line_that_works(tmp_path: Path) -> None:
    with serve("--auth-scheme", "digest") as server:
        server.wait_for_output("curl -x")
        line = re.search(r"curl -x \S+ --proxy-digest --proxy-user (\S+) ", server.output())
        assert line is not None
        status, body = curl(server, "--proxy-digest", "--proxy-user", line.group(1))
    assert status == 200 and json.loads(body)["user"] == "demo"


@pytest.mark.parametrize(("args", "message"), [
    (["--auth-scheme", "bearer"], "--tokens"),
    (["--tokens", "t"], "--auth-scheme bearer"),
    (["--auth-scheme", "ntlm"], "invalid choice"),
])
def test_scheme_flag_mistakes_are_named(tmp_path: Path, args: list[str], message: str) -> None:
    assert message in serve_fails(tmp_path, *args)


def test_digest_over_an_htpasswd_file_fails_naming_digest(tmp_path: Path) -> None:
    from proxygate.auth.hashing import hash_password

    users = tmp_path / "htpasswd"
    users.write_text(f"alice:{hash_password('pw', 'sha256_crypt')}\n")
    assert "digest" in serve_fails(tmp_path, "--users", str(users), "--auth-scheme", "digest")


def test_forward_auth_answers_digest_and_bearer_as_its_flags_say(tmp_path: Path) -> None:
    # The generic dialect without X-Forwarded-* headers: the check request is the request,
    # so a client may ask the service itself, as a gateway would on its behalf.
    users = tmp_path / "users.digest"
    users.write_text(f"alice:team:{digest_fields('alice', 'team', 'pw', ALL)}\n")
    token = new_token()
    tokens = tmp_path / "tokens"
    tokens.write_text(f"ci:{hash_token(token)}\n")
    binary = require_binary("curl", install="apt-get install curl")
    command = [PYTHON, "-m", "proxygate", "forward-auth", "--port", "{port}", "--mode", "origin",
               "--realm", "team", "--users", str(users), "--tokens", str(tokens),
               "--auth-scheme", "digest", "--auth-scheme", "bearer"]
    with run_server(command) as server:
        def ask(*args: str) -> tuple[int, str]:
            done = subprocess.run([binary, "-sS", "--max-time", "20", "-D", "-", "-o",
                                   "/dev/null", *args, f"{server.url}/check?x=1"],
                                  capture_output=True, text=True, timeout=60, check=False,
                                  env={"PATH": "/usr/bin:/bin"})
            status = int(re.findall(r"^HTTP/1.1 (\d+)", done.stdout, re.MULTILINE)[-1])
            return status, done.stdout.lower()

        digest = ask("--digest", "-u", "alice:pw")
        bearer = ask("-H", f"Authorization: Bearer {token}")
        refused = ask("-H", "Authorization: Bearer nope")
        assert "schemes digest, bearer" in server.output()
    assert digest[0] == 200 and "x-authenticated-user: alice" in digest[1]
    assert bearer[0] == 200 and "x-authenticated-user: ci" in bearer[1]
    assert refused[0] == 401 and 'error="invalid_token"' in refused[1]


def test_forward_auth_with_bearer_alone_needs_no_users(capsys: pytest.CaptureFixture[str]) -> None:
    from proxygate.cli import main

    # Past the users check, the next mistake is the one named.
    assert main(["forward-auth", "--auth-scheme", "bearer", "--port", "99999"]) == 2
    error = capsys.readouterr().err
    assert "--port 99999" in error and "--users" not in error


def test_a_wsgi_app_behind_serve_gets_auth_type_digest(tmp_path: Path) -> None:
    from support.servers import TESTS

    users = tmp_path / "users.digest"
    users.write_text(f"alice:team:{digest_fields('alice', 'team', 'pw', ALL)}\n")
    with serve("cli_wsgi_app:app", "--app-dir", str(TESTS), "--users", str(users),
               "--realm", "team", "--auth-scheme", "digest") as server:
        status, body = curl(server, "--proxy-digest", "--proxy-user", "alice:pw")
    assert status == 200
    seen = json.loads(body)
    assert seen["remote_user"] == "alice" and seen["auth_type"] == "Digest"
    assert seen["identity_headers"] == []
