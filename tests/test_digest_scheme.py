"""The Digest scheme alone (RFC 7616): parsing what real clients send, and verifying it, no server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proxygate.auth.digest_file import DigestFileUsers, digest_fields
from proxygate.auth.nonces import MemoryReplayGuard, Nonces
from proxygate.auth.schemes import digest as digest_module
from proxygate.auth.schemes.base import MalformedCredentials
from proxygate.auth.schemes.digest import DigestCredentials, DigestScheme
from proxygate.errors.handler import HeadFromPairs
from support.digest import H, answer, challenges

REALM = "internal"
ALL = ("MD5", "SHA-256", "SHA-512-256")

# What the clients send, copied from their source (curl 7.88's output_digest, urllib's
# get_authorization, requests' build_digest_header) with made-up values.
CURL = (b'Digest username="alice", realm="internal", nonce="n0nce", uri="/a?b=1", '
        b'cnonce="YmM5ZGM0", nc=00000001, qop=auth, '
        b'response="' + b"a" * 64 + b'", algorithm=SHA-256, userhash=false')
URLLIB = (b'Digest username="alice", realm="internal", nonce="n0nce", '
          b'uri="http://example.internal/a", response="' + b"b" * 32 + b'", '
          b'algorithm="MD5", qop=auth, nc=00000001, cnonce="0123456789abcdef"')
REQUESTS = (b'Digest username="alice", realm="internal", nonce="n0nce", uri="/a", '
            b'response="' + b"c" * 32 + b'", algorithm="MD5", qop="auth", nc=00000001, '
            b'cnonce="8d5ab7d8fa2b3c1b"')


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def write_users(path: Path, users: dict[str, str], algorithms: tuple[str, ...] = ALL,
                realm: str = REALM) -> Path:
    path.write_text("".join(f"{user}:{realm}:{digest_fields(user, realm, pw, algorithms)}\n"
                            for user, pw in users.items()), encoding="utf-8")
    return path


def make_scheme(tmp_path: Path, clock: Clock, *, algorithms: tuple[str, ...] = ("SHA-256",),
                replays: Any = None, secret: bytes = b"k" * 32) -> DigestScheme:
    users = DigestFileUsers(write_users(tmp_path / "digest", {"alice": "wonderland",
                                                              "jürgen": "straße"}),
                            realm=REALM, algorithms=algorithms, reload_interval=0)
    return DigestScheme(REALM, users, algorithms=algorithms,
                        nonces=Nonces(secret, realm=REALM, ttl=300, clock=clock),
                        replays=replays or MemoryReplayGuard(),
                        info_header=b"proxy-authentication-info")


def head(path: str = "/a", query: str | None = "", method: str = "GET") -> HeadFromPairs:
    return HeadFromPairs(method, path, [], "192.0.2.1", query)


def challenge_of(scheme: DigestScheme, index: int = 0, **kwargs: bool) -> dict[str, str]:
    values = [v.decode("latin-1") for v in scheme.challenges(**kwargs)]
    return challenges(values)[index]


def check(scheme: DigestScheme, header: str, request: HeadFromPairs | None = None) -> Any:
    return scheme.verify(scheme.parse(header.encode("utf-8")), request or head())


# -- parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [CURL, URLLIB, REQUESTS], ids=["curl", "urllib", "requests"])
def test_what_each_real_client_sends_parses(value: bytes) -> None:
    parsed = DigestCredentials.from_header(value)
    assert parsed.username == "alice"
    assert parsed.qop == "auth" and parsed.nc == "00000001"
    assert parsed.algorithm in ("MD5", "SHA-256")


def test_the_scheme_name_and_parameter_names_are_case_insensitive() -> None:
    value = CURL.replace(b"Digest", b"dIgEsT").replace(b"username=", b"UserName=")
    assert DigestCredentials.from_header(value).username == "alice"


def test_a_missing_algorithm_means_md5_as_rfc_7616_says() -> None:
    value = REQUESTS.replace(b', algorithm="MD5"', b"")
    assert DigestCredentials.from_header(value).algorithm == "MD5"


@pytest.mark.parametrize("credentials", [
    DigestCredentials("alice", REALM, "n", "/x?y=1", "a" * 64, "SHA-256", "0000000a", "c n"),
    DigestCredentials("jürgen", REALM, "n", "/", "b" * 32, "MD5", "00000001", "c", extended=True),
    DigestCredentials('quo"te', REALM, "n", "/", "c" * 64, "SHA-512-256", "ffffffff", "\\",
                      userhash=False, opaque="op"),
    DigestCredentials("f" * 64, REALM, "n", "/", "d" * 64, "SHA-256", "00000002", "c",
                      userhash=True),
])
def test_credentials_round_trip_through_the_header(credentials: DigestCredentials) -> None:
    assert DigestCredentials.from_header(credentials.to_header()) == credentials


def test_username_star_carries_a_non_ascii_name() -> None:
    value = CURL.replace(b'username="alice"', b"username*=UTF-8''J%C3%BCrgen")
    assert DigestCredentials.from_header(value).username == "Jürgen"


@pytest.mark.parametrize("change", [
    (b'username="alice"', b'username="alice", username*=UTF-8\'\'alice'),  # both
    (b'username="alice", ', b""),  # neither
    (b"username=\"alice\"", b"username*=ISO-8859-1''J%FCrgen"),  # not UTF-8
    (b"username=\"alice\"", b"username*=UTF-8''J%C3%B"),  # broken escape
    (b"username=\"alice\"", b"username*=UTF-8''J\xfcrgen"),  # unescaped octet
    (b'username="alice"', b'username="\xff\xfe"'),  # not UTF-8
    (b'username="alice"', b'username=""'),
    (b"nc=00000001", b"nc=1"),
    (b"nc=00000001", b"nc=0000000g"),
    (b"qop=auth", b"qop=auth-int"),
    (b"algorithm=SHA-256", b"algorithm=SHA-256-sess"),
    (b"algorithm=SHA-256", b"algorithm=SHA-1"),
    (b'response="' + b"a" * 64, b'response="' + b"a" * 63),
    (b'response="' + b"a" * 64, b'response="' + b"z" * 64),
    (b'cnonce="YmM5ZGM0", ', b""),
    (b'cnonce="YmM5ZGM0"', b'cnonce=""'),
    (b"userhash=false", b"userhash=maybe"),
    (b'uri="/a?b=1"', b'uri="/a?b=1", uri="/b"'),
    (b", qop=auth", b" qop=auth"),
    (b"Digest username", b"Digestusername"),
])
def test_broken_credentials_are_malformed_never_a_crash(change: tuple[bytes, bytes]) -> None:
    with pytest.raises(MalformedCredentials):
        DigestCredentials.from_header(CURL.replace(*change))


def test_a_huge_parameter_is_refused() -> None:
    with pytest.raises(MalformedCredentials):
        DigestCredentials.from_header(CURL.replace(b'cnonce="YmM5ZGM0"',
                                                   b'cnonce="' + b"x" * 5000 + b'"'))


def test_the_repr_shows_no_response() -> None:
    assert "a" * 64 not in repr(DigestCredentials.from_header(CURL))


# -- challenges --------------------------------------------------------------------------


def test_one_challenge_line_per_algorithm_in_the_configured_order(tmp_path: Path,
                                                                  clock: Clock) -> None:
    scheme = make_scheme(tmp_path, clock, algorithms=("SHA-256", "MD5"))
    lines = [v.decode() for v in scheme.challenges()]
    assert [c["algorithm"] for c in challenges(lines)] == ["SHA-256", "MD5"]
    for line in lines:
        assert line.startswith('Digest realm="internal", qop="auth", ')
        assert "charset=UTF-8" in line and "userhash=true" in line and "stale" not in line


def test_every_challenge_lines_nonce_is_valid_on_its_own(tmp_path: Path, clock: Clock) -> None:
    scheme = make_scheme(tmp_path, clock, algorithms=("SHA-256", "MD5"))
    for index in (0, 1):  # curl, httpx and urllib answer the first line; requests the last
        verdict = check(scheme, answer(challenge_of(scheme, index), "alice", "wonderland",
                                       uri="/a"))
        assert verdict.username == "alice"


def test_a_stale_challenge_says_stale_true(tmp_path: Path, clock: Clock) -> None:
    scheme = make_scheme(tmp_path, clock)
    assert b"stale=true" in scheme.challenges(stale=True)[0]


# -- verification ------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALL)
def test_each_algorithm_verifies(tmp_path: Path, clock: Clock, algorithm: str) -> None:
    scheme = make_scheme(tmp_path, clock, algorithms=(algorithm,))
    verdict = check(scheme, answer(challenge_of(scheme), "alice", "wonderland", uri="/a"))
    assert verdict.username == "alice"
    assert verdict.pin is None  # never cached: every Digest header is new


def test_a_wrong_password_and_an_unknown_user_fail_alike(tmp_path: Path, clock: Clock,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    scheme = make_scheme(tmp_path, clock)
    calls: list[str] = []
    real = digest_module.hash_hex

    def counting(algorithm: str, text: str) -> str:
        calls.append(algorithm)
        return real(algorithm, text)

    monkeypatch.setattr(digest_module, "hash_hex", counting)
    wrong = check(scheme, answer(challenge_of(scheme), "alice", "nope", uri="/a"))
    wrong_calls, calls[:] = list(calls), []
    unknown = check(scheme, answer(challenge_of(scheme), "mallory", "nope", uri="/a"))
    assert wrong.username is None and unknown.username is None
    assert (wrong.reason, unknown.reason) == ("bad_password", "unknown_user")
    assert calls == wrong_calls  # the same digest arithmetic either way


def test_the_exact_triple_is_refused_the_second_time(tmp_path: Path, clock: Clock) -> None:
    scheme = make_scheme(tmp_path, clock)
    header = answer(challenge_of(scheme), "alice", "wonderland", uri="/a", cnonce="c1")
    assert check(scheme, header).username == "alice"
    replayed = check(scheme, header)
    assert replayed.username is None and replayed.reason == "replay"


def test_a_nonce_reused_with_a_new_nc_or_cnonce_is_no_replay(tmp_path: Path,
                                                            clock: Clock) -> None:
    scheme = make_scheme(tmp_path, clock)
    challenge = challenge_of(scheme)
    for nc, cnonce in ((1, "c1"), (2, "c1"), (2, "c2"), (3, "c3")):
        header = answer(challenge, "alice", "wonderland", uri="/a", nc=nc, cnonce=cnonce)
        assert check(scheme, header).username == "alice"


def test_an_expired_nonce_with_the_right_answer_is_stale_not_a_failure(tmp_path: Path,
                                                                     clock: Clock) -> None:
    scheme = make_scheme(tmp_path, clock)
    header = answer(challenge_of(scheme), "alice", "wonderland", uri="/a")
    clock.now += 301
    verdict = check(scheme, header)
    assert verdict.username is None and verdict.stale and verdict.reason == "stale_nonce"


def test_an_expired_nonce_with_a_wrong_answer_is_a_plain_failure(tmp_path: Path,
                                                               clock: Clock) -> None:
    scheme = make_scheme(tmp_path, clock)
    header = answer(challenge_of(scheme), "alice", "guess", uri="/a")
    clock.now += 301
    verdict = check(scheme, header)
    assert not verdict.stale and verdict.reason == "bad_password"


@pytest.mark.parametrize("forge", [
    lambda n: n[:-1] + ("A" if n[-1] != "A" else "B"),  # the tag's last character
    lambda n: ("A" if n[0] != "A" else "B") + n[1:],  # the time's first character
    lambda n: n + "A",
    lambda n: "not-a-nonce",
    lambda n: "",
])
def test_a_forged_or_mangled_nonce_is_refused(tmp_path: Path, clock: Clock, forge: Any) -> None:
    scheme = make_scheme(tmp_path, clock)
    challenge = challenge_of(scheme)
    challenge["nonce"] = forge(challenge["nonce"]) or "x"
    verdict = check(scheme, answer(challenge, "alice", "wonderland", uri="/a"))
    assert verdict.username is None and not verdict.stale


def test_a_nonce_signed_with_another_secret_is_refused(tmp_path: Path, clock: Clock) -> None:
    ours = make_scheme(tmp_path, clock, secret=b"a" * 32)
    theirs = make_scheme(tmp_path, clock, secret=b"b" * 32)
    verdict = check(ours, answer(challenge_of(theirs), "alice", "wonderland", uri="/a"))
    assert verdict.username is None and verdict.reason == "bad_nonce"


def test_two_schemes_sharing_the_secret_accept_each_others_nonces(tmp_path: Path,
                                                                  clock: Clock) -> None:
    one = make_scheme(tmp_path, clock, secret=b"s" * 32)
    two = make_scheme(tmp_path, clock, secret=b"s" * 32)
    assert check(two, answer(challenge_of(one), "alice", "wonderland", uri="/a")).username


def test_a_nonce_from_far_in_the_future_is_refused(tmp_path: Path, clock: Clock) -> None:
    scheme = make_scheme(tmp_path, clock)
    clock.now += 3600
    challenge = challenge_of(scheme)
    clock.now -= 3600
    verdict = check(scheme, answer(challenge, "alice", "wonderland", uri="/a"))
    assert verdict.username is None and verdict.reason == "bad_nonce"


@pytest.mark.parametrize(("uri", "path", "query"), [
    ("/a", "/a", ""),
    ("/a?b=1&c", "/a", "b=1&c"),
    ("http://example.internal/a?b=1", "/a", "b=1"),  # urllib through a proxy
    ("/caf%C3%A9", "/café", ""),
    ("/a", "/a", None),  # a head that does not know its query compares the path
])
def test_the_uri_as_a_path_or_an_absolute_url_names_the_request(
        tmp_path: Path, clock: Clock, uri: str, path: str, query: str | None) -> None:
    scheme = make_scheme(tmp_path, clock)
    verdict = check(scheme, answer(challenge_of(scheme), "alice", "wonderland", uri=uri),
                    head(path, query))
    assert verdict.username == "alice"


@pytest.mark.parametrize(("uri", "path", "query"), [
    ("/b", "/a", ""),
    ("/a?b=2", "/a", "b=1"),
    ("/a", "/a", "b=1"),
    ("http://example.internal/b", "/a", ""),
    ("*", "/a", ""),
])
def test_a_uri_naming_another_resource_is_a_bad_request(
        tmp_path: Path, clock: Clock, uri: str, path: str, query: str) -> None:
    scheme = make_scheme(tmp_path, clock)
    verdict = check(scheme, answer(challenge_of(scheme), "alice", "wonderland", uri=uri),
                    head(path, query))
    assert verdict.username is None and verdict.bad_request


def test_the_method_is_part_of_the_answer(tmp_path: Path, clock: Clock) -> None:
    scheme = make_scheme(tmp_path, clock)
    header = answer(challenge_of(scheme), "alice", "wonderland", uri="/a", method="GET")
    assert check(scheme, header, head(method="POST")).username is None


def test_userhash_finds_the_user_by_the_hash_of_the_name(tmp_path: Path, clock: Clock) -> None:
    scheme = make_scheme(tmp_path, clock)
    header = answer(challenge_of(scheme), "alice", "wonderland", uri="/a", userhash=True)
    assert H("SHA-256", "alice:internal") in header and '"alice"' not in header
    assert check(scheme, header).username == "alice"


def test_a_non_ascii_name_in_username_star(tmp_path: Path, clock: Clock) -> None:
    scheme = make_scheme(tmp_path, clock)
    header = answer(challenge_of(scheme), "jürgen", "straße", uri="/a", extended=True)
    assert check(scheme, header).username == "jürgen"


def test_an_algorithm_not_offered_is_refused(tmp_path: Path, clock: Clock) -> None:
    scheme = make_scheme(tmp_path, clock, algorithms=("SHA-256",))
    challenge = challenge_of(scheme)
    challenge["algorithm"] = "MD5"  # the file has MD5 secrets, the configuration does not offer it
    assert check(scheme, answer(challenge, "alice", "wonderland", uri="/a")).username is None


def test_another_realm_in_the_answer_is_refused(tmp_path: Path, clock: Clock) -> None:
    scheme = make_scheme(tmp_path, clock)
    header = answer(challenge_of(scheme), "alice", "wonderland", uri="/a", realm="other")
    assert check(scheme, header).username is None


def test_nextnonce_comes_once_the_nonce_is_past_half_its_life(tmp_path: Path,
                                                             clock: Clock) -> None:
    scheme = make_scheme(tmp_path, clock)
    challenge = challenge_of(scheme)
    early = check(scheme, answer(challenge, "alice", "wonderland", uri="/a", nc=1))
    assert early.headers == ()
    clock.now += 200
    late = check(scheme, answer(challenge, "alice", "wonderland", uri="/a", nc=2))
    [(name, value)] = late.headers
    assert name == b"proxy-authentication-info"
    next_nonce = value.decode().removeprefix('nextnonce="').removesuffix('"')
    clock.now += 200  # the first nonce is now stale; the next one is not
    follow = check(scheme, answer({**challenge, "nonce": next_nonce}, "alice", "wonderland",
                                  uri="/a"))
    assert follow.username == "alice"


class BrokenStore:
    blocking = True

    def first_use(self, key: str, *, ttl: float) -> bool:
        raise ConnectionError("redis is down")


def test_a_replay_store_that_is_down_answers_unavailable(tmp_path: Path, clock: Clock) -> None:
    scheme = make_scheme(tmp_path, clock, replays=BrokenStore())
    assert scheme.blocking  # a network store: the ASGI shell must run this in a thread
    verdict = check(scheme, answer(challenge_of(scheme), "alice", "wonderland", uri="/a"))
    assert verdict.username is None and verdict.unavailable
