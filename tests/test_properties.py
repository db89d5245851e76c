"""Property tests over every parser an attacker can feed, and over the gate's decision.

On arbitrary input each parser raises only its own documented error (or none) and reads
back what proxygate renders; the gate answers any header set with a Forward or a
well-formed Deny, never an exception, and forwards only the right credentials.

The default run is small and derandomized (fast, never flaky); CI's deeper run sets
``HYPOTHESIS_PROFILE=deep`` (see ``support/hypothesis_profiles.py``).

Credential schemes are entries of :data:`SCHEMES` (Basic, Digest, Bearer): a new scheme is one
function returning a :class:`CredentialScheme` (how to parse, its error, valid values and
how to render them), appended to the list; every property below then covers it.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from proxygate._http import (
    AuthParamError,
    is_token,
    parse_accept,
    parse_auth_params,
    preferred_media_type,
    quote_string,
    split_absolute_target,
    split_authorization,
)
from proxygate.auth.hashing import hash_password
from proxygate.auth.htpasswd import (
    HtpasswdError,
    check_user_name,
    index_htpasswd_lines,
    parse_htpasswd,
    set_htpasswd_entry,
)
from proxygate.auth.schemes.basic import BasicCredentials, MalformedCredentials
from proxygate.auth.schemes.bearer import BearerCredentials
from proxygate.auth.schemes.digest import DigestCredentials
from proxygate.config import FORWARDED_HEADERS, Config
from proxygate.errors.envelope import ErrorRenderer
from proxygate.errors.handler import MAX_REQUEST_ID, ErrorHandler
from proxygate.errors.normalize import app_error_details, safe_text
from proxygate.errors.policy import is_envelope
from proxygate.gate import Check, Deny, Forward, Gate, HeadFromPairs, _hops

#: Stored hashes the users files and gates below use.
STORED = [hash_password("pw", "sha256_crypt"), hash_password("pw", "bcrypt", rounds=4)]
#: Text without control characters: what a user name or password may hold.
PRINTABLE = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40)


def _mutations(valid: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Valid values, values cut or spliced with arbitrary bytes, and arbitrary bytes."""
    spliced = st.tuples(valid, st.binary(max_size=8), st.integers(0, 64)).map(
        lambda parts: parts[0][:parts[2]] + parts[1] + parts[0][parts[2]:])
    return st.one_of(valid, spliced, valid.map(lambda v: v[: len(v) // 2]),
                     st.binary(max_size=120))


# -- credential schemes -----------------------------------------------------------------------


@dataclass(frozen=True)
class CredentialScheme:
    """What the properties need to know of one scheme's credential parser."""

    name: str
    #: Header value -> credentials, None for another scheme; raises only ``error``.
    parse: Callable[[bytes], Any]
    error: type[Exception]
    #: Credentials this scheme can carry, and how proxygate renders them.
    valid: st.SearchStrategy[Any]
    render: Callable[[Any], bytes]


def basic_scheme() -> CredentialScheme:
    user = PRINTABLE.filter(lambda text: bool(text) and ":" not in text)
    return CredentialScheme(
        name="basic",
        parse=BasicCredentials.from_header,
        error=MalformedCredentials,
        valid=st.builds(BasicCredentials, user, PRINTABLE),
        render=BasicCredentials.to_header,
    )




HEX = "0123456789abcdef"
#: Printable ASCII without '"' and '\\': nonce, uri, cnonce and opaque travel as they are.
ASCII_VALUE = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                                    blacklist_characters='"\\\\'), min_size=1, max_size=30)


def digest_scheme() -> CredentialScheme:
    algorithm = st.sampled_from(["MD5", "SHA-256", "SHA-512-256"])
    user = PRINTABLE.filter(bool)

    def credentials(draw_algorithm: str) -> st.SearchStrategy[DigestCredentials]:
        length = 32 if draw_algorithm == "MD5" else 64
        return st.builds(
            DigestCredentials, username=user, realm=PRINTABLE, nonce=ASCII_VALUE,
            uri=ASCII_VALUE, response=st.text(HEX, min_size=length, max_size=length),
            algorithm=st.just(draw_algorithm), nc=st.text(HEX, min_size=8, max_size=8),
            cnonce=ASCII_VALUE, userhash=st.booleans(),
            opaque=st.none() | ASCII_VALUE, extended=st.booleans())

    return CredentialScheme(
        name="digest",
        parse=DigestCredentials.from_header,
        error=MalformedCredentials,
        valid=algorithm.flatmap(credentials),
        render=DigestCredentials.to_header,
    )


def bearer_scheme() -> CredentialScheme:
    token = st.from_regex(r"[A-Za-z0-9\-._~+/]+=*", fullmatch=True)
    return CredentialScheme(
        name="bearer",
        parse=BearerCredentials.from_header,
        error=MalformedCredentials,
        valid=token.map(BearerCredentials),
        render=BearerCredentials.to_header,
    )


SCHEMES = [basic_scheme(), digest_scheme(), bearer_scheme()]
SCHEME_IDS = [scheme.name for scheme in SCHEMES]


def _header_values(scheme: CredentialScheme) -> st.SearchStrategy[bytes]:
    base64ish = st.binary(max_size=60).map(lambda raw: b"Basic " + base64.b64encode(raw))
    return _mutations(st.one_of(scheme.valid.map(scheme.render), base64ish))


@pytest.mark.parametrize("scheme", SCHEMES, ids=SCHEME_IDS)
@given(data=st.data())
def test_a_credentials_parser_raises_only_its_own_error(scheme: CredentialScheme,
                                                        data: st.DataObject) -> None:
    value = data.draw(_header_values(scheme))
    try:
        scheme.parse(value)
    except scheme.error as exc:
        # The message says what is wrong, never the value (fixed texts are shorter than 16).
        token = value.partition(b" ")[2].strip()
        assert len(token) < 16 or token.decode("latin-1") not in str(exc)


@pytest.mark.parametrize("scheme", SCHEMES, ids=SCHEME_IDS)
@given(data=st.data())
def test_credentials_read_back_what_was_rendered(scheme: CredentialScheme,
                                                 data: st.DataObject) -> None:
    credentials = data.draw(scheme.valid)
    assert scheme.parse(scheme.render(credentials)) == credentials


@pytest.mark.parametrize("scheme", SCHEMES, ids=SCHEME_IDS)
@given(data=st.data())
def test_credentials_repr_never_shows_the_secret(scheme: CredentialScheme,
                                                 data: st.DataObject) -> None:
    credentials = data.draw(scheme.valid)
    # Basic's password, Bearer's token, Digest's response.
    field = next(f for f in ("password", "token", "response") if hasattr(credentials, f))
    secret = getattr(credentials, field)
    blank = dataclasses.replace(credentials, **{field: ""})
    assume(len(secret) >= 3 and secret not in repr(blank))  # not shown anyway, as a user name
    assert secret not in repr(credentials)


@given(st.binary(max_size=200))
def test_split_authorization_returns_a_token_scheme_or_none(value: bytes) -> None:
    parts = split_authorization(value)
    if parts is not None:
        scheme, token = parts
        assert scheme == scheme.lower() and scheme and token
        assert b" " not in scheme and b"," not in token


# -- quoted-strings and auth-param lists -----------------------------------------------------


def _unquote(quoted: str) -> str:
    """RFC 9110 §5.6.4 read by the book: the reference the renderer must agree with."""
    assert quoted[0] == quoted[-1] == '"'
    return re.sub(r"\\(.)", r"\1", quoted[1:-1], flags=re.DOTALL)


@given(st.text(max_size=60))
def test_quote_string_renders_what_a_reader_reads_back_or_refuses_controls(text: str) -> None:
    try:
        quoted = quote_string(text)
    except ValueError:
        assert any((ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F for ch in text)
        return
    assert _unquote(quoted) == text
    assert "\r" not in quoted and "\n" not in quoted


PARAM_NAME = st.from_regex(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}", fullmatch=True)
PARAM_VALUE = st.text(st.characters(max_codepoint=0xFF, blacklist_categories=("Cc",)),
                      max_size=30)


@given(st.dictionaries(PARAM_NAME.map(str.lower), st.tuples(PARAM_VALUE, st.booleans()),
                       max_size=5))
def test_an_auth_param_list_reads_back_what_was_rendered(
        params: dict[str, tuple[str, bool]]) -> None:
    rendered = ", ".join(
        f"{name}={value}" if as_token and value and is_token(value.encode("latin-1"))
        else f"{name}={quote_string(value)}" for name, (value, as_token) in params.items())
    assert parse_auth_params(rendered) == {name: value for name, (value, _) in params.items()}


@given(st.one_of(st.text(max_size=80), st.binary(max_size=80).map(lambda b: b.decode("latin-1"))))
def test_parse_auth_params_raises_only_auth_param_error(text: str) -> None:
    try:
        parsed = parse_auth_params(text)
    except AuthParamError as exc:
        assert len(text) < 16 or text not in str(exc)  # says where, never the value
        return
    assert all(name == name.lower() and is_token(name.encode()) for name in parsed)


# -- Accept -----------------------------------------------------------------------------------

OFFERS = ("application/json", "application/problem+json", "text/html")
MEDIA = st.sampled_from(["application/json", "application/problem+json", "text/html", "*/*",
                         "application/*", "text/*", "image/png", ""])
ACCEPT = st.one_of(
    st.text(max_size=80),
    st.lists(st.tuples(MEDIA, st.one_of(st.none(), st.floats(allow_nan=True),
                                        st.text(max_size=5))), max_size=5).map(
        lambda items: ", ".join(m if q is None else f"{m};q={q}" for m, q in items)),
)


@given(ACCEPT)
def test_accept_negotiation_always_picks_an_offer(accept: str) -> None:
    assert preferred_media_type(accept, OFFERS) in OFFERS
    for media, quality in parse_accept(accept):
        assert 0.0 <= quality <= 1.0 and media == media.strip().lower()


@given(st.sampled_from(OFFERS), st.sampled_from(OFFERS))
def test_an_offer_asked_for_alone_is_the_one_given(wanted: str, other: str) -> None:
    assert preferred_media_type(f"{wanted}, {other};q=0.5" if other != wanted else wanted,
                                OFFERS) == wanted


# -- request ids ------------------------------------------------------------------------------

SAFE_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_REQUEST_ID}}}")
HANDLER = ErrorHandler(Config(users={}))


@given(st.lists(_mutations(st.from_regex(SAFE_ID, fullmatch=True).map(str.encode)), max_size=3))
def test_a_request_id_is_always_safe_and_echoed_only_when_sent_safe_once(
        sent: list[bytes]) -> None:
    head = HeadFromPairs("GET", "/", [(b"x-request-id", value) for value in sent])
    found = HANDLER.request_id(head)
    assert SAFE_ID.fullmatch(found)
    if len(sent) == 1 and SAFE_ID.fullmatch(sent[0].decode("latin-1")):
        assert found == sent[0].decode()
    elif sent:
        assert len(found) == 32  # a generated one, never a mangled copy
    response = HANDLER.render(head, 404)
    assert (b"x-request-id", found.encode()) in response.headers
    assert json.loads(response.body)["error"]["request_id"] == found


# -- absolute-form targets --------------------------------------------------------------------

HOST = st.from_regex(r"[a-z0-9.-]{1,20}(:[0-9]{1,5})?", fullmatch=True)
PATH = st.from_regex(r"(/[A-Za-z0-9._~!$&'()*+,;=:@%-]*){1,4}", fullmatch=True)
QUERY = st.from_regex(r"[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,20}", fullmatch=True)


@given(st.text(max_size=120))
def test_split_absolute_target_never_raises_and_paths_start_with_a_slash(target: str) -> None:
    parts = split_absolute_target(target)
    if parts is not None:
        host, path, _query = parts
        assert path.startswith("/") and "@" not in host and "#" not in path


@given(st.sampled_from(["http", "https", "HTTP"]), HOST, PATH, QUERY, st.booleans())
def test_an_absolute_target_reads_back_its_parts(scheme: str, host: str, path: str, query: str,
                                                 userinfo: bool) -> None:
    target = f"{scheme}://{'user:pw@' if userinfo else ''}{host}{path}?{query}#frag"
    assert split_absolute_target(target) == (host, path, query)


# -- forwarded headers, as the gate reads them ------------------------------------------------

ADDRESS = st.ip_addresses().map(str)


def _forwarded_element(address: str) -> str:
    if ":" in address:  # IPv6: bracketed and quoted, a port sometimes
        return f'for="[{address}]:8080"'
    return f"for={address};proto=https"


@given(st.lists(ADDRESS, min_size=1, max_size=5))
def test_x_forwarded_for_reads_back_its_hops(hops: list[str]) -> None:
    assert _hops(b"x-forwarded-for", [", ".join(hops).encode()]) == hops


@given(st.lists(ADDRESS, min_size=1, max_size=5))
def test_forwarded_reads_back_its_for_hops(hops: list[str]) -> None:
    value = ", ".join(_forwarded_element(hop) for hop in hops).encode()
    assert [str(ipaddress.ip_address(hop)) for hop in _hops(b"forwarded", [value])] == hops


def _forwarded_gate(header: str) -> Gate:
    return Gate(Config(users={"alice": STORED[0]}, trusted_proxies=("127.0.0.0/8",),
                       forwarded_header=header))


GATES = {header: _forwarded_gate(header) for header in FORWARDED_HEADERS.values()}
HEADER_BYTES = _mutations(st.lists(ADDRESS, max_size=3).map(lambda hops: ", ".join(hops).encode()))


@pytest.mark.parametrize("configured", sorted(GATES))
@given(own=st.lists(HEADER_BYTES, max_size=2), other=st.lists(HEADER_BYTES, max_size=2))
def test_the_client_address_comes_from_the_configured_header_alone(
        configured: str, own: list[bytes], other: list[bytes]) -> None:
    gate = GATES[configured]
    name = configured.lower().encode()
    others = [key.encode() for key in FORWARDED_HEADERS if key.encode() != name]
    alone = HeadFromPairs("GET", "/", [(name, v) for v in own], "127.0.0.1")
    with_others = HeadFromPairs("GET", "/", [*[(o, v) for o in others for v in other],
                                             *[(name, v) for v in own]], "127.0.0.1")
    found = gate.client_address(alone)
    assert found == gate.client_address(with_others)
    text = b",".join(own).decode("latin-1")
    assert found == "127.0.0.1" or (found is not None and found in text)


@given(st.lists(HEADER_BYTES, max_size=2), ADDRESS)
def test_an_untrusted_peer_is_the_client_whatever_it_sends(values: list[bytes],
                                                           peer: str) -> None:
    if ipaddress.ip_address(peer) in ipaddress.ip_network("127.0.0.0/8"):
        return
    head = HeadFromPairs("GET", "/", [(b"x-forwarded-for", v) for v in values], peer)
    assert GATES["X-Forwarded-For"].client_address(head) == peer


# -- htpasswd lines ---------------------------------------------------------------------------

USER_NAME = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)


@given(st.lists(st.one_of(st.text(max_size=60),
                          st.tuples(USER_NAME, st.sampled_from(STORED)).map(":".join)),
                max_size=6))
def test_parse_htpasswd_raises_only_htpasswd_error(lines: list[str]) -> None:
    try:
        users = parse_htpasswd("\n".join(lines))
    except HtpasswdError as exc:
        for stored in STORED:
            assert stored not in str(exc)  # names the line, never the hash
        return
    for user, stored in users.items():
        assert user and ":" not in user and stored


@given(st.lists(st.tuples(USER_NAME, st.sampled_from(STORED)), max_size=5))
def test_htpasswd_entries_read_back_what_was_written(entries: list[tuple[str, str]]) -> None:
    lines: list[str] = ["# proxygate users\n"]
    expected: dict[str, str] = {}
    for user, stored in entries:
        try:
            check_user_name(user)
        except ValueError:
            continue
        lines = set_htpasswd_entry(lines, user, stored)
        expected[user] = stored
    assert parse_htpasswd("".join(lines)) == expected
    assert {u: e.stored for u, e in index_htpasswd_lines("".join(lines).splitlines()).items()} \
        == expected


# -- an app's JSON error bodies, as the rewrite reads them ------------------------------------

JSON_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=40)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(
                                ["detail", "message", "error", "description", "title",
                                 "errors", "loc", "msg", "type", "input", "code", "details",
                                 "email"]), inner, max_size=4)),
    max_leaves=12)
ERROR_BODY = st.one_of(JSON_VALUE.map(lambda value: json.dumps(value).encode()),
                       st.binary(max_size=80))


@given(ERROR_BODY, st.integers(400, 599))
def test_an_app_error_body_yields_only_safe_details(body: bytes, status: int) -> None:
    details = app_error_details(body, status)
    if status >= 500:
        assert details is None
    elif isinstance(details, str):
        assert safe_text(details) == details
    elif details is not None:
        assert isinstance(details, list) and details
        for entry in details:
            assert set(entry) == {"loc", "msg", "type"}
    assert is_envelope(body, status) in (True, False)


# -- the gate's decision on arbitrary header sets ---------------------------------------------

PASSWORD = "wonder:land"
STORED_ALICE = hash_password(PASSWORD, "bcrypt", rounds=4)
GOOD = BasicCredentials("alice", PASSWORD).to_header()
DECIDING_GATES = {
    mode: Gate(Config(users={"alice": STORED_ALICE}, realm="fuzz", mode=mode,
                      exempt_paths=("/static/*", "/healthz"), max_failures=1_000_000))
    for mode in ("proxy", "origin")
}
#: Where each mode reads credentials from, and where its challenge goes.
CREDENTIAL_HEADER = {"proxy": b"proxy-authorization", "origin": b"authorization"}
CHALLENGE = {"proxy": (407, b"proxy-authenticate"), "origin": (401, b"www-authenticate")}
NAMES = st.one_of(
    st.sampled_from([b"proxy-authorization", b"proxy_authorization", b"authorization",
                     b"accept", b"x-request-id", b"x-forwarded-for", b"forwarded",
                     b"proxy-connection", b"remote-user", b"x-authenticated-user"]),
    st.binary(min_size=1, max_size=12),
)
VALUES = st.one_of(_mutations(st.just(GOOD)), _header_values(SCHEMES[0]),
                   st.sampled_from([b"application/problem+json", b"text/html", b"*/*"]))
PATHS = st.one_of(st.sampled_from(["/", "/static/app.css", "/static/..;/admin", "/healthz",
                                   "/static/%2e%2e/admin", "/healthz/x"]),
                  st.text(max_size=30).map(lambda text: "/" + text))


def _run(decision: Forward | Deny | Check) -> Forward | Deny:
    return decision.run() if isinstance(decision, Check) else decision


def _well_formed(deny: Deny, mode: str, credential_values: list[bytes]) -> None:
    response = deny.response
    headers = dict(response.headers)
    status = response.status
    challenge_status, challenge_header = CHALLENGE[mode]
    assert status in (challenge_status, 429, 503), status
    assert headers[b"content-length"] == str(len(response.body)).encode()
    if status == challenge_status:
        assert headers[challenge_header] == b'Basic realm="fuzz", charset="UTF-8"'
    body = json.loads(response.body)
    if headers[b"content-type"] == b"application/problem+json":
        assert body["status"] == status and isinstance(body["title"], str)
    else:
        assert headers[b"content-type"] == b"application/json"
        assert body["error"]["code"] == status and isinstance(body["error"]["message"], str)
    shown = response.body + b"".join(value for _, value in response.headers)
    for value in credential_values:
        assert len(value) < 12 or value not in shown  # no credential echoed


@pytest.mark.parametrize("mode", sorted(DECIDING_GATES))
@given(method=st.sampled_from(["GET", "HEAD", "POST", "OPTIONS", "CONNECT"]), path=PATHS,
       headers=st.lists(st.tuples(NAMES, VALUES), max_size=6))
@example(method="GET", path="/", headers=[(b"proxy-authorization", GOOD)])
@example(method="GET", path="/", headers=[(b"authorization", GOOD)])
@example(method="GET", path="/", headers=[(b"proxy-authorization", GOOD)] * 2)
@example(method="GET", path="/", headers=[(b"proxy_authorization", GOOD)])
@example(method="GET", path="/static/..;/admin", headers=[(b"remote-user", b"alice")])
def test_the_gate_answers_any_header_set_with_forward_or_a_well_formed_deny(
        mode: str, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> None:
    gate = DECIDING_GATES[mode]
    head = HeadFromPairs(method, path, headers, "10.0.0.1")
    result = _run(gate.decide(head))
    credentials = [value for name, value in headers if name == CREDENTIAL_HEADER[mode]]
    if isinstance(result, Deny):
        if method != "HEAD":
            _well_formed(result, mode, credentials)
        return
    assert isinstance(result, Forward)
    if result.identity is None:
        assert gate.is_exempt(path)
    else:
        # Forwarded as alice only on exactly one credential header that says alice's password.
        assert result.identity.username == "alice"
        assert len(credentials) == 1
        assert BasicCredentials.from_header(credentials[0]) == BasicCredentials("alice", PASSWORD)


@given(st.integers(400, 599), st.one_of(st.none(), st.text(max_size=40)), ACCEPT)
def test_every_envelope_says_its_own_status(status: int, details: str | None,
                                            accept: str) -> None:
    response = ErrorRenderer().render(status, details=details, accept=accept, request_id="r1")
    body = json.loads(response.body)
    code = body["status"] if "status" in body else body["error"]["code"]
    assert code == status
