"""What an app's own JSON error said, carried into the envelope when it is safe to show.

Frameworks speak several JSON error dialects: ``{"detail": "Not Found"}`` (FastAPI,
Starlette, Django REST framework), FastAPI's validation list ``{"detail": [{"loc",
"msg", "type", "input", ...}]}``, DRF's field errors ``{"email": ["Enter a valid
email address."]}``, ``{"message": ...}`` / ``{"error": ...}`` / ``{"description": ...}``
from Flask handlers and JSON aborts, and RFC 9457 problem+json (``title``, ``detail``,
``errors``). The status is the response's; only the text travels, and only when it is
one short printable line (no markup); validation lists are redacted to ``loc``, ``msg``
and ``type``. This is for 4xx bodies only: nothing written in a 5xx body is ever shown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from proxygate._http import reason_phrase
from proxygate.errors.validation import redact_validation_errors

__all__ = ["app_error_details", "safe_text"]

#: Keys whose string value is the error's sentence, most specific first.
_TEXT_KEYS = ("detail", "message", "error", "description", "title")
#: Keys whose list value is a list of field errors.
_LIST_KEYS = ("detail", "errors")
_MAX_TEXT = 300


def safe_text(value: object) -> str | None:
    """``value`` when it is one short printable line without markup, else None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > _MAX_TEXT or not text.isprintable() or "<" in text:
        return None
    return text


def app_error_details(body: bytes, status: int) -> Any:
    """``details`` for the envelope standing in for an app's 4xx JSON ``body``; None: say
    the default sentence. Never raises on any body."""
    if status >= 500:
        return None
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(parsed, dict):
        return None
    for key in _LIST_KEYS:
        found = parsed.get(key)
        if isinstance(found, list) and found and all(isinstance(item, Mapping) for item in found):
            return redact_validation_errors(found) or None
    reason = reason_phrase(status).lower()
    for key in _TEXT_KEYS:
        found = parsed.get(key)
        if isinstance(found, Mapping):  # {"error": {"message": ..., "details": ...}}
            found = found.get("details") if isinstance(found.get("details"), str) \
                else found.get("message")
        text = safe_text(found)
        if text is not None:
            return None if text.lower() == reason else text
    if status == 400 and _is_field_errors(parsed):
        return redact_validation_errors(parsed) or None
    return None


def _is_field_errors(parsed: dict[str, Any]) -> bool:
    """DRF's ``{"field": ["message", ...], ...}``: every value a list of strings."""
    return bool(parsed) and all(
        isinstance(messages, list) and messages and all(isinstance(m, str) for m in messages)
        for messages in parsed.values()
    )
