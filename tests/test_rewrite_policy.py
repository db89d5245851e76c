"""The rewrite policy: which app error responses are replaced, buffered or passed, and their headers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxygate.config import Config
from proxygate.errors.envelope import ErrorResponse
from proxygate.errors.handler import ErrorHandler, HeadFromPairs
from proxygate.errors.policy import (
    DROPPED_HEADERS,
    KEPT_HEADERS,
    Action,
    RewritePolicy,
    is_envelope,
    kept_headers,
    merge_vary,
    plain_text_details,
)

HTML = [(b"content-type", b"text/html; charset=utf-8")]
TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
JSON_CT = [(b"content-type", b"application/json")]
PROBLEM = [(b"content-type", b"application/problem+json")]


def _handler(**options: Any) -> ErrorHandler:
    return ErrorHandler(Config(users={}, **options))


def _head(method: str = "GET") -> HeadFromPairs:
    return HeadFromPairs(method, "/x", [(b"x-request-id", b"rid")], "127.0.0.1")


def _values(response: ErrorResponse, name: bytes) -> list[bytes]:
    return [v for k, v in response.headers if k == name]


# -- decide -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [100, 101, 200, 201, 204, 206, 301, 302, 304, 307, 399])
def test_non_errors_pass_unbuffered(status: int) -> None:
    assert RewritePolicy().decide(status, HTML) is Action.PASS


@pytest.mark.parametrize("status", [400, 404, 405, 500])
def test_html_error_is_replaced_unread(status: int) -> None:
    assert RewritePolicy().decide(status, HTML) is Action.REPLACE


def test_error_without_content_type_is_replaced_unread() -> None:
    assert RewritePolicy().decide(404, []) is Action.REPLACE


def test_plain_text_4xx_is_inspected_for_details() -> None:
    assert RewritePolicy().decide(400, TEXT) is Action.INSPECT


def test_plain_text_5xx_is_replaced_unread() -> None:
    assert RewritePolicy().decide(500, TEXT) is Action.REPLACE


@pytest.mark.parametrize("encoding", [b"gzip", b"br", b"deflate", b"zstd"])
@pytest.mark.parametrize("headers", [TEXT, JSON_CT], ids=["text", "json"])
def test_compressed_error_is_replaced_without_parsing(encoding: bytes,
                                                      headers: list[tuple[bytes, bytes]]) -> None:
    policy = RewritePolicy(pass_json_errors=False)
    assert policy.decide(400, [*headers, (b"content-encoding", encoding)]) is Action.REPLACE


def test_identity_encoding_is_not_compression() -> None:
    assert RewritePolicy().decide(400, [*TEXT, (b"content-encoding", b"identity")]) is Action.INSPECT


@pytest.mark.parametrize("headers", [JSON_CT, PROBLEM, [(b"content-type", b"application/vnd.api+json")]],
                         ids=["json", "problem", "vendor"])
def test_json_4xx_is_inspected_to_be_normalized_by_default(
        headers: list[tuple[bytes, bytes]]) -> None:
    assert RewritePolicy().decide(409, headers) is Action.INSPECT


@pytest.mark.parametrize("headers", [JSON_CT, PROBLEM], ids=["json", "problem"])
def test_json_4xx_passes_when_json_errors_are_passed(headers: list[tuple[bytes, bytes]]) -> None:
    assert RewritePolicy(pass_json_errors=True).decide(409, headers) is Action.PASS


def test_json_5xx_is_inspected_to_recognise_an_envelope() -> None:
    assert RewritePolicy().decide(500, JSON_CT) is Action.INSPECT


@pytest.mark.parametrize("headers", [JSON_CT, PROBLEM], ids=["json", "problem"])
@pytest.mark.parametrize("passed", [True, False])
def test_a_5xx_json_body_is_never_passed_unread(headers: list[tuple[bytes, bytes]],
                                                passed: bool) -> None:
    assert RewritePolicy(pass_json_errors=passed).decide(503, headers) is Action.INSPECT


def test_zero_max_error_body_never_buffers() -> None:
    policy = RewritePolicy(max_error_body=0)
    assert policy.decide(400, TEXT) is Action.REPLACE
    assert policy.decide(500, JSON_CT) is Action.REPLACE


def test_negative_max_error_body_is_refused() -> None:
    with pytest.raises(ValueError, match="max_error_body"):
        RewritePolicy(max_error_body=-1)


def test_header_names_are_matched_case_insensitively() -> None:
    assert RewritePolicy().decide(400, [(b"Content-Type", b"TEXT/PLAIN")]) is Action.INSPECT


# -- headers ----------------------------------------------------------------------------

APP_HEADERS = [
    (b"Allow", b"GET, HEAD"),
    (b"WWW-Authenticate", b'Bearer realm="api"'),
    (b"Proxy-Authenticate", b'Basic realm="p"'),
    (b"Retry-After", b"120"),
    (b"Set-Cookie", b"a=1"),
    (b"Set-Cookie", b"b=2"),
    (b"Vary", b"Origin"),
    (b"Access-Control-Allow-Origin", b"*"),
    (b"Access-Control-Expose-Headers", b"X-Request-ID"),
    (b"Content-Type", b"text/html"),
    (b"Content-Length", b"999"),
    (b"Content-Encoding", b"gzip"),
    (b"ETag", b'"v1"'),
    (b"Content-Range", b"bytes 0-9/10"),
    (b"Content-MD5", b"abc="),
    (b"Transfer-Encoding", b"chunked"),
    (b"Last-Modified", b"Tue, 01 Jan 2030 00:00:00 GMT"),
]


def test_kept_headers_keep_exactly_the_listed_ones() -> None:
    kept = kept_headers(APP_HEADERS)
    assert kept == [
        (b"allow", b"GET, HEAD"),
        (b"www-authenticate", b'Bearer realm="api"'),
        (b"proxy-authenticate", b'Basic realm="p"'),
        (b"retry-after", b"120"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
        (b"vary", b"Origin"),
        (b"access-control-allow-origin", b"*"),
        (b"access-control-expose-headers", b"X-Request-ID"),
    ]


def test_kept_and_dropped_lists_do_not_overlap() -> None:
    assert not KEPT_HEADERS & DROPPED_HEADERS


def _replaced(headers: list[tuple[bytes, bytes]], status: int = 404, body: bytes | None = None,
              **options: Any) -> ErrorResponse:
    return _handler(**options).replace_response(_head(), status, headers, body)


@pytest.mark.parametrize("dropped", [b"content-encoding", b"etag", b"content-range",
                                     b"content-md5", b"transfer-encoding", b"last-modified"])
def test_replacement_drops_headers_of_the_old_body(dropped: bytes) -> None:
    assert _values(_replaced(APP_HEADERS), dropped) == []


@pytest.mark.parametrize("kept", [b"allow", b"www-authenticate", b"proxy-authenticate",
                                  b"retry-after", b"access-control-allow-origin"])
def test_replacement_keeps_listed_headers(kept: bytes) -> None:
    assert len(_values(_replaced(APP_HEADERS), kept)) == 1


def test_replacement_keeps_every_set_cookie() -> None:
    assert _values(_replaced(APP_HEADERS), b"set-cookie") == [b"a=1", b"b=2"]


def test_replacement_recomputes_content_length() -> None:
    response = _replaced(APP_HEADERS)
    assert _values(response, b"content-length") == [str(len(response.body)).encode()]


def test_replacement_merges_vary_with_accept() -> None:
    [vary] = _values(_replaced(APP_HEADERS), b"vary")
    assert sorted(v.strip() for v in vary.split(b",")) == [b"Accept", b"Origin"]


def test_replacement_sends_one_request_id_header_matching_the_body() -> None:
    response = _replaced([*HTML, (b"X-Request-ID", b"app-made-id")])
    assert _values(response, b"x-request-id") == [b"rid"]
    assert json.loads(response.body)["error"]["request_id"] == "rid"


def test_replacement_of_head_request_has_no_body() -> None:
    response = _handler().replace_response(_head("HEAD"), 404, HTML, None)
    assert response.status == 404
    assert response.body == b""


def test_app_401_without_challenge_gets_the_gates_challenge() -> None:
    handler = ErrorHandler(Config(users={}), challenge=b'Basic realm="r", charset="UTF-8"')
    response = handler.replace_response(_head(), 401, HTML, None)
    assert _values(response, b"www-authenticate") == [b'Basic realm="r", charset="UTF-8"']


def test_app_401_keeps_its_own_challenge() -> None:
    handler = ErrorHandler(Config(users={}), challenge=b'Basic realm="r"')
    response = handler.replace_response(
        _head(), 401, [*HTML, (b"WWW-Authenticate", b"Bearer")], None)
    assert _values(response, b"www-authenticate") == [b"Bearer"]


# -- bodies -----------------------------------------------------------------------------


def test_short_plain_text_4xx_becomes_details() -> None:
    response = _replaced(TEXT, 400, b"the email field is required\n")
    assert json.loads(response.body)["error"]["details"] == "the email field is required"


def test_plain_text_5xx_never_becomes_details() -> None:
    response = _replaced(TEXT, 503, b"db down at 10.0.0.7")
    assert b"10.0.0.7" not in response.body


def test_html_never_becomes_details() -> None:
    response = _replaced(HTML, 400, b"short html")
    assert b"short html" not in response.body


def test_json_4xx_detail_becomes_details_when_normalized() -> None:
    response = _replaced(JSON_CT, 409, b'{"detail": "x"}')
    assert json.loads(response.body)["error"]["details"] == "x"


def test_unknown_json_4xx_shape_gets_default_details() -> None:
    response = _replaced(JSON_CT, 409, b'{"weird": {"stack": "File /srv/app.py"}}')
    assert json.loads(response.body)["error"]["details"] == "The request could not be completed."


@pytest.mark.parametrize("body", [
    b"line one\nline two",
    b"x" * 301,
    b"<b>bold</b>",
    b"\xff\xfe not utf-8",
    b"tab\tcontrol",
    b"   ",
])
def test_unfit_plain_text_is_not_details(body: bytes) -> None:
    assert plain_text_details(body) is None


def test_body_past_the_bound_gets_default_details() -> None:
    response = _replaced(TEXT, 400, None)
    assert json.loads(response.body)["error"]["details"] == "The request could not be understood."


def test_an_envelope_shaped_4xx_is_not_wrapped_twice() -> None:
    body = b'{"error": {"code": 409, "message": "Conflict", "details": "inner"}}'
    headers = [*JSON_CT, (b"content-length", str(len(body)).encode()),
               (b"transfer-encoding", b"chunked")]
    response = _replaced(headers, 409, body)
    assert response.body == body
    assert _values(response, b"content-length") == [str(len(body)).encode()]
    assert _values(response, b"transfer-encoding") == []


def test_envelope_with_another_status_is_not_ours() -> None:
    body = b'{"error": {"code": 404, "message": "Not Found", "details": "x"}}'
    assert not is_envelope(body, 500)


@pytest.mark.parametrize("body", [b"", b"[]", b"{", b'{"error": "x"}', b'{"detail": "x"}',
                                  b'{"error": {"code": 500}}',
                                  b'{"error": {"code": 500, "message": "m", "details": 1}, "x": 1}'])
def test_other_json_is_not_an_envelope(body: bytes) -> None:
    assert not is_envelope(body, 500)


def test_foreign_json_5xx_is_replaced_without_its_body() -> None:
    response = _replaced(JSON_CT, 500, b'{"trace": "File /srv/app.py"}')
    assert b"/srv/app.py" not in response.body
    assert json.loads(response.body)["error"]["code"] == 500


def test_failure_while_replacing_falls_back_to_fixed_500(monkeypatch: pytest.MonkeyPatch) -> None:
    handler = _handler()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(handler, "with_challenge", broken)
    response = handler.replace_response(_head(), 404, HTML, None)
    assert response.status == 500
    assert json.loads(response.body)["error"]["code"] == 500


def test_merge_vary_collapses_duplicates_and_adds_accept_once() -> None:
    merged = merge_vary([(b"vary", b"Accept"), (b"vary", b"origin, Accept-Encoding"),
                         (b"vary", b"Origin")])
    assert merged == [(b"vary", b"Accept, origin, Accept-Encoding")]


def test_merge_vary_leaves_star_alone() -> None:
    assert merge_vary([(b"vary", b"*")]) == [(b"vary", b"*")]
