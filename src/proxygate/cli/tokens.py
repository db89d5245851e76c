"""``proxygate tokens``: add (a new random token, printed once), list and delete Bearer tokens.

The tokens file keeps ``name:sha256=<hex>`` lines: only hashes. ``add`` prints the token
alone on one line of standard output, so ``TOKEN=$(proxygate tokens add FILE ci)`` works;
everything else goes to standard error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from proxygate.auth.htpasswd import (
    HtpasswdError,
    check_user_name,
    remove_htpasswd_entry,
    set_htpasswd_entry,
)
from proxygate.auth.tokens import hash_token, new_token, parse_tokens
from proxygate.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    CommandError,
    Parser,
    missing_subcommand,
    print_warning,
)
from proxygate.cli._files import index_lines, read_lines, write_lines

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add ``tokens`` and its actions to the top-level subparsers."""
    tokens = commands.add_parser(
        "tokens",
        help="add, list or delete Bearer tokens in a tokens file",
        description="Edit a tokens file for schemes=('bearer',). Only a hash of each token "
        "is stored; 'add' prints the new token once.",
    )
    tokens.set_defaults(command=lambda _args: missing_subcommand(tokens))
    actions = tokens.add_subparsers(title="actions", metavar="ACTION", parser_class=Parser)
    add = actions.add_parser(
        "add", help="create a random token for NAME and print it once",
        description="Create a random token for NAME, store its hash in FILE and print the "
        "token alone on standard output. It cannot be shown again.")
    add.add_argument("file", metavar="FILE", help="the tokens file (created if absent)")
    add.add_argument("name", metavar="NAME", help="who the token identifies")
    add.set_defaults(command=_tokens_add)
    listing = actions.add_parser("list", help="print the token names, one per line",
                                 description="Print the token names, one per line.")
    listing.add_argument("file", metavar="FILE", help="the tokens file")
    listing.set_defaults(command=_tokens_list)
    delete = actions.add_parser("delete", help="delete NAME's token; fails if absent",
                                description="Delete NAME's token; fails if absent.")
    delete.add_argument("file", metavar="FILE", help="the tokens file")
    delete.add_argument("name", metavar="NAME", help="the token's name")
    delete.set_defaults(command=_tokens_delete)


def _tokens_add(args: argparse.Namespace) -> int:
    name = _name(args.name)
    lines = read_lines(args.file, missing_ok=True)
    if name in index_lines(lines, args.file):
        raise CommandError(f"a token named {name!r} exists in {args.file}; delete it first "
                           "('proxygate tokens delete') to replace it", EXIT_FAILED)
    token = new_token()
    _write_lines(args.file, set_htpasswd_entry(lines, name, hash_token(token)))
    print(f"added token {name!r} to {args.file}; it is shown once, below", file=sys.stderr)
    print(token, flush=True)
    return EXIT_OK


def _tokens_list(args: argparse.Namespace) -> int:
    for name in index_lines(read_lines(args.file), args.file):
        print(name)
    return EXIT_OK


def _tokens_delete(args: argparse.Namespace) -> int:
    name = _name(args.name)
    lines = read_lines(args.file)
    if name not in index_lines(lines, args.file):
        raise CommandError(f"no token named {name!r} in {args.file}", EXIT_FAILED)
    _write_lines(args.file, remove_htpasswd_entry(lines, name))
    print(f"deleted token {name!r} from {args.file}", file=sys.stderr)
    return EXIT_OK


def _name(name: str) -> str:
    try:
        return check_user_name(name)
    except ValueError as exc:
        raise CommandError(str(exc).replace("user name", "token name", 1)) from None


def _write_lines(path: str, lines: list[str]) -> None:
    write_lines(path, lines)
    try:
        found = parse_tokens("".join(lines), path)
    except HtpasswdError as exc:
        print_warning(f"proxygate will not load this file until it is fixed: {exc}")
        return
    if not found:
        print_warning(f"{path} lists no tokens; proxygate will not load it")
