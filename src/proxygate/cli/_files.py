"""The line files ``proxygate users`` and ``proxygate tokens`` edit (``name:secret`` lines):
read, index and write them, each failure one CommandError that names the file."""

from __future__ import annotations

from proxygate.auth.htpasswd import (
    HtpasswdEntry,
    HtpasswdError,
    index_htpasswd_lines,
    read_htpasswd_lines,
    write_htpasswd_atomic,
)
from proxygate.cli._common import CommandError

__all__ = ["index_lines", "read_lines", "write_lines"]


def read_lines(path: str, *, missing_ok: bool = False) -> list[str]:
    try:
        return read_htpasswd_lines(path)
    except FileNotFoundError:
        if missing_ok:
            return []
        raise CommandError(f"{path}: no such file") from None
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None
    except HtpasswdError as exc:
        raise CommandError(str(exc)) from None


def index_lines(lines: list[str], path: str) -> dict[str, HtpasswdEntry]:
    try:
        return index_htpasswd_lines(lines, path)
    except HtpasswdError as exc:
        raise CommandError(str(exc)) from None


def write_lines(path: str, lines: list[str]) -> None:
    """Replace the file atomically; the caller then says whether the gate would load it."""
    try:
        write_htpasswd_atomic(path, lines)
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}") from None
