"""Starlette and FastAPI: the ASGI middleware, envelope-producing exception handlers, OpenAPI models.

::

    app.add_middleware(ProxyGateMiddleware, users="users.htpasswd", realm="internal")
    install_error_handlers(app)

The middleware is :class:`proxygate.asgi.ProxyGateMiddleware` itself: it sets
``scope["user"]`` and ``scope["auth"]`` the way ``AuthenticationMiddleware`` does, so
``request.user.username`` and ``@requires("authenticated")`` work. The handlers make
errors inside the app (``HTTPException``, FastAPI's ``RequestValidationError``, any
unhandled exception, also from other middleware) answer with the envelope before an
outer middleware or a test client sees them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from proxygate.contrib import missing_extra

try:
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import Response
except ModuleNotFoundError as _missing:
    raise missing_extra("proxygate.contrib.starlette", "starlette", _missing) from None

from proxygate._http import reason_phrase
from proxygate.asgi import ErrorEnvelopeMiddleware, ProxyGateMiddleware, request_head
from proxygate.config import Config
from proxygate.errors.envelope import ErrorResponse
from proxygate.errors.handler import ErrorHandler, HeadFromPairs
from proxygate.errors.validation import redact_validation_errors

__all__ = [
    "ErrorEnvelopeMiddleware",
    "ProxyGateMiddleware",
    "envelope_model",
    "error_responses",
    "install_error_handlers",
]

Handler = Callable[[Request, Exception], Any]


def _head(request: Request) -> HeadFromPairs:
    outer = request_head(request.scope)
    if outer is not None:
        return outer  # the same request id as the shell's logs and envelopes
    # The scope's path, as the shells use it; request.url would parse a whole URL (~2 µs).
    scope = request.scope
    client = scope.get("client")
    return HeadFromPairs(scope.get("method", "GET"), scope.get("path", ""),
                         scope.get("headers", ()), client[0] if client else None)


class EnvelopeResponse(Response):
    """A Starlette ``Response`` carrying a rendered envelope as it is.

    The envelope already has its body and every header (length and type included), so
    ``Response.__init__``'s rendering and header building (~0.8 µs) are skipped.
    """

    def __init__(self, envelope: ErrorResponse) -> None:
        self.status_code = envelope.status
        self.body = envelope.body
        self.background = None
        self.raw_headers = list(envelope.headers)


def _response(envelope: ErrorResponse) -> Response:
    return EnvelopeResponse(envelope)


def install_error_handlers(app: Starlette, *, config: Config | None = None,
                           **options: Any) -> ErrorHandler:
    """Register handlers so errors inside ``app`` become envelopes; returns the handler used.

    Takes the error options of :class:`~proxygate.Config` (``debug``, ``exception_map``,
    ``request_id_header``, ...); ``users`` is not needed. Starlette re-raises every
    unhandled exception after its 500 response so the server logs it: these handlers
    write no log record of their own.
    """
    if config is None:
        # The error half reads no users; an empty mapping only satisfies validation.
        config = Config.from_mapping({"users": {}, **options})
    handler = ErrorHandler(config)

    async def http_exception(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        if isinstance(status, int) and status < 400:  # 204/304 raised as exceptions: no envelope
            return Response(status_code=status, headers=getattr(exc, "headers", None))
        return _response(handler.exception_response(_head(request), exc, log=False))

    async def unhandled(request: Request, exc: Exception) -> Response:
        return _response(handler.exception_response(_head(request), exc, log=False))

    app.add_exception_handler(HTTPException, http_exception)
    app.add_exception_handler(Exception, unhandled)
    validation_error = _fastapi_validation_error()
    if validation_error is not None:

        async def invalid_request(request: Request, exc: Exception) -> Response:
            errors = exc.errors() if callable(getattr(exc, "errors", None)) else []  # type: ignore[attr-defined]
            return _response(handler.render(_head(request), 422,
                                            details=redact_validation_errors(errors)))

        app.add_exception_handler(validation_error, invalid_request)
    return handler


def _fastapi_validation_error() -> type[Exception] | None:
    try:
        from fastapi.exceptions import RequestValidationError
    except ImportError:  # plain Starlette
        return None
    return RequestValidationError


@functools.cache
def envelope_model() -> type[Any]:
    """The pydantic model of the envelope (needs pydantic, as FastAPI has)."""
    from pydantic import BaseModel, Field

    class FieldError(BaseModel):
        loc: list[str | int] = Field(description="Where the bad value was: body, query, path, ...")
        msg: str
        type: str

    class ErrorBody(BaseModel):
        code: int = Field(description="The HTTP status code")
        message: str = Field(description="The status reason phrase")
        details: str | list[FieldError] | dict[str, Any] | None = Field(
            default=None, description="A sentence, or one entry per invalid field (422)"
        )
        request_id: str | None = Field(default=None, description="Also in the X-Request-ID header")

    class ErrorEnvelope(BaseModel):
        error: ErrorBody

    return ErrorEnvelope


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for FastAPI routes or apps: the envelope for 407, 422 and 500 by default.

    ``FastAPI(responses=error_responses())`` or ``@app.get(..., responses=error_responses(404))``.
    """
    model = envelope_model()
    chosen = statuses or (407, 422, 500)
    return {status: {"model": model, "description": reason_phrase(status)} for status in chosen}

