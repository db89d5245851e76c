"""Validation failures as ``details`` without leaks: location, message and type per field, no input.

pydantic's error dicts carry ``input`` (the offending value, so a password sent in
the wrong shape comes straight back) and ``ctx`` (values that may quote it); a
422 must never echo them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["redact_validation_errors"]

_MAX_ERRORS = 100
_MAX_TEXT = 300


def _text(value: Any, fallback: str) -> str:
    text = value if isinstance(value, str) else fallback
    return text[:_MAX_TEXT]


def _location(loc: Any) -> list[str | int]:
    if isinstance(loc, str | int) and not isinstance(loc, bool):
        return [loc]
    if not isinstance(loc, list | tuple):
        return []
    return [part if isinstance(part, int | str) and not isinstance(part, bool) else str(part)
            for part in loc]


def redact_validation_errors(errors: Iterable[Any] | Mapping[str, Any]) -> list[dict[str, Any]]:
    """``[{"loc": [...], "msg": "...", "type": "..."}]`` from validation errors, values dropped.

    Takes pydantic's ``ValidationError.errors()`` (and so FastAPI's
    ``RequestValidationError.errors()``), or Django's ``form.errors.get_json_data()``
    shape ``{field: [{"message": ..., "code": ...}]}``. Every other key, ``input``
    and ``ctx`` first, is left out; at most 100 errors are kept.
    """
    out: list[dict[str, Any]] = []
    if isinstance(errors, Mapping):
        for field, items in errors.items():
            for item in items if isinstance(items, list | tuple) else [items]:
                message = item.get("message") if isinstance(item, Mapping) else item
                code = item.get("code") if isinstance(item, Mapping) else None
                out.append({
                    "loc": _location(field),
                    "msg": _text(message, "Invalid value."),
                    "type": _text(code, "invalid") or "invalid",
                })
                if len(out) >= _MAX_ERRORS:
                    return out
        return out
    for error in errors:
        if not isinstance(error, Mapping):
            continue
        out.append({
            "loc": _location(error.get("loc")),
            "msg": _text(error.get("msg"), "Invalid value."),
            "type": _text(error.get("type"), "invalid"),
        })
        if len(out) >= _MAX_ERRORS:
            break
    return out
