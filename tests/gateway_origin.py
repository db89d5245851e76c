"""Origin mode through a gateway (401, WWW-Authenticate, Authorization): two checks every
gateway module runs against its own ``origin_gateway`` fixture (``from gateway_origin import *``)."""

from __future__ import annotations

from gateway_conformance import assert_denied, curl
from support.gateways import USERS, Stack, next_client_address, wait_for_record

__all__ = [
    "test_origin_mode_allows_authorization_and_strips_it",
    "test_origin_mode_denial_is_401_with_www_authenticate_and_the_envelope",
]


def test_origin_mode_denial_is_401_with_www_authenticate_and_the_envelope(
        origin_gateway: Stack) -> None:
    reply = curl(origin_gateway, f"{origin_gateway.url}/private", source=next_client_address())
    assert_denied(origin_gateway, reply, 401)
    assert reply.header("proxy-authenticate") is None


def test_origin_mode_allows_authorization_and_strips_it(origin_gateway: Stack) -> None:
    before = origin_gateway.upstream.count()
    reply = curl(origin_gateway, f"{origin_gateway.url}/mine", source=next_client_address(),
                 user="alice", password=USERS["alice"])
    assert reply.status == 200, reply
    seen = wait_for_record(origin_gateway.upstream, before + 1)[-1]
    names = {name.lower(): value for name, value in seen["headers"]}
    assert names["x-authenticated-user"] == "alice"
    assert "authorization" not in names
    assert "proxy-authorization" not in names
