"""The htpasswd file format: ``user:hash`` lines, as Apache's htpasswd and ``proxygate users`` write them."""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field

from proxygate.auth.hashing import HashFormatError, check_hash

__all__ = [
    "HtpasswdEntry",
    "HtpasswdError",
    "check_user_name",
    "index_htpasswd_lines",
    "parse_htpasswd",
    "read_htpasswd_lines",
    "remove_htpasswd_entry",
    "set_htpasswd_entry",
    "write_htpasswd_atomic",
]


class HtpasswdError(ValueError):
    """A users file proxygate refuses to load. Names the file and line, never the hash."""


def parse_htpasswd(text: str, source: str = "<htpasswd>") -> dict[str, str]:
    """Parse htpasswd text into ``{user: hash}``, checking every hash.

    Blank lines and lines starting with ``#`` are ignored. A user name may not
    contain ``:`` (Basic credentials split on the first colon) nor control
    characters; a user listed twice is an error, not a silent override.
    """
    users: dict[str, str] = {}
    for user, entry in index_htpasswd_lines(text.splitlines(), source).items():
        try:
            check_hash(entry.stored)
        except HashFormatError as exc:
            raise HtpasswdError(f"{source}, line {entry.index + 1} (user {user!r}): {exc}") from None
        users[user] = entry.stored
    return users


# Editing a users file in place: what ``proxygate users`` does. Lines are kept
# verbatim with their own endings, so comments, blank lines, order and other
# users' entries survive an edit byte for byte. Lines are split exactly as
# parse_htpasswd splits them (str.splitlines), so line numbers agree.


@dataclass(frozen=True, slots=True)
class HtpasswdEntry:
    """Where a user's entry is: its index into the file's lines, and the stored hash."""

    index: int
    stored: str = field(repr=False)


def check_user_name(name: str) -> str:
    """Return ``name`` if a users file can hold it and Basic can carry it; else ValueError.

    Refused: empty names, ``:`` (Basic splits on the first colon), control and
    line-separator characters (they would break the file into lines or be
    rejected in credentials), surrounding whitespace (the parser strips lines)
    and a leading ``#`` (the line would read as a comment).
    """
    problem = None
    if not name:
        problem = "is empty"
    elif ":" in name:
        problem = "contains ':', which Basic credentials cannot carry"
    elif any(_is_control(ch) for ch in name) or len(f"a{name}a".splitlines()) > 1:
        problem = "contains a control or line-break character"
    elif name != name.strip():
        problem = "starts or ends with whitespace"
    elif name.startswith("#"):
        problem = "starts with '#', which marks a comment line"
    if problem is not None:
        raise ValueError(f"user name {name!r} {problem}")
    return name


def _is_control(ch: str) -> bool:
    code = ord(ch)
    return code < 0x20 or 0x7F <= code <= 0x9F


def read_htpasswd_lines(path: str | os.PathLike[str]) -> list[str]:
    """The file's lines, with their endings. OSError if unreadable; HtpasswdError if not UTF-8."""
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HtpasswdError(f"{os.fspath(path)}: not UTF-8 text") from None
    return text.splitlines(keepends=True)


def index_htpasswd_lines(
    lines: Iterable[str], source: str = "<htpasswd>"
) -> dict[str, HtpasswdEntry]:
    """Map each user to its entry, checking the file's structure but not its hashes.

    Structure errors are those parse_htpasswd reports (no ``user:hash``, a control
    character in a name, a user listed twice). Hashes are not checked, so an entry
    with a refused hash can still be replaced or deleted: that is how it gets fixed.
    """
    entries: dict[str, HtpasswdEntry] = {}
    for index, raw in enumerate(lines):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}, line {index + 1}"
        user, sep, stored = line.partition(":")
        if not sep or not user or not stored:
            raise HtpasswdError(f"{where}: expected 'user:hash'")
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in user):
            raise HtpasswdError(f"{where}: the user name contains a control character")
        if user in entries:
            raise HtpasswdError(f"{where}: user {user!r} is listed twice")
        entries[user] = HtpasswdEntry(index, stored)
    return entries


def set_htpasswd_entry(lines: list[str], user: str, stored: str) -> list[str]:
    """New lines with ``user``'s entry replaced in place, or appended if absent."""
    check_user_name(user)
    if any(_is_control(ch) for ch in stored) or ":" in stored or not stored:
        raise ValueError("the hash is empty or contains ':' or a control character")
    entry = index_htpasswd_lines(lines).get(user)
    new = list(lines)
    if entry is None:
        if new and not new[-1].endswith(("\n", "\r")):
            new[-1] += "\n"
        new.append(f"{user}:{stored}\n")
    else:
        old = new[entry.index]
        ending = old[len(old.rstrip("\r\n")):] or "\n"
        new[entry.index] = f"{user}:{stored}{ending}"
    return new


def remove_htpasswd_entry(lines: list[str], user: str) -> list[str]:
    """New lines without ``user``'s entry. KeyError if the user is absent."""
    entry = index_htpasswd_lines(lines).get(user)
    if entry is None:
        raise KeyError(user)
    return lines[: entry.index] + lines[entry.index + 1 :]


def write_htpasswd_atomic(path: str | os.PathLike[str], lines: Iterable[str]) -> None:
    """Replace the file with ``lines`` atomically, mode 0600.

    A reader (the gate's reload watcher, another process) sees the old file or
    the new one, never a mix: the text goes to a temporary file in the same
    directory, is fsynced, and takes the name with os.replace; the directory is
    fsynced so the rename survives a crash. A symlink is followed and its target
    replaced. The owner and group of an existing file are kept where permitted,
    so a file edited by root stays readable by the server account that owns it.
    """
    target = os.path.realpath(path)
    directory = os.path.dirname(target)
    try:
        previous: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        previous = None
    import tempfile  # only the CLI writes users files: not on a server's import

    fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp",
                                dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            os.fchmod(handle.fileno(), 0o600)
            if previous is not None and (previous.st_uid, previous.st_gid) != (
                os.geteuid(), os.getegid()
            ):
                with suppress(PermissionError):
                    os.fchown(handle.fileno(), previous.st_uid, previous.st_gid)
            handle.write("".join(lines))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    try:
        dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with suppress(OSError):
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
