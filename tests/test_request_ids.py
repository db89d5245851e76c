"""Request ids: unique, ordered, read the same from every head."""

from __future__ import annotations

import os

import pytest

from proxygate.config import Config
from proxygate.errors.handler import ErrorHandler, HeadFromPairs, new_request_id


class ListHead:
    """A head that is not HeadFromPairs: the handler must ask it through header_values."""

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.method = "GET"
        self.path = "/x"
        self.client: str | None = None
        self.request_id: str | None = None
        self.rendered: bytes | None = None
        self.headers = headers

    def header_values(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key == name]


class RenamingHead(HeadFromPairs):
    """A subclass may answer header_values its own way; the handler must ask it."""

    def header_values(self, name: bytes) -> list[bytes]:
        return [b"from-the-subclass"] if name == b"x-request-id" else []


def test_consecutive_request_ids_share_the_prefix_and_count_up() -> None:
    first, second = new_request_id(), new_request_id()
    assert first[:16] == second[:16]
    assert int(second[16:], 16) == int(first[16:], 16) + 1


def test_a_forked_worker_counts_from_one_under_its_own_prefix() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its first two ids and leave at once
        os.write(write, (new_request_id() + new_request_id()).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 128).decode()
    os.waitpid(pid, 0)
    os.close(read)
    first, second = child[:32], child[32:]
    assert first[16:] == f"{1:016x}"
    assert second == first[:16] + f"{2:016x}"
    assert first[:16] != new_request_id()[:16]


@pytest.mark.parametrize(
    ("headers", "kept"),
    [
        ([], None),
        ([(b"accept", b"*/*")], None),
        ([(b"x-request-id", b"abc-1")], "abc-1"),
        ([(b"host", b"h"), (b"x-request-id", b"abc-1"), (b"accept", b"*/*")], "abc-1"),
        ([(b"x-request-id", b"abc-1"), (b"x-request-id", b"abc-1")], None),
        ([(b"x-request-id", b"abc-1"), (b"x-request-id", b"abc-2"), (b"x-request-id", b"c")],
         None),
        ([(b"x-request-id", b"bad id")], None),
        ([(b"X-Request-ID", b"abc-1")], None),  # ASGI names are lower-case; others are not ours
    ],
)
def test_the_asgi_head_and_any_other_head_get_the_same_request_id(
    headers: list[tuple[bytes, bytes]], kept: str | None
) -> None:
    handler = ErrorHandler(Config())
    for head in (HeadFromPairs("GET", "/x", headers), ListHead(headers)):
        found = handler.request_id(head)
        if kept is None:
            assert len(found) == 32
            assert int(found, 16) >= 0
        else:
            assert found == kept
        assert handler.request_id(head) == found


def test_a_head_subclass_is_asked_through_its_own_header_values() -> None:
    head = RenamingHead("GET", "/x", [(b"x-request-id", b"from-the-pairs")])
    assert ErrorHandler(Config()).request_id(head) == "from-the-subclass"


def test_header_values_still_returns_every_value_in_order() -> None:
    head = HeadFromPairs("GET", "/", [(b"a", b"1"), (b"b", b"2"), (b"a", b"3")])
    assert head.header_values(b"a") == [b"1", b"3"]
    assert head.header_values(b"c") == []
    assert isinstance(head.header_values(b"c"), list)
