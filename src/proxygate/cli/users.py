"""``proxygate users``: add, change, delete, verify and list users in an htpasswd file."""

from __future__ import annotations

import argparse
import getpass
import sys
import warnings
from collections.abc import Callable
from typing import Any

from proxygate.auth.hashing import (
    ALLOWED_SCHEMES,
    DEFAULT_SCHEME,
    HashFormatError,
    check_hash,
    hash_password,
    verify_password,
)
from proxygate.auth.htpasswd import (
    HtpasswdError,
    check_user_name,
    parse_htpasswd,
    remove_htpasswd_entry,
    set_htpasswd_entry,
)
from proxygate.cli import _digest_users as digest_users
from proxygate.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    Parser,
    missing_subcommand,
    print_warning,
)
from proxygate.cli._files import index_lines, read_lines, write_lines

__all__ = ["register"]

_BCRYPT_MAX_BYTES = 72


def register(commands: Any) -> None:
    """Add ``users`` and its actions to the top-level subparsers."""
    users = commands.add_parser(
        "users",
        help="add, change, delete, verify or list users in an htpasswd or digest users file",
        description="Edit an htpasswd users file, or with --digest a digest users file. "
        "Passwords come from a prompt or --password-stdin, never from the command line.",
    )
    users.set_defaults(command=lambda _args: missing_subcommand(users))
    actions = users.add_subparsers(title="actions", metavar="ACTION", parser_class=Parser)

    def action(name: str, run: Callable[[argparse.Namespace], int], help_: str, *,
               user: bool = True, new_password: bool = False,
               password: bool = False) -> None:
        sub = actions.add_parser(name, help=help_, description=help_)
        sub.add_argument("file", metavar="FILE", help="the htpasswd or digest users file")
        if user:
            sub.add_argument("user", metavar="USER", help="the user name")
        if new_password:
            sub.add_argument(
                "--digest", action="store_true",
                help="write a Digest entry (user:realm:secrets, Apache htdigest compatible) "
                "into a digest users file; it serves Basic too. Needs --realm",
            )
            sub.add_argument(
                "--algorithm", action="append", choices=digest_users.DEFAULT_ALGORITHMS, default=None,
                help="with --digest: a secret to store; repeatable (default: all of "
                f"{', '.join(digest_users.DEFAULT_ALGORITHMS)})",
            )
        if new_password or (user and name != "list"):
            sub.add_argument(
                "--realm", default=None,
                help="the realm of a digest users file's entry (with --digest: required)",
            )
        if new_password:
            sub.add_argument(
                "--scheme", choices=ALLOWED_SCHEMES, default=DEFAULT_SCHEME,
                help=f"hash scheme (default: {DEFAULT_SCHEME})",
            )
            sub.add_argument(
                "--rounds", type=int, metavar="N", default=None,
                help="work factor: bcrypt cost, sha*_crypt rounds, argon2 time cost "
                "(default: the hash library's)",
            )
        if new_password or password:
            sub.add_argument(
                "--password-stdin", action="store_true",
                help="read the password from the first line of standard input",
            )
        sub.set_defaults(command=run)

    action("add", _users_add, "add a user; fails if the user exists", new_password=True)
    action("set", _users_set, "set a user's password, adding the user if absent",
           new_password=True)
    action("delete", _users_delete, "delete a user; fails if the user is absent")
    action("verify", _users_verify, "check a password: exit 0 if it matches, 1 if not",
           password=True)
    action("list", _users_list, "print the user names, one per line", user=False)


def _users_add(args: argparse.Namespace) -> int:
    return _store_password(args, replace=False)


def _users_set(args: argparse.Namespace) -> int:
    return _store_password(args, replace=True)


def _store_password(args: argparse.Namespace, *, replace: bool) -> int:
    user = _user_name(args.user)
    lines = read_lines(args.file, missing_ok=True)
    if args.digest:
        return digest_users.store(args, lines, user, replace=replace,
                                  new_password=lambda: _new_password(args),
                                  write=lambda new: _write_lines(args.file, new))
    if digest_users.is_digest_file(lines):
        raise CommandError(f"{args.file} is a digest users file: add --digest --realm REALM")
    exists = user in index_lines(lines, args.file)
    if exists and not replace:
        raise CommandError(
            f"user {user!r} already exists in {args.file}; "
            "use 'proxygate users set' to change the password",
            EXIT_FAILED,
        )
    password = _new_password(args)
    stored = _hash(password, args.scheme, args.rounds)
    lines = set_htpasswd_entry(lines, user, stored)
    _write_lines(args.file, lines)
    print(f"{'updated' if exists else 'added'} user {user!r} in {args.file}")
    return EXIT_OK


def _users_delete(args: argparse.Namespace) -> int:
    user = _user_name(args.user)
    lines = read_lines(args.file)
    if digest_users.is_digest_file(lines):
        return digest_users.delete(args, lines, user, lambda new: _write_lines(args.file, new))
    if user not in index_lines(lines, args.file):
        raise CommandError(f"no user {user!r} in {args.file}", EXIT_FAILED)
    _write_lines(args.file, remove_htpasswd_entry(lines, user))
    print(f"deleted user {user!r} from {args.file}")
    return EXIT_OK


def _users_verify(args: argparse.Namespace) -> int:
    # A local admin tool: whoever can run this on the file can read the file, so
    # saying "no such user" apart from "wrong password" reveals nothing new.
    user = _user_name(args.user)
    lines = read_lines(args.file)
    if digest_users.is_digest_file(lines):
        return digest_users.verify(
            args, lines, user, lambda: _read_password(args, prompt="Password: ", confirm=False))
    entry = index_lines(lines, args.file).get(user)
    if entry is None:
        raise CommandError(f"no user {user!r} in {args.file}", EXIT_FAILED)
    try:
        check_hash(entry.stored)
    except HashFormatError as exc:
        raise CommandError(
            f"{args.file}, line {entry.index + 1} (user {user!r}): {exc}", EXIT_USAGE
        ) from None
    password = _read_password(args, prompt="Password: ", confirm=False)
    if not verify_password(password, entry.stored):
        raise CommandError(f"wrong password for user {user!r}", EXIT_FAILED)
    print(f"password matches for user {user!r}")
    return EXIT_OK


def _users_list(args: argparse.Namespace) -> int:
    lines = read_lines(args.file)
    if digest_users.is_digest_file(lines):
        return digest_users.list_users(args, lines)
    for user in index_lines(lines, args.file):
        print(user)
    return EXIT_OK


def _user_name(name: str) -> str:
    try:
        return check_user_name(name)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _write_lines(path: str, lines: list[str]) -> None:
    write_lines(path, lines)
    # The edit itself succeeded; say so if the gate would still refuse the file,
    # e.g. another entry uses a hash scheme proxygate does not accept.
    if digest_users.is_digest_file(lines):
        problem = digest_users.check_written(lines, path)
        if problem is not None:
            print_warning(f"proxygate will not load this file until it is fixed: {problem}")
        return
    try:
        users = parse_htpasswd("".join(lines), path)
    except HtpasswdError as exc:
        print_warning(f"proxygate will not load this file until it is fixed: {exc}")
        return
    if not users:
        print_warning(f"{path} lists no users; proxygate will not load it")


def _new_password(args: argparse.Namespace) -> str:
    password = _read_password(args, prompt="New password: ", confirm=True)
    if not password:
        raise CommandError("the password is empty")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in password):
        raise CommandError(
            "the password contains a control character; Basic credentials carrying one "
            "are refused, so it could never log in"
        )
    if not args.digest and args.scheme == "bcrypt" and len(password.encode("utf-8")) > _BCRYPT_MAX_BYTES:
        raise CommandError(
            "bcrypt uses at most 72 bytes of a password and this one is longer; choose a "
            "shorter one or --scheme argon2 / sha512_crypt"
        )
    return password


def _read_password(args: argparse.Namespace, *, prompt: str, confirm: bool) -> str:
    if args.password_stdin:
        raw = sys.stdin.buffer.readline()
        if not raw:
            raise CommandError("--password-stdin: standard input is empty")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CommandError("--password-stdin: the password is not UTF-8") from None
        return line.removesuffix("\n").removesuffix("\r")
    password = _prompt(prompt)
    if confirm and _prompt("Retype new password: ") != password:
        raise CommandError("the two passwords do not match")
    return password


def _prompt(prompt: str) -> str:
    with warnings.catch_warnings():
        # Without a terminal getpass falls back to reading stdin with echo on, after
        # a warning: refuse instead, before anything is read.
        warnings.simplefilter("error", getpass.GetPassWarning)
        try:
            return getpass.getpass(prompt)
        except getpass.GetPassWarning:
            raise CommandError(
                "no terminal to prompt for a password on; use --password-stdin"
            ) from None
        except EOFError:
            raise CommandError("no password given") from None


def _hash(password: str, scheme: str, rounds: int | None) -> str:
    settings: dict[str, Any] = {} if rounds is None else {"rounds": rounds}
    try:
        return hash_password(password, scheme, **settings)
    except TypeError:
        raise CommandError(f"--rounds does not apply to {scheme}") from None
    except ValueError as exc:
        # hash_password's and the hash library's messages name the scheme and the
        # setting, never the password (overlong bcrypt input is refused earlier).
        raise CommandError(str(exc)) from None
