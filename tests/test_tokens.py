"""Bearer tokens (RFC 6750) alone: the tokens file, the sources, the credentials, no server."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest

from proxygate.auth.htpasswd import HtpasswdError
from proxygate.auth.schemes.base import MalformedCredentials
from proxygate.auth.schemes.bearer import BearerCredentials, BearerScheme
from proxygate.auth.tokens import (
    AsyncCallableTokens,
    CallableTokens,
    MappingTokens,
    TokensFile,
    hash_token,
    make_token_source,
    new_token,
    parse_tokens,
)
from proxygate.errors.handler import HeadFromPairs

HEAD = HeadFromPairs("GET", "/", [], "192.0.2.1", "")


def test_a_new_token_is_random_and_a_valid_b64token() -> None:
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    assert all(re.fullmatch(r"pgt_[A-Za-z0-9_-]{43}", token) for token in tokens)


def test_a_token_is_stored_as_its_sha256_only() -> None:
    token = new_token()
    stored = hash_token(token)
    assert re.fullmatch(r"sha256=[0-9a-f]{64}", stored) and token not in stored


def test_the_tokens_file_maps_names_to_hashes(tmp_path: Path) -> None:
    token = new_token()
    path = tmp_path / "tokens"
    path.write_text(f"# CI\nci-deploy:{hash_token(token)}\n")
    source = TokensFile(path, reload_interval=0)
    assert source.lookup(token) == "ci-deploy"
    assert source.lookup(token + "x") is None
    assert source.lookup("") is None


@pytest.mark.parametrize("line", [
    "ci:" + "0" * 64,
    "ci:sha256=" + "0" * 63,
    "ci:sha256=" + "G" * 64,
    "ci:pgt_plaintexttoken",
])
def test_a_line_that_is_not_a_token_hash_is_refused(line: str) -> None:
    with pytest.raises(HtpasswdError, match="line 1"):
        parse_tokens(line + "\n", "tokens")


def test_a_deleted_token_stops_working_once_the_file_reloads(tmp_path: Path) -> None:
    keep, drop = new_token(), new_token()
    path = tmp_path / "tokens"
    path.write_text(f"keep:{hash_token(keep)}\ndrop:{hash_token(drop)}\n")
    source = TokensFile(path, reload_interval=0)
    assert source.lookup(drop) == "drop"
    path.write_text(f"keep:{hash_token(keep)}\n")
    assert source.check_for_changes()
    assert source.lookup(drop) is None and source.lookup(keep) == "keep"


def test_a_mapping_holds_hashes_never_tokens() -> None:
    token = new_token()
    assert MappingTokens({"ci": hash_token(token)}).lookup(token) == "ci"
    with pytest.raises(ValueError, match="never the token itself") as caught:
        MappingTokens({"ci": token})
    assert token not in str(caught.value)


def test_a_callable_names_the_token_or_refuses_it(caplog: pytest.LogCaptureFixture) -> None:
    def lookup(token: str) -> str | None:
        if token == "boom":
            raise RuntimeError(f"database said no to {token}")
        return "svc" if token == "good" else None

    source = make_token_source(lookup)
    assert isinstance(source, CallableTokens) and source.blocking
    assert source.lookup("good") == "svc"
    assert source.lookup("bad") is None
    with caplog.at_level(logging.ERROR, "proxygate.auth"):
        assert source.lookup("boom") is None
    assert "RuntimeError" in caplog.text and "database said" not in caplog.text


def test_an_async_callable_is_awaited() -> None:
    async def lookup(token: str) -> str | None:
        await asyncio.sleep(0)
        return "svc" if token == "good" else None

    source = make_token_source(lookup)
    assert isinstance(source, AsyncCallableTokens) and source.is_async
    assert asyncio.run(source.alookup("good")) == "svc"
    assert asyncio.run(source.alookup("bad")) is None


def test_a_callable_returning_something_odd_is_a_refusal() -> None:
    assert CallableTokens(lambda token: True).lookup("x") is None  # type: ignore[arg-type,return-value]


def test_tokens_of_another_type_are_refused() -> None:
    with pytest.raises(TypeError, match="tokens must be"):
        make_token_source(42)


# -- the scheme ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [b"Bearer", b"Bearer ", b"Bearer a b", b"Bearer a,b",
                                   b"Bearer \xff", b"Bearer a=b=", b"Basic abc"])
def test_a_broken_bearer_header_is_malformed(value: bytes) -> None:
    with pytest.raises(MalformedCredentials):
        BearerCredentials.from_header(value)


def test_bearer_credentials_round_trip_and_hide_the_token() -> None:
    token = new_token()
    parsed = BearerCredentials.from_header(b"bEaReR  " + token.encode())
    assert parsed.token == token
    assert BearerCredentials.from_header(parsed.to_header()) == parsed
    assert token not in repr(parsed)


def test_the_challenge_says_invalid_token_only_when_a_token_was_refused() -> None:
    scheme = BearerScheme("internal", MappingTokens({}))
    assert scheme.challenges() == [b'Bearer realm="internal"']
    assert scheme.challenges(rejected=True) == [b'Bearer realm="internal", error="invalid_token"']


def test_the_scheme_verifies_against_its_source() -> None:
    token = new_token()
    scheme = BearerScheme("internal", MappingTokens({"ci": hash_token(token)}))
    assert scheme.verify(scheme.parse(b"Bearer " + token.encode()), HEAD).username == "ci"
    refused = scheme.verify(scheme.parse(b"Bearer nope"), HEAD)
    assert refused.username is None and refused.reason == "invalid_token"
