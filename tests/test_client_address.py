"""Which address a failure counts against: the peer, or the one header its trusted proxy writes.

Attacks, as a client behind a trusted proxy would try them: sending the *other* kind
of forwarded header next to the one the proxy writes, rotating it per request.
"""

from __future__ import annotations

from typing import Any

import pytest

from proxygate.auth.schemes.basic import BasicCredentials
from proxygate.config import Config, ConfigError
from proxygate.gate import Check, Deny, Forward, Gate, HeadFromPairs

PROXY = "127.0.0.1"


def gate_for(**options: Any) -> Gate:
    return Gate(Config(users=lambda user, password: password == "right", cache_ttl=0,
                       trusted_proxies=(f"{PROXY}/32",), **options))


def head(*headers: tuple[bytes, bytes], client: str = PROXY) -> HeadFromPairs:
    return HeadFromPairs("GET", "/", list(headers), client)


def attempt(gate: Gate, *headers: tuple[bytes, bytes], password: str = "wrong") -> int:
    credential = (b"proxy-authorization", BasicCredentials("alice", password).to_header())
    decision = gate.decide(head(credential, *headers))
    if isinstance(decision, Check):
        decision = decision.run()
    return 200 if isinstance(decision, Forward) else decision.response.status


def test_x_forwarded_for_is_the_default_header() -> None:
    assert Config().forwarded_header == "X-Forwarded-For"
    gate = gate_for()
    assert gate.client_address(head((b"x-forwarded-for", b"192.0.2.1"))) == "192.0.2.1"


def test_a_client_sent_forwarded_cannot_pick_the_throttle_key_behind_x_forwarded_for() -> None:
    # Issue 13, finding 1: gunicorn behind a proxy that appends X-Forwarded-For; the
    # client rotates its own Forwarded. Every attempt must count against 192.0.2.200.
    gate = gate_for(max_failures=10)
    statuses = [attempt(gate, (b"forwarded", f"for=192.0.2.{n}".encode()),
                        (b"x-forwarded-for", b"192.0.2.200")) for n in range(13)]
    assert statuses == [407] * 10 + [429] * 3


def test_a_client_sent_x_forwarded_for_is_ignored_when_the_proxy_writes_forwarded() -> None:
    gate = gate_for(max_failures=3, forwarded_header="Forwarded")
    statuses = [attempt(gate, (b"x-forwarded-for", f"198.51.100.{n}".encode()),
                        (b"forwarded", b"for=192.0.2.200")) for n in range(5)]
    assert statuses == [407] * 3 + [429] * 2
    spoofed = head((b"x-forwarded-for", b"198.51.100.1"), (b"forwarded", b"for=192.0.2.200"))
    assert gate.client_address(spoofed) == "192.0.2.200"


def test_with_forwarded_configured_a_request_with_only_x_forwarded_for_is_the_proxy() -> None:
    gate = gate_for(forwarded_header="Forwarded")
    assert gate.client_address(head((b"x-forwarded-for", b"198.51.100.1"))) == PROXY


def test_x_real_ip_is_read_when_configured_and_only_then() -> None:
    real_ip = gate_for(forwarded_header="X-Real-IP")
    both = head((b"x-real-ip", b"192.0.2.7"), (b"x-forwarded-for", b"198.51.100.1"),
                (b"forwarded", b"for=198.51.100.2"))
    assert real_ip.client_address(both) == "192.0.2.7"
    assert gate_for().client_address(head((b"x-real-ip", b"192.0.2.7"))) == PROXY


def test_a_client_appended_hop_before_the_proxys_own_is_not_believed() -> None:
    # The client sends "X-Forwarded-For: 10.9.9.9"; the proxy appends the real peer.
    gate = gate_for()
    chain = head((b"x-forwarded-for", b"10.9.9.9, 192.0.2.200"))
    assert gate.client_address(chain) == "192.0.2.200"


def test_an_untrusted_peer_is_the_client_whatever_header_it_sends() -> None:
    for name in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        gate = gate_for(forwarded_header=name)
        spoofed = head((b"x-forwarded-for", b"1.2.3.4"), (b"forwarded", b"for=1.2.3.5"),
                       (b"x-real-ip", b"1.2.3.6"), client="192.0.2.9")
        assert gate.client_address(spoofed) == "192.0.2.9"


@pytest.mark.parametrize("spelling", ["forwarded", "X-FORWARDED-FOR", "x-real-ip"])
def test_the_header_name_is_case_insensitive(spelling: str) -> None:
    assert Config(forwarded_header=spelling).forwarded_header == spelling


@pytest.mark.parametrize("bad", ["X-Client-IP", "", "X-Forwarded-For, Forwarded", None, 1])
def test_an_unknown_forwarded_header_is_refused_naming_the_choices(bad: Any) -> None:
    with pytest.raises(ConfigError, match="forwarded_header must be one of 'X-Forwarded-For', "
                                          "'Forwarded', 'X-Real-IP'"):
        Config(forwarded_header=bad)


def test_the_forwarded_header_comes_from_the_environment_too() -> None:
    config = Config.from_env({"PROXYGATE_FORWARDED_HEADER": "Forwarded"})
    assert config.forwarded_header == "Forwarded"


def test_a_deny_for_a_spoofed_client_is_a_plain_challenge() -> None:
    gate = gate_for()
    decision = gate.decide(head((b"forwarded", b"for=192.0.2.1")))
    assert isinstance(decision, Deny) and decision.response.status == 407
