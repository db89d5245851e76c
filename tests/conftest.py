"""Shared pytest configuration: plugins every test module may rely on."""

pytest_plugins = ["support.redis_server", "support.hypothesis_profiles", "support.binaries"]
