"""``proxygate users ... --digest``: the same actions on a digest users file (user:realm:secrets)."""

from __future__ import annotations

import argparse
import hmac
from collections.abc import Callable

from proxygate.auth.digest_file import (
    ALGORITHMS,
    DigestEntry,
    check_digest_realm,
    digest_fields,
    hash_hex,
    index_digest_lines,
    is_digest_text,
    remove_digest_entry,
    set_digest_entry,
)
from proxygate.auth.htpasswd import HtpasswdError
from proxygate.cli._common import EXIT_FAILED, EXIT_OK, CommandError
from proxygate.config import Config, ConfigError

__all__ = ["DEFAULT_ALGORITHMS", "delete", "is_digest_file", "list_users", "store", "verify"]

#: Written unless --algorithm says otherwise: every algorithm proxygate can be set to offer,
#: so the file serves whatever digest_algorithms the gate is later given.
DEFAULT_ALGORITHMS = tuple(ALGORITHMS)
_PREFERENCE = ("SHA-512-256", "SHA-256", "MD5")

Lines = list[str]


def is_digest_file(lines: Lines) -> bool:
    return is_digest_text("".join(lines))


def _realm(args: argparse.Namespace, *, required: bool) -> str | None:
    realm: str | None = getattr(args, "realm", None)
    if realm is None:
        if required:
            raise CommandError("--digest needs --realm REALM: the secrets are computed with "
                               "the realm, which must be the gate's")
        return None
    try:
        Config(realm=realm)
        return check_digest_realm(realm)
    except (ConfigError, ValueError) as exc:
        raise CommandError(str(exc)) from None


def _index(lines: Lines, path: str) -> dict[tuple[str, str], DigestEntry]:
    try:
        return index_digest_lines(lines, path)
    except HtpasswdError as exc:
        raise CommandError(str(exc)) from None


def _entry(args: argparse.Namespace, lines: Lines, user: str) -> DigestEntry:
    """The user's one entry, picked by --realm when the user has several."""
    realm = _realm(args, required=False)
    found = [e for (name, r), e in _index(lines, args.file).items()
             if name == user and (realm is None or r == realm)]
    if not found:
        where = f" for realm {realm!r}" if realm is not None else ""
        raise CommandError(f"no user {user!r}{where} in {args.file}", EXIT_FAILED)
    if len(found) > 1:
        realms = ", ".join(repr(e.realm) for e in found)
        raise CommandError(f"user {user!r} has entries for realms {realms}; say which with --realm")
    return found[0]


def store(args: argparse.Namespace, lines: Lines, user: str, *, replace: bool,
          new_password: Callable[[], str], write: Callable[[Lines], None]) -> int:
    realm = _realm(args, required=True)
    assert realm is not None
    has_entries = any(line.strip() and not line.lstrip().startswith("#") for line in lines)
    if has_entries and not is_digest_file(lines):
        raise CommandError(f"{args.file} is an htpasswd file; Digest entries go into a digest "
                           "users file of their own (it serves Basic too)")
    if args.rounds is not None:
        raise CommandError("--rounds does not apply to --digest: Digest secrets are plain "
                           "digests of user:realm:password, as RFC 7616 requires")
    exists = (user, realm) in _index(lines, args.file)
    if exists and not replace:
        raise CommandError(f"user {user!r} already exists for realm {realm!r} in {args.file}; "
                           "use 'proxygate users set' to change the password", EXIT_FAILED)
    algorithms = tuple(args.algorithm or DEFAULT_ALGORITHMS)
    password = new_password()
    write(set_digest_entry(lines, user, realm, digest_fields(user, realm, password, algorithms)))
    print(f"{'updated' if exists else 'added'} user {user!r} (realm {realm!r}, "
          f"{', '.join(a for a in ALGORITHMS if a in algorithms)}) in {args.file}")
    return EXIT_OK


def delete(args: argparse.Namespace, lines: Lines, user: str,
           write: Callable[[Lines], None]) -> int:
    entry = _entry(args, lines, user)
    write(remove_digest_entry(lines, user, entry.realm))
    print(f"deleted user {user!r} (realm {entry.realm!r}) from {args.file}")
    return EXIT_OK


def verify(args: argparse.Namespace, lines: Lines, user: str,
           password: Callable[[], str]) -> int:
    entry = _entry(args, lines, user)
    algorithm = next(a for a in _PREFERENCE if a in entry.secrets)
    computed = hash_hex(algorithm, f"{user}:{entry.realm}:{password()}")
    if not hmac.compare_digest(computed, entry.secrets[algorithm]):
        raise CommandError(f"wrong password for user {user!r}", EXIT_FAILED)
    print(f"password matches for user {user!r}")
    return EXIT_OK


def list_users(args: argparse.Namespace, lines: Lines) -> int:
    for user in dict.fromkeys(name for name, _realm in _index(lines, args.file)):
        print(user)
    return EXIT_OK


def check_written(lines: Lines, path: str) -> str | None:
    """Why the gate would refuse the written file, or None."""
    try:
        entries = index_digest_lines(lines, path)
    except HtpasswdError as exc:
        return str(exc)
    return None if entries else f"{path} lists no users"
