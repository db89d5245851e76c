"""PEP 3333: the app's iterable is closed exactly once, whatever the server does with ours."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from proxygate import wsgi
from support.wsgi_driver import make_environ


class LateStartApp:
    """Calls start_response only from inside its iterator, like a generator app."""

    def __init__(self) -> None:
        self.closed = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        app = self

        class Body:
            def __iter__(self) -> Iterator[bytes]:
                start_response("200 OK", [("Content-Type", "text/plain")])
                yield b"hello"

            def close(self) -> None:
                app.closed += 1

        return Body()


def _start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return lambda data: None


def test_closing_before_iterating_still_closes_the_apps_iterable() -> None:
    app = LateStartApp()
    result = wsgi.ErrorEnvelopeMiddleware(app)(make_environ(), _start)
    result.close()  # type: ignore[attr-defined]
    assert app.closed == 1


def test_closing_after_iterating_closes_the_apps_iterable_once() -> None:
    app = LateStartApp()
    result = wsgi.ErrorEnvelopeMiddleware(app)(make_environ(), _start)
    assert b"".join(result) == b"hello"
    result.close()  # type: ignore[attr-defined]
    assert app.closed == 1
