"""The Basic scheme (RFC 7617): credentials parse strictly, the challenge renders exactly."""

from __future__ import annotations

import base64

import pytest

from proxygate.auth.schemes.basic import BasicChallenge, BasicCredentials, MalformedCredentials


def basic(raw: bytes, scheme: bytes = b"Basic") -> bytes:
    return scheme + b" " + base64.b64encode(raw)


# -- what parses ----------------------------------------------------------------------------------


def test_user_and_password_are_split_on_the_first_colon_only() -> None:
    parsed = BasicCredentials.from_header(basic(b"alice:pa:ss:word"))
    assert parsed == BasicCredentials("alice", "pa:ss:word")


def test_utf8_user_name_and_password_decode() -> None:
    parsed = BasicCredentials.from_header(basic("jürgen:pässwörd✓".encode()))
    assert parsed == BasicCredentials("jürgen", "pässwörd✓")


def test_empty_password_is_allowed() -> None:
    assert BasicCredentials.from_header(basic(b"alice:")) == BasicCredentials("alice", "")


@pytest.mark.parametrize("scheme", [b"basic", b"BASIC", b"bAsIc"])
def test_scheme_name_is_case_insensitive(scheme: bytes) -> None:
    assert BasicCredentials.from_header(basic(b"a:b", scheme)) == BasicCredentials("a", "b")


def test_to_header_round_trips() -> None:
    credentials = BasicCredentials("jürgen", "a:b c")
    assert BasicCredentials.from_header(credentials.to_header()) == credentials


@pytest.mark.parametrize("value", [b"Bearer abc.def.ghi", b"Digest username=\"a\"", b"Negotiate YII="])
def test_another_scheme_is_not_basic_and_not_malformed(value: bytes) -> None:
    assert BasicCredentials.from_header(value) is None


def test_repr_never_shows_the_password() -> None:
    assert "s3cret" not in repr(BasicCredentials("alice", "s3cret"))


# -- what is malformed ----------------------------------------------------------------------------

MALFORMED = {
    "empty value": b"",
    "bare scheme": b"Basic",
    "scheme and space": b"Basic ",
    "bad base64 alphabet": b"Basic dXNl~cjpw",
    "base64 length not a multiple of 4": b"Basic dXNlcjpwYXNzx",
    "missing padding": b"Basic " + base64.b64encode(b"user:pa").rstrip(b"="),
    "trailing padding after a full quantum": basic(b"user:pass") + b"=",
    "excess padding": basic(b"user:pa") + b"=",
    "trailing garbage after a space": basic(b"user:pass") + b" garbage",
    "trailing data after padding": basic(b"user:pa") + b"QQ",
    "no colon": basic(b"userpass"),
    "empty user name": basic(b":password"),
    "non-UTF-8 credentials": basic(b"\xffuser:\xfepass"),
    "NUL in password": basic(b"user:pa\x00ss"),
    "CR LF in user name": basic(b"us\r\ner:pass"),
    "DEL in password": basic(b"user:pa\x7fss"),
    "comma-joined credentials": basic(b"a:b") + b", " + basic(b"c:d"),
    "non-ASCII header bytes": b"Basic \xc3\xa4\xc3\xb6",
    "NUL in header": b"Basic\x00" + base64.b64encode(b"a:b"),
    "auth-param list": b'Basic realm="x"',
}


@pytest.mark.parametrize("value", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_basic_credentials_raise_malformed(value: bytes) -> None:
    with pytest.raises(MalformedCredentials):
        BasicCredentials.from_header(value)


def test_a_64_kib_value_is_malformed_not_an_error() -> None:
    with pytest.raises(MalformedCredentials):
        BasicCredentials.from_header(b"Basic " + b"A" * 65536)


def test_malformed_message_never_quotes_the_value() -> None:
    with pytest.raises(MalformedCredentials) as caught:
        BasicCredentials.from_header(basic(b"alice-s3cret"))
    assert "s3cret" not in str(caught.value)
    assert base64.b64encode(b"alice-s3cret").decode() not in str(caught.value)


# -- the challenge --------------------------------------------------------------------------------


def test_challenge_names_the_realm_and_advertises_utf8() -> None:
    assert BasicChallenge("internal").to_header() == b'Basic realm="internal", charset="UTF-8"'


def test_challenge_keeps_the_realm_case() -> None:
    assert b'realm="Internal Area"' in BasicChallenge("Internal Area").to_header()


@pytest.mark.parametrize("realm", ['a"b', "a\\b", "a\rb", "a\nb", "a\x00b"])
def test_challenge_refuses_a_realm_it_cannot_quote_plainly(realm: str) -> None:
    with pytest.raises(ValueError, match="realm"):
        BasicChallenge(realm)
