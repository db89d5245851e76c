"""The Basic scheme's old address: it lives in :mod:`proxygate.auth.schemes.basic` now."""

from proxygate.auth.schemes.basic import BasicChallenge, BasicCredentials, MalformedCredentials

__all__ = ["BasicChallenge", "BasicCredentials", "MalformedCredentials"]
