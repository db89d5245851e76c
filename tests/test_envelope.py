"""The envelope itself: shape, request ids, Accept negotiation, HTML pages, bodiless statuses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxygate._http import reason_phrase
from proxygate.config import Config, ConfigError
from proxygate.errors.envelope import DEFAULT_HTML_TEMPLATE, ErrorRenderer, ErrorResponse
from proxygate.errors.handler import ErrorHandler, HeadFromPairs


def _handler(**options: Any) -> ErrorHandler:
    return ErrorHandler(Config(users={}, **options))


def _head(method: str = "GET", path: str = "/p", **headers: str) -> HeadFromPairs:
    pairs = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    return HeadFromPairs(method, path, pairs, "127.0.0.1")


def _header(response: ErrorResponse, name: bytes) -> bytes | None:
    values = [v for k, v in response.headers if k == name]
    assert len(values) <= 1, values
    return values[0] if values else None


def _json(response: ErrorResponse) -> Any:
    return json.loads(response.body)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 407, 409, 418, 422, 429, 499,
                                    500, 502, 503, 504, 599])
def test_envelope_has_code_message_details_and_code_equals_status(status: int) -> None:
    response = _handler().render(_head(), status)
    error = _json(response)["error"]
    assert response.status == status
    assert error["code"] == status
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], str) and error["details"]
    assert _header(response, b"content-type") == b"application/json"
    assert _header(response, b"content-length") == str(len(response.body)).encode()


def test_message_is_the_reason_phrase() -> None:
    assert _json(_handler().render(_head(), 404))["error"]["message"] == "Not Found"


def test_structured_details_stay_structured() -> None:
    details = [{"loc": ["body", "name"], "msg": "Field required", "type": "missing"}]
    response = _handler().render(_head(), 422, details=details)
    assert _json(response)["error"]["details"] == details


def test_request_id_is_in_body_and_header() -> None:
    response = _handler().render(_head(x_request_id="abc-1"), 404)
    assert _json(response)["error"]["request_id"] == "abc-1"
    assert _header(response, b"x-request-id") == b"abc-1"


def test_request_id_in_body_off_leaves_exactly_three_keys() -> None:
    response = _handler(request_id_in_body=False).render(_head(x_request_id="abc-1"), 404)
    assert set(_json(response)["error"]) == {"code", "message", "details"}
    assert _header(response, b"x-request-id") == b"abc-1"


def test_request_id_header_none_sends_no_header() -> None:
    response = _handler(request_id_header=None).render(_head(), 404)
    assert _header(response, b"x-request-id") is None
    assert len(_json(response)["error"]["request_id"]) == 32


def test_custom_request_id_header_is_read_and_sent() -> None:
    response = _handler(request_id_header="Request-Id").render(_head(request_id="r-9"), 404)
    assert _header(response, b"request-id") == b"r-9"
    assert _json(response)["error"]["request_id"] == "r-9"


@pytest.mark.parametrize("incoming", [
    "x" * 129,
    "has space",
    "<script>",
    "line\r\nbreak",
    "quote\"d",
    "",
])
def test_unsafe_or_long_incoming_request_id_is_replaced(incoming: str) -> None:
    handler = _handler()
    request_id = handler.request_id(_head(x_request_id=incoming))
    assert request_id != incoming
    assert len(request_id) == 32 and all(ch in "0123456789abcdef" for ch in request_id)


def test_non_ascii_incoming_request_id_is_replaced() -> None:
    head = HeadFromPairs("GET", "/", [(b"x-request-id", "idé".encode())])
    assert _handler().request_id(head) != "idé"


def test_two_incoming_request_ids_are_replaced() -> None:
    head = HeadFromPairs("GET", "/", [(b"x-request-id", b"a"), (b"x-request-id", b"b")])
    assert _handler().request_id(head) not in ("a", "b")


def test_longest_safe_incoming_request_id_is_kept() -> None:
    incoming = "A-z0.9_:" * 16
    assert _handler().request_id(_head(x_request_id=incoming)) == incoming


def test_request_id_is_stable_within_a_request() -> None:
    handler, head = _handler(), _head()
    assert handler.request_id(head) == handler.request_id(head)


@pytest.mark.parametrize("accept", ["", "application/json", "*/*", "application/*",
                                    "text/html", "text/html,application/xhtml+xml,*/*;q=0.8",
                                    "image/png", "application/json;q=0.5, text/plain"])
def test_json_envelope_for_json_wildcards_and_no_accept(accept: str) -> None:
    head = _head(accept=accept) if accept else _head()
    response = _handler().render(head, 404)
    assert _header(response, b"content-type") == b"application/json"
    assert "error" in _json(response)


def test_problem_json_when_preferred_has_rfc_9457_members() -> None:
    head = _head(path="/orders/7", accept="application/problem+json", x_request_id="rid-1")
    response = _handler().render(head, 404)
    assert _header(response, b"content-type") == b"application/problem+json"
    assert _json(response) == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "Nothing was found at this address.",
        "instance": "/orders/7",
        "request_id": "rid-1",
    }


def test_problem_json_wins_over_json_by_quality() -> None:
    head = _head(accept="application/json;q=0.5, application/problem+json")
    response = _handler().render(head, 400)
    assert _header(response, b"content-type") == b"application/problem+json"


def test_json_wins_over_problem_json_by_quality() -> None:
    head = _head(accept="application/json, application/problem+json;q=0.5")
    assert _header(_handler().render(head, 400), b"content-type") == b"application/json"


def test_problem_json_carries_structured_details_as_an_extension() -> None:
    details = [{"loc": ["q"], "msg": "Field required", "type": "missing"}]
    head = _head(accept="application/problem+json")
    problem = _json(_handler().render(head, 422, details=details))
    assert problem["detail"] == problem["title"] == reason_phrase(422)
    assert problem["errors"] == details


def test_html_is_never_sent_unless_enabled() -> None:
    response = _handler().render(_head(accept="text/html"), 404)
    assert _header(response, b"content-type") == b"application/json"


def test_html_page_when_enabled_and_preferred() -> None:
    response = _handler(html_errors=True).render(_head(accept="text/html"), 404)
    assert _header(response, b"content-type") == b"text/html; charset=utf-8"
    assert b"<h1>404 Not Found</h1>" in response.body


def test_html_enabled_still_gives_json_to_json_clients() -> None:
    response = _handler(html_errors=True).render(_head(accept="application/json"), 404)
    assert _header(response, b"content-type") == b"application/json"


def test_html_page_escapes_everything_it_shows() -> None:
    renderer = ErrorRenderer(html_errors=True)
    response = renderer.render(400, details="<script>alert(1)</script>",
                               message="Bad <b>", accept="text/html",
                               request_id="<img src=x>")
    body = response.body.decode()
    assert "<script>" not in body and "<img" not in body and "<b>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "&lt;img src=x&gt;" in body


def test_html_page_escapes_structured_details() -> None:
    renderer = ErrorRenderer(html_errors=True)
    response = renderer.render(422, details=[{"msg": "<x>"}], accept="text/html")
    assert b"<x>" not in response.body
    assert b"&lt;x&gt;" in response.body


def test_user_html_template_replaces_the_built_in_one() -> None:
    template = "<p class=err>$code|$message|$details|$request_id</p>"
    handler = _handler(html_errors=True, html_template=template)
    response = handler.render(_head(accept="text/html", x_request_id="r1"), 403, details="no")
    assert response.body == b"<p class=err>403|Forbidden|no|r1</p>"
    assert DEFAULT_HTML_TEMPLATE.encode() not in response.body


def test_html_template_with_unknown_placeholder_fails_at_construction() -> None:
    with pytest.raises(ConfigError, match=r"\$code, \$message"):
        _handler(html_errors=True, html_template="<p>$stack</p>")


@pytest.mark.parametrize("accept", ["", "application/json", "application/problem+json"])
def test_vary_accept_on_negotiated_responses(accept: str) -> None:
    head = _head(accept=accept) if accept else _head()
    assert _header(_handler().render(head, 404), b"vary") == b"Accept"


def test_vary_from_the_app_is_merged_with_accept() -> None:
    response = _handler().render(_head(), 404, headers=[(b"vary", b"Origin")])
    vary = _header(response, b"vary") or b""
    assert sorted(v.strip() for v in vary.split(b",")) == [b"Accept", b"Origin"]


@pytest.mark.parametrize("status", [100, 103, 204, 205, 304])
def test_bodiless_statuses_never_get_a_body(status: int) -> None:
    response = ErrorRenderer().render(status)
    assert response.body == b""
    assert all(name != b"content-length" for name, _ in response.headers)


def test_head_keeps_status_and_headers_without_body() -> None:
    handler = _handler()
    get = handler.render(_head("GET", x_request_id="same"), 404)
    head = handler.render(_head("HEAD", x_request_id="same"), 404)
    assert head.status == 404
    assert head.body == b""
    assert head.headers == get.headers  # Content-Length says what GET would send


@pytest.mark.parametrize("status", [401, 407, 429])
def test_authentication_and_throttle_errors_are_not_cached(status: int) -> None:
    assert _header(_handler().render(_head(), status), b"cache-control") == b"no-store"


def test_given_headers_are_added_as_given() -> None:
    challenge = (b"proxy-authenticate", b'Basic realm="x", charset="UTF-8"')
    response = _handler().render(_head(), 407, headers=[challenge])
    assert challenge in response.headers


def test_json_body_is_utf8_without_escapes() -> None:
    response = _handler().render(_head(), 400, details="naïve ✓")
    assert "naïve ✓".encode() in response.body
