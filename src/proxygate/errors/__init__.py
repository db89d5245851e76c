"""The error envelope: rendering, the rewrite policy, the exception map, validation and metrics."""

from proxygate.errors.envelope import ErrorRenderer, ErrorResponse
from proxygate.errors.exceptions import ExceptionMap, MappedError
from proxygate.errors.handler import ErrorHandler
from proxygate.errors.validation import redact_validation_errors

__all__ = [
    "ErrorHandler",
    "ErrorRenderer",
    "ErrorResponse",
    "ExceptionMap",
    "MappedError",
    "redact_validation_errors",
]
