"""The Digest users file: Apache ``htdigest`` lines, extended with the SHA-2 secrets of RFC 7616.

One line a user and realm::

    alice:internal:0b1d2f...(32 hex, MD5)              <- exactly what Apache's htdigest writes
    bob:internal:5f4d...:SHA-256=8c6a...:SHA-512-256=e3b0...

The third field is ``MD5(user:realm:password)`` in hex, as in htdigest, or empty when
MD5 is not stored. Further fields are ``ALGORITHM=hex`` with ``H(user:realm:password)``
under that algorithm. Apache reads the first three fields and ignores the rest, so a
file with MD5 entries stays usable by Apache's ``mod_auth_digest``. The same secrets
verify a Basic password, so one file serves ``schemes=("basic", "digest")``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from proxygate.auth.htpasswd import HtpasswdError, check_user_name
from proxygate.auth.users import WatchedFile

__all__ = [
    "ALGORITHMS",
    "DigestEntry",
    "DigestFileUsers",
    "DigestSource",
    "canonical_algorithm",
    "digest_fields",
    "hash_hex",
    "index_digest_lines",
    "is_digest_text",
    "parse_digest_lines",
    "remove_digest_entry",
    "set_digest_entry",
]

#: RFC 7616 algorithms proxygate computes, by their canonical names.
ALGORITHMS: dict[str, Callable[[bytes], hashlib._Hash]] = {
    "MD5": hashlib.md5,
    "SHA-256": hashlib.sha256,
    "SHA-512-256": lambda data: hashlib.new("sha512_256", data),
}
_HEX_LENGTH = {"MD5": 32, "SHA-256": 64, "SHA-512-256": 64}
#: Basic over a digest file checks the strongest secret an entry has.
_PREFERENCE = ("SHA-512-256", "SHA-256", "MD5")
_HEX = frozenset("0123456789abcdef")


def canonical_algorithm(name: str) -> str | None:
    """``"sha-256"`` -> ``"SHA-256"``; None for anything proxygate does not compute."""
    upper = name.upper()
    return upper if upper in ALGORITHMS else None


def hash_hex(algorithm: str, text: str) -> str:
    """``H(text)`` in lower-case hex, UTF-8 encoded: RFC 7616's H for ``algorithm``."""
    return ALGORITHMS[algorithm](text.encode("utf-8")).hexdigest()


def digest_fields(user: str, realm: str, password: str, algorithms: Sequence[str]) -> str:
    """The stored part of a line (everything after ``user:realm:``) for ``password``."""
    a1 = f"{user}:{realm}:{password}"
    md5 = hash_hex("MD5", a1) if "MD5" in algorithms else ""
    extra = [f"{alg}={hash_hex(alg, a1)}" for alg in ALGORITHMS if alg != "MD5" and alg in algorithms]
    return ":".join([md5, *extra])


@dataclass(frozen=True, slots=True)
class DigestEntry:
    """One line: where it is, whose it is, and its secrets by algorithm (never shown)."""

    index: int
    user: str
    realm: str
    secrets: Mapping[str, str] = field(repr=False)


def is_digest_text(text: str) -> bool:
    """Whether the first entry of a users file has the ``user:realm:secret`` shape.

    htpasswd hashes never contain ``:``, so two colons tell the formats apart.
    """
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            return line.count(":") >= 2
    return False


def parse_digest_lines(lines: Iterable[str], source: str = "<digest file>") -> list[DigestEntry]:
    """Every entry, checked: names, realm, hex secrets, no user listed twice for a realm."""
    entries: list[DigestEntry] = []
    seen: set[tuple[str, str]] = set()
    for index, raw in enumerate(lines):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}, line {index + 1}"
        parts = line.split(":")
        if len(parts) < 3 or not parts[0] or not parts[1]:
            raise HtpasswdError(f"{where}: expected 'user:realm:secret'")
        user, realm, md5, *rest = parts
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in user + realm):
            raise HtpasswdError(f"{where}: the user name or realm contains a control character")
        if (user, realm) in seen:
            raise HtpasswdError(f"{where}: user {user!r} is listed twice for realm {realm!r}")
        seen.add((user, realm))
        found: dict[str, str] = {}
        if md5:
            found["MD5"] = md5
        for item in rest:
            name, eq, value = item.partition("=")
            algorithm = canonical_algorithm(name)
            if not eq or algorithm is None or algorithm == "MD5" or algorithm in found:
                raise HtpasswdError(f"{where} (user {user!r}): unknown or repeated field "
                                    f"{name!r}; expected SHA-256=... or SHA-512-256=...")
            found[algorithm] = value
        for algorithm, value in found.items():
            if len(value) != _HEX_LENGTH[algorithm] or not set(value) <= _HEX:
                raise HtpasswdError(f"{where} (user {user!r}): the {algorithm} secret is not "
                                    f"{_HEX_LENGTH[algorithm]} lower-case hex digits")
        if not found:
            raise HtpasswdError(f"{where} (user {user!r}): no secret")
        entries.append(DigestEntry(index, user, realm, found))
    return entries


def index_digest_lines(lines: Sequence[str], source: str = "<digest file>"
                       ) -> dict[tuple[str, str], DigestEntry]:
    return {(e.user, e.realm): e for e in parse_digest_lines(lines, source)}


def set_digest_entry(lines: list[str], user: str, realm: str, stored: str) -> list[str]:
    """New lines with ``user``'s entry for ``realm`` replaced in place, or appended."""
    check_user_name(user)
    check_digest_realm(realm)
    entry = index_digest_lines(lines).get((user, realm))
    new = list(lines)
    text = f"{user}:{realm}:{stored}"
    if entry is None:
        if new and not new[-1].endswith(("\n", "\r")):
            new[-1] += "\n"
        new.append(text + "\n")
    else:
        old = new[entry.index]
        new[entry.index] = text + (old[len(old.rstrip("\r\n")):] or "\n")
    return new


def remove_digest_entry(lines: list[str], user: str, realm: str) -> list[str]:
    """New lines without ``user``'s entry for ``realm``; KeyError if absent."""
    entry = index_digest_lines(lines).get((user, realm))
    if entry is None:
        raise KeyError(user)
    return lines[: entry.index] + lines[entry.index + 1 :]


def check_digest_realm(realm: str) -> str:
    """The realm if a digest file line can hold it (no ':', no control character)."""
    if not realm or ":" in realm or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in realm):
        raise ValueError(f"realm {realm!r} cannot go into a digest users file: it is empty or "
                         "contains ':' or a control character")
    return realm


@runtime_checkable
class DigestSource(Protocol):
    """A user source that can serve Digest: it holds ``H(user:realm:password)``.

    Kept apart from :class:`~proxygate.auth.users.UserSource` on purpose: a source that
    can only check a password (bcrypt hashes, a callable, a directory bind) has nothing
    to compute a Digest response from, and the gate refuses to start Digest over it.
    """

    digest_realm: str

    def digest_ha1(self, username: str, algorithm: str) -> str | None:
        """``H(username:realm:password)`` in hex, or None for an unknown user."""
        ...

    def digest_user(self, hashed: str, algorithm: str) -> str | None:
        """The user whose ``H(username:realm)`` is ``hashed`` (RFC 7616 userhash), or None."""
        ...


@dataclass(frozen=True, slots=True)
class _Table:
    users: dict[str, Mapping[str, str]]
    hashed: dict[tuple[str, str], str]  # (algorithm, H(user:realm)) -> user
    pins: dict[str, str]  # user -> what a cached Basic success must still match

    def __len__(self) -> int:
        return len(self.users)


class DigestFileUsers(WatchedFile[_Table]):
    """Users from a digest users file, for one realm; reloaded when the file changes.

    Serves Digest (:class:`DigestSource`) and Basic (``verify``) alike. Every entry must
    carry a secret for each algorithm in ``algorithms``: a file that cannot serve the
    configuration is refused at start, and a reload that could not is refused too.
    """

    kind = "users file"
    unit = "users"
    is_async = False

    def __init__(self, path: str | os.PathLike[str], *, realm: str,
                 algorithms: Sequence[str] = (), reload_interval: float = 2.0) -> None:
        self.digest_realm = realm
        self.algorithms = tuple(algorithms)
        self._dummy = secrets.token_hex(32)  # as long as a SHA-256 secret
        super().__init__(path, reload_interval=reload_interval)

    def __repr__(self) -> str:
        return f"DigestFileUsers({str(self.path)!r}, <{len(self._table)} users>)"

    def _parse(self, text: str) -> _Table:
        source = str(self.path)
        if not is_digest_text(text):
            raise HtpasswdError(f"{source}: not a digest users file (expected user:realm:secret)")
        entries = parse_digest_lines(text.splitlines(), source)
        realm = self.digest_realm
        mine = [e for e in entries if e.realm == realm]
        if entries and not mine:
            found = sorted({e.realm for e in entries})
            raise HtpasswdError(
                f"{source} holds Digest entries for realm {', '.join(map(repr, found))}, but "
                f"realm is {realm!r}: the secrets are made with the realm, so set realm to "
                "the file's or add the users again with --realm"
            )
        for algorithm in self.algorithms:
            lacking = [e.user for e in mine if algorithm not in e.secrets]
            if lacking:
                raise HtpasswdError(
                    f"{source}: digest_algorithms includes {algorithm}, but the entries of "
                    f"{', '.join(map(repr, lacking[:3]))}{' and more' if len(lacking) > 3 else ''}"
                    f" have no {algorithm} secret; add them again with 'proxygate users set "
                    f"FILE USER --digest --realm {realm}'"
                )
        users = {e.user: e.secrets for e in mine}
        hashed = {(alg, hash_hex(alg, f"{e.user}:{realm}")): e.user
                  for e in mine for alg in e.secrets}
        pins = {e.user: ":".join(f"{k}={v}" for k, v in sorted(e.secrets.items())) for e in mine}
        return _Table(users, hashed, pins)

    def _take(self, table: _Table) -> None:
        self._table = table

    # -- Digest ------------------------------------------------------------------------

    def digest_ha1(self, username: str, algorithm: str) -> str | None:
        found = self._table.users.get(username)
        return None if found is None else found.get(algorithm)

    def digest_user(self, hashed: str, algorithm: str) -> str | None:
        return self._table.hashed.get((algorithm, hashed.lower()))

    # -- Basic (UserSource) ------------------------------------------------------------

    def current_hash(self, username: str) -> str | None:
        return self._table.pins.get(username)

    def verify(self, username: str, password: str) -> str | None:
        table = self._table
        found = table.users.get(username)
        algorithm = next((a for a in _PREFERENCE if found and a in found), "SHA-256")
        computed = hash_hex(algorithm, f"{username}:{self.digest_realm}:{password}")
        # Unknown users compare against a random value: the same work as a wrong password.
        expected = found[algorithm] if found else self._dummy
        if not hmac.compare_digest(computed, expected) or found is None:
            return None
        return table.pins[username]

    async def averify(self, username: str, password: str) -> str | None:
        return self.verify(username, password)
