"""Envelopes for exceptions a framework already caught and will log itself.

Django and Starlette report an unhandled exception through their own logging (and
Starlette re-raises it to the server), so the adapters must render the envelope
without writing a second error record. Framework-free on purpose.
"""

from __future__ import annotations

import traceback
from typing import Any

from proxygate.errors.envelope import ErrorResponse
from proxygate.errors.handler import ErrorHandler, RequestHead


def envelope_for_exception(handler: ErrorHandler, head: RequestHead,
                           exc: BaseException) -> ErrorResponse:
    """What :meth:`ErrorHandler.exception_response` sends, minus its log record."""
    try:
        mapped = handler.exceptions.lookup(exc)
    except Exception:
        mapped = None
    if mapped is not None and mapped.status < 500:
        return handler.exception_response(head, exc)  # logs at DEBUG only
    details: Any = mapped.details if mapped is not None else None
    if handler.config.debug:
        details = {
            "exception": type(exc).__name__,
            "message": str(exc),
            "traceback": traceback.format_exception(exc),
        }
    return handler.render(
        head,
        mapped.status if mapped is not None else 500,
        details=details,
        message=mapped.message if mapped is not None else None,
        headers=mapped.headers if mapped is not None else (),
    )
