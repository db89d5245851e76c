"""The shared error-envelope conformance cases, in process and under real uvicorn and gunicorn."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from support.conformance import (
    CASES,
    Case,
    Target,
    asgi_served,
    call_asgi,
    call_http,
    call_wsgi,
    run_case,
    wsgi_served,
)
from support.servers import run_server

IN_PROCESS: dict[str, Target] = {
    "asgi": lambda request: call_asgi(asgi_served, request),
    "wsgi": lambda request: call_wsgi(wsgi_served, request),
}


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("shell", sorted(IN_PROCESS))
def test_in_process(shell: str, case: Case) -> None:
    run_case(IN_PROCESS[shell], case)


SERVERS = {
    "uvicorn": [sys.executable, "-m", "uvicorn", "support.conformance:asgi_served",
                "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"],
    "gunicorn": [sys.executable, "-m", "gunicorn", "support.conformance:wsgi_served",
                 "--bind", "127.0.0.1:{port}", "--workers", "1", "--threads", "4",
                 "--log-level", "warning"],
}


@pytest.fixture(scope="module", params=sorted(SERVERS))
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    with run_server(SERVERS[request.param]) as server:
        yield server.url


@pytest.mark.server
@pytest.mark.parametrize("case", CASES, ids=str)
def test_real_server(server_url: str, case: Case) -> None:
    run_case(lambda request: call_http(server_url, request), case)
