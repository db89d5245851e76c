"""Authentication schemes, one module each (basic, digest, bearer), built from the ``schemes`` option.

The gate holds the list this module builds and knows none of them by name: a request's
credentials go to the scheme they name, challenges come from every scheme in order.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import secrets
import sys
from typing import Any

from proxygate.auth.digest_file import DigestSource
from proxygate.auth.nonces import MemoryReplayGuard, Nonces, ReplayGuard
from proxygate.auth.schemes.base import MalformedCredentials, Scheme, Verdict, scheme_token
from proxygate.auth.schemes.basic import BasicScheme
from proxygate.auth.schemes.bearer import BearerScheme
from proxygate.auth.schemes.digest import DigestScheme
from proxygate.auth.throttle import ThrottleStore
from proxygate.auth.tokens import TokenSource
from proxygate.auth.users import UserSource

__all__ = [
    "BasicScheme",
    "BearerScheme",
    "DigestScheme",
    "MalformedCredentials",
    "Scheme",
    "Verdict",
    "digest_unservable",
    "make_schemes",
    "scheme_token",
]

logger = logging.getLogger("proxygate.auth")

_process_secret: bytes | None = None


def _secret_of_this_process() -> bytes:
    """The nonce secret when none is configured: random, made once per process (a forked
    worker keeps its parent's, so ``--preload`` workers still agree)."""
    global _process_secret  # noqa: PLW0603 -- one secret per process, by design
    if _process_secret is None:
        _process_secret = secrets.token_bytes(32)
    return _process_secret


def several_workers() -> bool:
    """Whether this process looks like one of several workers serving the same port."""
    try:
        concurrency = int(os.environ.get("WEB_CONCURRENCY", "1"))
    except ValueError:
        concurrency = 1
    return (concurrency > 1 or "gunicorn.arbiter" in sys.modules
            or multiprocessing.parent_process() is not None)


def digest_unservable(users: object) -> str:
    """Why ``users`` cannot serve Digest, for the start-up error."""
    kind = type(users).__name__
    return (
        f"schemes includes 'digest', but the users source ({kind}) cannot serve digest: "
        "Digest needs H(user:realm:password) to compute the expected response, and a "
        "one-way password hash (bcrypt, sha512_crypt, ...), a callable or a directory "
        "only checks a password it is given. Write a digest users file with "
        "'proxygate users add FILE USER --digest --realm REALM' and pass its path as users."
    )


def make_schemes(config: Any, *, users: UserSource | None, tokens: TokenSource | None,
                 store: ThrottleStore) -> list[Scheme[Any]]:
    """The configured schemes, in order. ValueError names what cannot work."""
    proxy = config.mode == "proxy"
    built: list[Scheme[Any]] = []
    for name in config.schemes:
        if name == "basic":
            assert users is not None
            built.append(BasicScheme(config.realm, users))
        elif name == "bearer":
            assert tokens is not None
            built.append(BearerScheme(config.realm, tokens))
        elif name == "digest":
            if not isinstance(users, DigestSource):
                raise ValueError(digest_unservable(users))
            if not config.realm.isascii():
                raise ValueError(f"realm {config.realm!r} is not ASCII: Digest clients hash the "
                                 "realm's bytes as sent, so digest needs an ASCII realm")
            secret = config.nonce_secret
            if secret is None:
                if several_workers():
                    logger.warning(
                        "Digest without nonce_secret in what looks like one of several "
                        "workers: each worker makes its own random secret and refuses the "
                        "others' nonces (clients see repeated 407/401). Set nonce_secret "
                        "(PROXYGATE_NONCE_SECRET) to the same value in every worker."
                    )
                key = _secret_of_this_process()
            else:
                key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
            first_use = getattr(store, "first_use", None)
            replays: ReplayGuard = store if callable(first_use) else MemoryReplayGuard()
            if not callable(first_use) and several_workers():
                logger.warning(
                    "Digest replays are remembered per process: a request replayed to "
                    "another worker is not refused. Use throttle_store='redis://...' to "
                    "share them."
                )
            built.append(DigestScheme(
                config.realm, users, algorithms=tuple(config.digest_algorithms),
                nonces=Nonces(key, realm=config.realm, ttl=config.nonce_ttl),
                replays=replays,
                info_header=b"proxy-authentication-info" if proxy else b"authentication-info",
            ))
        else:  # Config refuses unknown names first; this guards a Config built by hand
            raise ValueError(f"unknown scheme {name!r}")
    return built
