"""Directory users without a directory: URLs, escaping, DNs, options, secrets, and the 503 path."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from proxygate.auth.directory import LdapUsers
from proxygate.auth.ldap_url import (
    escape_filter_value,
    group_filter,
    is_ldap_url,
    normalize_dn,
    parse_ldap_url,
)
from proxygate.auth.users import Verified
from proxygate.config import Config, ConfigError
from proxygate.gate import Check, Deny, Gate, HeadFromPairs
from support.servers import child_env, free_port

BIND_PASSWORD = "svc-Secret-7731"


def head(value: bytes | None = None) -> HeadFromPairs:
    headers = [(b"proxy-authorization", value)] if value is not None else []
    return HeadFromPairs("GET", "/", headers, "10.0.0.9")


def basic(user: str, password: str) -> bytes:
    import base64
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


# -- RFC 4516 URLs ------------------------------------------------------------------------


def test_an_apache_authldapurl_carries_over_whole() -> None:
    url = parse_ldap_url("ldap://ldap.example.com:1389/ou=People,dc=example,dc=com?uid?sub?"
                         "(objectClass=person)")
    assert (url.scheme, url.host, url.port) == ("ldap", "ldap.example.com", 1389)
    assert url.base_dn == "ou=People,dc=example,dc=com"
    assert (url.attribute, url.scope, url.filter) == ("uid", "SUBTREE", "(objectClass=person)")


def test_url_defaults_are_apaches_uid_sub_and_any_object() -> None:
    url = parse_ldap_url("ldaps://dc1.corp.example.com/dc=corp,dc=example,dc=com")
    assert (url.port, url.attribute, url.scope, url.filter) == (636, "uid", "SUBTREE",
                                                                "(objectClass=*)")
    assert parse_ldap_url("ldap://h/dc=x").port == 389


def test_url_parts_are_percent_decoded_and_a_bare_filter_gets_parentheses() -> None:
    url = parse_ldap_url("ldap://[::1]:3389/ou=Some%20People,dc=x?sAMAccountName,cn?one?"
                         "objectClass=user")
    assert url.host == "::1" and url.server == "ldap://[::1]:3389"
    assert url.base_dn == "ou=Some People,dc=x"
    assert url.attribute == "sAMAccountName" and url.scope == "LEVEL"
    assert url.filter == "(objectClass=user)"


@pytest.mark.parametrize(("url", "says"), [
    ("http://h/dc=x", "not an ldap"),
    ("ldap:///dc=x", "names no host"),
    ("ldap://h", "no base DN"),
    ("ldap://h:0/dc=x", "port"),
    ("ldap://h:99999/dc=x", "port"),
    ("ldap://h/dc=x?uid?deep", "scope"),
    ("ldap://h/dc=x?uid?sub?(objectClass=person", "unbalanced"),
    ("ldap://h/dc=x?u%20id", "attribute"),
    ("ldap://h/notadn", "attribute=value"),
    ("ldap://h/dc=x?uid?sub??!bindname=cn=x", "critical"),
    ("ldap://user:pw@h/dc=x", "no credentials"),
])
def test_a_bad_url_fails_at_construction_saying_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_ldap_url(url)


def test_a_bad_url_is_a_config_error_of_the_gate() -> None:
    with pytest.raises(ConfigError, match="scope"):
        Gate(Config(users="ldap://127.0.0.1:1/dc=x?uid?deep"))


def test_only_ldap_schemes_name_a_directory() -> None:
    assert is_ldap_url("LDAPS://h/dc=x") and is_ldap_url("ldap://h/dc=x")
    assert not is_ldap_url("/etc/ldap.htpasswd") and not is_ldap_url({"ldap://": "x"})


# -- RFC 4515 filters and RFC 4514 DNs ------------------------------------------------------


@pytest.mark.parametrize(("value", "escaped"), [
    ("alice", "alice"),
    ("*", "\\2a"),
    ("*)(uid=*", "\\2a\\29\\28uid=\\2a"),
    ("a\\b", "a\\5cb"),
    ("nul\x00", "nul\\00"),
    ("Zoë", "Zoë"),
])
def test_filter_values_are_escaped_per_rfc_4515(value: str, escaped: str) -> None:
    assert escape_filter_value(value) == escaped


@pytest.mark.parametrize("attack", ["*", "*)(uid=*", "alice)(|(uid=*", "*)(objectClass=*",
                                    "al*", "x)(&"])
def test_an_injected_name_stays_one_equality_assertion(attack: str) -> None:
    search = parse_ldap_url("ldap://h/dc=x?uid?sub?(objectClass=person)").user_filter(attack)
    # Exactly the filter's own parentheses: none came from the name.
    assert search.count("(") == 3 and search.count(")") == 3
    assert "*" not in search


def test_dns_compare_as_directories_compare_them() -> None:
    assert normalize_dn("UID=Alice, OU=People,dc=Example") == normalize_dn("uid=alice,ou=people,dc=example")
    assert normalize_dn("uid=o'brien\\, jr,ou=p") == normalize_dn("uid=o'brien\\2c jr,ou=p")
    assert normalize_dn("uid=o'brien\\, jr,ou=p") != normalize_dn("uid=o'brien,ou=p")
    assert len(normalize_dn("cn=a+uid=b,dc=x")) == 2
    with pytest.raises(ValueError):
        normalize_dn("uid=x\\")


def test_group_membership_filters_escape_the_dn_they_carry() -> None:
    user = "uid=o'brien\\, jr*(x),ou=People,dc=x"
    plain = group_filter(user, "cn=g,dc=x", nested=False)
    assert plain == ("(|(member=uid=o'brien\\5c, jr\\2a\\28x\\29,ou=People,dc=x)"
                     "(uniqueMember=uid=o'brien\\5c, jr\\2a\\28x\\29,ou=People,dc=x))")
    # Active Directory: the user's own entry, memberOf through nested groups.
    assert group_filter(user, "cn=Proxy (all),dc=x", nested=True) == (
        "(memberOf:1.2.840.113556.1.4.1941:=cn=Proxy \\28all\\29,dc=x)")


# -- options, secrets ----------------------------------------------------------------------


def test_every_ldap_option_comes_from_the_environment() -> None:
    config = Config.from_env({
        "PROXYGATE_USERS": "ldap://127.0.0.1:1/dc=x",
        "PROXYGATE_LDAP_BIND_DN": "cn=svc,dc=x",
        "PROXYGATE_LDAP_BIND_PASSWORD": BIND_PASSWORD,
        "PROXYGATE_LDAP_STARTTLS": "true",
        "PROXYGATE_LDAP_CA_FILE": "/etc/ssl/ca.pem",
        "PROXYGATE_LDAP_REQUIRE_GROUP": "cn=g,dc=x",
        "PROXYGATE_LDAP_NESTED_GROUPS": "yes",
        "PROXYGATE_LDAP_TIMEOUT": "2.5",
        "PROXYGATE_LDAP_POOL_SIZE": "8",
    })
    assert (config.ldap_bind_dn, config.ldap_bind_password) == ("cn=svc,dc=x", BIND_PASSWORD)
    assert config.ldap_starttls is True and config.ldap_nested_groups is True
    assert config.ldap_ca_file == "/etc/ssl/ca.pem" and config.ldap_require_group == "cn=g,dc=x"
    assert config.ldap_timeout == 2.5 and config.ldap_pool_size == 8


def test_an_ldap_url_in_toml_is_not_taken_for_a_relative_path(tmp_path: Path) -> None:
    url = "ldap://127.0.0.1:1/ou=People,dc=x?uid?sub?(objectClass=person)"
    path = tmp_path / "proxygate.toml"
    path.write_text(f'[proxygate]\nusers = "{url}"\nldap_bind_dn = "cn=svc,dc=x"\n'
                    'ldap_timeout = 2.5\n')
    config = Config.from_toml(path)
    assert config.users == url and config.ldap_timeout == 2.5


def test_the_bind_password_is_in_no_repr() -> None:
    config = Config(users="ldap://127.0.0.1:1/dc=x", ldap_bind_dn="cn=svc,dc=x",
                    ldap_bind_password=BIND_PASSWORD)
    gate = Gate(config)
    for text in (repr(config), str(config), repr(gate), repr(gate.users)):
        assert BIND_PASSWORD not in text
    assert "cn=svc,dc=x" in repr(gate.users)


def test_the_bind_password_falls_back_to_its_environment_variable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROXYGATE_LDAP_BIND_PASSWORD", BIND_PASSWORD)
    users = LdapUsers("ldap://127.0.0.1:1/dc=x", bind_dn="cn=svc,dc=x")
    assert users._bind_password == BIND_PASSWORD
    monkeypatch.delenv("PROXYGATE_LDAP_BIND_PASSWORD")
    with pytest.raises(ValueError, match="PROXYGATE_LDAP_BIND_PASSWORD"):
        LdapUsers("ldap://127.0.0.1:1/dc=x", bind_dn="cn=svc,dc=x")


@pytest.mark.parametrize(("options", "says"), [
    ({"ldap_timeout": 0}, "ldap_timeout must be at least"),
    ({"ldap_timeout": "5"}, "ldap_timeout must be a number"),
    ({"ldap_pool_size": 0}, "ldap_pool_size must be at least 1"),
    ({"ldap_starttls": "yes"}, "ldap_starttls must be True or False"),
    ({"ldap_bind_dn": 7}, "ldap_bind_dn must be a string"),
])
def test_bad_ldap_options_fail_at_construction(options: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        Config(users="ldap://127.0.0.1:1/dc=x", **options)


def test_ldap_options_beside_a_users_file_are_a_mistake_named() -> None:
    with pytest.raises(ConfigError, match="ldap_require_group applies to a directory only"):
        Config(users="/etc/users.htpasswd", ldap_require_group="cn=g,dc=x")


@pytest.mark.parametrize(("options", "says"), [
    ({"ldap_starttls": True, "users": "ldaps://127.0.0.1:1/dc=x"}, "ldaps:// is TLS"),
    ({"ldap_require_group": "not a dn"}, "ldap_require_group"),
    ({"ldap_starttls": True, "ldap_ca_file": "/nonexistent/ca.pem"}, "cannot be read"),
])
def test_bad_directory_settings_fail_when_the_gate_is_built(options: dict[str, object],
                                                            says: str) -> None:
    values: dict[str, object] = {"users": "ldap://127.0.0.1:1/dc=x", **options}
    with pytest.raises(ConfigError, match=says):
        Gate(Config.from_mapping(values))


def test_without_the_extra_the_error_names_it() -> None:
    code = (
        "import sys; sys.modules['ldap3'] = None\n"
        "from proxygate.config import Config, ConfigError\n"
        "from proxygate.gate import Gate\n"
        "try:\n    Gate(Config(users='ldap://127.0.0.1:1/dc=x'))\n"
        "except ConfigError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False, env=child_env())
    assert "pip install 'proxygate[ldap]'" in done.stdout, done.stderr


# -- the core's answer when the source cannot answer -----------------------------------------


def closed_port_gate(**options: object) -> Gate:
    port = free_port()  # nothing listens there: every connection is refused
    return Gate(Config.from_mapping({
        "users": f"ldap://127.0.0.1:{port}/dc=example,dc=com?uid",
        "ldap_bind_dn": "cn=svc,dc=example,dc=com", "ldap_bind_password": BIND_PASSWORD,
        "ldap_timeout": 2.0, **options}))


def test_a_directory_that_refuses_connections_is_a_503_with_retry_after(
        caplog: pytest.LogCaptureFixture) -> None:
    gate = closed_port_gate()
    decision = gate.decide(head(basic("alice", "alice-pw")))
    assert isinstance(decision, Check)
    with caplog.at_level(logging.INFO, logger="proxygate"):
        result = decision.run()
    assert isinstance(result, Deny)
    response = result.response
    assert response.status == 503
    headers = dict(response.headers)
    assert headers[b"retry-after"] == b"5"
    assert b"proxy-authenticate" not in headers
    body = json.loads(response.body)
    assert body["error"]["code"] == 503 and "directory" in body["error"]["details"]
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    message = lines[0].getMessage()
    assert "Connection refused" in message and "alice" in message
    assert BIND_PASSWORD not in message and "alice-pw" not in message


def test_an_outage_counts_no_failure_against_the_client() -> None:
    gate = closed_port_gate(max_failures=2)
    for _ in range(4):
        decision = gate.decide(head(basic("alice", "alice-pw")))
        assert isinstance(decision, Check)
        result = decision.run()
        assert isinstance(result, Deny) and result.response.status == 503


def test_a_directory_that_accepts_and_never_answers_is_an_outage_within_the_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel accepts; nobody ever reads or writes
        port = silent.getsockname()[1]
        gate = Gate(Config(users=f"ldap://127.0.0.1:{port}/dc=x?uid", ldap_timeout=0.5,
                           ldap_bind_dn="cn=svc,dc=x", ldap_bind_password=BIND_PASSWORD))
        decision = gate.decide(head(basic("alice", "alice-pw")))
        assert isinstance(decision, Check)
        started = time.monotonic()
        result = decision.run()
        elapsed = time.monotonic() - started
    assert isinstance(result, Deny) and result.response.status == 503
    # One bounded wait (the service account's bind), no retry stacked on it.
    assert 0.5 <= elapsed < 0.5 * 2 + 1.0, elapsed


def test_an_empty_password_is_refused_before_the_directory_is_asked() -> None:
    gate = closed_port_gate()
    decision = gate.decide(head(basic("alice", "")))
    assert isinstance(decision, Check)
    result = decision.run()
    # A 407, not the 503 of the unreachable directory: nothing was sent to it.
    assert isinstance(result, Deny) and result.response.status == 407


def test_the_identity_is_the_name_the_source_returns() -> None:
    def verify(user: str, password: str) -> bool:
        return password == "pw"

    matched = Verified("", "alice")
    assert matched == "" and matched.username == "alice"
    gate = Gate(Config(users=verify))
    decision = gate.decide(head(basic("ALICE", "pw")))
    assert isinstance(decision, Check)
    # The Basic scheme turns the source's answer into the verdict the check concludes on.
    verdict = gate.schemes[0].verdict("ALICE", matched)  # type: ignore[attr-defined]
    assert verdict.who == "ALICE"  # the cache keeps asking about the name as sent
    assert decision.conclude(verdict).identity.username == "alice"  # type: ignore[union-attr]
