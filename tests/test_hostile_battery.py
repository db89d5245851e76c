"""The hostile battery: requests an attacker writes by hand, against every real server we support.

uvicorn (h11 and httptools) and hypercorn run the ASGI shell, gunicorn (gthread) the WSGI
shell, all with ``/static/*`` exempt. For every case, whatever the server's own parser
does with it, the client never gets a 5xx from us, the app is never reached without
alice's credentials (a 200 names alice, or is an exempt path), no credential comes back
in the response, and the server still serves a good request afterwards.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass

import bcrypt
import pytest

from apps._options import ENV, SECRET
from support.raw_http import Raw, send_raw
from support.servers import PYTHON, RunningServer, run_server

pytestmark = pytest.mark.server

USER, PASSWORD = "alice", "open:sesame"
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode())
GOOD = b"Basic " + TOKEN
REALM = "battery"

UVICORN = [PYTHON, "-m", "uvicorn", "apps.asgi_app:gated", "--host", "127.0.0.1", "--port",
           "{port}", "--log-level", "warning"]
SERVERS = {
    # h11 refuses heads over 16 KiB unless told otherwise: raised so big values reach the gate.
    "uvicorn-h11": [*UVICORN, "--http", "h11", "--h11-max-incomplete-event-size", "131072"],
    "uvicorn-httptools": [*UVICORN, "--http", "httptools"],
    "hypercorn": [PYTHON, "-m", "hypercorn", "apps.asgi_app:gated", "--bind",
                  "127.0.0.1:{port}"],
    "gunicorn": [PYTHON, "-m", "gunicorn", "--bind", "127.0.0.1:{port}", "--workers", "1",
                 "--worker-class", "gthread", "--threads", "4", "apps.wsgi_app:gated"],
}
#: gunicorn drops Proxy-Authenticate (hop-by-hop to PEP 3333); the ASGI servers send it.
CHALLENGE_SENT = {"uvicorn-h11": True, "uvicorn-httptools": True, "hypercorn": True,
                  "gunicorn": False}


@dataclass
class Server:
    name: str
    running: RunningServer

    @property
    def port(self) -> int:
        return self.running.port


@pytest.fixture(scope="module", params=list(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    options = {"users": {USER: hashed}, "realm": REALM, "exempt_paths": ["/static/*"],
               "max_failures": 100_000}
    with run_server(SERVERS[request.param], env={ENV: json.dumps(options)}) as running:
        yield Server(request.param, running)


def request_head(*lines: bytes, method: bytes = b"GET", target: bytes = b"/",
                 close: bool = True) -> bytes:
    head = method + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += b"".join(line + b"\r\n" for line in lines)
    if close:
        head += b"Connection: close\r\n"
    return head + b"\r\n"


def seen_user(server: Server, reply: Raw) -> str | None:
    """The user the app says it served, from the test apps' JSON."""
    body = reply.json()
    found: str | None = body.get("remote_user") if server.name == "gunicorn" else body.get("user")
    return found


def assert_safe(server: Server, reply: Raw | None, *, exempt: bool = False,
                secrets: tuple[bytes, ...] = (TOKEN,)) -> Raw | None:
    """What every hostile request must get, then a good request must still pass."""
    if reply is not None:
        assert reply.status < 500, reply
        if reply.status == 200:
            user = seen_user(server, reply)
            assert user == USER or (exempt and user is None), reply
        for secret in secrets:
            assert secret not in reply.raw, "a credential came back in the response"
        assert SECRET.encode() not in reply.raw
    assert_still_serving(server)
    return reply


def assert_still_serving(server: Server) -> None:
    follow_up = send_raw(server.port, request_head(b"Proxy-Authorization: " + GOOD))
    assert follow_up is not None and follow_up.status == 200, follow_up
    assert seen_user(server, follow_up) == USER


def assert_denied(server: Server, reply: Raw | None) -> None:
    """A 407 with the envelope (and the challenge where the server lets it through), or the
    server's own 4xx refusal before the gate, or a closed connection."""
    assert_safe(server, reply)
    if reply is None or reply.status != 407:
        assert reply is None or 400 <= reply.status < 500, reply
        assert reply is None or reply.status != 200
        return
    assert reply.json()["error"]["code"] == 407
    if CHALLENGE_SENT[server.name]:
        assert reply.header(b"proxy-authenticate") == f'Basic realm="{REALM}", charset="UTF-8"'.encode()


def test_a_good_request_passes(server: Server) -> None:
    reply = send_raw(server.port, request_head(b"Proxy-Authorization: " + GOOD))
    assert reply is not None and seen_user(server, reply) == USER


# -- credentials ------------------------------------------------------------------------------


def test_duplicate_credentials_are_denied(server: Server) -> None:
    reply = send_raw(server.port, request_head(b"Proxy-Authorization: " + GOOD,
                                               b"Proxy-Authorization: " + GOOD))
    assert_denied(server, reply)


def test_comma_joined_credentials_are_denied(server: Server) -> None:
    reply = send_raw(server.port, request_head(b"Proxy-Authorization: " + GOOD + b", " + GOOD))
    assert_denied(server, reply)


def test_a_good_and_a_bad_credential_together_are_denied(server: Server) -> None:
    bad = b"Basic " + base64.b64encode(b"alice:wrong")
    reply = send_raw(server.port, request_head(b"Proxy-Authorization: " + bad,
                                               b"Proxy-Authorization: " + GOOD))
    assert_denied(server, reply)


def test_the_underscore_twin_alone_is_never_believed(server: Server) -> None:
    assert_denied(server, send_raw(server.port, request_head(b"Proxy_Authorization: " + GOOD)))


def test_the_underscore_twin_never_reaches_the_app(server: Server) -> None:
    reply = send_raw(server.port, request_head(b"Proxy-Authorization: " + GOOD,
                                               b"Proxy_Authorization: " + GOOD))
    reply = assert_safe(server, reply)
    if reply is not None and reply.status == 200:
        assert TOKEN not in reply.body  # the app saw neither spelling's value


@pytest.mark.parametrize("connection", [b"Proxy-Authorization", b"close, Proxy-Authorization",
                                        b"Proxy-Authenticate, X-Request-ID"])
def test_connection_naming_the_credential_header_never_lets_anyone_in(
        server: Server, connection: bytes) -> None:
    # A server may strip headers the client lists in Connection (hop-by-hop). Without
    # credentials that can only lose the request; with them, the app never sees them.
    assert_denied(server, send_raw(server.port, request_head(b"Connection: " + connection,
                                                             close=False)))
    reply = send_raw(server.port, request_head(b"Connection: " + connection,
                                               b"Proxy-Authorization: " + GOOD, close=False))
    reply = assert_safe(server, reply)
    if reply is not None and reply.status == 200:
        assert TOKEN not in reply.body


@pytest.mark.parametrize("lines", [
    [b"Proxy-Authorization: Basic", b" " + TOKEN],                      # folded credential
    [b"X-Note: hello", b" Proxy-Authorization: " + GOOD],              # credential hidden in a fold
    [b"X-Note: hello", b"\tProxy-Authorization: " + GOOD],
], ids=["folded-credential", "credential-in-fold", "credential-in-tab-fold"])
def test_obs_fold_never_lets_anyone_in_without_credentials(server: Server,
                                                           lines: list[bytes]) -> None:
    reply = assert_safe(server, send_raw(server.port, request_head(*lines)))
    if lines[0].startswith(b"X-Note") and reply is not None:
        assert reply.status != 200, "a credential inside another header's fold was believed"


@pytest.mark.parametrize("value", [b"Basic \x00" + TOKEN, b"Basic " + TOKEN + b"\x00",
                                   b"\x00", b"Basic " + base64.b64encode(b"alice\x00:" + b"x")])
def test_nul_in_credentials_is_denied(server: Server, value: bytes) -> None:
    assert_denied(server, send_raw(server.port, request_head(b"Proxy-Authorization: " + value)))


def test_a_64_kib_credential_is_denied_and_the_server_keeps_serving(server: Server) -> None:
    huge = b"Basic " + base64.b64encode(b"alice:" + b"x" * 49_000)
    assert len(huge) > 65_000
    assert_denied(server, send_raw(server.port, request_head(b"Proxy-Authorization: " + huge)))


def test_thousands_of_headers_are_denied_or_refused(server: Server) -> None:
    many = [b"X-Filler-%d: %d" % (index, index) for index in range(3000)]
    assert_denied(server, send_raw(server.port, request_head(*many)))


def test_thousands_of_headers_around_good_credentials_never_confuse_the_gate(
        server: Server) -> None:
    many = [b"X-Filler-%d: %d" % (index, index) for index in range(3000)]
    reply = assert_safe(server, send_raw(server.port, request_head(
        *many[:1500], b"Proxy-Authorization: " + GOOD, *many[1500:])))
    assert reply is None or reply.status in (200, 400, 413, 431), reply


# -- identity spoofing ------------------------------------------------------------------------

SPOOFS = [b"Remote-User: alice", b"Remote_User: alice", b"X-Authenticated-User: alice",
          b"X-Remote-User: alice", b"X-Forwarded-User: alice", b"X-Proxygate-User: alice"]


def test_identity_headers_alone_never_let_anyone_in(server: Server) -> None:
    assert_denied(server, send_raw(server.port, request_head(*SPOOFS)))


def test_identity_headers_never_change_who_the_app_sees(server: Server) -> None:
    mallory = [line.replace(b"alice", b"mallory") for line in SPOOFS]
    reply = send_raw(server.port, request_head(b"Proxy-Authorization: " + GOOD, *mallory))
    assert reply is not None and seen_user(server, reply) == USER


# -- targets ----------------------------------------------------------------------------------

EXEMPT_TRICKS = [b"/static/..;/admin", b"/static/..\\admin", b"/static/%2e%2e/admin",
                 b"/static/%2E%2E/admin", b"/static/..%2fadmin", b"/static/%2e%2e%2fadmin",
                 b"/static/..%5cadmin", b"/static/;/../admin", b"/static/../admin",
                 b"/static/./../admin", b"/static/%252e%252e/admin", b"/static/x%00/../admin",
                 b"/static/.. /admin"]


def test_a_plain_exempt_path_is_served_without_credentials(server: Server) -> None:
    reply = send_raw(server.port, request_head(target=b"/static/app.css"))
    assert reply is not None and reply.status == 200
    assert seen_user(server, reply) is None


@pytest.mark.parametrize("target", EXEMPT_TRICKS, ids=[t.decode("latin-1") for t in EXEMPT_TRICKS])
def test_exempt_path_tricks_never_reach_the_app_without_credentials(server: Server,
                                                                     target: bytes) -> None:
    assert_denied(server, send_raw(server.port, request_head(target=target)))


def test_nul_in_the_target_is_denied(server: Server) -> None:
    assert_denied(server, send_raw(server.port, request_head(target=b"/static/a\x00b")))


def test_connect_without_credentials_is_denied(server: Server) -> None:
    head = request_head(method=b"CONNECT", target=b"example.com:443", close=False)
    assert_denied(server, send_raw(server.port, head))


def test_connect_with_credentials_is_no_5xx(server: Server) -> None:
    # What the app makes of CONNECT is its business (h11 and hypercorn take its 200 for an
    # open tunnel and send no body): the gate let alice through, and nothing broke.
    head = request_head(b"Proxy-Authorization: " + GOOD, method=b"CONNECT",
                        target=b"example.com:443", close=False)
    reply = send_raw(server.port, head)
    assert reply is None or reply.status < 500, reply
    assert reply is None or TOKEN not in reply.raw
    assert_still_serving(server)


def test_options_asterisk_without_credentials_is_denied(server: Server) -> None:
    assert_denied(server, send_raw(server.port, request_head(method=b"OPTIONS", target=b"*")))


def test_options_asterisk_with_credentials_is_no_5xx(server: Server) -> None:
    head = request_head(b"Proxy-Authorization: " + GOOD, method=b"OPTIONS", target=b"*")
    assert_safe(server, send_raw(server.port, head))


# -- bodies that arrive slowly, or never in full ----------------------------------------------


def test_a_10_mb_body_is_not_waited_for_before_the_407(server: Server) -> None:
    head = request_head(b"Content-Type: application/octet-stream", b"Content-Length: 10485760",
                        method=b"POST")
    reply = send_raw(server.port, head, [b"x" * 65536])  # the other 10 MB never come
    assert_denied(server, reply)
    assert reply is not None and reply.status == 407


def test_a_chunked_body_trickling_byte_by_byte_is_not_waited_for(server: Server) -> None:
    head = request_head(b"Transfer-Encoding: chunked", method=b"POST")
    reply = send_raw(server.port, head, [b"10\r\n0123456789"], byte_by_byte=True)
    assert_denied(server, reply)
    assert reply is not None and reply.status == 407


def test_expect_100_continue_without_credentials_gets_the_407(server: Server) -> None:
    head = request_head(b"Expect: 100-continue", b"Content-Length: 10485760", method=b"POST")
    reply = send_raw(server.port, head)
    assert_denied(server, reply)
    assert reply is not None and reply.status == 407


def test_a_head_sent_byte_by_byte_is_decided_as_a_whole(server: Server) -> None:
    assert_denied(server, send_raw(server.port, request_head(), byte_by_byte=True))
    reply = send_raw(server.port, request_head(b"Proxy-Authorization: " + GOOD), byte_by_byte=True)
    assert reply is not None and seen_user(server, reply) == USER


def test_a_chunked_body_byte_by_byte_with_credentials_is_served(server: Server) -> None:
    head = request_head(b"Proxy-Authorization: " + GOOD, b"Transfer-Encoding: chunked",
                        b"Expect: 100-continue", method=b"POST")
    reply = send_raw(server.port, head, [b"5\r\nhello\r\n0\r\n\r\n"], byte_by_byte=True)
    assert reply is not None and reply.status == 200 and seen_user(server, reply) == USER


# -- regressions for findings 5, 6 and 8 of issue 13 ------------------------------------------


def test_finding_5_a_problem_json_500_body_never_reaches_the_client(server: Server) -> None:
    reply = send_raw(server.port, request_head(b"Proxy-Authorization: " + GOOD,
                                               target=b"/problem500"))
    assert reply is not None and reply.status == 500
    assert SECRET.encode() not in reply.raw and b"psycopg" not in reply.raw
    assert reply.json()["error"] == {**reply.json()["error"], "code": 500,
                                     "details": "The server could not complete the request."}


def test_finding_6_a_json_detail_404_becomes_the_envelope(server: Server) -> None:
    reply = send_raw(server.port, request_head(b"Proxy-Authorization: " + GOOD,
                                               target=b"/json404"))
    assert reply is not None and reply.status == 404
    error = reply.json()["error"]
    assert (error["code"], error["message"], error["details"]) == (404, "Not Found", "no order 7")


def test_finding_8_semicolon_and_backslash_tricks_are_not_exempt(server: Server) -> None:
    for target in (b"/static/..;/admin", b"/static/..\\admin"):
        reply = send_raw(server.port, request_head(target=target))
        assert reply is None or reply.status != 200, (target, reply)
