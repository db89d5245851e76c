"""Users from an LDAP directory (OpenLDAP, Active Directory): search as a service account, bind as the user.

Blocking by design: the gate runs :meth:`LdapUsers.verify` where it runs a password
hash, off the event loop (a worker thread in ASGI, inline in WSGI). Every directory
operation is bounded by ``timeout``; a directory that is down, slow or refuses the
service account raises :class:`~proxygate.auth.users.SourceUnavailable`, which the
gate answers with a 503. See docs/directories.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import statistics
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from proxygate.auth.ldap_url import (
    LdapUrl,
    group_filter,
    normalize_dn,
    parse_ldap_url,
)
from proxygate.auth.users import NO_HASH, SourceUnavailable, Verified

try:
    import ldap3
    from ldap3.core import exceptions as ldap_errors
except ImportError:  # pragma: no cover - exercised by the missing-extra test
    ldap3 = None

__all__ = ["BIND_PASSWORD_ENV", "LdapUsers"]

logger = logging.getLogger("proxygate.auth")

#: Where the service account's password is read from when no option sets it.
BIND_PASSWORD_ENV = "PROXYGATE_LDAP_BIND_PASSWORD"  # noqa: S105 -- a variable's name

MISSING_EXTRA = ("users='ldap://...' needs the LDAP client: pip install 'proxygate[ldap]' "
                 "(the 'ldap' extra installs ldap3)")

# Result codes (RFC 4511 §4.1.9) that mean "the directory cannot serve now", not "no".
_BUSY = {3: "timeLimitExceeded", 51: "busy", 52: "unavailable", 80: "other"}
_INVALID_CREDENTIALS = 49
_NO_SUCH_OBJECT = 32
_SIZE_LIMIT = 4
#: Failed-bind durations remembered for the unknown-user padding.
_SAMPLES = 31

T = TypeVar("T")


if ldap3 is not None:

    class _VerifiedTls(ldap3.Tls):  # type: ignore[misc]
        """ldap3's TLS with the standard library verifying the certificate and the host name.

        ldap3 turns the ssl module's host name check off and does its own, which on Python
        3.12+ is a backport that refuses IP addresses; the ssl module's own check accepts
        both and is the one every other client trusts.
        """

        def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
            context = ssl.create_default_context(cafile=self.ca_certs_file)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            connection.socket = context.wrap_socket(
                connection.socket, server_hostname=connection.server.host,
                do_handshake_on_connect=do_handshake)


class _Pool:
    """At most ``size`` connections, idle ones reused; a fork or a dead socket starts afresh."""

    def __init__(self, opener: Callable[[], Any], size: int, wait: float, what: str) -> None:
        self._opener = opener
        self._size = size
        self._wait = wait
        self._what = what
        self._reset()
        _POOLS.add(self)

    def _reset(self) -> None:
        # After fork the parent's sockets, locks and counters mean nothing here: a child
        # sharing the parent's socket would read the parent's answers.
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self._size)
        self._pid = os.getpid()

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self._pid != os.getpid():
            self._reset()
        if not self._slots.acquire(timeout=self._wait):
            raise SourceUnavailable(
                f"all {self._size} {self._what} connections stayed busy for {self._wait:g} s")
        try:
            yield
        finally:
            self._slots.release()

    def take(self) -> tuple[Any, bool]:
        """A connection and whether it was used before (so may have died meanwhile)."""
        with self._lock:
            while self._idle:
                connection = self._idle.pop()
                if not connection.closed:
                    return connection, True
        return self._opener(), False

    def give(self, connection: Any) -> None:
        with self._lock:
            self._idle.append(connection)

    @staticmethod
    def discard(connection: Any) -> None:
        # A dead socket has nothing left to close cleanly.
        with contextlib.suppress(Exception):
            connection.unbind()


_POOLS: weakref.WeakSet[_Pool] = weakref.WeakSet()


def _forget_parent_connections() -> None:
    for pool in list(_POOLS):
        pool._reset()


os.register_at_fork(after_in_child=_forget_parent_connections)


class LdapUsers:
    """Users checked against an LDAP directory named by an RFC 4516 URL."""

    is_async = False

    def __init__(self, url: str, *, bind_dn: str | None = None, bind_password: str | None = None,
                 starttls: bool = False, ca_file: str | None = None,
                 require_group: str | None = None, nested_groups: bool = False,
                 timeout: float = 5.0, pool_size: int = 4) -> None:
        if ldap3 is None:
            raise ValueError(MISSING_EXTRA)
        self.url: LdapUrl = parse_ldap_url(url)
        if starttls and self.url.scheme == "ldaps":
            raise ValueError("ldap_starttls is for ldap:// URLs; ldaps:// is TLS from the start")
        if bind_dn is not None and bind_password is None:
            bind_password = os.environ.get(BIND_PASSWORD_ENV)
        if bind_dn is not None and not bind_password:
            raise ValueError(f"ldap_bind_dn is set but no password: set ldap_bind_password or "
                             f"{BIND_PASSWORD_ENV}")
        if require_group is not None:
            try:
                normalize_dn(require_group)
            except ValueError as exc:
                raise ValueError(f"ldap_require_group {require_group!r}: {exc}") from None
        self._bind_dn = bind_dn
        self._bind_password = bind_password
        self._starttls = starttls
        self._tls_wanted = starttls or self.url.scheme == "ldaps"
        self._require_group = require_group
        self._group_key = normalize_dn(require_group) if require_group else None
        self._nested = nested_groups
        self.timeout = timeout
        tls = None
        if self._tls_wanted:
            if ca_file is not None and not os.access(ca_file, os.R_OK):
                raise ValueError(f"ldap_ca_file {ca_file!r} cannot be read")
            tls = _VerifiedTls(validate=ssl.CERT_REQUIRED, ca_certs_file=ca_file)
        self._tls = tls
        self._new_server()  # fail here, not at the first login, on what ldap3 refuses
        self._searchers = _Pool(self._open_searcher, pool_size, timeout, "directory search")
        self._binders = _Pool(self._open_binder, pool_size, timeout, "directory bind")
        # Recent durations of user binds and group checks, for the padding of refusals
        # that skip them.
        self._bind_seconds: deque[float] = deque(maxlen=_SAMPLES)
        self._group_seconds: deque[float] = deque(maxlen=_SAMPLES)

    def __repr__(self) -> str:
        # The URL and bind DN are configuration, not secrets; the password never appears.
        account = f", bind_dn={self._bind_dn!r}" if self._bind_dn else ""
        return f"LdapUsers({self.url.server!r}, base={self.url.base_dn!r}{account})"

    # -- the UserSource interface -------------------------------------------------------

    def current_hash(self, username: str) -> str | None:
        # A directory keeps its hashes to itself: a cached success lasts its TTL.
        return NO_HASH

    async def averify(self, username: str, password: str) -> str | None:
        return self.verify(username, password)

    def verify(self, username: str, password: str) -> str | None:
        """The user's directory name if the password binds, or None; SourceUnavailable when
        the directory cannot answer."""
        if not password:
            # An LDAP simple bind with an empty password is an "unauthenticated bind",
            # which many servers answer with success (RFC 4513 §5.1.2).
            return None
        started = time.perf_counter()
        found = self._search_user(username)
        if found is None:
            # No entry means no bind and so no password hash in the directory: spend what
            # the group check and a failed bind cost, so response times do not say which
            # names exist.
            self._pad(started, self._group_seconds, self._bind_seconds)
            return None
        dn, stored_name, member_of = found
        # The group before the password: a non-member's guesses never reach the account
        # (no lockout through proxygate) and never tell whether the password was right.
        if self._require_group is not None and not self._in_group(dn, member_of):
            logger.info("directory user %r is not in the required group", stored_name)
            self._pad(started, self._bind_seconds)
            return None
        if not self._bind_as(dn, password):
            return None
        return Verified(NO_HASH, stored_name)

    # -- connections ----------------------------------------------------------------------

    def _new_server(self) -> Any:
        # A new Server object per connection: ldap3 remembers an address that once refused
        # a connection as unusable, which would outlast the directory's restart.
        return ldap3.Server(self.url.host, port=self.url.port,
                            use_ssl=self.url.scheme == "ldaps", tls=self._tls,
                            get_info=ldap3.NONE, connect_timeout=self.timeout)

    def _connect(self, user: str | None, password: str | None) -> Any:
        # No receive_timeout: ldap3 packs it into SO_RCVTIMEO as a whole number and fails on
        # a fraction. The socket keeps the connect timeout ldap3 set on it instead, which
        # bounds every send and receive, the TLS handshake included.
        connection = ldap3.Connection(self._new_server(), user=user, password=password,
                                      raise_exceptions=False, read_only=True,
                                      auto_referrals=False)
        connection.open(read_server_info=False)
        connection.socket.settimeout(self.timeout)
        if self._starttls and not connection.start_tls(read_server_info=False):
            connection.unbind()
            raise SourceUnavailable(f"StartTLS refused: {_describe(connection.result)}")
        return connection

    def _open_searcher(self) -> Any:
        connection = self._connect(self._bind_dn, self._bind_password)
        if self._bind_dn is not None and not connection.bind():
            result = dict(connection.result or {})
            connection.unbind()
            raise SourceUnavailable(
                f"the directory refused the service account {self._bind_dn!r}: "
                f"{_describe(result)}")
        return connection

    def _open_binder(self) -> Any:
        return self._connect(None, None)

    def _run(self, pool: _Pool, work: Callable[[Any], T]) -> T:
        """``work(connection)`` with one retry on a fresh connection when a reused one was dead
        (the directory restarted since): reconnect on demand, without a restart of ours."""
        for attempt in (1, 2):
            with pool.slot():
                try:
                    connection, reused = pool.take()
                except SourceUnavailable:
                    raise
                except ldap_errors.LDAPException as exc:
                    raise SourceUnavailable(self._cause(exc)) from None
                except OSError as exc:
                    raise SourceUnavailable(self._cause(exc)) from None
                try:
                    result = work(connection)
                except SourceUnavailable:
                    pool.discard(connection)
                    raise
                except (ldap_errors.LDAPException, OSError) as exc:
                    pool.discard(connection)
                    if reused and attempt == 1 and not _timed_out(exc):
                        continue
                    raise SourceUnavailable(self._cause(exc)) from None
                pool.give(connection)
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _cause(self, exc: BaseException) -> str:
        if _timed_out(exc):
            return f"{self.url.server} did not answer within ldap_timeout={self.timeout:g} s"
        # Socket and TLS texts ("Connection refused", "certificate verify failed") name
        # the cause; none of them carries a password.
        text = str(exc).strip() or type(exc).__name__
        return f"{self.url.server}: {text[:200]}"

    # -- the three steps ------------------------------------------------------------------

    def _search_user(self, username: str) -> tuple[str, str, list[str]] | None:
        """(DN, the name as stored, memberOf values) of the one entry for ``username``."""
        attribute = self.url.attribute
        attributes = [attribute, "memberOf"] if self._require_group else [attribute]

        def search(connection: Any) -> Any:
            connection.search(self.url.base_dn, self.url.user_filter(username),
                              search_scope=self.url.scope, attributes=attributes,
                              size_limit=2, time_limit=max(1, round(self.timeout)))
            code = (connection.result or {}).get("result", 0)
            if code in _BUSY or (code == _NO_SUCH_OBJECT and not connection.response):
                raise SourceUnavailable(
                    f"search under {self.url.base_dn!r} failed: {_describe(connection.result)}")
            return [item for item in connection.response or () if item.get("type") == "searchResEntry"]

        entries = self._run(self._searchers, search)
        if len(entries) != 1:
            if len(entries) > 1:
                logger.warning("directory has more than one entry for the login %r; refusing it",
                               username)
            return None
        entry = entries[0]
        values = entry.get("attributes", {}).get(attribute)
        stored = _pick_name(username, values)
        member_of = entry.get("attributes", {}).get("memberOf") or []
        return entry["dn"], stored, list(member_of) if isinstance(member_of, list) else [member_of]

    def _bind_as(self, dn: str, password: str) -> bool:
        def bind(connection: Any) -> tuple[bool, float]:
            if self._tls_wanted and not (connection.tls_started or self.url.scheme == "ldaps"):
                # Never send a password in the clear on a connection that lost its TLS.
                raise SourceUnavailable("a directory connection lost its TLS layer")
            started = time.perf_counter()
            connection.authentication = ldap3.SIMPLE
            connection.user, connection.password = dn, password
            try:
                ok = bool(connection.bind())
            finally:
                connection.password = None
            elapsed = time.perf_counter() - started
            code = (connection.result or {}).get("result", 0)
            if not ok and code in _BUSY:
                raise SourceUnavailable(f"bind refused: {_describe(connection.result)}")
            return ok, elapsed

        ok, elapsed = self._run(self._binders, bind)
        self._bind_seconds.append(elapsed)
        return ok

    def _in_group(self, dn: str, member_of: list[str]) -> bool:
        started = time.perf_counter()
        try:
            return self._check_group(dn, member_of)
        finally:
            self._group_seconds.append(time.perf_counter() - started)

    def _check_group(self, dn: str, member_of: list[str]) -> bool:
        group = self._require_group
        assert group is not None
        if not self._nested and any(_same_dn(value, self._group_key) for value in member_of):
            return True
        # Active Directory's nested check searches the user's own entry, the plain one the
        # group's entry: either returns that one entry or nothing.
        base = dn if self._nested else group
        search_filter = group_filter(dn, group, nested=self._nested)

        def search(connection: Any) -> bool:
            connection.search(base, search_filter, search_scope="BASE", attributes=["1.1"],
                              size_limit=1, time_limit=max(1, round(self.timeout)))
            code = (connection.result or {}).get("result", 0)
            if code in _BUSY:
                raise SourceUnavailable(f"group check failed: {_describe(connection.result)}")
            if code == _NO_SUCH_OBJECT and not self._nested:
                logger.error("ldap_require_group %r does not exist in the directory", group)
            return any(item.get("type") == "searchResEntry" for item in connection.response or ())

        return bool(self._run(self._searchers, search))

    def _pad(self, started: float, *steps: deque[float]) -> None:
        """Sleep as long as the skipped ``steps`` take (the median of each one's recent
        durations). A step not timed yet counts as long as the search just made."""
        search = time.perf_counter() - started
        cost = 0.0
        for samples in steps:
            if samples is self._group_seconds and self._require_group is None:
                continue
            recent = list(samples)
            cost += statistics.median(recent) if recent else search
        time.sleep(cost)


def _pick_name(login: str, values: Any) -> str:
    """The stored spelling of the login: the value that matches it without regard to case."""
    names: list[str] = [values] if isinstance(values, str) else [
        v for v in values or () if isinstance(v, str)]
    for name in names:
        if name == login:
            return name
    folded = login.casefold()
    for name in names:
        if name.casefold() == folded:
            return name
    return names[0] if len(names) == 1 else login


def _same_dn(value: str, key: Any) -> bool:
    try:
        return bool(normalize_dn(value) == key)
    except ValueError:
        return False


def _timed_out(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError):
        return True
    text = str(exc).lower()
    return "timed out" in text or "timeout" in text


def _describe(result: Any) -> str:
    result = result or {}
    code = result.get("result")
    name = result.get("description") or _BUSY.get(code, "")
    message = (result.get("message") or "").strip()
    return f"{name} ({code})" + (f": {message[:120]}" if message else "")
