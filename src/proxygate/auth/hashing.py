"""Password hashes: the libpass handlers proxygate trusts, and what it refuses."""

from __future__ import annotations

import functools
import logging
from typing import Any

__all__ = [
    "ALLOWED_SCHEMES",
    "DEFAULT_SCHEME",
    "HashFormatError",
    "check_hash",
    "cost_signature",
    "hash_password",
    "verify_password",
]

logger = logging.getLogger("proxygate.auth")

#: Schemes accepted in users files and mappings. Plaintext, DES-crypt, unsalted
#: SHA-1 (`{SHA}`) and MD5-crypt (`$1$`) are refused: they fall to an offline
#: attack in seconds.
ALLOWED_SCHEMES: tuple[str, ...] = (
    "bcrypt",
    "sha256_crypt",
    "sha512_crypt",
    "apr_md5_crypt",
    "argon2",
)
DEFAULT_SCHEME = "bcrypt"

#: How each allowed scheme's hashes begin (modular crypt format): a stored hash names its
#: scheme, so only that scheme's handler is ever imported.
_PREFIXES: tuple[tuple[str, str], ...] = (
    ("$2", "bcrypt"),  # $2a$, $2b$, $2y$
    ("$5$", "sha256_crypt"),
    ("$6$", "sha512_crypt"),
    ("$apr1$", "apr_md5_crypt"),
    ("$argon2", "argon2"),
)

_EXTRA_FOR_SCHEME = {"bcrypt": "bcrypt", "argon2": "argon2"}


@functools.cache
def _handler(scheme: str) -> Any:
    """libpass's handler for ``scheme``, imported on first use. Not at import time: the
    handlers import what they hash with (bcrypt's pulls in ``importlib.metadata`` and
    ``email``), some 90 ms for all five that neither ``import proxygate`` nor a server's
    start should pay for schemes its users do not have."""
    from passlib.registry import get_crypt_handler

    return get_crypt_handler(scheme)


class HashFormatError(ValueError):
    """A stored hash proxygate will not use. The message never contains the hash itself."""


def _identify(stored: str) -> str | None:
    for prefix, scheme in _PREFIXES:
        if stored.startswith(prefix):
            try:
                return scheme if _handler(scheme).identify(stored) else None
            except (ValueError, TypeError):
                return None
    return None


def check_hash(stored: str) -> str:
    """Return the scheme of ``stored`` or raise :class:`HashFormatError` saying what to change."""
    scheme = _identify(stored)
    if scheme is None:
        raise HashFormatError(
            "not a supported password hash (use bcrypt, sha256_crypt, sha512_crypt, "
            "apr1 or argon2; plaintext, DES-crypt, {SHA} and $1$ MD5 are refused)"
        )
    try:
        _handler(scheme).from_string(stored)
    except (ValueError, TypeError) as exc:
        raise HashFormatError(f"malformed {scheme} hash") from exc
    if not _backend_available(scheme):
        extra = _EXTRA_FOR_SCHEME.get(scheme, scheme)
        raise HashFormatError(
            f"{scheme} hashes need the {extra!r} extra: pip install 'proxygate[{extra}]'"
        )
    return scheme


def _backend_available(scheme: str) -> bool:
    has_backend = getattr(_handler(scheme), "has_backend", None)
    if has_backend is None:
        return True
    return bool(has_backend())


def cost_signature(stored: str) -> tuple[str, ...]:
    """What makes two hashes cost the same to verify: scheme and its work parameters."""
    scheme = _identify(stored)
    if scheme is None:
        return ("?",)
    try:
        parsed: Any = _handler(scheme).from_string(stored)
    except (ValueError, TypeError):
        return (scheme,)
    params = [
        str(getattr(parsed, name, ""))
        for name in ("rounds", "memory_cost", "parallelism", "type")
    ]
    return (scheme, *params)


def verify_password(password: str, stored: str) -> bool:
    """Constant-time verify. Any failure inside the hash library is a failed login, not a crash.

    bcrypt 5 raises on passwords longer than 72 bytes; that is a wrong password here.
    """
    try:
        scheme = _identify(stored)
        if scheme is None:
            raise ValueError("not a supported password hash")
        return bool(_handler(scheme).verify(password, stored))
    except Exception as exc:
        # The exception text may quote the hash or the password: log only its type.
        logger.warning("password verification failed inside the hash library (%s)",
                       type(exc).__name__)
        return False


def hash_password(password: str, scheme: str = DEFAULT_SCHEME, **settings: Any) -> str:
    """Hash ``password`` with ``scheme`` (one of :data:`ALLOWED_SCHEMES`)."""
    if scheme not in ALLOWED_SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; choose one of {', '.join(ALLOWED_SCHEMES)}")
    if not _backend_available(scheme):
        extra = _EXTRA_FOR_SCHEME.get(scheme, scheme)
        raise ValueError(f"{scheme} needs the {extra!r} extra: pip install 'proxygate[{extra}]'")
    handler: Any = _handler(scheme)
    if settings:
        handler = handler.using(**settings)
    result: str = handler.hash(password)
    return result
