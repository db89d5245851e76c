"""Choosing a throttle store from the ``throttle_store`` option: memory by default, Redis by URL."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from proxygate.auth.throttle import MemoryThrottleStore, ThrottleStore

__all__ = ["make_throttle_store", "redact_url"]

REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})
# Query arguments redis-py reads credentials from; redacted like user info.
SECRET_QUERY_KEYS = frozenset({"password", "username"})


def make_throttle_store(spec: str | ThrottleStore | None) -> ThrottleStore:
    """The store ``spec`` names.

    ``None`` or ``"memory://"``: a per-process :class:`MemoryThrottleStore`.
    ``"redis://…"``, ``"rediss://…"``, ``"unix://…"``: a
    :class:`~proxygate.auth.redis_store.RedisThrottleStore` (needs the
    ``redis`` extra). An object with the :class:`ThrottleStore` shape is used
    as it is. Anything else is a configuration error.
    """
    if spec is None:
        return MemoryThrottleStore()
    if isinstance(spec, str):
        return _store_from_url(spec)
    if isinstance(spec, ThrottleStore):
        return spec
    raise ValueError(
        "throttle_store must be None, a URL (memory://, redis://, rediss://, unix://) "
        f"or an object with blocking, reserve(), release() and blocked_for(); got {type(spec).__name__}"
    )


def _store_from_url(url: str) -> ThrottleStore:
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if url.strip().lower() == "memory://":
        return MemoryThrottleStore()
    if scheme in REDIS_SCHEMES:
        try:
            import redis  # noqa: F401  (only to tell a missing extra from other errors)
        except ImportError:
            raise ValueError(
                f"throttle_store {redact_url(url)!r} needs the redis package: "
                "pip install 'proxygate[redis]'"
            ) from None
        from proxygate.auth.redis_store import RedisThrottleStore

        return RedisThrottleStore(url)
    raise ValueError(
        f"throttle_store {redact_url(url)!r} is not a supported URL; use memory:// or "
        "redis://host:port/db (also rediss:// for TLS and unix:///path/to/redis.sock)"
    )


def redact_url(url: str) -> str:
    """``url`` with its user info and credential query arguments replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    elif "@" in url:
        # Not user info we can recognise (no "//"?): show nothing rather than guess.
        return "<redacted>"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, "***" if k.lower() in SECRET_QUERY_KEYS else v) for k, v in pairs], safe="*"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
