"""The decision core: a request head in, Forward / Deny / Check out. No I/O, no framework."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from proxygate._check import CacheEntry, Check
from proxygate._http import split_absolute_target
from proxygate.auth.budget import HashBudget, default_concurrency
from proxygate.auth.cache import SingleFlight, VerificationCache
from proxygate.auth.denial_log import DenialLog
from proxygate.auth.ldap_url import is_ldap_url
from proxygate.auth.schemes import MalformedCredentials, Scheme, Verdict, make_schemes, scheme_token
from proxygate.auth.stores import make_throttle_store
from proxygate.auth.throttle import Throttle
from proxygate.auth.tokens import TokenSource, make_token_source
from proxygate.auth.users import SourceUnavailable, UserSource, make_user_source
from proxygate.config import USERS_REQUIRED, Config, ConfigError
from proxygate.decisions import ANONYMOUS, AUTHENTICATED, AuthInfo, Deny, Forward, Identity
from proxygate.errors.handler import ErrorHandler, HeadFromPairs, RequestHead

#: The values and the Check live in rooms of their own; they are imported from here too.
__all__ = [
    "ANONYMOUS",
    "AUTHENTICATED",
    "AuthInfo",
    "CacheEntry",
    "Check",
    "Deny",
    "Forward",
    "Gate",
    "HeadFromPairs",
    "Identity",
    "RequestHead",
]

auth_log = logging.getLogger("proxygate.auth")

#: Outcomes logged per client and window (the first in full, the rest as one summary):
#: an attacker decides how many of these there are.
_SUMMARISED = frozenset({"failure", "throttled"})

#: Retry-After on a 503 for a user source that cannot answer: long enough for a directory
#: restart or fail-over, short enough that a client does not give up.
SOURCE_RETRY_AFTER = 5


TOKENS_REQUIRED = (
    "schemes includes 'bearer', so tokens is required: pass a path to a tokens file "
    "(proxygate tokens add FILE NAME), a mapping of name to token hash, or a callable "
    "(token) -> name | None"
)


class Gate:
    """Everything proxygate decides, built once from a :class:`Config`.

    An authenticator that holds a list of schemes and knows none of them by name. It
    renders its answers through an :class:`ErrorHandler` (``errors``), which it uses
    rather than is: the error half of proxygate reads on its own.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        wants_users = "basic" in config.schemes or "digest" in config.schemes
        if wants_users and config.users is None:
            raise ConfigError(USERS_REQUIRED)
        if not wants_users and config.users is not None:
            raise ConfigError("users is set but schemes has neither 'basic' nor 'digest' to "
                              "use it; add one, or leave users out")
        if "bearer" in config.schemes and config.tokens is None:
            raise ConfigError(TOKENS_REQUIRED)
        proxy = config.mode == "proxy"
        self.status = 407 if proxy else 401
        self.credential_header = b"proxy-authorization" if proxy else b"authorization"
        self.challenge_header = b"proxy-authenticate" if proxy else b"www-authenticate"
        #: Request headers removed before the app sees the request.
        self.strip_headers: frozenset[bytes] = (
            frozenset({b"proxy-authorization", b"proxy_authorization", b"proxy-connection"})
            if proxy
            else frozenset() if config.keep_authorization else frozenset({b"authorization"})
        )
        try:
            self.users: UserSource | None = None if not wants_users else (
                directory_users(config) if is_ldap_url(config.users)
                else make_user_source(
                    config.users, reload_interval=config.reload_interval, realm=config.realm,
                    digest_algorithms=config.digest_algorithms if "digest" in config.schemes
                    else ())
            )
            self.tokens: TokenSource | None = None if config.tokens is None else \
                make_token_source(config.tokens, reload_interval=config.reload_interval)
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc)) from None
        try:
            store = make_throttle_store(config.throttle_store)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        try:
            #: The configured schemes, in challenge order.
            self.schemes: tuple[Scheme[Any], ...] = tuple(
                make_schemes(config, users=self.users, tokens=self.tokens, store=store))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self._by_name = {scheme.name.encode("ascii"): scheme for scheme in self.schemes}
        #: True when some scheme's verification must be awaited (an async callable).
        self.is_async = any(scheme.is_async for scheme in self.schemes)
        # Fixed challenges (no Digest nonce in them) are rendered once.
        self._static = all(scheme.name != "digest" for scheme in self.schemes)
        self._challenge_pairs = self._pairs(self.challenge_values())
        self.errors = ErrorHandler(config, challenges=self.challenge_values)
        # A hit hands back the very Forward the first success built: no allocation.
        self.cache: VerificationCache[CacheEntry] = VerificationCache(
            ttl=config.cache_ttl, size=config.cache_size
        )
        self.flight: SingleFlight[Verdict] = SingleFlight()
        self.throttle = Throttle(
            store,
            max_failures=config.max_failures,
            window=config.failure_window,
            max_failures_per_user=config.max_failures_per_user,
        )
        self.denials = DenialLog(auth_log, config.failure_window)
        concurrency = config.max_concurrent_hashes or default_concurrency()
        queued = config.max_queued_hashes
        self.hash_budget = HashBudget(concurrency, 2 * concurrency if queued is None else queued)
        self._hash_executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        #: The one header a trusted proxy's client address is read from.
        self.forwarded_header = config.forwarded_header.lower().encode("ascii")
        self._exempt_exact = frozenset(p for p in config.exempt_paths if not p.endswith("*"))
        self._has_exemptions = bool(config.exempt_paths)
        self._exempt_prefixes = tuple(p[:-1] for p in config.exempt_paths if p.endswith("*"))

    def __repr__(self) -> str:
        return f"Gate({self.config!r})"

    # -- the request ------------------------------------------------------------------

    def is_exempt(self, path: str) -> bool:
        if path in self._exempt_exact:
            return True
        if not self._exempt_prefixes or not path.startswith(self._exempt_prefixes):
            return False
        return _plainly_below_prefix(path)

    def decide(self, head: RequestHead,
               credentials: list[bytes] | None = None) -> Forward | Deny | Check:
        """The decision for ``head``. A shell that already collected the credential header's
        values while scanning the headers passes them as ``credentials``."""
        if self._has_exemptions and self.is_exempt(head.path):
            return ANONYMOUS
        values = head.header_values(self.credential_header) if credentials is None \
            else credentials
        if not values:
            self.audit("failure", "missing", None, head)
            return self.challenge_response(head)
        if len(values) > 1:
            # Two credential headers are ambiguous: which one would a proxy have checked?
            return Check(self, head, None, None, None, reason="malformed")
        value = values[0]
        cache = self.cache
        # One MAC a request: the cache's key, and the name of the credential's single
        # flight (a throttled attempt needs it no less than a cached one).
        key = cache.key(value)
        stale = False
        if cache.ttl > 0:
            hit = cache.get(key)
            if hit is not None:
                stored, (current, username, forward) = hit
                if current(username) == stored:
                    if self.errors.metrics is not None or auth_log.isEnabledFor(logging.DEBUG):
                        # DEBUG, not INFO: a record per cached request would cost more
                        # than the decision itself.
                        self.audit("success", "cached", username, head, level=logging.DEBUG,
                                   scheme=forward.identity.scheme if forward.identity else None)
                    return forward
                stale = True
        name = scheme_token(value)
        scheme = self._by_name.get(name) if name is not None else None
        if scheme is None:
            if name is None:  # not even a scheme name
                return Check(self, head, None, None, None, reason="malformed")
            self.audit("failure", "missing", None, head)  # another scheme: as good as none
            return self.challenge_response(head)
        if stale:  # the user's hash changed since: the entry is void
            cache.discard(key)
        try:
            parsed = scheme.parse(value)
        except MalformedCredentials:
            return Check(self, head, scheme, None, None, reason="malformed")
        if not self.throttle.store.blocking:
            # A store in this process answers at once: a throttled client gets its 429
            # here, without a Check, a place in the hash budget or a worker thread.
            # (Check.admit still counts atomically: two racing attempts cannot both pass.)
            claimed = scheme.username(parsed)
            wait = self.throttle.blocked_for(self.client_address(head), claimed)
            if wait > 0:
                return self.throttled_response(head, claimed, wait, scheme=scheme.label)
        return Check(self, head, scheme, parsed, key if scheme.cacheable else None)

    def challenge_values(self, *, stale: bool = False,
                         rejected: Scheme[Any] | None = None) -> list[bytes]:
        """Every scheme's challenges in the configured order (Digest: one per algorithm)."""
        values: list[bytes] = []
        for scheme in self.schemes:
            values.extend(scheme.challenges(stale=stale, rejected=scheme is rejected))
        return values

    def _pairs(self, values: list[bytes]) -> list[tuple[bytes, bytes]]:
        return [(self.challenge_header, value) for value in values]

    def challenge_response(self, head: RequestHead, *, stale: bool = False,
                           rejected: Scheme[Any] | None = None) -> Deny:
        """The 407 (401) with one challenge line per scheme. ``rejected``: the scheme whose
        credentials were refused (Bearer then says ``error="invalid_token"``)."""
        errors = self.errors
        if errors.metrics is not None:
            errors.metrics.error(self.status, "denied")
        if self._static and rejected is None:
            pairs = self._challenge_pairs
        else:
            pairs = self._pairs(self.challenge_values(stale=stale, rejected=rejected))
        return Deny(errors.render(head, self.status, headers=pairs))

    def bad_request(self, head: RequestHead, details: str) -> Deny:
        if self.errors.metrics is not None:
            self.errors.metrics.error(400, "denied")
        return Deny(self.errors.render(head, 400, details=details))

    def throttled_response(self, head: RequestHead, username: str | None, wait: float, *,
                           scheme: str | None = None) -> Deny:
        """429 with ``Retry-After``: the client (or user) is at its failure limit."""
        self.audit("throttled", "throttled", username, head, scheme=scheme)
        if self.errors.metrics is not None:
            self.errors.metrics.error(429, "denied")
        seconds = max(1, math.ceil(wait))
        return Deny(self.errors.render(head, 429,
                                       headers=[(b"retry-after", str(seconds).encode("ascii"))]))

    def unavailable_response(self, head: RequestHead, retry_after: float, *,
                             reason: str = "unavailable", details: str | None = None) -> Deny:
        """503 with ``Retry-After`` in the envelope: authentication cannot be decided now.

        For anything that must not turn into a 407 (which would make clients prompt for
        a password that may be fine) nor a 500: a full hash budget, a user source that
        is down. ``reason`` names the cause in the audit record and metrics.
        """
        seconds = max(1, math.ceil(retry_after))
        self.audit("unavailable", reason, None, head)
        if self.errors.metrics is not None:
            self.errors.metrics.error(503, reason)
        if details is None:
            details = f"Authentication is unavailable right now; retry after {seconds} seconds."
        return Deny(self.errors.render(head, 503, details=details,
                                       headers=[(b"retry-after", str(seconds).encode("ascii"))]))

    def source_unavailable(self, head: RequestHead, username: str | None,
                           exc: SourceUnavailable) -> Deny:
        """The 503 for a user source that cannot answer (a directory down, slow, refusing
        the service account): not the client's fault, so no challenge and no failure
        counted. One ERROR line names the cause; it holds no secret."""
        auth_log.error("user directory unavailable (%s); answering 503 user=%r request_id=%s",
                       exc, username, self.errors.request_id(head))
        return self.unavailable_response(
            head, SOURCE_RETRY_AFTER, reason="source_unavailable",
            details="The user directory is not answering; retry later.",
        )

    def busy_response(self, head: RequestHead) -> Deny:
        """The 503 for an uncached attempt beyond the hash budget: answered at once."""
        return self.unavailable_response(
            head, 1, reason="busy",
            details="Too many credentials are being checked right now; retry after 1 second.",
        )

    @property
    def hash_executor(self) -> ThreadPoolExecutor:
        """The threads every password hash runs on: one per budget slot, at a lower CPU
        priority. A queued hash waits here, holding no thread another task (or a store
        round trip) needs; a WSGI request thread waits for its hash's result."""
        executor = self._hash_executor
        if executor is None:
            with self._executor_lock:
                if self._hash_executor is None:
                    self._hash_executor = ThreadPoolExecutor(
                        max_workers=self.hash_budget.concurrency,
                        thread_name_prefix="proxygate-hash",
                        initializer=_yield_to_requests,
                    )
                executor = self._hash_executor
        return executor

    # -- identity of the request ------------------------------------------------------

    def client_address(self, head: RequestHead) -> str | None:
        """The peer, or what a trusted proxy says the client was (rightmost untrusted hop).

        Only the configured ``forwarded_header`` is read: a client that sends another
        kind next to the one its proxy writes chooses nothing.
        """
        peer = head.client
        networks = self.config._networks
        if not networks or peer is None or not _in_networks(peer, networks):
            return peer
        hops = _hops(self.forwarded_header, head.header_values(self.forwarded_header))
        for hop in reversed(hops):
            if not _in_networks(hop, networks):
                return hop
        return hops[0] if hops else peer

    def audit(self, outcome: str, reason: str, username: str | None, head: RequestHead,
              *, level: int | None = None, scheme: str | None = None) -> None:
        """One structured record per decision on ``proxygate.auth``; never a secret in it."""
        if self.errors.metrics is not None:
            self.errors.metrics.auth(outcome, reason)
        if level is None:
            failed = outcome in ("failure", "throttled") and reason != "missing"
            level = logging.WARNING if failed else logging.INFO
        if not auth_log.isEnabledFor(level):
            return
        client = self.client_address(head)
        if outcome in _SUMMARISED and not self.denials.first(client, outcome, reason, level):
            return  # counted in its client's summary for this window (docs/throttling.md)
        record = {
            "outcome": outcome,
            "reason": reason,
            "username": username,
            "scheme": scheme,
            "client": client,
            "request_id": self.errors.request_id(head),
        }
        auth_log.log(level, "authentication %s (%s) user=%r scheme=%s client=%s request_id=%s",
                     outcome, reason, username, scheme or "-", client,
                     record["request_id"], extra={"proxygate": record})


#: Characters some server, proxy or router reads as more than a path character: ``;`` starts
#: a path parameter (``/static/..;/admin`` is ``/admin`` to Tomcat and Spring), ``\\`` is a
#: separator to IIS and some Windows file servers, ``%`` is an encoding a second decoder
#: may undo (``%2e%2e``, ``%2f``, ``%5c``).
_TRICKY_PATH_CHARS = frozenset(";\\%")


def _plainly_below_prefix(path: str) -> bool:
    """True when ``path`` means the same to every router: an exempt prefix covers it.

    "/static/../admin" starts with "/static/" but means "/admin" to any app or router
    that resolves dot-segments. A path that could mean something else anywhere is
    simply not exempt (it still gets in with credentials): printable ASCII only, no
    ``;``, ``\\`` or ``%``, and no segment made only of dots (and spaces, which Windows
    trims). Legitimate static paths never need any of these.
    """
    if not path.isascii() or not path.isprintable() or not _TRICKY_PATH_CHARS.isdisjoint(path):
        return False
    return "/." not in path or not any(
        segment and not segment.strip(". ") for segment in path.split("/")
    )


def directory_users(config: Config) -> UserSource:
    """The LDAP source for ``users="ldap://..."``, built from the ``ldap_*`` options."""
    from proxygate.auth.directory import LdapUsers  # ldap3 loads only for a directory

    return LdapUsers(
        config.users,
        bind_dn=config.ldap_bind_dn,
        bind_password=config.ldap_bind_password,
        starttls=config.ldap_starttls,
        ca_file=config.ldap_ca_file,
        require_group=config.ldap_require_group,
        nested_groups=config.ldap_nested_groups,
        timeout=config.ldap_timeout,
        pool_size=config.ldap_pool_size,
    )


#: The nice value of hash threads: the lowest priority there is. At nice 10 a waking
#: request thread still waited behind running bcrypt often enough to quadruple a cached
#: user's p99 during a flood (the hash-flood benchmark under gunicorn gthread, 3.5-5.2 x);
#: at 19, with a core left free, it measured 1.2-3.0 x, median 1.8 x, where the same
#: attackers answered by the app with no gate work cost 1.3 x (benchmarks/README.md).
#: A hash still runs at full speed on a core nothing else wants.
HASH_NICE = 19


def _yield_to_requests() -> None:
    """Hash threads run at the lowest CPU priority, so that on a busy machine a request
    needing no hash (a cached user) is scheduled ahead of more bcrypt. Linux keeps a
    nice value per thread; elsewhere, or if refused, hashes keep the default."""
    with contextlib.suppress(AttributeError, OSError):
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, HASH_NICE)


def _in_networks(address: str,
                 networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _hops(header: bytes, values: list[bytes]) -> list[str]:
    """Client hops, nearest last, from the values of one forwarded header."""
    hops: list[str] = []
    text = b",".join(values).decode("latin-1")
    if header == b"forwarded":  # RFC 7239: for=192.0.2.1;proto=http, for="[2001:db8::1]:80"
        for element in text.split(","):
            for pair in element.split(";"):
                name, _, value = pair.strip().partition("=")
                if name.strip().lower() == "for":
                    value = value.strip().strip('"')
                    if value.startswith("["):
                        value = value[1:].partition("]")[0]
                    elif value.count(":") == 1:
                        value = value.partition(":")[0]
                    hops.append(value)
        return hops
    # X-Forwarded-For and X-Real-IP: plain addresses, comma-separated.
    return [item.strip() for item in text.split(",") if item.strip()]


def absolute_form(path: str) -> tuple[str, str, str] | None:
    """(host, path, query) when a forward-proxy client sent an absolute-form target."""
    if path.startswith("/"):
        return None
    return split_absolute_target(path)
