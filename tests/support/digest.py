"""A Digest client written from RFC 7616 with the standard library only, for tests that need
to craft responses the real clients would not (replays, forged nonces, userhash, username*)."""

from __future__ import annotations

import hashlib
import secrets
from urllib.parse import quote
from urllib.request import parse_http_list, parse_keqv_list

__all__ = ["H", "answer", "challenges"]

_HASHES = {
    "MD5": hashlib.md5,
    "SHA-256": hashlib.sha256,
    "SHA-512-256": lambda data: hashlib.new("sha512_256", data),
}


def H(algorithm: str, text: str) -> str:
    return _HASHES[algorithm](text.encode("utf-8")).hexdigest()


def challenges(values: list[str]) -> list[dict[str, str]]:
    """The parameters of each ``Digest`` challenge line, in order (other schemes skipped)."""
    found = []
    for value in values:
        scheme, _, rest = value.partition(" ")
        if scheme.lower() == "digest":
            found.append(parse_keqv_list(parse_http_list(rest)))
    return found


def answer(challenge: dict[str, str], user: str, password: str, *, method: str = "GET",
           uri: str = "/", nc: int = 1, cnonce: str | None = None, userhash: bool = False,
           extended: bool = False, realm: str | None = None, response: str | None = None) -> str:
    """The ``Digest ...`` credentials a correct client sends for ``challenge``."""
    algorithm = challenge.get("algorithm", "MD5")
    realm = challenge["realm"] if realm is None else realm
    nonce = challenge["nonce"]
    cnonce = cnonce or secrets.token_hex(8)
    ncvalue = f"{nc:08x}"
    ha1 = H(algorithm, f"{user}:{realm}:{password}")
    ha2 = H(algorithm, f"{method}:{uri}")
    digest = response or H(algorithm, f"{ha1}:{nonce}:{ncvalue}:{cnonce}:auth:{ha2}")
    if userhash:
        name = f'username="{H(algorithm, f"{user}:{realm}")}", userhash=true'
    elif extended:
        name = "username*=UTF-8''" + quote(user, safe="")
    else:
        name = f'username="{user}"'
    return (f'Digest {name}, realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'algorithm={algorithm}, response="{digest}", qop=auth, nc={ncvalue}, '
            f'cnonce="{cnonce}"')
