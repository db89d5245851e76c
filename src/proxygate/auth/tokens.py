"""Where Bearer tokens come from: a tokens file of hashes that follows changes, a mapping, a callable.

The tokens file has one line a token, ``name:sha256=<hex>``: the name is the identity a
request with the token gets, the hex is SHA-256 of the token. Only hashes are stored;
``proxygate tokens add`` prints a new token once. Tokens are random (256 bits), so a
fast hash is enough: there is no password to guess offline.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from proxygate.auth.htpasswd import HtpasswdError, index_htpasswd_lines
from proxygate.auth.users import WatchedFile, _is_async_callable

__all__ = [
    "AsyncCallableTokens",
    "CallableTokens",
    "MappingTokens",
    "TokenSource",
    "TokensFile",
    "check_token_hash",
    "hash_token",
    "make_token_source",
    "new_token",
    "parse_tokens",
]

logger = logging.getLogger("proxygate.auth")

_PREFIX = "sha256="
_HEX = frozenset("0123456789abcdef")
#: What new tokens start with: lets secret scanners (and people) recognise a leaked one.
TOKEN_PREFIX = "pgt_"  # noqa: S105 -- a prefix, not a secret


def new_token() -> str:
    """A fresh random token: 256 bits, URL-safe, valid as an RFC 6750 b64token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What a tokens file or a ``tokens`` mapping stores for ``token``: ``sha256=<hex>``."""
    return _PREFIX + hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_token_hash(stored: str) -> str:
    """``stored`` if it is a token hash, else ValueError saying what one looks like."""
    hexpart = stored[len(_PREFIX):]
    if not stored.startswith(_PREFIX) or len(hexpart) != 64 or not set(hexpart) <= _HEX:
        raise ValueError("not a token hash: expected sha256=<64 lower-case hex digits>, as "
                         "'proxygate tokens add' writes and proxygate.hash_token() returns")
    return stored


def parse_tokens(text: str, source: str = "<tokens>") -> dict[str, str]:
    """``{name: hash}`` from a tokens file's text; HtpasswdError naming file and line."""
    tokens: dict[str, str] = {}
    for name, entry in index_htpasswd_lines(text.splitlines(), source).items():
        try:
            check_token_hash(entry.stored)
        except ValueError as exc:
            raise HtpasswdError(f"{source}, line {entry.index + 1} (name {name!r}): {exc}") from None
        tokens[name] = entry.stored
    return tokens


class TokenSource(Protocol):
    """What the Bearer scheme asks of a token source."""

    #: ``alookup`` must be awaited.
    is_async: bool
    #: ``lookup`` may block (a callable that does I/O): the ASGI shell runs it in a thread.
    blocking: bool

    def lookup(self, token: str) -> str | None:
        """The name the token belongs to, or None. Never raises."""
        ...

    async def alookup(self, token: str) -> str | None: ...


class _HashedTokens:
    is_async = False
    blocking = False
    _by_hash: dict[str, str]

    def lookup(self, token: str) -> str | None:
        # No comparison with a stored token ever runs byte by byte: the token is looked up
        # by its SHA-256. What a look-up's timing could tell is how the hash of the
        # attacker's own guess falls in the table, which says nothing about any token:
        # the constant-time property the RFC asks for, at dict speed for any number of
        # tokens.
        return self._by_hash.get(hash_token(token))

    async def alookup(self, token: str) -> str | None:
        return self.lookup(token)

    @staticmethod
    def _index(tokens: Mapping[str, str]) -> dict[str, str]:
        return {stored: name for name, stored in tokens.items()}


class MappingTokens(_HashedTokens):
    """Tokens from a mapping of name to token hash (:func:`hash_token`), taken as it is now."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        for name, stored in tokens.items():
            if not isinstance(name, str) or not isinstance(stored, str):
                raise TypeError("tokens mapping must map str names to str token hashes")
            try:
                check_token_hash(stored)
            except ValueError as exc:
                raise ValueError(f"tokens[{name!r}]: {exc}; never the token itself") from None
        self._by_hash = self._index(tokens)
        if len(self._by_hash) != len(tokens):
            raise ValueError("tokens mapping: two names share one token")

    def __repr__(self) -> str:
        return f"MappingTokens(<{len(self._by_hash)} tokens>)"


class TokensFile(_HashedTokens, WatchedFile[dict[str, str]]):
    """Tokens from a tokens file, reloaded when it changes (a deleted token stops working)."""

    kind = "tokens file"
    unit = "tokens"
    empty_hint = "no token could pass the gate: add one with 'proxygate tokens add FILE NAME'"

    def __repr__(self) -> str:
        return f"TokensFile({str(self.path)!r}, <{len(self._by_hash)} tokens>)"

    def _parse(self, text: str) -> dict[str, str]:
        tokens = parse_tokens(text, str(self.path))
        if len(set(tokens.values())) != len(tokens):
            raise HtpasswdError(f"{self.path}: two names share one token")
        return tokens

    def _take(self, table: dict[str, str]) -> None:
        self._by_hash = self._index(table)


class CallableTokens:
    """Tokens checked by ``lookup(token) -> name | None``, which may block (a thread runs it)."""

    is_async = False
    blocking = True

    def __init__(self, lookup: Callable[[str], str | None]) -> None:
        self._lookup = lookup

    def __repr__(self) -> str:
        return f"CallableTokens({getattr(self._lookup, '__qualname__', type(self._lookup).__name__)})"

    def lookup(self, token: str) -> str | None:
        try:
            name = self._lookup(token)
        except Exception as exc:
            logger.error("tokens callable raised %s; counting a failed attempt", type(exc).__name__)
            return None
        return _name_or_none(name)

    async def alookup(self, token: str) -> str | None:
        return self.lookup(token)


class AsyncCallableTokens:
    """Tokens checked by ``async lookup(token) -> name | None`` (ASGI only)."""

    is_async = True
    blocking = False

    def __init__(self, lookup: Callable[[str], Awaitable[str | None]]) -> None:
        self._lookup = lookup

    def __repr__(self) -> str:
        name = getattr(self._lookup, "__qualname__", type(self._lookup).__name__)
        return f"AsyncCallableTokens({name})"

    def lookup(self, token: str) -> str | None:
        raise TypeError("an async tokens callable needs the ASGI middleware")

    async def alookup(self, token: str) -> str | None:
        try:
            name = await self._lookup(token)
        except Exception as exc:
            logger.error("tokens callable raised %s; counting a failed attempt", type(exc).__name__)
            return None
        return _name_or_none(name)


def _name_or_none(name: object) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str) or not name:
        logger.error("tokens callable returned %s, not a name or None; counting a failed "
                     "attempt", type(name).__name__)
        return None
    return name


def make_token_source(tokens: object, *, reload_interval: float = 2.0) -> TokenSource:
    """Turn the ``tokens=`` option into a source, failing with a message that says what to pass."""
    if isinstance(tokens, _HashedTokens | CallableTokens | AsyncCallableTokens):
        return tokens
    if isinstance(tokens, str | os.PathLike):
        return TokensFile(tokens, reload_interval=reload_interval)
    if isinstance(tokens, Mapping):
        return MappingTokens(tokens)
    if callable(tokens):
        if _is_async_callable(tokens) or inspect.iscoroutinefunction(tokens):
            return AsyncCallableTokens(tokens)
        return CallableTokens(tokens)
    raise TypeError(
        f"tokens must be a path to a tokens file, a mapping of name to token hash or a "
        f"callable (token) -> name | None, not {type(tokens).__name__}"
    )
