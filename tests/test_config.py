"""Configuration fails at construction, with a message that says what to change."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from proxygate.asgi import ProxyGateMiddleware as AsgiGate
from proxygate.auth.hashing import hash_password
from proxygate.config import Config, ConfigError
from proxygate.gate import Gate
from proxygate.wsgi import ProxyGateMiddleware as WsgiGate
from support.asgi_driver import RecordingApp
from support.wsgi_driver import RecordingWSGIApp

HASH = hash_password("pw", "bcrypt", rounds=4)


def config(**options: Any) -> Config:
    options.setdefault("users", {"alice": HASH})
    return Config.from_options(**options)


# -- users ----------------------------------------------------------------------------------------


def test_leaving_out_users_is_a_config_error_for_the_gate() -> None:
    with pytest.raises(ConfigError, match="users is required"):
        Gate(Config.from_options(realm="x"))


def test_the_error_only_config_needs_no_users() -> None:
    assert Config.from_options(debug=True).users is None


def test_leaving_out_users_fails_the_asgi_middleware() -> None:
    with pytest.raises(ConfigError, match="users"):
        AsgiGate(RecordingApp())


def test_leaving_out_users_fails_the_wsgi_middleware() -> None:
    with pytest.raises(ConfigError, match="users"):
        WsgiGate(RecordingWSGIApp())


def test_users_of_another_type_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="path, a mapping or a callable"):
        Gate(Config(users=42))


def test_a_missing_users_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.htpasswd"
    with pytest.raises(ConfigError, match=r"nope\.htpasswd"):
        Gate(Config(users=str(missing)))


def test_a_mapping_with_a_plaintext_password_is_a_config_error_naming_the_user() -> None:
    with pytest.raises(ConfigError, match="bob"):
        Gate(Config(users={"alice": HASH, "bob": "hunter2"}))


def test_a_mapping_with_non_string_hashes_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="str"):
        Gate(Config(users={"alice": b"$2b$04$abc"}))


# -- unknown options ------------------------------------------------------------------------------


def test_an_unknown_option_is_a_config_error_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="unknown option 'relam'; did you mean 'realm'"):
        Config.from_options(users={"a": HASH}, relam="x")


def test_an_unknown_middleware_option_is_a_config_error_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="did you mean 'exempt_paths'"):
        AsgiGate(RecordingApp(), users={"a": HASH}, exempt_path=["/healthz"])


def test_an_unknown_option_far_from_any_name_has_no_suggestion() -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_options(users={"a": HASH}, zzzzzz=1)
    assert "did you mean" not in str(caught.value)


def test_private_fields_are_not_options() -> None:
    with pytest.raises(ConfigError, match="unknown option '_networks'"):
        Config.from_options(users={"a": HASH}, _networks=())


# -- realm ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("realm", ['a"b', "a\\b", "a\rb", "a\nb", "a\r\nSet-Cookie: x=1", "a\x00b"])
def test_a_realm_that_cannot_be_quoted_plainly_is_refused(realm: str) -> None:
    with pytest.raises(ConfigError, match="realm"):
        config(realm=realm)


def test_an_empty_realm_is_refused() -> None:
    with pytest.raises(ConfigError, match="realm"):
        config(realm="")


def test_a_realm_outside_latin1_is_refused() -> None:
    with pytest.raises(ConfigError, match="Latin-1"):
        config(realm="zone ✓")


def test_a_realm_with_spaces_and_latin1_letters_is_accepted() -> None:
    assert config(realm="Zone für Gäste").realm == "Zone für Gäste"


# -- other options --------------------------------------------------------------------------------


def test_mode_must_be_proxy_or_origin() -> None:
    with pytest.raises(ConfigError, match="mode must be 'proxy' or 'origin'"):
        config(mode="reverse")


def test_status_follows_the_mode() -> None:
    assert (config().status, config(mode="origin").status) == (407, 401)


@pytest.mark.parametrize("path", ["healthz", "/a*b", "*"])
def test_malformed_exempt_paths_are_refused(path: str) -> None:
    with pytest.raises(ConfigError, match="exempt_paths"):
        config(exempt_paths=[path])


def test_exempt_paths_given_as_a_comma_separated_string_are_split() -> None:
    assert config(exempt_paths="/healthz, /static/*").exempt_paths == ("/healthz", "/static/*")


def test_a_trusted_proxy_that_is_not_a_network_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"'10\.0\.0\.0/33'"):
        config(trusted_proxies=["10.0.0.0/33"])


@pytest.mark.parametrize(
    ("name", "value"),
    [("cache_ttl", -1), ("cache_size", 0), ("cache_size", 1.5), ("max_failures", -1),
     ("failure_window", 0), ("reload_interval", "2"), ("cache_ttl", True),
     ("max_failures_per_user", 0)],
)
def test_out_of_range_or_mistyped_numbers_are_refused(name: str, value: object) -> None:
    with pytest.raises(ConfigError, match=name):
        config(**{name: value})


@pytest.mark.parametrize("name", ["cache_ttl", "reload_interval", "failure_window"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_duration_is_refused(name: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"{name} must be a finite number"):
        config(**{name: value})


def test_a_nan_from_the_environment_is_refused() -> None:
    with pytest.raises(ConfigError, match="cache_ttl"):
        Config.from_env({"PROXYGATE_USERS": "/x", "PROXYGATE_CACHE_TTL": "nan"})


def test_a_flag_that_is_not_a_bool_is_refused() -> None:
    with pytest.raises(ConfigError, match="keep_authorization"):
        config(keep_authorization="yes")


def test_a_bad_request_id_header_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="request_id_header"):
        config(request_id_header="X Request\r\nId")


def test_an_unsupported_throttle_store_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="throttle_store"):
        Gate(config(throttle_store="mongodb://127.0.0.1/"))


def test_the_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        config().realm = "other"  # type: ignore[misc]


# -- environment ----------------------------------------------------------------------------------


def test_from_env_reads_prefixed_variables_with_their_types() -> None:
    built = Config.from_env({
        "PROXYGATE_USERS": "/etc/users", "PROXYGATE_CACHE_TTL": "2.5",
        "PROXYGATE_MAX_FAILURES": "3", "PROXYGATE_DEBUG": "yes",
        "PROXYGATE_EXEMPT_PATHS": "/healthz,/static/*", "PROXYGATE_MAX_FAILURES_PER_USER": "off",
        "OTHER": "ignored",
    })
    assert (built.users, built.cache_ttl, built.max_failures, built.debug, built.exempt_paths,
            built.max_failures_per_user) == (
        "/etc/users", 2.5, 3, True, ("/healthz", "/static/*"), None)


def test_from_env_refuses_an_unknown_variable() -> None:
    with pytest.raises(ConfigError, match="PROXYGATE_RELAM"):
        Config.from_env({"PROXYGATE_USERS": "/x", "PROXYGATE_RELAM": "x"})


def test_from_env_suggests_the_variable_meant() -> None:
    with pytest.raises(ConfigError, match="did you mean PROXYGATE_REALM"):
        Config.from_env({"PROXYGATE_USERS": "/x", "PROXYGATE_RELAM": "x"})


def test_from_env_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("PROXYGATE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PROXYGATE_USERS", "/etc/users")
    monkeypatch.setenv("PROXYGATE_REALM", "from-env")
    assert Config.from_env().realm == "from-env"


def test_from_env_overrides_win_over_variables() -> None:
    built = Config.from_env({"PROXYGATE_USERS": "/x", "PROXYGATE_REALM": "env"}, realm="kw")
    assert built.realm == "kw"


def test_from_env_refuses_a_number_that_is_not_one() -> None:
    with pytest.raises(ConfigError, match="max_failures must be a whole number"):
        Config.from_env({"PROXYGATE_USERS": "/x", "PROXYGATE_MAX_FAILURES": "ten"})


# -- secrets --------------------------------------------------------------------------------------


def test_repr_hides_the_hashes_of_a_users_mapping() -> None:
    shown = repr(config())
    assert HASH not in shown
    assert "<1 users>" in shown


def test_repr_hides_the_password_in_a_redis_url() -> None:
    assert "s3cret" not in repr(config(throttle_store="redis://:s3cret@127.0.0.1:6379/0"))


def test_gate_repr_hides_the_hashes() -> None:
    assert HASH not in repr(Gate(config()))


def test_schemes_and_digest_options_come_from_the_environment() -> None:
    config = Config.from_env({"PROXYGATE_SCHEMES": "basic, Digest",
                              "PROXYGATE_DIGEST_ALGORITHMS": "SHA-256,md5",
                              "PROXYGATE_NONCE_SECRET": "s" * 32, "PROXYGATE_NONCE_TTL": "120"})
    assert config.schemes == ("basic", "digest")
    assert config.digest_algorithms == ("SHA-256", "MD5")
    assert config.nonce_secret == "s" * 32 and config.nonce_ttl == 120.0
    assert "s" * 32 not in repr(config)


@pytest.mark.parametrize(("options", "message"), [
    ({"schemes": ("ntlm",)}, "unknown scheme 'ntlm'"),
    ({"schemes": ()}, "non-empty"),
    ({"schemes": "basic"}, "non-empty list"),
    ({"schemes": ("basic", "BASIC")}, "listed twice"),
    ({"digest_algorithms": ("SHA-256-sess",)}, "unknown Digest algorithm"),
    ({"nonce_secret": "short"}, "at least 16"),
    ({"nonce_ttl": 0}, "nonce_ttl"),
    ({"tokens": {}}, "does not include 'bearer'"),
])
def test_a_bad_scheme_option_is_named(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config(**options)
