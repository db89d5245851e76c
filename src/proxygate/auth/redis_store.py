"""The Redis throttle store: counters shared by every worker and host, one Lua script a call."""

from __future__ import annotations

import math
import secrets
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from proxygate.auth.stores import SECRET_QUERY_KEYS, redact_url

__all__ = ["RedisThrottleStore"]

# Each key is a sorted set of attempt times in microseconds of *Redis server*
# time, so hosts with skewed clocks still agree on the window. RESERVE looks
# and counts in one atomic script: concurrent attempts from many workers can
# never all see "below the limit" and all go on to hash. It answers
# {0, member} when the attempt was counted (member names it for ZREM on a
# success), or {microseconds blocked, ''} when the key is at its limit.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local nth = redis.call('ZREVRANGE', KEYS[1], limit - 1, limit - 1, 'WITHSCORES')
if #nth > 0 then
  local remaining = tonumber(nth[2]) + window - now
  if remaining > 0 then
    return {remaining, ''}
  end
end
local member = t[1] .. '.' .. t[2] .. ':' .. ARGV[4]
redis.call('ZADD', KEYS[1], now, member)
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(limit + 1))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {0, member}
"""

# The key is blocked until its limit-th newest failure leaves the window.
# Returns whole microseconds (a Lua number becomes an integer reply).
_BLOCKED_FOR = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local nth = redis.call('ZREVRANGE', KEYS[1], limit - 1, limit - 1, 'WITHSCORES')
if #nth == 0 then
  return 0
end
local remaining = tonumber(nth[2]) + window - now
if remaining <= 0 then
  return 0
end
return remaining
"""


class RedisThrottleStore:
    """Failure counters in Redis, shared across processes and hosts, expiring with their window.

    Give it a URL (``redis://``, ``rediss://``, ``unix://``) or a ready
    ``redis.Redis`` client. From a URL the client gets short socket timeouts
    and no retry loop, so a dead Redis costs a request at most
    ``socket_timeout`` per call; the caller (``Throttle``) then fails open.
    A client you pass in is used as it is: its timeouts and retries are yours.
    Connections are re-established by redis-py on the next call once Redis is
    back, and the scripts are reloaded if the server lost them.
    """

    blocking = True

    def __init__(
        self,
        url_or_client: str | redis.Redis,
        *,
        prefix: str = "proxygate:throttle:",
        socket_timeout: float = 0.25,
    ) -> None:
        if socket_timeout <= 0:
            raise ValueError("socket_timeout must be a positive number of seconds")
        self._prefix = prefix
        client: redis.Redis
        if isinstance(url_or_client, str):
            self._where = redact_url(url_or_client)
            client = _client_from_url(url_or_client, self._where, socket_timeout)
        else:
            self._where = "<redis client>"
            client = url_or_client
        self._client = client
        self._reserve = client.register_script(_RESERVE)
        self._blocked_for = client.register_script(_BLOCKED_FOR)

    def __repr__(self) -> str:
        return f"RedisThrottleStore({self._where!r}, prefix={self._prefix!r})"

    def blocked_for(self, key: str, *, limit: int, window: float) -> float:
        micros = self._blocked_for(
            keys=[self._prefix + key], args=[limit, _micros(window)], client=self._client
        )
        return int(micros) / 1_000_000

    def reserve(self, key: str, *, limit: int, window: float) -> tuple[float, object]:
        blocked, member = self._reserve(
            keys=[self._prefix + key],
            args=[limit, _micros(window), max(1, math.ceil(window * 1000)), secrets.token_hex(8)],
            client=self._client,
        )
        if int(blocked) > 0:
            return int(blocked) / 1_000_000, None
        return 0.0, member

    def release(self, key: str, token: object) -> None:
        if isinstance(token, bytes | str) and token:
            self._client.zrem(self._prefix + key, token)

    def first_use(self, key: str, *, ttl: float) -> bool:
        """Record ``key`` (a Digest replay key) for ``ttl`` seconds; True if it was new.

        One ``SET NX PX``: atomic, so a triple replayed to two workers at once is
        accepted by exactly one of them.
        """
        return bool(self._client.set(self._prefix + key, b"1", nx=True,
                                     px=max(1, math.ceil(ttl * 1000))))

    def close(self) -> None:
        """Release the client's connections (only worth calling for a client built from a URL)."""
        self._client.close()


def _micros(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1_000_000))


def _client_from_url(url: str, where: str, socket_timeout: float) -> redis.Redis:
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        # redis-py's default retries with backoff for seconds; throttling would
        # rather fail open at once. A stale pooled connection is still replaced
        # before use, so a restarted Redis is picked up by the next call.
        "retry": Retry(NoBackoff(), 0),
    }
    try:
        port = urlsplit(url).port
    except ValueError:
        port = -1
    if port == -1:
        raise ValueError(
            f"invalid Redis URL {where!r}: the port is not a number from 0 to 65535"
        ) from None
    try:
        return redis.Redis.from_url(url, **options)
    except ValueError as exc:
        raise ValueError(f"invalid Redis URL {where!r}: {_shown(str(exc), url)}") from None


def _shown(message: str, url: str) -> str:
    """redis-py's message about ``url``, or a note in its place when it would show a secret.

    Masking each occurrence of the password inside the message would also mask every
    unrelated word that happens to contain it (a password ``u`` turned "could" into
    "co***ld"), so the message is shown whole or not at all. The URL itself, quoted
    whole, is replaced by its redacted form.
    """
    try:
        parts = urlsplit(url)
        hidden = [parts.password] + [
            v for k, v in parse_qsl(parts.query) if k.lower() in SECRET_QUERY_KEYS
        ]
    except ValueError:
        return "the URL could not be parsed"
    message = message.replace(url, redact_url(url))
    for secret in filter(None, hidden):
        if secret in message or unquote(secret) in message:
            return "redis-py refused it (its message is withheld: it quotes a credential)"
    return message
