"""The exception map: which exceptions become which error responses, and what the client may read."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from proxygate._http import reason_phrase
from proxygate.errors.validation import redact_validation_errors

__all__ = ["ExceptionMap", "MappedError"]

Headers = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class MappedError:
    """What the client sees for an exception: status, public message and details."""

    status: int
    message: str | None = None
    details: Any = None
    headers: Headers = ()


Spec = int | MappedError | tuple[int, str] | tuple[int, str, Any] | Mapping[str, Any]
Describe = Callable[[BaseException], "MappedError | None"]

#: Exception types whose resolution an :class:`ExceptionMap` remembers. Apps raise a
#: handful of types; the bound only matters for code that makes classes on the fly.
_TYPES_REMEMBERED = 256


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
    elif isinstance(spec, bool):
        raise ValueError(f"{where}: expected a status, (status, message[, details]) or a mapping")
    elif isinstance(spec, int):
        mapped = MappedError(spec)
    elif isinstance(spec, tuple) and 1 <= len(spec) <= 3:
        mapped = MappedError(*spec)
    elif isinstance(spec, Mapping):
        unknown = set(spec) - {"status", "message", "details"}
        if unknown or "status" not in spec:
            raise ValueError(f"{where}: expected keys status, message, details")
        mapped = MappedError(spec["status"], spec.get("message"), spec.get("details"))
    else:
        raise ValueError(f"{where}: expected a status, (status, message[, details]) or a mapping")
    if isinstance(mapped.status, bool) or not isinstance(mapped.status, int) \
            or not 400 <= mapped.status <= 599:
        raise ValueError(f"{where}: status must be an error status from 400 to 599")
    if mapped.message is not None and not isinstance(mapped.message, str):
        raise ValueError(f"{where}: the public message must be a string")
    return mapped


class ExceptionMap:
    """User-registered exception classes (subclasses match) plus exceptions that carry a status.

    The most specific registered class wins (method resolution order), and a
    registration beats what an exception says of itself. Nothing is mapped by
    default beyond what framework exceptions say of themselves:
    ``PermissionError`` stays a 500 unless you register it.
    """

    def __init__(self, mapping: Mapping[type[BaseException] | str, Spec] | None = None) -> None:
        self._map: dict[type[BaseException], MappedError] = {}
        for key, spec in (mapping or {}).items():
            cls = _resolve(key) if isinstance(key, str) else key
            if not (isinstance(cls, type) and issubclass(cls, BaseException)):
                raise ValueError(f"exception_map key {key!r} is not an exception class")
            self._map[cls] = _to_mapped(spec, f"exception_map[{key!r}]")
        # What the MRO walk found per exception type: a registration (the same answer for
        # every instance) or the function that reads an instance (its own status, headers,
        # detail). The walk names each class in the MRO; remembering its outcome per type
        # is what keeps asgi-404-handlers within its target.
        self._by_type: dict[type[BaseException], tuple[MappedError | None, Describe | None]] = {}

    def __bool__(self) -> bool:
        return bool(self._map)

    def lookup(self, exc: BaseException) -> MappedError | None:
        kind = type(exc)
        found = self._by_type.get(kind)
        if found is None:
            found = self._resolve_type(kind)
            if len(self._by_type) >= _TYPES_REMEMBERED:
                self._by_type.clear()
            self._by_type[kind] = found
        mapped, describe = found
        if mapped is not None:
            return mapped
        return describe(exc) if describe is not None else None

    def _resolve_type(
        self, kind: type[BaseException]
    ) -> tuple[MappedError | None, Describe | None]:
        mro = kind.__mro__
        if self._map:
            for cls in mro:
                found = self._map.get(cls)
                if found is not None:
                    return found, None
        for cls in mro:
            describe = _FRAMEWORK_EXCEPTIONS.get(f"{cls.__module__}.{cls.__qualname__}")
            if describe is not None:
                return None, describe
        return None, None


# -- exceptions that carry their own status -------------------------------------------
#
# Recognised by the qualified names of their classes (subclasses included), so that the
# core imports no framework and an unrelated exception that happens to have a
# ``status_code`` attribute (an upstream API client's error, say) is not believed.


def _header_pairs(items: Any) -> Headers:
    pairs: list[tuple[bytes, bytes]] = []
    for name, value in items:
        key = str(name).lower()
        if key in ("content-type", "content-length"):
            continue
        try:
            pairs.append((key.encode("latin-1"), str(value).encode("latin-1")))
        except UnicodeEncodeError:
            continue
    return tuple(pairs)


#: ``MappedError(status)`` per status, made once: an exception that says nothing beyond its
#: status (``HTTPException(404)``) is the usual kind, and building the frozen dataclass
#: anew was a seventh of what asgi-404-handlers measures proxygate adding.
_BARE: dict[int, MappedError] = {}


def _described(status: int, detail: Any, headers: Headers) -> MappedError:
    """What an exception says of itself: its status, its headers and the detail fit to show."""
    details: Any
    if status >= 500 or detail is None:
        details = None  # a 5xx never tells the client more than the reason phrase
    elif isinstance(detail, str):
        details = None if detail == "" or detail == reason_phrase(status) else detail
    elif isinstance(detail, int | float | bool | list | dict):
        details = detail
    else:
        details = None  # an object we cannot vouch for never reaches the client
    if details is None and not headers:
        bare = _BARE.get(status)
        if bare is None:
            bare = _BARE[status] = MappedError(status)  # statuses are 400-599: bounded
        return bare
    return MappedError(status, None, details, headers)


def _status(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599:
        return value
    return None


def _starlette(exc: BaseException) -> MappedError | None:
    status = _status(getattr(exc, "status_code", None))
    if status is None:
        return None
    raw = getattr(exc, "headers", None)
    headers = _header_pairs(raw.items()) if raw is not None and isinstance(raw, Mapping) else ()
    return _described(status, getattr(exc, "detail", None), headers)


def _werkzeug(exc: BaseException) -> MappedError | None:
    status = _status(getattr(exc, "code", None))
    if status is None:
        return None
    headers: Headers = ()
    get_headers = getattr(exc, "get_headers", None)
    if callable(get_headers):
        try:
            headers = _header_pairs(get_headers())
        except Exception:  # a custom subclass's get_headers needing a request
            headers = ()
    return _described(status, _own_description(exc), headers)


def _own_description(exc: BaseException) -> Any:
    """The description the app gave: ``abort(403, "...")`` or a subclass of its own.

    Werkzeug's stock sentences ("You don't have the permission to access the requested
    resource...") are framework text, like Starlette's default detail (the reason
    phrase): the envelope's own sentence for the status stands in for them.
    """
    given = vars(exc).get("description")
    if given is not None:
        return given
    for cls in type(exc).__mro__:
        if "description" in vars(cls):
            return None if cls.__module__.startswith("werkzeug.") else vars(cls)["description"]
    return None


def _request_validation(exc: BaseException) -> MappedError | None:
    errors = getattr(exc, "errors", None)
    try:
        raw = errors() if callable(errors) else errors
        details = redact_validation_errors(raw if isinstance(raw, list | tuple) else [])
    except Exception:
        details = []
    return MappedError(422, None, details)


def _fixed(status: int) -> Callable[[BaseException], MappedError]:
    mapped = MappedError(status)
    return lambda exc: mapped


_FRAMEWORK_EXCEPTIONS: dict[str, Callable[[BaseException], MappedError | None]] = {
    "starlette.exceptions.HTTPException": _starlette,
    "werkzeug.exceptions.HTTPException": _werkzeug,
    "fastapi.exceptions.RequestValidationError": _request_validation,
    # Django's messages are for developers (its DEBUG pages); clients get the reason only.
    "django.http.response.Http404": _fixed(404),
    "django.core.exceptions.PermissionDenied": _fixed(403),
    "django.core.exceptions.SuspiciousOperation": _fixed(400),
    "django.core.exceptions.BadRequest": _fixed(400),
    "django.http.request.RawPostDataException": _fixed(400),
}
