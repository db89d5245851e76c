"""Where users come from: an htpasswd file that follows changes, a mapping, or a callable."""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sized
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from proxygate.auth.hashing import (
    HashFormatError,
    check_hash,
    cost_signature,
    hash_password,
    verify_password,
)
from proxygate.auth.htpasswd import HtpasswdError, parse_htpasswd

__all__ = [
    "AsyncCallableUsers",
    "CallableUsers",
    "HtpasswdUsers",
    "MappingUsers",
    "SourceUnavailable",
    "UserSource",
    "Verified",
    "WatchedFile",
    "make_user_source",
]

logger = logging.getLogger("proxygate.auth")

T = TypeVar("T", bound=Sized)

SyncVerifier = Callable[[str, str], bool]
AsyncVerifier = Callable[[str, str], Awaitable[bool]]

#: What ``current_hash`` returns for sources without stored hashes (callables):
#: their cached successes are bounded by the cache TTL alone.
NO_HASH = ""


class SourceUnavailable(Exception):
    """A user source cannot answer now (a directory down, slow, or refusing its service account).

    Not the client's fault: the gate answers 503 with ``Retry-After``, never a challenge
    that would make a browser ask for a password that may be right. The message names
    the cause for the log and holds no secret.
    """


class Verified(str):
    """What ``verify`` returns when the source knows the user by another spelling: the
    matched hash (a str, as always) carrying ``username`` as the source stores it."""

    username: str

    def __new__(cls, matched: str, username: str) -> Verified:
        self = super().__new__(cls, matched)
        self.username = username
        return self


@functools.cache
def _fallback_dummy() -> str:
    """The dummy verify for unknown users when a source has no hash to borrow the cost from."""
    import secrets

    for scheme in ("bcrypt", "sha256_crypt"):
        try:
            return hash_password(secrets.token_urlsafe(16), scheme)
        except ValueError:
            continue
    raise RuntimeError("no password hash scheme is available")


class UserSource(Protocol):
    """What the gate asks of a user source."""

    #: True when ``averify`` must be awaited instead of calling ``verify``.
    is_async: bool

    def current_hash(self, username: str) -> str | None:
        """The hash a cached success must still match; None if the user is gone. Cheap."""
        ...

    def verify(self, username: str, password: str) -> str | None:
        """The stored hash the password matched, or None. Slow on purpose; raises only
        :class:`SourceUnavailable`.

        Returning the hash (not a bool) lets the cache pin a success to the exact
        hash it was checked against, even if the file reloads meanwhile.
        Unknown users cost the same as wrong passwords.
        """
        ...

    async def averify(self, username: str, password: str) -> str | None: ...


class _HashedUsers:
    """Shared by file and mapping sources: verify against stored hashes at equal cost."""

    is_async = False
    _users: Mapping[str, str]
    _dummy: str

    def current_hash(self, username: str) -> str | None:
        return self._users.get(username)

    def verify(self, username: str, password: str) -> str | None:
        stored = self._users.get(username)
        if stored is None:
            # Spend the same time as a wrong password would, so response times
            # do not reveal which user names exist.
            verify_password(password, self._dummy)
            return None
        return stored if verify_password(password, stored) else None

    async def averify(self, username: str, password: str) -> str | None:
        return self.verify(username, password)

    @staticmethod
    def _pick_dummy(users: Mapping[str, str]) -> str:
        """A stored hash of the most common scheme and cost: verifying against it costs the same."""
        if not users:
            return _fallback_dummy()
        counts = Counter(cost_signature(stored) for stored in users.values())
        common = counts.most_common(1)[0][0]
        return next(stored for stored in users.values() if cost_signature(stored) == common)


_EMPTY_GATE = (
    "nobody could pass the gate: add a user (proxygate users add FILE NAME) or, for "
    "the error envelope alone, use ErrorEnvelopeMiddleware, which needs no users"
)


class MappingUsers(_HashedUsers):
    """Users from a mapping of user name to hash. The mapping is used live, not copied:
    a hash changed or a user removed at run time takes effect at once (and voids their
    cached successes)."""

    def __init__(self, users: Mapping[str, str]) -> None:
        for username, stored in users.items():
            if not isinstance(username, str) or not isinstance(stored, str):
                raise TypeError("users mapping must map str user names to str hashes")
            if ":" in username:
                raise ValueError(f"user name {username!r} contains ':', which Basic cannot carry")
            try:
                check_hash(stored)
            except HashFormatError as exc:
                raise ValueError(f"users[{username!r}]: {exc}") from None
        if not users:
            # The same refusal as an empty users file: a gate nobody can pass.
            raise ValueError(f"the users mapping lists no users; {_EMPTY_GATE}")
        self._users = users
        self._dummy = self._pick_dummy(users)

    def __repr__(self) -> str:
        return f"MappingUsers(<{len(self._users)} users>)"


class WatchedFile(Generic[T]):
    """A file loaded whole and replaced whole when it changes on disk.

    A daemon thread polls the file every ``reload_interval`` seconds (0 turns
    reloading off). A new version replaces the old in one step, so no request
    sees a half-loaded file; a version that cannot be read or parsed, or is
    empty, is refused with an error log and the last good one stays.
    Subclasses say how text becomes a table (:meth:`_parse`) and take it (:meth:`_take`).
    """

    #: What the file is, in messages: "users file", "tokens file".
    kind = "users file"
    #: What it lists, in messages.
    unit = "users"
    #: Why an empty file is refused, and what to do.
    empty_hint = _EMPTY_GATE

    def __init__(self, path: str | os.PathLike[str], *, reload_interval: float = 2.0) -> None:
        self.path = Path(path)
        # Read and watched by absolute path: a later chdir (a test runner, a daemon
        # that moves to /) must not switch the gate to another file or to none.
        self._file = Path(os.path.abspath(path))
        self.reload_interval = reload_interval
        try:
            stat, table = self._read()
        except OSError as exc:
            raise ValueError(f"cannot read {self.kind} {str(self.path)!r}: {exc.strerror}") from None
        except HtpasswdError as exc:
            raise ValueError(str(exc)) from None
        if not table:
            raise ValueError(f"{self.kind} {str(self.path)!r} lists no {self.unit}; "
                             f"{self.empty_hint}")
        self._stamp = _stamp(stat)
        self._take(table)
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        if reload_interval > 0:
            self._start_watcher()
            _AFTER_FORK.add(self)

    def _parse(self, text: str) -> T:
        """The file's table; HtpasswdError (naming file and line) when it cannot be used."""
        raise NotImplementedError

    def _take(self, table: T) -> None:
        """Make ``table`` the one requests see, in one step."""
        raise NotImplementedError

    def _read(self) -> tuple[os.stat_result, T]:
        with self._file.open("rb") as handle:
            before = os.fstat(handle.fileno())
            raw = handle.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            # The codec's message quotes a byte of the file: say where instead.
            raise HtpasswdError(f"{self.path}: not UTF-8 text") from None
        return before, self._parse(text)

    def check_for_changes(self) -> bool:
        """Reload if the file changed; True when a new version was taken."""
        try:
            stamp = _stamp(self._file.stat())
        except OSError as exc:
            if self._stamp != _GONE:  # report once, not on every poll while it stays gone
                logger.error("%s %s is unreadable (%s); keeping the last good version",
                             self.kind, self.path, exc.strerror)
                self._stamp = _GONE
            return False
        if stamp == self._stamp:
            return False
        try:
            stat, table = self._read()
        except (OSError, HtpasswdError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            logger.error("%s %s changed but cannot be loaded (%s); keeping the last "
                         "good version", self.kind, self.path, reason)
            self._stamp = stamp  # report once per change, not every poll
            return False
        if _stamp(stat) != stamp or _stamp(self._file.stat()) != stamp:
            return False  # still being written: look again on the next poll
        if not table:
            logger.error("%s %s is now empty; keeping the last good version", self.kind, self.path)
            self._stamp = stamp
            return False
        self._take(table)
        self._stamp = stamp
        logger.info("%s %s reloaded: %d %s", self.kind, self.path, len(table), self.unit)
        return True

    def close(self) -> None:
        """Stop the watcher thread."""
        self._stop.set()

    def _start_watcher(self) -> None:
        self._stop = threading.Event()
        ref = weakref.ref(self)
        stop = self._stop
        interval = self.reload_interval
        kind = self.kind

        def watch() -> None:
            while not stop.wait(interval):
                source = ref()
                if source is None:
                    return
                try:
                    source.check_for_changes()
                except Exception:
                    logger.exception("%s watcher failed; retrying", kind)
                del source

        self._watcher = threading.Thread(target=watch, name="proxygate-users-watch", daemon=True)
        self._watcher.start()


class HtpasswdUsers(_HashedUsers, WatchedFile[dict[str, str]]):
    """Users from an htpasswd file, reloaded when it changes on disk (see :class:`WatchedFile`)."""

    def __repr__(self) -> str:
        return f"HtpasswdUsers({str(self.path)!r}, <{len(self._users)} users>)"

    def _parse(self, text: str) -> dict[str, str]:
        return parse_htpasswd(text, str(self.path))

    def _take(self, table: dict[str, str]) -> None:
        self._users, self._dummy = table, self._pick_dummy(table)


def _stamp(stat: os.stat_result) -> tuple[int, int, int, int]:
    return (stat.st_ino, stat.st_dev, stat.st_mtime_ns, stat.st_size)


#: The stamp of a users file that cannot even be stat'ed: any real file differs from it.
_GONE = (-1, -1, -1, -1)


# Threads do not survive fork (gunicorn --preload): restart watchers in the child.
_AFTER_FORK: weakref.WeakSet[WatchedFile[Any]] = weakref.WeakSet()


def _restart_watchers() -> None:
    for source in list(_AFTER_FORK):
        source._start_watcher()


os.register_at_fork(after_in_child=_restart_watchers)


class CallableUsers:
    """Users checked by ``verify(username, password) -> bool``, which may block (a thread runs it)."""

    is_async = False

    def __init__(self, verify: SyncVerifier) -> None:
        self._verify = verify

    def __repr__(self) -> str:
        return f"CallableUsers({getattr(self._verify, '__qualname__', type(self._verify).__name__)})"

    def current_hash(self, username: str) -> str | None:
        return NO_HASH

    def verify(self, username: str, password: str) -> str | None:
        try:
            ok = self._verify(username, password) is True
        except Exception as exc:
            logger.error("users callable raised %s; counting a failed login", type(exc).__name__)
            return None
        return NO_HASH if ok else None

    async def averify(self, username: str, password: str) -> str | None:
        return self.verify(username, password)


class AsyncCallableUsers:
    """Users checked by ``async verify(username, password) -> bool`` (ASGI only)."""

    is_async = True

    def __init__(self, verify: AsyncVerifier) -> None:
        self._verify = verify

    def __repr__(self) -> str:
        name = getattr(self._verify, "__qualname__", type(self._verify).__name__)
        return f"AsyncCallableUsers({name})"

    def current_hash(self, username: str) -> str | None:
        return NO_HASH

    def verify(self, username: str, password: str) -> str | None:
        raise TypeError("an async users callable needs the ASGI middleware")

    async def averify(self, username: str, password: str) -> str | None:
        try:
            ok = (await self._verify(username, password)) is True
        except Exception as exc:
            logger.error("users callable raised %s; counting a failed login", type(exc).__name__)
            return None
        return NO_HASH if ok else None


def _is_async_callable(obj: Any) -> bool:
    while hasattr(obj, "func") and hasattr(obj, "args"):  # functools.partial
        obj = obj.func
    return inspect.iscoroutinefunction(obj) or (
        callable(obj) and inspect.iscoroutinefunction(getattr(obj, "__call__", None))  # noqa: B004
    )


def make_user_source(users: object, *, reload_interval: float = 2.0, realm: str | None = None,
                     digest_algorithms: tuple[str, ...] = ()) -> UserSource:
    """Turn the ``users=`` option into a source, failing with a message that says what to pass.

    A path is an htpasswd file, or a digest users file when its entries read
    ``user:realm:secret`` (then ``realm`` picks its entries and ``digest_algorithms``
    are the secrets every entry must have).
    """
    if users is None:
        raise ValueError(
            "users is required: pass a path to an htpasswd file, a mapping of user name to "
            "password hash, or a callable (username, password) -> bool"
        )
    from proxygate.auth.digest_file import DigestFileUsers, is_digest_text

    if isinstance(users, _HashedUsers | CallableUsers | AsyncCallableUsers | DigestFileUsers):
        return users
    if isinstance(users, str | os.PathLike):
        if _sniff_digest(users, is_digest_text):
            return DigestFileUsers(users, realm=realm or "", algorithms=digest_algorithms,
                                   reload_interval=reload_interval)
        return HtpasswdUsers(users, reload_interval=reload_interval)
    if isinstance(users, Mapping):
        return MappingUsers(users)
    if callable(users):
        if _is_async_callable(users):
            return AsyncCallableUsers(users)
        return CallableUsers(users)
    raise TypeError(
        f"users must be a path, a mapping or a callable, not {type(users).__name__}"
    )


def _sniff_digest(path: str | os.PathLike[str], is_digest_text: Callable[[str], bool]) -> bool:
    """Whether the file holds digest entries; unreadable files are left to the loader to report."""
    try:
        with open(path, "rb") as handle:
            return is_digest_text(handle.read().decode("utf-8", "replace"))
    except OSError:
        return False
