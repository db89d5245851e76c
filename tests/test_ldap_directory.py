"""Directory users against a real OpenLDAP slapd on 127.0.0.1, through the ASGI and WSGI shells."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxygate import hash_token
from proxygate.asgi import ProxyGateMiddleware
from proxygate.config import Config, ConfigError
from proxygate.gate import Check, Deny, Gate, HeadFromPairs
from proxygate.wsgi import ProxyGateMiddleware as WsgiProxyGate
from support.asgi_driver import RecordingApp, Result, acall_asgi, call_asgi
from support.binaries import require_binary
from support.servers import PYTHON, run_server, wait_until
from support.slapd import GROUP, READER_DN, READER_PASSWORD, UNIQUE_GROUP, Slapd
from support.wsgi_driver import call_wsgi

pytestmark = pytest.mark.server

WEIRD = "o'brien, jr*(x)"


def auth(user: str, password: str) -> list[tuple[str, str]]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return [("proxy-authorization", f"Basic {token}")]


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ldap-certs")


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Iterator[Slapd]:
    with Slapd(tmp_path_factory.mktemp("slapd"), certs=certs) as running:
        yield running


@pytest.fixture
def own_directory(tmp_path: Path, certs: Path) -> Iterator[Slapd]:
    """A slapd this test may stop and start."""
    slapd = Slapd(tmp_path / "slapd", certs=certs)
    slapd.start()
    try:
        yield slapd
    finally:
        slapd.stop()


def gated(directory: Slapd, **options: Any) -> tuple[ProxyGateMiddleware, RecordingApp]:
    app = RecordingApp()
    return ProxyGateMiddleware(app, **directory.options(**options)), app


def same_challenge(result: Result) -> tuple[int, str | None, Any]:
    body = result.json()["error"]
    return result.status, result.header("proxy-authenticate"), (body["code"], body["message"])


# -- who gets in -------------------------------------------------------------------------------


def test_good_password_passes_with_the_user(directory: Slapd) -> None:
    middleware, app = gated(directory)
    result = call_asgi(middleware, headers=auth("alice", "alice-pw"))
    assert result.status == 200
    assert app.scope["user"].username == "alice"
    assert not app.header_values("proxy-authorization")


def test_the_identity_is_the_name_as_the_directory_stores_it(directory: Slapd) -> None:
    middleware, app = gated(directory)
    assert call_asgi(middleware, headers=auth("ALICE", "alice-pw")).status == 200
    assert app.scope["user"].username == "alice"


def test_a_name_that_needs_escaping_in_filter_and_dn_logs_in(directory: Slapd) -> None:
    middleware, app = gated(directory, ldap_require_group=GROUP)
    assert call_asgi(middleware, headers=auth(WEIRD, "obrien-pw")).status == 200
    assert app.scope["user"].username == WEIRD


@pytest.mark.parametrize(("user", "password"), [
    ("alice", "wrong"),
    ("nobody", "alice-pw"),
    ("carol", "carol-pw"),          # right password, outside the required group
    ("alice", ""),                  # an unauthenticated bind would succeed
    ("*", "alice-pw"),
    ("*)(uid=*", "alice-pw"),
    ("alice)(|(uid=*", "alice-pw"),
    ("al*", "alice-pw"),
    ("o'brien*", "obrien-pw"),
])
def test_every_refusal_is_the_same_407(directory: Slapd, user: str, password: str) -> None:
    middleware, app = gated(directory, ldap_require_group=GROUP)
    reference = call_asgi(middleware, headers=auth("alice", "not-her-password"))
    result = call_asgi(middleware, headers=auth(user, password))
    assert result.status == 407
    assert same_challenge(result) == same_challenge(reference)
    assert not app.scopes


def test_an_empty_password_never_reaches_the_directory(directory: Slapd) -> None:
    middleware, _ = gated(directory)
    before = directory.binds_for("carol")
    for _ in range(3):
        assert call_asgi(middleware, headers=auth("carol", "")).status == 407
    assert call_asgi(middleware, headers=auth("carol", "x")).status == 407  # one real bind
    wait_until(lambda: directory.binds_for("carol") == before + 1, what="carol's one bind")
    assert directory.binds_for("carol") == before + 1


def test_a_non_members_guesses_never_reach_the_account(directory: Slapd) -> None:
    middleware, _ = gated(directory, ldap_require_group=GROUP, max_failures=0)
    before = directory.binds_for("carol")
    for password in ("carol-pw", "guess1", "guess2"):
        assert call_asgi(middleware, headers=auth("carol", password)).status == 407
    # slapd logs a BIND before it answers it: nothing more can arrive for these requests.
    assert directory.binds_for("carol") == before


def test_unique_member_groups_count(directory: Slapd) -> None:
    middleware, _ = gated(directory, ldap_require_group=UNIQUE_GROUP)
    assert call_asgi(middleware, headers=auth("bob", "bob-pw")).status == 200
    assert call_asgi(middleware, headers=auth("alice", "alice-pw")).status == 407


@pytest.mark.parametrize(("attribute", "login", "stored"), [
    ("sAMAccountName", "jdoe", "jdoe"),
    ("sAMAccountName", "JDoe", "jdoe"),
    ("userPrincipalName", "JDOE@corp.example.com", "jdoe@corp.example.com"),
])
def test_active_directory_shaped_logins_and_member_of(directory: Slapd, attribute: str,
                                                      login: str, stored: str) -> None:
    url = directory.url(attribute, base="ou=Corp,dc=example,dc=com",
                        search_filter="(objectClass=user)")
    middleware, app = gated(directory, users=url, ldap_require_group=GROUP)
    assert call_asgi(middleware, headers=auth(login, "jdoe-pw")).status == 200
    assert app.scope["user"].username == stored
    # mroe has the right password but no memberOf the group.
    mroe = "mroe" if attribute == "sAMAccountName" else "mroe@corp.example.com"
    assert call_asgi(middleware, headers=auth(mroe, "mroe-pw")).status == 407


def test_a_directory_serves_basic_beside_bearer_tokens(directory: Slapd) -> None:
    token = "svc-token-" + "x" * 32
    middleware, app = gated(directory, schemes=("basic", "bearer"),
                            tokens={"build-bot": hash_token(token)})
    assert call_asgi(middleware, headers=auth("alice", "alice-pw")).status == 200
    assert app.scope["user"].username == "alice"
    bearer = call_asgi(middleware, headers=[("proxy-authorization", f"Bearer {token}")])
    assert bearer.status == 200 and app.scope["user"].username == "build-bot"


def test_a_directory_cannot_serve_digest_and_says_so_at_start_up(directory: Slapd) -> None:
    with pytest.raises(ConfigError, match="cannot serve digest"):
        gated(directory, schemes=("basic", "digest"))


# -- TLS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_directory(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Iterator[Slapd]:
    """A slapd that refuses simple binds without TLS: only StartTLS gets anyone in."""
    with Slapd(tmp_path_factory.mktemp("slapd-tls"), require_tls=True, certs=certs) as running:
        yield running


def test_starttls_with_the_generated_ca_logs_in(tls_directory: Slapd) -> None:
    # The shape of docs/directories.md's OpenLDAP example: StartTLS, a CA file, a group.
    middleware, app = gated(tls_directory, ldap_starttls=True, ldap_ca_file=tls_directory.ca_file,
                            ldap_require_group=GROUP)
    assert call_asgi(middleware, headers=auth("alice", "alice-pw")).status == 200
    assert app.scope["user"].username == "alice"
    assert call_asgi(middleware, headers=auth("alice", "nope")).status == 407
    assert call_asgi(middleware, headers=auth("carol", "carol-pw")).status == 407


def test_ldaps_with_the_generated_ca_logs_in(tls_directory: Slapd) -> None:
    middleware, app = gated(tls_directory, users=tls_directory.url(scheme="ldaps"),
                            ldap_ca_file=tls_directory.ca_file)
    assert call_asgi(middleware, headers=auth("alice", "alice-pw")).status == 200
    assert app.scope["user"].username == "alice"
    assert call_asgi(middleware, headers=auth("alice", "nope")).status == 407


def test_without_starttls_the_tls_only_directory_refuses_the_service_account(
        tls_directory: Slapd, caplog: pytest.LogCaptureFixture) -> None:
    middleware, _ = gated(tls_directory)
    with caplog.at_level(logging.ERROR, logger="proxygate.auth"):
        result = call_asgi(middleware, headers=auth("alice", "alice-pw"))
    assert result.status == 503 and result.header("retry-after")
    assert "refused the service account" in caplog.text
    assert READER_PASSWORD not in caplog.text


def test_a_certificate_from_another_ca_is_refused_as_an_outage(
        tls_directory: Slapd, caplog: pytest.LogCaptureFixture) -> None:
    middleware, _ = gated(tls_directory, ldap_starttls=True,
                          ldap_ca_file=tls_directory.other_ca_file)
    with caplog.at_level(logging.ERROR, logger="proxygate.auth"):
        result = call_asgi(middleware, headers=auth("alice", "alice-pw"))
    assert result.status == 503
    assert "certificate verify failed" in caplog.text.lower()


def test_a_certificate_for_another_host_is_refused(tmp_path: Path, certs: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    # Signed by the trusted CA, but for elsewhere.example, not 127.0.0.1.
    with Slapd(tmp_path / "slapd", certs=certs, server_cert="elsewhere") as impostor:
        middleware, _ = gated(impostor, ldap_starttls=True, ldap_ca_file=impostor.ca_file)
        with caplog.at_level(logging.ERROR, logger="proxygate.auth"):
            result = call_asgi(middleware, headers=auth("alice", "alice-pw"))
        assert result.status == 503
        assert "match" in caplog.text.lower()
        # Nothing was sent in the clear: not even the service account bound.
        assert impostor.binds_for("alice") == 0
        assert "cn=reader" not in impostor.log.read_text(errors="replace").lower()


# -- the service account ----------------------------------------------------------------------


def test_a_refused_service_account_is_a_503_and_one_log_line_without_its_password(
        directory: Slapd, caplog: pytest.LogCaptureFixture) -> None:
    secret = "definitely-Not-the-reader-pw"
    middleware, _ = gated(directory, ldap_bind_password=secret)
    with caplog.at_level(logging.INFO, logger="proxygate"):
        result = call_asgi(middleware, headers=auth("alice", "alice-pw"))
    assert result.status == 503 and result.header("retry-after") == "5"
    assert result.header("proxy-authenticate") is None
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "invalidCredentials" in lines[0] and READER_DN in lines[0]
    assert secret not in caplog.text and "alice-pw" not in caplog.text
    assert secret not in result.body.decode()


# -- outages ------------------------------------------------------------------------------------


def test_directory_stopped_mid_run_cached_users_stay_in_until_their_ttl_then_restart(
        own_directory: Slapd) -> None:
    ttl = 2.0
    middleware, app = gated(own_directory, cache_ttl=ttl)
    logged_in = time.monotonic()
    assert call_asgi(middleware, headers=auth("alice", "alice-pw")).status == 200
    own_directory.stop()

    cached = call_asgi(middleware, headers=auth("alice", "alice-pw"))
    assert cached.status == 200 and app.scope["user"].username == "alice"
    new = call_asgi(middleware, headers=auth("bob", "bob-pw"))
    assert new.status == 503 and new.header("retry-after") == "5"
    assert new.header("proxy-authenticate") is None and new.json()["error"]["code"] == 503

    # The cached entry lasts its TTL and not beyond: then alice needs the directory too.
    wait_until(lambda: call_asgi(middleware, headers=auth("alice", "alice-pw")).status == 503,
               timeout=ttl + 10, interval=0.05, what="alice's cache entry to expire")
    assert time.monotonic() - logged_in >= ttl

    own_directory.start()  # same port: the pooled connections are dead, new ones work
    assert call_asgi(middleware, headers=auth("bob", "bob-pw")).status == 200
    assert call_asgi(middleware, headers=auth("alice", "alice-pw")).status == 200


def test_the_wsgi_shell_answers_an_outage_with_503_and_keeps_cached_users(
        own_directory: Slapd) -> None:
    app = WsgiProxyGate(wsgi_hello, **own_directory.options())
    assert call_wsgi(app, headers=auth("alice", "alice-pw")).status == 200
    own_directory.stop()
    assert call_wsgi(app, headers=auth("alice", "alice-pw")).status == 200
    down = call_wsgi(app, headers=auth("bob", "bob-pw"))
    assert down.status == 503 and down.header("retry-after") == "5"
    assert down.header("proxy-authenticate") is None
    own_directory.start()
    assert call_wsgi(app, headers=auth("bob", "bob-pw")).status == 200


def wsgi_hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ.get("REMOTE_USER", "").encode()]


class SilentDirectory:
    """A listener on the directory's port that accepts connections and never says a word."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()
        self._thread.join(timeout=5)


def test_a_directory_that_never_answers_stalls_nobody_else(own_directory: Slapd) -> None:
    middleware, _ = gated(own_directory, ldap_timeout=3.0)
    assert call_asgi(middleware, headers=auth("alice", "alice-pw")).status == 200
    own_directory.stop()
    silent = SilentDirectory(own_directory.port)
    try:
        async def scenario() -> tuple[list[Result], Result, bool]:
            misses = [asyncio.create_task(acall_asgi(middleware, headers=auth("bob", "bob-pw")))
                      for _ in range(3)]
            deadline = time.monotonic() + 10
            while not silent.accepted:  # a miss is now waiting on the silent directory
                assert time.monotonic() < deadline, "no connection reached the silent directory"
                await asyncio.sleep(0.01)
            cached = await acall_asgi(middleware, headers=auth("alice", "alice-pw"))
            misses_pending = not any(task.done() for task in misses)
            return await asyncio.gather(*misses), cached, misses_pending

        misses, cached, misses_pending = asyncio.run(scenario())
    finally:
        silent.close()
    # The cached user was answered by the event loop while the misses still waited.
    assert cached.status == 200 and misses_pending
    assert [m.status for m in misses] == [503, 503, 503]
    assert all(m.header("retry-after") == "5" for m in misses)


# -- attackers ----------------------------------------------------------------------------------


def test_the_throttle_stops_a_spray_before_it_reaches_the_directory(directory: Slapd) -> None:
    middleware, _ = gated(directory, max_failures=3, failure_window=60.0)
    before = directory.binds_for("dave")
    statuses = [call_asgi(middleware, headers=auth("dave", f"guess{n}")).status
                for n in range(10)]
    assert statuses == [407] * 3 + [429] * 7
    wait_until(lambda: directory.binds_for("dave") >= before + 3, what="dave's binds in the log")
    # Three failed binds against the real account, not ten: the lockout policy is safe.
    assert directory.binds_for("dave") == before + 3


def test_unknown_users_and_outsiders_cost_what_wrong_passwords_cost(directory: Slapd) -> None:
    gate = Gate(Config.from_mapping(directory.options(max_failures=0, ldap_require_group=GROUP)))

    def seconds(user: str, password: str) -> float:
        value = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        started = time.perf_counter()
        decision = gate.decide(HeadFromPairs("GET", "/", [(b"proxy-authorization",
                                                            value.encode())], "10.0.0.1"))
        assert isinstance(decision, Check)
        result = decision.run()
        elapsed = time.perf_counter() - started
        assert isinstance(result, Deny) and result.response.status == 407
        return elapsed

    seconds("alice", "warm-up")
    unknown: list[float] = []
    wrong: list[float] = []
    outsider: list[float] = []
    for number in range(25):  # interleaved, so load drifts hit all three alike
        unknown.append(seconds(f"nobody{number}", "x"))
        wrong.append(seconds("alice", f"guess{number}"))
        outsider.append(seconds("carol", "carol-pw"))  # her right password, not a member
    medians = {name: statistics.median(times) for name, times in
               (("unknown", unknown), ("wrong", wrong), ("outsider", outsider))}
    shown = ", ".join(f"{name} {value * 1000:.2f} ms" for name, value in medians.items())
    for name in ("unknown", "outsider"):
        assert 1 / 1.5 <= medians[name] / medians["wrong"] <= 1.5, shown
    # No bind was ever tried for the names that do not exist.
    log = directory.log.read_text(errors="replace").lower()
    assert not any(" bind dn=" in line and "nobody" in line for line in log.splitlines())


# -- real servers, real clients -----------------------------------------------------------------


def test_two_gunicorn_workers_share_nothing_but_the_directory(directory: Slapd) -> None:
    curl = require_binary("curl", install="apt-get install curl")
    options = json.dumps(directory.options(ldap_require_group=GROUP))
    command = [PYTHON, "-m", "gunicorn", "--bind", "127.0.0.1:{port}", "--workers", "2",
               "--preload", "apps.ldap_wsgi_app:gated"]
    env = {"PROXYGATE_TEST_GATE": options, "PROXYGATE_TEST_LDAP_WARM": "alice:alice-pw"}
    accepts = directory.accepts()
    with run_server(command, env=env) as server:
        def get(user: str, password: str) -> tuple[int, dict[str, Any] | None]:
            done = subprocess.run(
                [curl, "-s", "-o", "-", "-w", "\n%{http_code}", "-x", server.url,
                 "--proxy-user", f"{user}:{password}", "http://intranet.example/"],
                capture_output=True, text=True, timeout=30, check=False)
            body, _, code = done.stdout.rpartition("\n")
            return int(code), json.loads(body) if code == "200" else None

        pids: set[int] = set()
        for _ in range(80):  # bounded: until both workers have answered
            status, body = get("alice", "alice-pw")
            assert status == 200 and body is not None and body["remote_user"] == "alice"
            pids.add(body["pid"])
            if len(pids) == 2:
                break
        assert len(pids) == 2, "only one worker answered"
        assert get("alice", "wrong")[0] == 407
        assert get("carol", "carol-pw")[0] == 407
        assert get(WEIRD, "obrien-pw")[0] == 200
    # The master's warm-up opened a search and a bind connection; each worker opened its
    # own two instead of reading and writing on sockets it shares with the other.
    assert directory.accepts() - accepts >= 2 + 2 * 2
