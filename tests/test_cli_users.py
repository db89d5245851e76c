"""`proxygate users`: htpasswd files edited safely, passwords never on argv or in output."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from proxygate.auth.hashing import hash_password, verify_password
from proxygate.auth.htpasswd import parse_htpasswd

SRC = Path(__file__).resolve().parents[1] / "src"
PASSWORD = "correct horse battery staple"


def run(*args: str | Path, stdin: str | bytes | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in a child process, detached from any terminal."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
    done = subprocess.run(
        [sys.executable, "-m", "proxygate", *map(str, args)],
        input=data if data is not None else b"",
        capture_output=True,
        env=env,
        timeout=30,
        start_new_session=True,  # no controlling terminal: getpass cannot reach a tty
        check=False,
    )
    result = subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def add(path: Path, user: str, password: str = PASSWORD, *extra: str) -> subprocess.CompletedProcess[str]:
    return run("users", "add", path, user, "--password-stdin", "--rounds", "4", *extra,
               stdin=password + "\n")


def verify(path: Path, user: str, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    return run("users", "verify", path, user, "--password-stdin", stdin=password + "\n")


def fast_bcrypt(password: str) -> str:
    return hash_password(password, "bcrypt", rounds=4)


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    """A hand-written file: comments, a blank line, a CRLF line, two users."""
    path = tmp_path / "users.htpasswd"
    path.write_bytes(
        (
            "# managed by hand and by proxygate\n"
            f"alice:{fast_bcrypt('alice-pw')}\n"
            "\n"
            "   # an indented comment\r\n"
            f"bob:{fast_bcrypt('bob-pw')}\r\n"
            "# trailing comment"
        ).encode()
    )
    path.chmod(0o644)
    return path


def test_add_creates_a_0600_file_with_a_bcrypt_hash_at_the_library_default_cost(
    tmp_path: Path,
) -> None:
    path = tmp_path / "new.htpasswd"
    result = run("users", "add", path, "alice", "--password-stdin", stdin=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    user, _, stored = path.read_text().rstrip("\n").partition(":")
    assert user == "alice"
    assert stored.startswith("$2b$12$")
    assert verify_password(PASSWORD, stored)


def test_add_then_verify_exits_0_and_a_wrong_password_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "users"
    assert add(path, "alice").returncode == 0
    assert verify(path, "alice").returncode == 0
    wrong = verify(path, "alice", "not it")
    assert wrong.returncode == 1
    assert "wrong password" in wrong.stderr


def test_password_stdin_strips_only_the_line_ending(tmp_path: Path) -> None:
    path = tmp_path / "users"
    assert add(path, "alice", " spaced pw ").returncode == 0
    stored = parse_htpasswd(path.read_text())["alice"]
    assert verify_password(" spaced pw ", stored)
    crlf = run("users", "verify", path, "alice", "--password-stdin",
               stdin=" spaced pw \r\nsecond line ignored\n")
    assert crlf.returncode == 0, crlf.stderr
    no_newline = run("users", "verify", path, "alice", "--password-stdin", stdin=" spaced pw ")
    assert no_newline.returncode == 0


def test_add_refuses_an_existing_user_with_exit_1_and_leaves_the_file_alone(
    users_file: Path,
) -> None:
    before = users_file.read_bytes()
    result = add(users_file, "alice", "another")
    assert result.returncode == 1
    assert "already exists" in result.stderr
    assert users_file.read_bytes() == before


def test_set_replaces_in_place_keeping_comments_order_and_line_endings(
    users_file: Path,
) -> None:
    before = users_file.read_bytes().decode().splitlines(keepends=True)
    result = run("users", "set", users_file, "bob", "--password-stdin", "--rounds", "4",
                 stdin="new-bob-pw\n")
    assert result.returncode == 0, result.stderr
    after = users_file.read_bytes().decode().splitlines(keepends=True)
    assert len(after) == len(before)
    changed = [i for i, (old, new) in enumerate(zip(before, after, strict=True)) if old != new]
    assert changed == [4]
    assert after[4].startswith("bob:$2b$04$")
    assert after[4].endswith("\r\n")
    assert verify(users_file, "bob", "new-bob-pw").returncode == 0
    assert verify(users_file, "alice", "alice-pw").returncode == 0


def test_set_adds_a_missing_user_at_the_end_after_a_final_line_without_newline(
    users_file: Path,
) -> None:
    result = run("users", "set", users_file, "carol", "--password-stdin", "--rounds", "4",
                 stdin="carol-pw\n")
    assert result.returncode == 0, result.stderr
    text = users_file.read_text()
    assert "# trailing comment\ncarol:$2b$04$" in text
    assert text.endswith("\n")
    assert list(parse_htpasswd(text)) == ["alice", "bob", "carol"]


def test_an_edit_replaces_the_file_atomically_and_leaves_no_temporary_file(
    users_file: Path,
) -> None:
    inode = users_file.stat().st_ino
    assert add(users_file, "carol").returncode == 0
    assert users_file.stat().st_ino != inode
    assert sorted(p.name for p in users_file.parent.iterdir()) == [users_file.name]


def test_an_edit_tightens_an_existing_file_to_0600(users_file: Path) -> None:
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o644
    assert run("users", "delete", users_file, "bob").returncode == 0
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600


def test_an_edit_through_a_symlink_replaces_the_target_and_keeps_the_link(
    users_file: Path,
) -> None:
    link = users_file.parent / "link"
    link.symlink_to(users_file.name)
    assert add(link, "carol").returncode == 0
    assert link.is_symlink()
    assert "carol" in parse_htpasswd(users_file.read_text())


def test_delete_removes_only_that_users_line(users_file: Path) -> None:
    before = users_file.read_text()
    result = run("users", "delete", users_file, "alice")
    assert result.returncode == 0, result.stderr
    after = users_file.read_text()
    alice_line = next(line for line in before.splitlines(keepends=True)
                      if line.startswith("alice:"))
    assert after == before.replace(alice_line, "")


def test_delete_of_an_absent_user_exits_1_saying_so(users_file: Path) -> None:
    before = users_file.read_bytes()
    result = run("users", "delete", users_file, "mallory")
    assert result.returncode == 1
    assert "no user 'mallory'" in result.stderr
    assert users_file.read_bytes() == before


def test_verify_of_an_unknown_user_exits_1_and_says_no_such_user(users_file: Path) -> None:
    result = verify(users_file, "mallory", "whatever")
    assert result.returncode == 1
    assert "no user 'mallory'" in result.stderr


def test_list_prints_user_names_in_file_order(users_file: Path) -> None:
    result = run("users", "list", users_file)
    assert result.returncode == 0
    assert result.stdout == "alice\nbob\n"


@pytest.mark.parametrize(
    ("scheme", "rounds", "prefix"),
    [
        ("sha512_crypt", "5000", "$6$"),
        ("sha256_crypt", "5000", "$5$"),
        ("argon2", "1", "$argon2"),
        ("apr_md5_crypt", None, "$apr1$"),
    ],
)
def test_scheme_option_hashes_with_that_scheme(
    tmp_path: Path, scheme: str, rounds: str | None, prefix: str
) -> None:
    path = tmp_path / "users"
    extra = ["--rounds", rounds] if rounds else []
    result = run("users", "add", path, "alice", "--password-stdin", "--scheme", scheme, *extra,
                 stdin=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert parse_htpasswd(path.read_text())["alice"].startswith(prefix)
    assert verify(path, "alice").returncode == 0


def test_sha512_crypt_at_its_default_rounds(tmp_path: Path) -> None:
    path = tmp_path / "users"
    result = run("users", "add", path, "alice", "--password-stdin", "--scheme", "sha512_crypt",
                 stdin=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert parse_htpasswd(path.read_text())["alice"].startswith("$6$rounds=")


def test_unknown_scheme_is_a_usage_error(tmp_path: Path) -> None:
    result = run("users", "add", tmp_path / "u", "alice", "--password-stdin", "--scheme", "md5",
                 stdin="pw\n")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
    assert not (tmp_path / "u").exists()


@pytest.mark.parametrize(
    ("rounds", "scheme", "message"),
    [("3", "bcrypt", "too low"), ("5", "apr_md5_crypt", "does not apply")],
)
def test_bad_rounds_are_a_usage_error(
    tmp_path: Path, rounds: str, scheme: str, message: str
) -> None:
    result = run("users", "add", tmp_path / "u", "alice", "--password-stdin", "--scheme", scheme,
                 "--rounds", rounds, stdin="pw\n")
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "u").exists()


@pytest.mark.parametrize(
    "name",
    ["al:ice", "al\tice", "al\x7fice", "al\u2028ice", "al\x85ice", " alice", "alice ", "#alice",
     ""],
)
def test_user_names_a_file_or_basic_cannot_carry_are_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / "users"
    result = add(path, name)
    assert result.returncode == 2
    assert "user name" in result.stderr
    assert not path.exists()


def test_a_non_ascii_user_name_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "users"
    assert add(path, "zoë").returncode == 0
    assert run("users", "list", path).stdout == "zoë\n"
    assert verify(path, "zoë").returncode == 0


@pytest.mark.parametrize(
    ("password", "message"),
    [("", "empty"), ("tab\there", "control character"), ("é" * 37, "72 bytes")],
)
def test_passwords_that_could_never_log_in_are_refused(
    tmp_path: Path, password: str, message: str
) -> None:
    path = tmp_path / "users"
    result = add(path, "alice", password)
    assert result.returncode == 2
    assert message in result.stderr
    assert not path.exists()


def test_a_long_password_is_fine_with_argon2(tmp_path: Path) -> None:
    path = tmp_path / "users"
    long_password = "é" * 37
    result = run("users", "add", path, "alice", "--password-stdin", "--scheme", "argon2",
                 "--rounds", "1", stdin=long_password + "\n")
    assert result.returncode == 0, result.stderr
    assert verify(path, "alice", long_password).returncode == 0


def test_an_empty_stdin_is_refused(tmp_path: Path) -> None:
    result = run("users", "add", tmp_path / "users", "alice", "--password-stdin", stdin=b"")
    assert result.returncode == 2
    assert "standard input is empty" in result.stderr


def test_without_a_terminal_the_prompt_refuses_instead_of_reading_stdin(tmp_path: Path) -> None:
    result = run("users", "add", tmp_path / "users", "alice", stdin=PASSWORD + "\n")
    assert result.returncode == 2
    assert "--password-stdin" in result.stderr
    assert not (tmp_path / "users").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["users", "add", "FILE", "alice", "s3cret-on-argv"],
        ["users", "add", "FILE", "alice", "--password=s3cret-on-argv"],
        ["users", "add", "FILE", "alice", "--password", "s3cret-on-argv"],
        ["users", "verify", "FILE", "alice", "s3cret-on-argv"],
    ],
)
def test_a_password_on_the_command_line_is_refused_without_being_echoed(
    tmp_path: Path, argv: list[str]
) -> None:
    path = tmp_path / "users"
    result = run(*(str(path) if arg == "FILE" else arg for arg in argv), stdin=b"")
    assert result.returncode == 2
    assert "s3cret-on-argv" not in result.stdout + result.stderr
    assert "never taken from the command line" in result.stderr
    assert not path.exists()


def test_no_password_or_hash_ever_appears_in_output(tmp_path: Path) -> None:
    path = tmp_path / "users"
    results = [
        add(path, "alice"),
        add(path, "alice"),
        verify(path, "alice"),
        verify(path, "alice", "wrong " + PASSWORD),
        run("users", "set", path, "alice", "--password-stdin", "--rounds", "4",
            stdin=PASSWORD + "\n"),
        run("users", "list", path),
        run("users", "delete", path, "alice"),
    ]
    assert [r.returncode for r in results] == [0, 1, 0, 1, 0, 0, 0]
    output = "".join(r.stdout + r.stderr for r in results)
    assert PASSWORD not in output
    assert "$2b$" not in output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"alice\n", "line 1: expected 'user:hash'"),
        (b"# ok\nalice:x\nalice:y\n", "line 3: user 'alice' is listed twice"),
        (b"al\x01ice:x\n", "control character"),
        (b"alice:\xff\xfe\n", "not UTF-8"),
    ],
)
def test_a_malformed_file_exits_2_naming_the_problem_for_every_action(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "users"
    path.write_bytes(content)
    actions: list[list[str | Path]] = [
        ["list", path], ["delete", path, "bob"], ["verify", path, "bob"],
        ["add", path, "bob", "--password-stdin"],
    ]
    for argv in actions:
        result = run("users", *argv, stdin="pw\n")
        assert result.returncode == 2, argv
        assert message in result.stderr
    assert path.read_bytes() == content


@pytest.mark.parametrize("action", ["list", "delete", "verify"])
def test_a_missing_file_exits_2_for_actions_that_read(tmp_path: Path, action: str) -> None:
    argv: list[str | Path] = [action, tmp_path / "absent"]
    if action != "list":
        argv.append("alice")
    result = run("users", *argv, stdin="pw\n")
    assert result.returncode == 2
    assert "no such file" in result.stderr


def test_an_entry_with_a_refused_hash_can_be_replaced_and_the_file_then_loads(
    tmp_path: Path,
) -> None:
    path = tmp_path / "users"
    path.write_text(f"old:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\nalice:{fast_bcrypt('a')}\n")
    added = add(path, "bob")
    assert added.returncode == 0
    assert "will not load this file" in added.stderr
    checked = verify(path, "old", "password")
    assert checked.returncode == 2
    assert "line 1" in checked.stderr
    assert "W6ph5Mm5" not in checked.stderr
    fixed = run("users", "set", path, "old", "--password-stdin", "--rounds", "4",
                stdin="new-pw\n")
    assert fixed.returncode == 0
    assert fixed.stderr == ""
    assert list(parse_htpasswd(path.read_text())) == ["old", "alice", "bob"]


def test_deleting_the_last_user_warns_that_the_gate_will_not_load_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "users"
    assert add(path, "alice").returncode == 0
    result = run("users", "delete", path, "alice")
    assert result.returncode == 0
    assert "lists no users" in result.stderr
    assert path.read_text() == ""


@pytest.mark.parametrize("argv", [[], ["users"], ["users", "add"], ["nonsense"]])
def test_incomplete_commands_are_usage_errors(argv: list[str]) -> None:
    result = run(*argv)
    assert result.returncode == 2
    assert "usage:" in result.stderr
