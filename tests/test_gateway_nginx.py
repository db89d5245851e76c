"""nginx (Debian's nginx-light) with the shipped auth_request configuration: the gateway
conformance checks, plus what only nginx does (its own errors, the auth service down)."""

from __future__ import annotations

import pytest

from gateway_conformance import *  # noqa: F403
from support.binaries import require_binary
from support.gateways import GatewaySpec


@pytest.fixture(scope="module")
def gateway_spec() -> GatewaySpec:
    return GatewaySpec("nginx", require_binary("nginx", install="apt-get install nginx-light"))
