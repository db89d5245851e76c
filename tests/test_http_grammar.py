"""The header grammar every room shares: tokens, quoted-strings, credentials, absolute-form targets."""

from __future__ import annotations

import pytest

from proxygate._http import (
    is_token,
    quote_string,
    reason_phrase,
    split_absolute_target,
    split_authorization,
)

# -- tokens and quoted-strings ----------------------------------------------------------------


def test_token_accepts_every_tchar() -> None:
    assert is_token(b"!#$%&'*+-.^_`|~09azAZ")


@pytest.mark.parametrize("value", [b"", b"Basic realm", b"a,b", b'a"b', b"a\x00", b"\xff", b"a:b"])
def test_token_refuses_separators_controls_and_empty(value: bytes) -> None:
    assert not is_token(value)


def test_quote_string_wraps_plain_text_in_quotes() -> None:
    assert quote_string("internal area") == '"internal area"'


def test_quote_string_escapes_quote_and_backslash() -> None:
    assert quote_string('a"b\\c') == '"a\\"b\\\\c"'


@pytest.mark.parametrize("value", ["a\r\nb", "a\nb", "a\rb", "a\x00b", "a\x7fb"])
def test_quote_string_refuses_control_characters(value: str) -> None:
    with pytest.raises(ValueError, match="control"):
        quote_string(value)


def test_quote_string_allows_tab() -> None:
    assert quote_string("a\tb") == '"a\tb"'


# -- credentials header -----------------------------------------------------------------------


def test_split_authorization_lowercases_the_scheme_and_keeps_the_token() -> None:
    assert split_authorization(b"BaSiC dXNlcjpwYXNz") == (b"basic", b"dXNlcjpwYXNz")


def test_split_authorization_keeps_padding() -> None:
    assert split_authorization(b"Basic dXNlcjpwYQ==") == (b"basic", b"dXNlcjpwYQ==")


def test_split_authorization_tolerates_surrounding_and_repeated_spaces() -> None:
    assert split_authorization(b"  Basic   dXNlcjpwYXNz \t") == (b"basic", b"dXNlcjpwYXNz")


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"Basic",
        b"Basic ",
        b"Basic dXNlcjpwYXNz, Basic YTpi",
        b"Basic dXNlcjpwYXNz garbage",
        b'Digest username="a", realm="b"',
        b"Basic ====",
        b"Basic dXNl=cjpw",
        b"Bas\x00ic dXNlcjpwYXNz",
        b"Basic dXNlcjpw\x00YXNz",
        b"Basic \xff\xfe",
        b"B(asic dXNlcjpwYXNz",
    ],
)
def test_split_authorization_refuses_what_is_not_scheme_and_token68(value: bytes) -> None:
    assert split_authorization(value) is None


# -- absolute-form targets (RFC 9112 §3.2.2) ----------------------------------------------------


def test_absolute_target_splits_host_path_and_query() -> None:
    assert split_absolute_target("http://example.com:8080/a/b?q=1&r=2") == (
        "example.com:8080", "/a/b", "q=1&r=2"
    )


def test_absolute_target_scheme_is_case_insensitive() -> None:
    assert split_absolute_target("HTTPS://example.com/x") == ("example.com", "/x", "")


def test_absolute_target_without_path_is_root() -> None:
    assert split_absolute_target("http://example.com") == ("example.com", "/", "")


def test_absolute_target_with_query_and_no_path_is_root_with_query() -> None:
    assert split_absolute_target("http://example.com?q=1") == ("example.com", "/", "q=1")


def test_absolute_target_drops_userinfo() -> None:
    assert split_absolute_target("http://user:secret@example.com/p") == ("example.com", "/p", "")


def test_absolute_target_drops_the_fragment() -> None:
    assert split_absolute_target("http://example.com/p?q=1#frag") == ("example.com", "/p", "q=1")


def test_absolute_target_keeps_an_ipv6_authority() -> None:
    assert split_absolute_target("http://[::1]:8080/p") == ("[::1]:8080", "/p", "")


@pytest.mark.parametrize("target", ["/path", "*", "example.com:443", "ftp://example.com/x", ""])
def test_origin_authority_and_asterisk_forms_are_not_absolute(target: str) -> None:
    assert split_absolute_target(target) is None


# -- reason phrases -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "phrase"),
    [(407, "Proxy Authentication Required"), (401, "Unauthorized"), (429, "Too Many Requests")],
)
def test_reason_phrase_is_the_standard_one(status: int, phrase: str) -> None:
    assert reason_phrase(status) == phrase


@pytest.mark.parametrize(("status", "phrase"), [(499, "Client Error"), (599, "Server Error")])
def test_reason_phrase_of_an_unregistered_status_names_its_class(status: int, phrase: str) -> None:
    assert reason_phrase(status) == phrase


# -- auth-param lists (RFC 9110 §11.2): what Digest credentials are made of ------------------


def test_auth_params_take_tokens_and_quoted_strings_with_escapes() -> None:
    from proxygate._http import parse_auth_params

    assert parse_auth_params(' a=b , C="x \\"y\\" \\\\z",, d = "" ') == {
        "a": "b", "c": 'x "y" \\z', "d": ""}


@pytest.mark.parametrize("text", ["a=b c=d", 'a="x', "a=", "=b", "a=b, A=c", 'a="\x01"',
                                  "a b", "a=b;c=d", 'a="x"y'])
def test_broken_auth_params_raise_the_documented_error(text: str) -> None:
    from proxygate._http import AuthParamError, parse_auth_params

    with pytest.raises(AuthParamError):
        parse_auth_params(text)
