"""Config.from_toml: the same options from a [proxygate] table, with paths relative to the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxygate.auth.hashing import hash_password
from proxygate.config import Config, ConfigError
from proxygate.gate import Gate


def _users_file(folder: Path) -> Path:
    path = folder / "users.htpasswd"
    path.write_text(f"alice:{hash_password('pw', 'apr_md5_crypt')}\n")
    return path


def test_options_come_from_the_proxygate_table(tmp_path: Path) -> None:
    _users_file(tmp_path)
    toml = tmp_path / "gate.toml"
    toml.write_text('[proxygate]\nusers = "users.htpasswd"\nrealm = "internal"\n'
                    'exempt_paths = ["/healthz", "/static/*"]\nmax_failures = 3\n')
    config = Config.from_toml(toml)
    assert config.realm == "internal"
    assert config.exempt_paths == ("/healthz", "/static/*")
    assert config.max_failures == 3
    assert Gate(config).users.current_hash("alice") is not None


def test_a_relative_users_path_is_relative_to_the_file_not_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _users_file(tmp_path)
    toml = tmp_path / "gate.toml"
    toml.write_text('[proxygate]\nusers = "users.htpasswd"\n')
    monkeypatch.chdir("/")
    assert Config.from_toml(toml).users == str(tmp_path / "users.htpasswd")


def test_a_nested_table_such_as_pyproject_tool_proxygate_works(tmp_path: Path) -> None:
    toml = tmp_path / "pyproject.toml"
    toml.write_text('[tool.proxygate]\nrealm = "svc"\n')
    assert Config.from_toml(toml, table="tool.proxygate").realm == "svc"


def test_an_unknown_option_in_the_file_names_the_table_and_suggests(tmp_path: Path) -> None:
    toml = tmp_path / "gate.toml"
    toml.write_text('[proxygate]\nrelam = "x"\n')
    with pytest.raises(ConfigError, match=r"in \[proxygate\] of gate.toml\) 'relam'; did you mean 'realm'"):
        Config.from_toml(toml)


def test_a_missing_table_is_a_config_error(tmp_path: Path) -> None:
    toml = tmp_path / "gate.toml"
    toml.write_text('[other]\nrealm = "x"\n')
    with pytest.raises(ConfigError, match=r"no \[proxygate\] table"):
        Config.from_toml(toml)


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    toml = tmp_path / "gate.toml"
    toml.write_text("[proxygate\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Config.from_toml(toml)


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        Config.from_toml(tmp_path / "absent.toml")


def test_schemes_and_a_relative_tokens_file_come_from_toml(tmp_path: Path) -> None:
    from proxygate.auth.tokens import hash_token

    (tmp_path / "tokens").write_text(f"ci:{hash_token('pgt_x')}\n")
    (tmp_path / "proxygate.toml").write_text(
        '[proxygate]\nschemes = ["Bearer"]\ntokens = "tokens"\nreload_interval = 0\n'
        'digest_algorithms = ["sha-256", "MD5"]\nnonce_ttl = 60\n')
    config = Config.from_toml(tmp_path / "proxygate.toml")
    assert config.schemes == ("bearer",) and config.digest_algorithms == ("SHA-256", "MD5")
    assert config.tokens == str(tmp_path / "tokens") and config.nonce_ttl == 60
    assert Gate(config).tokens is not None
