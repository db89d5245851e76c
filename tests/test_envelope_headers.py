"""The renderer's headers and its negotiation on Accept: order, length, Vary, request id."""

from __future__ import annotations

import json

import pytest

from proxygate._http import preferred_media_type
from proxygate.config import Config
from proxygate.errors import envelope
from proxygate.errors.envelope import ErrorRenderer, ErrorResponse
from proxygate.errors.handler import ErrorHandler, HeadFromPairs

ACCEPTS = [
    "*/*",
    "application/json",
    "application/problem+json",
    "application/json;q=0.5, application/problem+json",
    "text/html",
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "text/*;q=0.9, application/*;q=0.1",
    "image/png",
    "application/problem+json;q=0",
]


class ListHead:
    """A head that is not HeadFromPairs: the handler must ask it through header_values."""

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.method = "GET"
        self.path = "/x"
        self.client: str | None = None
        self.request_id: str | None = "rid-1"
        self.rendered: bytes | None = None
        self.headers = headers

    def header_values(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key == name]


def _names(response: ErrorResponse) -> list[bytes]:
    return [name for name, _ in response.headers]


@pytest.mark.parametrize("html", [False, True])
@pytest.mark.parametrize("accept", ACCEPTS)
def test_the_renderer_offers_what_the_client_prefers_among_its_own_formats(
        accept: str, html: bool) -> None:
    renderer = ErrorRenderer(html_errors=html)
    assert renderer.negotiate(accept) == preferred_media_type(accept, renderer.offers)


def test_html_is_offered_only_by_a_renderer_asked_for_html_errors() -> None:
    assert ErrorRenderer(html_errors=True).negotiate("text/html") == envelope.HTML
    assert ErrorRenderer().negotiate("text/html") == envelope.JSON


@pytest.mark.parametrize("head_type", [HeadFromPairs, ListHead])
def test_several_accept_headers_are_read_as_one(head_type: type) -> None:
    headers = [(b"accept", b"text/plain;q=0.1"), (b"host", b"h"),
               (b"accept", b"application/problem+json")]
    head = (HeadFromPairs("GET", "/x", headers) if head_type is HeadFromPairs
            else ListHead(headers))
    response = ErrorHandler(Config()).render(head, 404)
    assert (b"content-type", b"application/problem+json") in response.headers


@pytest.mark.parametrize("accept", ["", "*/*", "application/problem+json"])
@pytest.mark.parametrize("status", [400, 401, 404, 407, 429, 500, 503])
def test_headers_come_in_the_same_order_with_the_length_of_the_body(accept: str,
                                                                   status: int) -> None:
    renderer = ErrorRenderer()
    response = renderer.render(status, accept=accept, request_id="0123abcd")
    expected = [b"content-type", b"content-length", b"vary"]
    if status in (401, 407, 429):
        expected.append(b"cache-control")
    assert _names(response) == [*expected, b"x-request-id"]
    assert dict(response.headers)[b"content-length"] == str(len(response.body)).encode()


@pytest.mark.parametrize("size", [0, 1, 100, 5000, 70000])
def test_content_length_is_right_for_bodies_of_every_size(size: int) -> None:
    response = ErrorRenderer().render(400, details="x" * size, request_id="abc")
    assert dict(response.headers)[b"content-length"] == str(len(response.body)).encode()


def test_given_headers_follow_ours_and_a_given_vary_is_merged() -> None:
    response = ErrorRenderer().render(405, request_id="abc",
                                      headers=iter([(b"allow", b"GET"), (b"vary", b"Origin")]))
    assert response.headers == [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(response.body)).encode()),
        (b"x-request-id", b"abc"),
        (b"allow", b"GET"),
        (b"vary", b"Accept, Origin"),
    ]


def test_a_generated_id_and_an_incoming_one_use_the_template_alike() -> None:
    renderer = ErrorRenderer()
    for request_id in ("0123456789abcdef0123456789abcdef", "abc-123.x:y_z"):
        response = renderer.render(404, request_id=request_id)
        assert json.loads(response.body)["error"]["request_id"] == request_id
        assert (b"x-request-id", request_id.encode()) in response.headers


def test_a_non_ascii_id_is_escaped_in_the_body_and_latin1_in_the_header() -> None:
    response = ErrorRenderer().render(404, request_id="caf\u00e9")
    assert json.loads(response.body)["error"]["request_id"] == "caf\u00e9"
    assert (b"x-request-id", "caf\u00e9".encode("latin-1")) in response.headers


def test_an_id_the_header_cannot_carry_still_renders_without_the_header() -> None:
    response = ErrorRenderer(request_id_header=None).render(404, request_id="\u2713")
    assert json.loads(response.body)["error"]["request_id"] == "\u2713"
    with pytest.raises(UnicodeEncodeError):
        ErrorRenderer().render(404, request_id="\u2713")
