"""Where users come from: htpasswd files that follow changes, mappings, and callables."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from proxygate.asgi import ProxyGateMiddleware as AsgiGate
from proxygate.auth.hashing import hash_password, verify_password
from proxygate.auth.htpasswd import write_htpasswd_atomic
from proxygate.auth.schemes.basic import BasicCredentials
from proxygate.auth.users import HtpasswdUsers, MappingUsers, make_user_source
from proxygate.config import Config, ConfigError
from proxygate.gate import Check, Deny, Forward, Gate, HeadFromPairs
from proxygate.wsgi import ProxyGateMiddleware as WsgiGate
from support.asgi_driver import RecordingApp, call_asgi
from support.servers import wait_until
from support.wsgi_driver import RecordingWSGIApp

ALICE = hash_password("wonderland", "bcrypt", rounds=4)
BOB = hash_password("builder", "bcrypt", rounds=4)
CAROL = hash_password("singer", "bcrypt", rounds=4)


def credential(user: str, password: str) -> bytes:
    return BasicCredentials(user, password).to_header()


def decide(gate: Gate, user: str, password: str) -> Forward | Deny:
    decision = gate.decide(HeadFromPairs("GET", "/", [
        (b"proxy-authorization", credential(user, password))], "10.0.0.1"))
    return decision.run() if isinstance(decision, Check) else decision


def has_hash(gate: Gate, user: str, stored: str) -> Callable[[], bool]:
    return lambda: gate.users.current_hash(user) == stored


def write_in_place(path: Path, text: str) -> None:
    """Rewrite the file keeping its inode, as an editor without backup files does."""
    with open(path, "r+", encoding="utf-8") as handle:
        handle.seek(0)
        handle.write(text)
        handle.truncate()


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "users.htpasswd"
    path.write_text(f"# the team\nalice:{ALICE}\n\nbob:{BOB}\n", encoding="utf-8")
    return path


@pytest.fixture
def watched(users_file: Path) -> Iterator[Gate]:
    gate = Gate(Config(users=str(users_file), reload_interval=0.05, cache_ttl=0))
    yield gate
    assert isinstance(gate.users, HtpasswdUsers)
    gate.users.close()


@pytest.fixture
def unwatched(users_file: Path) -> HtpasswdUsers:
    """A file source with no watcher thread: tests call check_for_changes() themselves."""
    return HtpasswdUsers(users_file, reload_interval=0)


# -- htpasswd files -------------------------------------------------------------------------------


def test_htpasswd_users_verify_and_comments_and_blank_lines_are_ignored(users_file: Path) -> None:
    users = HtpasswdUsers(users_file, reload_interval=0)
    assert users.verify("alice", "wonderland") == ALICE
    assert users.verify("bob", "builder") == BOB


def test_a_pathlike_users_option_is_a_file_source(users_file: Path) -> None:
    gate = Gate(Config(users=users_file, reload_interval=0))
    assert isinstance(decide(gate, "alice", "wonderland"), Forward)


SUPPORTED = {
    "bcrypt $2y$": hash_password("pw", "bcrypt", rounds=4, ident="2y"),
    "bcrypt $2b$": hash_password("pw", "bcrypt", rounds=4),
    "sha256_crypt": hash_password("pw", "sha256_crypt", rounds=1000),
    "sha512_crypt": hash_password("pw", "sha512_crypt", rounds=1000),
    "apr1": hash_password("pw", "apr_md5_crypt"),
    "argon2": hash_password("pw", "argon2", memory_cost=8, time_cost=1, parallelism=1),
}


@pytest.mark.parametrize("stored", SUPPORTED.values(), ids=SUPPORTED.keys())
def test_every_supported_scheme_verifies_from_a_file(tmp_path: Path, stored: str) -> None:
    path = tmp_path / "users"
    path.write_text(f"carol:{stored}\n", encoding="utf-8")
    users = HtpasswdUsers(path, reload_interval=0)
    assert users.verify("carol", "pw") == stored
    assert users.verify("carol", "nope") is None


REFUSED = {
    "plaintext": "hunter2",
    "DES-crypt": "BmjIVLGtwNXxU",
    "{SHA}": "{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=",
    "$1$ MD5-crypt": "$1$aGw8oZq2$wzg9JNztlMEBicPVAep8E0",
    "truncated bcrypt": ALICE[:30],
}


@pytest.mark.parametrize("stored", REFUSED.values(), ids=REFUSED.keys())
def test_a_weak_or_unknown_hash_in_a_file_is_refused_naming_the_line(tmp_path: Path,
                                                                    stored: str) -> None:
    path = tmp_path / "users"
    path.write_text(f"alice:{ALICE}\n# comment\ncarol:{stored}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line 3") as caught:
        Gate(Config(users=str(path), reload_interval=0))
    assert "carol" in str(caught.value)
    assert stored not in str(caught.value)


def test_a_line_without_a_colon_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(f"alice:{ALICE}\nbob\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line 2"):
        Gate(Config(users=str(path), reload_interval=0))


def test_a_user_listed_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(f"alice:{ALICE}\nalice:{BOB}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="listed twice"):
        Gate(Config(users=str(path), reload_interval=0))


def test_an_empty_users_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("# nobody yet\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="lists no users"):
        Gate(Config(users=str(path), reload_interval=0))


def test_an_empty_users_mapping_is_refused_like_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("# nobody yet\n", encoding="utf-8")
    messages = []
    for users in ({}, str(path)):
        with pytest.raises(ConfigError, match="lists no users; nobody could pass the gate") as info:
            Gate(Config(users=users, reload_interval=0))
        messages.append(str(info.value).partition(" lists no users")[2])
    assert messages[0] == messages[1]


def test_a_users_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_bytes(b"j\xfcrgen:" + ALICE.encode() + b"\n")
    with pytest.raises(ConfigError, match=r"users: not UTF-8 text") as caught:
        Gate(Config(users=str(path), reload_interval=0))
    assert "0xfc" not in str(caught.value)


def test_a_utf8_user_name_in_a_file_logs_in(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(f"jürgen:{ALICE}\n", encoding="utf-8")
    gate = Gate(Config(users=str(path), reload_interval=0))
    assert isinstance(decide(gate, "jürgen", "wonderland"), Forward)


# -- verify never raises --------------------------------------------------------------------------


def test_a_bcrypt_password_over_72_bytes_is_a_failed_login_not_a_crash() -> None:
    gate = Gate(Config(users={"alice": ALICE}))
    result = decide(gate, "alice", "x" * 100)
    assert isinstance(result, Deny)
    assert result.response.status == 407


def test_a_bcrypt_password_over_72_bytes_for_an_unknown_user_is_a_failed_login() -> None:
    gate = Gate(Config(users={"alice": ALICE}))
    result = decide(gate, "nobody", "x" * 100)
    assert isinstance(result, Deny)
    assert result.response.status == 407


def test_a_password_of_72_bytes_still_works_with_bcrypt() -> None:
    stored = hash_password("y" * 72, "bcrypt", rounds=4)
    gate = Gate(Config(users={"alice": stored}))
    assert isinstance(decide(gate, "alice", "y" * 72), Forward)


def test_verify_against_garbage_is_false_not_an_error() -> None:
    assert verify_password("pw", "not a hash at all") is False


def test_a_library_failure_is_logged_without_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="proxygate")
    secret = "s3cret-" + "x" * 80
    assert verify_password(secret, ALICE) is False
    assert caplog.records
    assert all(secret not in record.getMessage() and ALICE not in record.getMessage()
               for record in caplog.records)


def test_an_exception_inside_a_users_callable_is_a_failed_login(
        caplog: pytest.LogCaptureFixture) -> None:
    def broken(username: str, password: str) -> bool:
        raise RuntimeError(f"database down while checking {password}")

    caplog.set_level(logging.DEBUG, logger="proxygate")
    gate = Gate(Config(users=broken))
    result = decide(gate, "alice", "s3cret")
    assert isinstance(result, Deny)
    assert result.response.status == 407
    assert "s3cret" not in caplog.text


def test_a_users_callable_returning_truthy_non_true_is_a_failed_login() -> None:
    gate = Gate(Config(users=lambda username, password: "yes"))
    assert isinstance(decide(gate, "alice", "pw"), Deny)


def test_a_users_callable_returning_true_logs_in() -> None:
    gate = Gate(Config(users=lambda username, password: password == "pw"))
    assert isinstance(decide(gate, "alice", "pw"), Forward)


# -- callables in the shells ----------------------------------------------------------------------


def test_an_async_users_callable_is_awaited_in_asgi() -> None:
    async def check(username: str, password: str) -> bool:
        return (username, password) == ("alice", "pw")

    app = RecordingApp()
    result = call_asgi(AsgiGate(app, users=check), "GET", "/",
                       [("proxy-authorization", credential("alice", "pw"))])
    assert result.status == 200
    assert app.scope["user"].username == "alice"


def test_an_async_users_callable_refuses_a_wrong_password_in_asgi() -> None:
    async def check(username: str, password: str) -> bool:
        return password == "pw"

    result = call_asgi(AsgiGate(RecordingApp(), users=check), "GET", "/",
                       [("proxy-authorization", credential("alice", "nope"))])
    assert result.status == 407


def test_an_exception_inside_an_async_users_callable_is_a_407() -> None:
    async def check(username: str, password: str) -> bool:
        raise ConnectionError("ldap unreachable")

    app = RecordingApp()
    result = call_asgi(AsgiGate(app, users=check), "GET", "/",
                       [("proxy-authorization", credential("alice", "pw"))])
    assert result.status == 407
    assert not app.scopes


def test_an_async_users_callable_is_refused_by_the_wsgi_shell() -> None:
    async def check(username: str, password: str) -> bool:
        return True

    with pytest.raises(TypeError, match="asgi"):
        WsgiGate(RecordingWSGIApp(), users=check)


def test_a_sync_users_callable_runs_off_the_event_loop_thread() -> None:
    threads: list[threading.Thread] = []

    def check(username: str, password: str) -> bool:
        threads.append(threading.current_thread())
        return True

    result = call_asgi(AsgiGate(RecordingApp(), users=check), "GET", "/",
                       [("proxy-authorization", credential("alice", "pw"))])
    assert result.status == 200
    assert threads and threads[0] is not threading.main_thread()


def test_a_hash_check_in_asgi_runs_off_the_event_loop_thread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[threading.Thread] = []
    real = verify_password

    def spying(password: str, stored: str) -> bool:
        threads.append(threading.current_thread())
        return real(password, stored)

    monkeypatch.setattr("proxygate.auth.users.verify_password", spying)
    result = call_asgi(AsgiGate(RecordingApp(), users={"alice": ALICE}), "GET", "/",
                       [("proxy-authorization", credential("alice", "wonderland"))])
    assert result.status == 200
    assert threads and all(thread is not threading.main_thread() for thread in threads)


def test_a_users_source_object_is_used_as_it_is() -> None:
    source = MappingUsers({"alice": ALICE})
    assert make_user_source(source) is source


def test_a_mapping_source_is_live_not_copied() -> None:
    users = {"alice": ALICE}
    source = MappingUsers(users)
    users["bob"] = BOB
    assert source.verify("bob", "builder") == BOB


def test_a_users_mapping_repr_shows_no_hashes() -> None:
    assert ALICE not in repr(MappingUsers({"alice": ALICE}))


# -- reloading ------------------------------------------------------------------------------------


def test_a_file_replaced_by_rename_is_picked_up(users_file: Path, watched: Gate) -> None:
    lines = users_file.read_text(encoding="utf-8").splitlines(keepends=True)
    write_htpasswd_atomic(users_file, [*lines, f"carol:{CAROL}\n"])
    wait_until(lambda: watched.users.current_hash("carol") == CAROL)
    assert isinstance(decide(watched, "carol", "singer"), Forward)


def test_a_file_edited_in_place_is_picked_up(users_file: Path, watched: Gate) -> None:
    inode = users_file.stat().st_ino
    write_in_place(users_file, f"alice:{ALICE}\ncarol:{CAROL}\n")
    assert users_file.stat().st_ino == inode
    wait_until(lambda: watched.users.current_hash("carol") == CAROL)
    assert watched.users.current_hash("bob") is None


def test_a_user_removed_from_the_file_is_refused_once_reloaded(users_file: Path) -> None:
    gate = Gate(Config(users=str(users_file), reload_interval=0.05))  # cache on
    try:
        assert isinstance(decide(gate, "bob", "builder"), Forward)
        write_htpasswd_atomic(users_file, [f"alice:{ALICE}\n"])
        wait_until(lambda: gate.users.current_hash("bob") is None)
        assert isinstance(decide(gate, "bob", "builder"), Deny)
    finally:
        gate.users.close()  # type: ignore[attr-defined]


def test_a_password_changed_in_the_file_voids_the_cached_success(users_file: Path) -> None:
    gate = Gate(Config(users=str(users_file), reload_interval=0.05))  # cache on
    try:
        assert isinstance(decide(gate, "bob", "builder"), Forward)
        write_htpasswd_atomic(users_file, [f"alice:{ALICE}\nbob:{CAROL}\n"])
        wait_until(lambda: gate.users.current_hash("bob") == CAROL)
        assert isinstance(decide(gate, "bob", "builder"), Deny)
        assert isinstance(decide(gate, "bob", "singer"), Forward)
    finally:
        gate.users.close()  # type: ignore[attr-defined]


def test_valid_users_are_never_refused_while_the_file_is_replaced(users_file: Path,
                                                                  watched: Gate) -> None:
    refusals: list[object] = []
    checked = 0
    stop = threading.Event()

    def hammer() -> None:
        nonlocal checked
        while not stop.is_set():
            result = decide(watched, "alice", "wonderland")
            checked += 1
            if not isinstance(result, Forward):
                refusals.append(result)

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        for number in range(8):
            stored = hash_password(f"pw{number}", "bcrypt", rounds=4)
            write_htpasswd_atomic(users_file, [f"alice:{ALICE}\n", f"user{number}:{stored}\n"])
            wait_until(has_hash(watched, f"user{number}", stored))
    finally:
        stop.set()
        thread.join(10)
    assert checked > 8
    assert refusals == []


def test_a_malformed_new_file_keeps_the_last_good_version_and_logs_an_error(
        users_file: Path, unwatched: HtpasswdUsers, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="proxygate.auth")
    write_htpasswd_atomic(users_file, [f"alice:{ALICE}\n", "carol:hunter2\n"])
    assert unwatched.check_for_changes() is False
    assert unwatched.verify("bob", "builder") == BOB
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "line 2" in errors[0].getMessage()
    assert "hunter2" not in caplog.text


def test_an_empty_new_file_keeps_the_last_good_version_and_logs_an_error(
        users_file: Path, unwatched: HtpasswdUsers, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="proxygate.auth")
    write_htpasswd_atomic(users_file, [])
    assert unwatched.check_for_changes() is False
    assert unwatched.verify("alice", "wonderland") == ALICE
    assert [r.levelno for r in caplog.records] == [logging.ERROR]


def test_an_unreadable_new_file_keeps_the_last_good_version_and_logs_an_error(
        users_file: Path, unwatched: HtpasswdUsers, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="proxygate.auth")
    users_file.unlink()
    users_file.mkdir()  # stat works, open fails: unreadable even for root
    assert unwatched.check_for_changes() is False
    assert unwatched.verify("alice", "wonderland") == ALICE
    assert [r.levelno for r in caplog.records] == [logging.ERROR]


def test_a_non_utf8_new_file_keeps_the_last_good_version_and_logs_an_error(
        users_file: Path, unwatched: HtpasswdUsers, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="proxygate.auth")
    users_file.write_bytes(b"alice:\xff\n")
    assert unwatched.check_for_changes() is False
    assert unwatched.verify("alice", "wonderland") == ALICE
    assert [r.levelno for r in caplog.records] == [logging.ERROR]


def test_a_removed_file_logs_one_error_not_one_per_poll(
        users_file: Path, unwatched: HtpasswdUsers, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="proxygate.auth")
    users_file.unlink()
    for _ in range(5):
        assert unwatched.check_for_changes() is False
    assert unwatched.verify("alice", "wonderland") == ALICE
    assert [r.levelno for r in caplog.records] == [logging.ERROR]


def test_a_file_fixed_after_a_bad_version_is_loaded(
        users_file: Path, unwatched: HtpasswdUsers) -> None:
    write_htpasswd_atomic(users_file, ["carol:hunter2\n"])
    unwatched.check_for_changes()
    write_htpasswd_atomic(users_file, [f"carol:{CAROL}\n"])
    assert unwatched.check_for_changes() is True
    assert unwatched.verify("carol", "singer") == CAROL
    assert unwatched.current_hash("alice") is None


def test_a_file_that_returns_after_removal_is_loaded(
        users_file: Path, unwatched: HtpasswdUsers) -> None:
    text = users_file.read_text(encoding="utf-8")
    users_file.unlink()
    unwatched.check_for_changes()
    users_file.write_text(text + f"carol:{CAROL}\n", encoding="utf-8")
    assert unwatched.check_for_changes() is True
    assert unwatched.current_hash("carol") == CAROL


def test_an_unchanged_file_is_not_reloaded(unwatched: HtpasswdUsers) -> None:
    assert unwatched.check_for_changes() is False


def test_reload_interval_zero_starts_no_watcher_thread(unwatched: HtpasswdUsers) -> None:
    assert unwatched._watcher is None


def test_close_stops_the_watcher_thread(users_file: Path) -> None:
    users = HtpasswdUsers(users_file, reload_interval=0.01)
    assert users._watcher is not None
    users.close()
    users._watcher.join(5)
    assert not users._watcher.is_alive()


def test_an_edit_keeping_size_and_inode_is_picked_up_by_its_mtime(users_file: Path,
                                                     unwatched: HtpasswdUsers) -> None:
    text = users_file.read_text(encoding="utf-8")
    new_bob = hash_password("builder2", "bcrypt", rounds=4)
    assert len(new_bob) == len(BOB)
    write_in_place(users_file, text.replace(BOB, new_bob))
    os.utime(users_file, ns=(users_file.stat().st_atime_ns, users_file.stat().st_mtime_ns + 1))
    assert unwatched.check_for_changes() is True
    assert unwatched.current_hash("bob") == new_bob


def test_a_relative_users_path_keeps_meaning_the_same_file_after_a_chdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    (home / "users").write_text(f"alice:{ALICE}\n", encoding="utf-8")
    (elsewhere / "users").write_text(f"bob:{BOB}\n", encoding="utf-8")
    monkeypatch.chdir(home)
    users = HtpasswdUsers("users", reload_interval=0)
    monkeypatch.chdir(elsewhere)
    (home / "users").write_text(f"alice:{ALICE}\ncarol:{BOB}\n", encoding="utf-8")
    os.utime(home / "users", ns=(1, 1))  # a stamp the first read did not see
    assert users.check_for_changes()
    assert users.current_hash("carol") == BOB and users.current_hash("bob") is None
    assert repr(users) == "HtpasswdUsers('users', <2 users>)"
