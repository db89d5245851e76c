"""The rewrite policy decides exactly what its rule says, for every type, encoding and spelling."""

from __future__ import annotations

import itertools
import json

import pytest

from proxygate.config import Config
from proxygate.errors.handler import ErrorHandler, HeadFromPairs
from proxygate.errors.policy import (
    KEPT_HEADERS,
    Action,
    RewritePolicy,
    kept_headers,
    media_type,
    plain_text_details,
)

CONTENT_TYPES = [
    b"text/plain", b"text/plain; charset=utf-8", b"TEXT/PLAIN ; charset=utf-8", b"text/html",
    b"application/json", b"Application/JSON; charset=utf-8", b"application/problem+json",
    b"application/vnd.api+json", b"text/json", b"", b";", b"application/octet-stream",
]
ENCODINGS = [None, b"gzip", b"identity", b" Identity ", b"", b"br"]
NAME_SPELLINGS = [b"content-type", b"Content-Type", b"CONTENT-TYPE"]


def _by_the_rule(policy_: RewritePolicy, status: int,
                 headers: list[tuple[bytes, bytes]]) -> Action:
    """decide(), written the long way: every name lowered, every value parsed."""
    if status < 400:
        return Action.PASS
    content_type = b""
    encoded = False
    for name, value in headers:
        if name.lower() == b"content-type":
            content_type = value.partition(b";")[0].strip().lower()
        elif name.lower() == b"content-encoding" and value.strip().lower() not in (b"",
                                                                                     b"identity"):
            encoded = True
    can_read = policy_.max_error_body > 0 and not encoded
    if content_type == b"application/json" or (
            content_type.startswith(b"application/") and content_type.endswith(b"+json")):
        if policy_.pass_json_errors and status < 500:
            return Action.PASS
        return Action.INSPECT if can_read else Action.REPLACE
    if status >= 500 or not can_read:
        return Action.REPLACE
    return Action.INSPECT if content_type == b"text/plain" else Action.REPLACE


@pytest.mark.parametrize("options", [{}, {"pass_json_errors": True}, {"max_error_body": 0}])
def test_decide_agrees_with_the_rule_for_every_type_encoding_and_spelling(
    options: dict[str, object],
) -> None:
    rewrite = RewritePolicy(**options)  # type: ignore[arg-type]
    for status, content_type, encoding, spelling in itertools.product(
            [404, 422, 500, 503], CONTENT_TYPES, ENCODINGS, NAME_SPELLINGS):
        headers = [(spelling, content_type), (b"Content-Length", b"9")]
        if encoding is not None:
            headers.append((spelling.replace(b"Type", b"Encoding").replace(b"type", b"encoding")
                            .replace(b"TYPE", b"ENCODING"), encoding))
        assert rewrite.decide(status, headers) is _by_the_rule(rewrite, status, headers), (
            status, headers)


def test_a_later_identity_encoding_does_not_undo_a_compressed_one() -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-encoding", b"gzip"),
               (b"Content-Encoding", b"identity")]
    assert RewritePolicy().decide(404, headers) is Action.REPLACE


def test_the_last_content_type_is_the_one_that_counts() -> None:
    headers = [(b"content-type", b"text/html"), (b"Content-Type", b"text/plain")]
    assert RewritePolicy().decide(404, headers) is Action.INSPECT


def test_bytearray_names_and_values_are_decided_on() -> None:
    headers = [(bytearray(b"Content-Type"), bytearray(b"text/plain; charset=utf-8")),
               (bytearray(b"Allow"), bytearray(b"GET"))]
    assert RewritePolicy().decide(404, headers) is Action.INSPECT  # type: ignore[arg-type]
    assert media_type(bytearray(b"Text/Plain; x=y")) == b"text/plain"  # type: ignore[arg-type]


def test_kept_headers_keep_names_of_any_case() -> None:
    headers = [(b"Allow", b"GET"), (b"allow", b"HEAD"), (b"ACCESS-CONTROL-ALLOW-ORIGIN", b"*"),
               (b"Content-Type", b"text/html"), (b"X-Request-ID", b"app")]
    assert kept_headers(headers, drop=b"x-request-id") == [
        (b"allow", b"GET"), (b"allow", b"HEAD"), (b"access-control-allow-origin", b"*")]


def test_an_extra_name_is_kept_and_a_dropped_one_left_out() -> None:
    headers = [(b"ETag", b'"v1"'), (b"Allow", b"GET")]
    assert kept_headers(headers) == [(b"allow", b"GET")]
    assert kept_headers(headers, extra=frozenset({b"etag"})) == [(b"etag", b'"v1"'),
                                                                 (b"allow", b"GET")]
    assert kept_headers(headers, extra=frozenset({b"etag"}), drop=b"allow") == [
        (b"etag", b'"v1"')]


def test_every_listed_name_is_kept_in_every_spelling() -> None:
    for name in KEPT_HEADERS:
        for spelling in (name, name.upper(), name.title()):
            assert kept_headers([(spelling, b"v")]) == [(name, b"v")]


@pytest.mark.parametrize("body", [b"one\ntwo", b"one\rtwo", b"one\r\ntwo", b"x\x00y", b"a\x7fb"])
def test_a_second_line_or_a_control_character_is_never_details(body: bytes) -> None:
    assert plain_text_details(body) is None


@pytest.mark.parametrize(("body", "details"), [
    (b"Not Found", "Nothing was found at this address."),
    (b"  NOT FOUND\n", "Nothing was found at this address."),
    (b"not found", "Nothing was found at this address."),
    (b"Not Found!", "Not Found!"),
    (b"Not  Found", "Not  Found"),
    ("N\u00f6t Found".encode(), "N\u00f6t Found"),
])
def test_a_body_that_only_repeats_the_reason_in_any_case_is_not_details(
    body: bytes, details: str,
) -> None:
    response = ErrorHandler(Config()).replace_response(
        HeadFromPairs("GET", "/x", []), 404, [(b"content-type", b"text/plain")], body)
    assert json.loads(response.body)["error"]["details"] == details


def test_a_reason_spelled_with_a_unicode_lookalike_still_counts_as_the_reason() -> None:
    # U+212A KELVIN SIGN lower-cases to "k": the long way says "Locked", and so do we.
    response = ErrorHandler(Config()).replace_response(
        HeadFromPairs("GET", "/x", []), 423, [(b"content-type", b"text/plain")],
        "Loc\u212aed".encode())
    assert "details" in json.loads(response.body)["error"]
    assert json.loads(response.body)["error"]["details"] != "Loc\u212aed"
