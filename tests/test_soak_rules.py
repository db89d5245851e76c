"""The soak's checker (tests/soak/soak.py) catches what it promises to: a soak whose
checks could not fail would prove nothing, so each rule is fed a violation here."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

SOAK = Path(__file__).resolve().parent / "soak" / "soak.py"


@pytest.fixture(scope="module")
def soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soak_under_test", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def envelope(status: int) -> bytes:
    return json.dumps({"error": {"code": status, "message": "x", "details": "y"}}).encode()


def app_saw(user: str | None, headers: list[list[str]] | None = None) -> bytes:
    return json.dumps({"user": user, "headers": headers or []}).encode()


@pytest.mark.parametrize(("kind", "user", "status", "body"), [
    ("valid", "alice", 200, app_saw("alice")),
    ("wrong", None, 407, envelope(407)),
    ("wrong", None, 429, envelope(429)),
    ("missing", None, 407, envelope(407)),
    ("throttled", "carol", 429, envelope(429)),
])
def test_right_answers_pass(soak: ModuleType, kind: str, user: str | None, status: int,
                            body: bytes) -> None:
    checker = soak.Checker()
    checker.check(kind, user, "192.0.2.1", status, body, "uvicorn")
    assert checker.violations == []


@pytest.mark.parametrize(("kind", "user", "status", "body", "says"), [
    ("valid", "alice", 503, envelope(503), "503"),
    ("valid", "alice", 200, app_saw("bob"), "the app saw 'bob'"),
    ("valid", "alice", 200, app_saw("alice", [["proxy-authorization", "Basic x"]]),
     "credential header reached the app"),
    ("valid", "alice", 407, envelope(407), "expected {200}"),
    ("wrong", None, 200, app_saw("alice"), "expected"),
    ("missing", None, 429, envelope(429), "expected {407}"),
    ("throttled", "carol", 407, envelope(407), "expected"),
    ("wrong", None, 407, b'{"detail": "nope"}', "without its envelope"),
])
def test_each_wrong_answer_is_a_violation(soak: ModuleType, kind: str, user: str | None,
                                          status: int, body: bytes, says: str) -> None:
    checker = soak.Checker()
    checker.check(kind, user, "192.0.2.1", status, body, "uvicorn")
    assert len(checker.violations) == 1
    assert says in checker.violations[0]


def test_hashed_failures_are_counted_per_address(soak: ModuleType) -> None:
    checker = soak.Checker()
    for _ in range(soak.MAX_FAILURES + 1):
        checker.check("wrong", None, "198.51.100.1", 407, envelope(407), "uvicorn")
    assert checker.failures_by_address["198.51.100.1"] == soak.MAX_FAILURES + 1
