"""The standard envelope, serialised once per status with the id set in, says what a full render would."""

from __future__ import annotations

import json
import os

import pytest

from proxygate.config import Config
from proxygate.errors.envelope import ErrorRenderer
from proxygate.errors.handler import ErrorHandler, HeadFromPairs, new_request_id


@pytest.mark.parametrize("status", [400, 401, 404, 405, 407, 418, 429, 500, 503, 599])
def test_the_standard_body_template_matches_a_rendered_envelope(status: int) -> None:
    renderer = ErrorRenderer()
    fast = renderer.render(status, request_id="abc-123.x:y_z")
    general = renderer.render(status, request_id="abc-123.x:y_z", details=json.loads(
        fast.body)["error"]["details"])
    assert json.loads(fast.body) == json.loads(general.body)
    assert fast.body == general.body


def test_an_id_that_needs_escaping_takes_the_general_path() -> None:
    body = ErrorRenderer().render(404, request_id='a"b\\c').body
    assert json.loads(body)["error"]["request_id"] == 'a"b\\c'


def test_the_template_leaves_the_id_out_when_asked() -> None:
    body = ErrorRenderer(request_id_in_body=False).render(404, request_id="abc").body
    assert set(json.loads(body)["error"]) == {"code", "message", "details"}


def test_request_ids_are_unique_and_32_hex_digits() -> None:
    ids = {new_request_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_a_forked_worker_gets_its_own_request_id_prefix() -> None:
    read, write = os.pipe()
    parent_prefix = new_request_id()[:16]
    pid = os.fork()
    if pid == 0:  # the child: report its prefix and leave at once
        os.write(write, new_request_id()[:16].encode())
        os._exit(0)
    os.close(write)
    child_prefix = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    os.close(read)
    assert len(child_prefix) == 16
    assert child_prefix != parent_prefix


@pytest.mark.parametrize(("body", "details"), [
    (b"Not Found", "Nothing was found at this address."),  # only the reason phrase again
    (b"No such invoice", "No such invoice"),  # more to say: it becomes the details
])
def test_a_text_body_becomes_the_details_when_it_says_more_than_the_reason_phrase(
        body: bytes, details: str) -> None:
    handler = ErrorHandler(Config())
    head = HeadFromPairs("GET", "/x", [])
    response = handler.replace_response(head, 404, [(b"content-type", b"text/plain")], body)
    assert json.loads(response.body)["error"]["details"] == details
