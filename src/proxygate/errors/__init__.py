"""The error envelope: rendering, the rewrite policy and the exception map."""

from proxygate.errors.envelope import ErrorRenderer, ErrorResponse
from proxygate.errors.exceptions import ExceptionMap, MappedError
from proxygate.errors.handler import ErrorHandler

__all__ = ["ErrorHandler", "ErrorRenderer", "ErrorResponse", "ExceptionMap", "MappedError"]
