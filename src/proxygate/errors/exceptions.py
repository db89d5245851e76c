"""The exception map: which exceptions become which error responses, and what the client may read."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proxygate._http import reason_phrase

__all__ = ["ExceptionMap", "MappedError"]


@dataclass(frozen=True, slots=True)
class MappedError:
    """What the client sees for an exception: status, public message and details."""

    status: int
    message: str | None = None
    details: Any = None
    headers: tuple[tuple[bytes, bytes], ...] = ()


Spec = int | MappedError | tuple[int, str] | tuple[int, str, Any] | Mapping[str, Any]


def _resolve(name: str) -> type[BaseException]:
    module, _, attr = name.rpartition(".")
    if not module:
        raise ValueError(f"exception {name!r} must be a dotted path like 'package.module.Error'")
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import exception {name!r}: {exc}") from None
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise ValueError(f"{name!r} is not an exception class")
    return found


def _to_mapped(spec: Spec, where: str) -> MappedError:
    if isinstance(spec, MappedError):
        mapped = spec
    elif isinstance(spec, int):
        mapped = MappedError(spec)
    elif isinstance(spec, tuple):
        mapped = MappedError(*spec)
    elif isinstance(spec, Mapping):
        unknown = set(spec) - {"status", "message", "details"}
        if unknown or "status" not in spec:
            raise ValueError(f"{where}: expected keys status, message, details")
        mapped = MappedError(spec["status"], spec.get("message"), spec.get("details"))
    else:
        raise ValueError(f"{where}: expected a status, (status, message[, details]) or a mapping")
    if not isinstance(mapped.status, int) or not 400 <= mapped.status <= 599:
        raise ValueError(f"{where}: status must be an error status from 400 to 599")
    return mapped


class ExceptionMap:
    """User-registered exception classes (subclasses match) plus exceptions that carry a status.

    The most specific registered class wins (method resolution order). Nothing is
    mapped by default beyond what an exception says of itself: ``PermissionError``
    stays a 500 unless you register it.
    """

    def __init__(self, mapping: Mapping[type[BaseException] | str, Spec] | None = None) -> None:
        self._map: dict[type[BaseException], MappedError] = {}
        for key, spec in (mapping or {}).items():
            cls = _resolve(key) if isinstance(key, str) else key
            if not (isinstance(cls, type) and issubclass(cls, BaseException)):
                raise ValueError(f"exception_map key {key!r} is not an exception class")
            self._map[cls] = _to_mapped(spec, f"exception_map[{key!r}]")

    def __bool__(self) -> bool:
        return bool(self._map)

    def lookup(self, exc: BaseException) -> MappedError | None:
        for cls in type(exc).__mro__:
            found = self._map.get(cls)
            if found is not None:
                return found
        return _self_described(exc)


def _self_described(exc: BaseException) -> MappedError | None:
    """Exceptions that carry their own HTTP status (Starlette, Werkzeug, Django), duck-typed."""
    status = getattr(exc, "status_code", None)  # Starlette / FastAPI HTTPException
    if status is None:
        status = getattr(exc, "code", None)  # Werkzeug HTTPException
        if status is not None and not hasattr(exc, "description"):
            status = None
    if isinstance(status, int) and 400 <= status <= 599:
        detail = getattr(exc, "detail", None)
        if detail is None:
            detail = getattr(exc, "description", None)
        headers: tuple[tuple[bytes, bytes], ...] = ()
        raw_headers = getattr(exc, "headers", None)
        if isinstance(raw_headers, Mapping):
            headers = tuple(
                (str(k).lower().encode("latin-1"), str(v).encode("latin-1"))
                for k, v in raw_headers.items()
            )
        if status >= 500:
            detail = None  # a 5xx never tells the client more than the reason phrase
        elif isinstance(detail, str) and detail == reason_phrase(status):
            detail = None
        return MappedError(status, None, detail, headers)
    # Django's exceptions, by name so that the core imports no framework.
    for cls in type(exc).__mro__:
        qualified = f"{cls.__module__}.{cls.__qualname__}"
        if qualified in _DJANGO_STATUSES:
            return MappedError(_DJANGO_STATUSES[qualified])
    return None


_DJANGO_STATUSES = {
    "django.http.response.Http404": 404,
    "django.core.exceptions.PermissionDenied": 403,
    "django.core.exceptions.SuspiciousOperation": 400,
    "django.core.exceptions.BadRequest": 400,
    "django.http.request.RawPostDataException": 400,
}
