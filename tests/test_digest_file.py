"""The digest users file: Apache htdigest's format, extended; loaded, checked and reloaded."""

from __future__ import annotations

import hashlib
import os
import pty
import select
import shutil
import time
from pathlib import Path

import pytest

from proxygate.auth.digest_file import (
    DigestFileUsers,
    digest_fields,
    parse_digest_lines,
    remove_digest_entry,
    set_digest_entry,
)
from proxygate.auth.hashing import hash_password
from proxygate.auth.htpasswd import HtpasswdError
from proxygate.auth.nonces import MemoryReplayGuard, Nonces
from proxygate.auth.users import HtpasswdUsers, make_user_source
from support.binaries import require_binary

ALL = ("MD5", "SHA-256", "SHA-512-256")


def htdigest(args: list[str], password: str) -> None:
    """Run Apache's htdigest, typing the password at its terminal prompts (it reads no stdin)."""
    binary = shutil.which("htdigest")
    assert binary is not None
    pid, fd = pty.fork()
    if pid == 0:  # the child: htdigest on the pty
        os.execv(binary, [binary, *args])
    typed = 0
    seen = b""
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the child exited and closed the pty
                break
            if not chunk:
                break
            seen += chunk
            if seen.lower().count(b"password:") > typed:
                os.write(fd, password.encode() + b"\n")
                typed += 1
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, seen


def test_a_file_written_by_apache_htdigest_serves_basic_and_digest(tmp_path: Path) -> None:
    require_binary("htdigest", install="apt-get install apache2-utils")
    path = tmp_path / "htdigest"
    htdigest(["-c", str(path), "internal", "alice"], "wonderland")
    users = DigestFileUsers(path, realm="internal", algorithms=("MD5",), reload_interval=0)
    assert users.verify("alice", "wonderland") is not None
    assert users.verify("alice", "wrong") is None
    expected = hashlib.md5(b"alice:internal:wonderland").hexdigest()
    assert users.digest_ha1("alice", "MD5") == expected
    # ... and ours is byte for byte what htdigest wrote for the same entry.
    ours = digest_fields("alice", "internal", "wonderland", ("MD5",))
    assert path.read_text() == f"alice:internal:{ours}\n"


def test_the_users_option_tells_a_digest_file_from_an_htpasswd_file(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(f"alice:internal:{digest_fields('alice', 'internal', 'pw', ALL)}\n")
    assert isinstance(make_user_source(str(path), realm="internal", reload_interval=0),
                      DigestFileUsers)
    path.write_text(f"# a comment first\nalice:{hash_password('pw', 'apr_md5_crypt')}\n")
    assert isinstance(make_user_source(str(path), reload_interval=0), HtpasswdUsers)


def test_basic_over_a_digest_file_checks_the_strongest_secret(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(f"alice:internal:{digest_fields('alice', 'internal', 'pw', ALL)}\n"
                    f"bob:internal:{digest_fields('bob', 'internal', 'pw2', ('MD5',))}\n")
    users = DigestFileUsers(path, realm="internal", reload_interval=0)
    assert users.verify("alice", "pw") == users.current_hash("alice")
    assert users.verify("bob", "pw2") is not None
    assert users.verify("carol", "pw") is None
    assert users.current_hash("carol") is None


def test_the_file_may_hold_other_realms_but_must_hold_ours(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(f"alice:other:{digest_fields('alice', 'other', 'pw', ALL)}\n")
    with pytest.raises(ValueError, match=r"realm 'other'.*realm is 'internal'"):
        DigestFileUsers(path, realm="internal", reload_interval=0)
    path.write_text(path.read_text()
                    + f"alice:internal:{digest_fields('alice', 'internal', 'x', ALL)}\n")
    users = DigestFileUsers(path, realm="internal", reload_interval=0)
    assert users.verify("alice", "x") is not None and users.verify("alice", "pw") is None


def test_an_algorithm_the_entries_lack_is_a_startup_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(f"alice:internal:{digest_fields('alice', 'internal', 'pw', ('MD5',))}\n")
    with pytest.raises(ValueError, match=r"SHA-256.*'alice'"):
        DigestFileUsers(path, realm="internal", algorithms=("SHA-256",), reload_interval=0)


@pytest.mark.parametrize("line", [
    "alice:internal",
    "alice::" + "0" * 32,
    ":internal:" + "0" * 32,
    "alice:internal:" + "0" * 31,
    "alice:internal:" + "G" * 32,
    "alice:internal:" + "0" * 32 + ":SHA-1=" + "0" * 40,
    "alice:internal:" + "0" * 32 + ":SHA-256=" + "0" * 63,
    "alice:internal::",
    "alice:internal:",
])
def test_a_broken_line_is_refused_naming_the_line_not_the_secret(line: str) -> None:
    with pytest.raises(HtpasswdError, match="line 2") as caught:
        parse_digest_lines(["# header", line], "users")
    assert "0" * 31 not in str(caught.value)


def test_a_user_twice_in_one_realm_is_refused() -> None:
    entry = "alice:internal:" + "0" * 32
    with pytest.raises(HtpasswdError, match="twice"):
        parse_digest_lines([entry, entry])


def test_editing_keeps_other_lines_and_realms(tmp_path: Path) -> None:
    lines = ["# users\n", "alice:other:" + "1" * 32 + "\n", "bob:internal:" + "2" * 32 + "\n"]
    changed = set_digest_entry(lines, "alice", "internal", "3" * 32)
    assert changed[:3] == lines and changed[3] == "alice:internal:" + "3" * 32 + "\n"
    assert set_digest_entry(changed, "bob", "internal", "4" * 32)[2] == \
        "bob:internal:" + "4" * 32 + "\n"
    assert remove_digest_entry(changed, "alice", "other") == [lines[0], lines[2], changed[3]]
    with pytest.raises(KeyError):
        remove_digest_entry(lines, "carol", "internal")
    with pytest.raises(ValueError, match="realm"):
        set_digest_entry(lines, "carol", "a:b", "5" * 32)


def test_a_changed_file_is_reloaded_and_a_bad_one_refused(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "users"
    path.write_text(f"alice:internal:{digest_fields('alice', 'internal', 'old', ALL)}\n")
    users = DigestFileUsers(path, realm="internal", algorithms=ALL, reload_interval=0)
    path.write_text(f"alice:internal:{digest_fields('alice', 'internal', 'new', ALL)}\n")
    assert users.check_for_changes()
    assert users.verify("alice", "new") is not None and users.verify("alice", "old") is None
    path.write_text(f"alice:elsewhere:{digest_fields('alice', 'elsewhere', 'x', ALL)}\n")
    assert not users.check_for_changes()
    assert users.verify("alice", "new") is not None  # the last good version stays
    assert "elsewhere" in caplog.text and "realm is 'internal'" in caplog.text


def test_the_repr_shows_no_secret(tmp_path: Path) -> None:
    path = tmp_path / "users"
    fields = digest_fields("alice", "internal", "pw", ALL)
    path.write_text(f"alice:internal:{fields}\n")
    users = DigestFileUsers(path, realm="internal", reload_interval=0)
    assert fields[:32] not in repr(users)
    assert fields[:32] not in repr(parse_digest_lines([f"alice:internal:{fields}"]))


# -- nonces and the replay memory ---------------------------------------------------------


def test_a_nonce_is_43_url_safe_characters_and_never_repeats() -> None:
    nonces = Nonces(b"k" * 32, realm="r", ttl=300)
    issued = {nonces.issue() for _ in range(1000)}
    assert len(issued) == 1000
    assert all(len(n) == 43 and n.replace("-", "").replace("_", "").isalnum() for n in issued)


def test_a_nonce_is_bound_to_its_realm() -> None:
    nonce = Nonces(b"k" * 32, realm="a", ttl=300).issue()
    assert Nonces(b"k" * 32, realm="b", ttl=300).issued_at(nonce) is None


def test_the_replay_memory_forgets_a_key_when_its_time_is_up() -> None:
    now = [0.0]
    guard = MemoryReplayGuard(clock=lambda: now[0])
    assert guard.first_use("k", ttl=10)
    assert not guard.first_use("k", ttl=10)
    now[0] = 11
    assert guard.first_use("k", ttl=10)
    assert guard.first_use("other", ttl=10) and len(guard) == 2


def test_the_replay_memory_is_bounded() -> None:
    guard = MemoryReplayGuard(max_keys=100)
    for index in range(1000):
        assert guard.first_use(f"k{index}", ttl=300)
    assert len(guard) == 100
