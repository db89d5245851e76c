"""`proxygate users ... --digest`: digest users files written, edited and checked by the real command."""

from __future__ import annotations

import hashlib
from pathlib import Path

from proxygate.auth.digest_file import DigestFileUsers, parse_digest_lines
from test_cli_users import run

PASSWORD = "correct horse battery staple"


def add(path: Path, user: str, *extra: str, password: str = PASSWORD, action: str = "add"):  # type: ignore[no-untyped-def]
    return run("users", action, path, user, "--digest", "--password-stdin", *extra,
               stdin=password + "\n")


def test_add_writes_every_algorithm_and_an_apache_readable_md5_field(tmp_path: Path) -> None:
    path = tmp_path / "digest"
    done = add(path, "alice", "--realm", "internal")
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    line = path.read_text()
    assert line.startswith("alice:internal:" + hashlib.md5(
        f"alice:internal:{PASSWORD}".encode()).hexdigest() + ":SHA-256=")
    assert PASSWORD not in line
    users = DigestFileUsers(path, realm="internal", algorithms=("MD5", "SHA-256", "SHA-512-256"),
                            reload_interval=0)
    assert users.verify("alice", PASSWORD) is not None
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_algorithm_picks_the_secrets_stored(tmp_path: Path) -> None:
    path = tmp_path / "digest"
    assert add(path, "alice", "--realm", "r", "--algorithm", "SHA-256").returncode == 0
    [entry] = parse_digest_lines(path.read_text().splitlines())
    assert set(entry.secrets) == {"SHA-256"}
    assert path.read_text().startswith("alice:r::SHA-256=")


def test_digest_needs_a_realm_a_file_of_its_own_and_no_rounds(tmp_path: Path) -> None:
    path = tmp_path / "digest"
    missing = add(path, "alice")
    assert missing.returncode == 2 and "--realm" in missing.stderr
    assert not path.exists()
    htpasswd = tmp_path / "htpasswd"
    assert run("users", "add", htpasswd, "bob", "--password-stdin", "--rounds", "4",
               stdin="pw\n").returncode == 0
    mixed = add(htpasswd, "alice", "--realm", "r")
    assert mixed.returncode == 2 and "htpasswd file" in mixed.stderr
    rounds = add(path, "alice", "--realm", "r", "--rounds", "4")
    assert rounds.returncode == 2 and "--rounds" in rounds.stderr
    assert add(path, "alice", "--realm", 'a"b').returncode == 2
    assert add(path, "alice", "--realm", "a:b").returncode == 2


def test_plain_add_on_a_digest_file_says_to_use_digest(tmp_path: Path) -> None:
    path = tmp_path / "digest"
    add(path, "alice", "--realm", "r")
    before = path.read_bytes()
    done = run("users", "add", path, "bob", "--password-stdin", stdin="pw\n")
    assert done.returncode == 2 and "--digest" in done.stderr
    assert path.read_bytes() == before


def test_add_refuses_an_existing_user_and_set_replaces_in_place(tmp_path: Path) -> None:
    path = tmp_path / "digest"
    path.write_text("# team\n")
    add(path, "alice", "--realm", "r")
    add(path, "bob", "--realm", "r")
    again = add(path, "alice", "--realm", "r")
    assert again.returncode == 1 and "already exists" in again.stderr
    assert add(path, "alice", "--realm", "r", password="new", action="set").returncode == 0
    lines = path.read_text().splitlines()
    assert lines[0] == "# team" and lines[1].startswith("alice:r:") and lines[2].startswith("bob:")
    assert run("users", "verify", path, "alice", "--password-stdin",
               stdin="new\n").returncode == 0
    assert run("users", "verify", path, "alice", "--password-stdin",
               stdin=PASSWORD + "\n").returncode == 1


def test_list_and_delete_understand_a_digest_file(tmp_path: Path) -> None:
    path = tmp_path / "digest"
    add(path, "alice", "--realm", "r")
    add(path, "alice", "--realm", "s")
    add(path, "bob", "--realm", "r")
    assert run("users", "list", path).stdout.split() == ["alice", "bob"]
    ambiguous = run("users", "delete", path, "alice")
    assert ambiguous.returncode == 2 and "--realm" in ambiguous.stderr
    assert run("users", "delete", path, "alice", "--realm", "s").returncode == 0
    assert [e.realm for e in parse_digest_lines(path.read_text().splitlines())
            if e.user == "alice"] == ["r"]
    assert run("users", "delete", path, "carol").returncode == 1
