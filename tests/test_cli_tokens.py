"""`proxygate tokens`: a new token printed once, alone on stdout; only its hash stored."""

from __future__ import annotations

import re
from pathlib import Path

from proxygate.auth.tokens import TokensFile, hash_token
from test_cli_users import run


def test_add_prints_the_token_alone_and_stores_only_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    done = run("tokens", "add", path, "ci-deploy")
    assert done.returncode == 0, done.stderr
    token = done.stdout.removesuffix("\n")
    assert re.fullmatch(r"pgt_[A-Za-z0-9_-]{43}", token)  # nothing else on stdout
    assert token not in done.stderr and "ci-deploy" in done.stderr
    assert path.read_text() == f"ci-deploy:{hash_token(token)}\n"
    assert TokensFile(path, reload_interval=0).lookup(token) == "ci-deploy"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_each_add_makes_a_new_token_and_a_name_is_used_once(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    first = run("tokens", "add", path, "a").stdout
    second = run("tokens", "add", path, "b").stdout
    assert first != second
    again = run("tokens", "add", path, "a")
    assert again.returncode == 1 and again.stdout == "" and "exists" in again.stderr


def test_list_and_delete(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# service accounts\n")
    token = run("tokens", "add", path, "a").stdout.strip()
    run("tokens", "add", path, "b")
    assert run("tokens", "list", path).stdout.split() == ["a", "b"]
    assert run("tokens", "delete", path, "a").returncode == 0
    assert run("tokens", "list", path).stdout.split() == ["b"]
    assert path.read_text().startswith("# service accounts\n")
    assert TokensFile(path, reload_interval=0).lookup(token) is None
    missing = run("tokens", "delete", path, "a")
    assert missing.returncode == 1 and "no token" in missing.stderr


def test_a_bad_name_or_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    assert run("tokens", "add", tmp_path / "t", "a:b").returncode == 2
    assert run("tokens", "list", tmp_path / "absent").returncode == 2
    assert run("tokens").returncode == 2
