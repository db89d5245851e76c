"""Unknown users cost the same as wrong passwords, so response times do not reveal who exists."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from proxygate.auth.hashing import cost_signature, hash_password
from proxygate.auth.schemes.basic import BasicCredentials
from proxygate.auth.users import HtpasswdUsers, MappingUsers
from proxygate.config import Config
from proxygate.gate import Check, Deny, Gate, HeadFromPairs

ROUNDS = 15


def failure_seconds(gate: Gate, user: str, password: str) -> float:
    value = BasicCredentials(user, password).to_header()
    started = time.perf_counter()
    decision = gate.decide(HeadFromPairs("GET", "/", [(b"proxy-authorization", value)],
                                         "10.0.0.1"))
    assert isinstance(decision, Check)
    result = decision.run()
    elapsed = time.perf_counter() - started
    assert isinstance(result, Deny) and result.response.status == 407
    return elapsed


def test_unknown_users_cost_the_same_as_wrong_passwords(tmp_path: Path) -> None:
    path = tmp_path / "users.htpasswd"
    path.write_text("".join(
        f"{name}:{hash_password(f'{name}-pw', 'bcrypt', rounds=10)}\n"
        for name in ("alice", "bob", "carol")
    ), encoding="utf-8")
    gate = Gate(Config(users=str(path), reload_interval=0, max_failures=0))
    failure_seconds(gate, "alice", "warm-up")  # first-call costs (imports, backends) out of the way
    unknown: list[float] = []
    wrong: list[float] = []
    for number in range(ROUNDS):  # interleaved, so drifts in machine load hit both alike
        unknown.append(failure_seconds(gate, f"nobody{number}", "alice-pw"))
        wrong.append(failure_seconds(gate, "alice", f"guess{number}"))
    ratio = statistics.median(unknown) / statistics.median(wrong)
    assert 1 / 1.5 <= ratio <= 1.5, (
        f"unknown-user median {statistics.median(unknown) * 1000:.1f} ms vs wrong-password "
        f"median {statistics.median(wrong) * 1000:.1f} ms")


@pytest.mark.parametrize("rounds", [[6, 6, 5], [5, 6, 6]])
def test_the_dummy_hash_has_the_cost_of_the_most_common_stored_hash(rounds: list[int]) -> None:
    users = MappingUsers({f"u{n}": hash_password("pw", "bcrypt", rounds=r)
                          for n, r in enumerate(rounds)})
    assert cost_signature(users._dummy) == ("bcrypt", "6", "", "", "")


def test_the_dummy_hash_follows_the_scheme_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "users"
    stored = [hash_password("pw", "sha256_crypt", rounds=1000) for _ in range(2)]
    path.write_text(f"a:{stored[0]}\nb:{stored[1]}\nc:{hash_password('pw', 'bcrypt', rounds=4)}\n",
                    encoding="utf-8")
    users = HtpasswdUsers(path, reload_interval=0)
    assert cost_signature(users._dummy) == cost_signature(stored[0])


def test_the_dummy_hash_follows_a_reloaded_file(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(f"a:{hash_password('pw', 'bcrypt', rounds=4)}\n", encoding="utf-8")
    users = HtpasswdUsers(path, reload_interval=0)
    replacement = hash_password("pw", "bcrypt", rounds=5)
    path.write_text(f"b:{replacement}\n", encoding="utf-8")
    assert users.check_for_changes() is True
    assert cost_signature(users._dummy) == cost_signature(replacement)


def test_an_unknown_user_is_verified_against_the_dummy(monkeypatch: pytest.MonkeyPatch) -> None:
    users = MappingUsers({"alice": hash_password("pw", "bcrypt", rounds=4)})
    verified: list[str] = []

    def recording(password: str, stored: str) -> bool:
        verified.append(stored)
        return False

    monkeypatch.setattr("proxygate.auth.users.verify_password", recording)
    assert users.verify("nobody", "pw") is None
    assert verified == [users._dummy]
