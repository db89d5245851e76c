"""One frozen, validated Config for every entry point: kwargs, a dict, environment variables."""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

__all__ = ["Config", "ConfigError"]

Mode = Literal["proxy", "origin"]


class ConfigError(ValueError):
    """A bad option. The message names the option and says what to change."""


@dataclass(frozen=True, slots=True)
class Config:
    """Every option proxygate has. See docs/configuration.md for the reasoning behind each."""

    #: A path to an htpasswd file, a mapping of user name to hash, or a callable
    #: ``(username, password) -> bool`` (async in ASGI too). Required.
    users: Any = None
    realm: str = "proxygate"
    mode: Mode = "proxy"
    #: Paths that skip authentication: exact (``/healthz``) or prefix (``/static/*``).
    exempt_paths: tuple[str, ...] = ()
    #: Origin mode only: pass the consumed ``Authorization`` header on to the app.
    keep_authorization: bool = False
    cache_ttl: float = 300.0
    cache_size: int = 10_000
    reload_interval: float = 2.0
    max_failures: int = 10
    failure_window: float = 60.0
    max_failures_per_user: int | None = None
    #: None (in-memory), ``"memory://"``, ``"redis://host:port/db"``, or a ThrottleStore.
    throttle_store: Any = None
    #: Peers (CIDR) whose ``forwarded_header`` is believed for the client address.
    trusted_proxies: tuple[str, ...] = ()
    #: The one header the trusted proxies write the client address in: ``"X-Forwarded-For"``,
    #: ``"Forwarded"`` (RFC 7239) or ``"X-Real-IP"``. The others are never read.
    forwarded_header: str = "X-Forwarded-For"
    #: Password checks hashing at once (None: one per CPU but one), and how many more may wait
    #: (None: twice as many); beyond that an uncached attempt gets 503 at once.
    max_concurrent_hashes: int | None = None
    max_queued_hashes: int | None = None
    debug: bool = False
    request_id_header: str | None = "X-Request-ID"
    request_id_in_body: bool = True
    request_id_on_success: bool = False
    html_errors: bool = False
    html_template: str | None = None
    #: True: the app's 4xx JSON / problem+json errors pass untouched (5xx never do).
    pass_json_errors: bool = False
    max_error_body: int = 65_536
    #: Count responses, normalized errors and authentication outcomes in Prometheus
    #: (extra ``prometheus``).
    metrics: bool = False
    exception_map: Mapping[Any, Any] | None = None
    # Directory users (``users="ldap://host/base?uid?sub?(filter)"``): see docs/directories.md.
    ldap_bind_dn: str | None = None
    #: Never in a repr or a log line; ``PROXYGATE_LDAP_BIND_PASSWORD`` when left unset.
    ldap_bind_password: str | None = field(default=None, repr=False)
    ldap_starttls: bool = False
    ldap_ca_file: str | None = None
    ldap_require_group: str | None = None
    #: Active Directory: follow nested groups (LDAP_MATCHING_RULE_IN_CHAIN).
    ldap_nested_groups: bool = False
    ldap_timeout: float = 5.0
    ldap_pool_size: int = 4
    #: Authentication schemes offered, one challenge each in this order: "basic",
    #: "digest", "bearer" (see docs/schemes.md).
    schemes: tuple[str, ...] = ("basic",)
    #: Digest algorithms, one challenge line each in this order: "SHA-256",
    #: "SHA-512-256", "MD5" (MD5 only for old clients such as Python's urllib).
    digest_algorithms: tuple[str, ...] = ("SHA-256",)
    #: The key Digest nonces are signed with: the same in every worker and host that
    #: serves the realm. None: a random one per process.
    nonce_secret: str | bytes | None = None
    #: Seconds a Digest nonce is accepted; an older genuine one gets ``stale=true``.
    nonce_ttl: float = 300.0
    #: Bearer tokens: a path to a tokens file (``proxygate tokens add``), a mapping of
    #: name to token hash, or a callable ``(token) -> name | None`` (async in ASGI too).
    tokens: Any = None
    # Filled in by validation: parsed networks for trusted_proxies.
    _networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        default=(), repr=False, compare=False
    )

    def __post_init__(self) -> None:
        _validate(self)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={_safe_repr(f.name, getattr(self, f.name))}"
            for f in fields(self)
            if f.repr and getattr(self, f.name) != f.default
        )
        return f"Config({shown})"

    # -- constructors ------------------------------------------------------------------

    @classmethod
    def from_options(cls, **options: Any) -> Config:
        """Build from keyword options, refusing unknown names with a suggestion."""
        return cls.from_mapping(options)

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any], *, source: str = "option") -> Config:
        names = option_names()
        for name in options:
            if name not in names:
                close = _close_matches(name, sorted(names))
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"unknown {source} {name!r}{hint}")
        values = dict(options)
        for name in ("exempt_paths", "trusted_proxies", "schemes", "digest_algorithms"):
            if name in values:
                values[name] = _as_tuple(values[name], name)
        return cls(**values)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, prefix: str = "PROXYGATE_",
                 **overrides: Any) -> Config:
        """Build from ``PROXYGATE_*`` variables (``PROXYGATE_USERS=/etc/proxygate/users``)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        for key, raw in environ.items():
            if not key.startswith(prefix):
                continue
            name = key[len(prefix):].lower()
            if name not in option_names():
                close = _close_matches(name, sorted(option_names()))
                hint = f"; did you mean {prefix}{close[0].upper()}?" if close else ""
                raise ConfigError(f"unknown environment variable {key}{hint}")
            values[name] = _from_text(name, raw, str(types[name]))
        values.update(overrides)
        return cls.from_mapping(values)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], *, table: str = "proxygate",
                  **overrides: Any) -> Config:
        """Build from the ``[proxygate]`` table of a TOML file (``pyproject.toml`` works).

        A relative ``users`` path is taken relative to the file, so the configuration
        means the same wherever the service is started from.
        """
        import tomllib  # here, not at the top: most services never read a TOML file

        source = Path(path)
        try:
            with source.open("rb") as handle:
                document = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError(f"cannot read {str(source)!r}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{str(source)!r} is not valid TOML: {exc}") from None
        found: Any = document
        for part in table.split("."):
            found = found.get(part) if isinstance(found, dict) else None
        if not isinstance(found, dict):
            raise ConfigError(f"{str(source)!r} has no [{table}] table")
        values = dict(found)
        users = values.get("users")
        if isinstance(users, str) and not Path(users).is_absolute() and not _is_ldap_url(users):
            values["users"] = str(source.parent / users)
        tokens = values.get("tokens")
        if isinstance(tokens, str) and not Path(tokens).is_absolute():
            values["tokens"] = str(source.parent / tokens)
        values.update(overrides)
        return cls.from_mapping(values, source=f"option (in [{table}] of {source.name})")

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    @property
    def status(self) -> int:
        return 407 if self.mode == "proxy" else 401


def option_names() -> frozenset[str]:
    return frozenset(f.name for f in fields(Config) if not f.name.startswith("_"))


def _safe_repr(name: str, value: Any) -> str:
    if name == "throttle_store" and isinstance(value, str):
        return repr(_redact_url(value))
    if name == "ldap_bind_password" and value is not None:
        return "'***'"
    if name == "users" and isinstance(value, Mapping):
        return f"<{len(value)} users>"
    if name == "tokens" and isinstance(value, Mapping):
        return f"<{len(value)} tokens>"
    if name == "nonce_secret" and value is not None:
        return "<redacted>"
    return repr(value)


def _redact_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.partition("/")[0]:
        return f"{scheme}://***@{rest.partition('@')[2]}"
    return url


def _as_tuple(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    try:
        return tuple(value)
    except TypeError:
        raise ConfigError(f"{name} must be a list of strings") from None


def _from_text(name: str, raw: str, typ: str) -> Any:
    if "bool" in typ:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, not {raw!r}")
    if typ.startswith("int"):
        if "None" in typ and raw.strip().lower() in ("", "none", "off"):
            return None
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if typ == "float":
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if name in ("request_id_header", "html_template", "ldap_bind_dn", "ldap_ca_file",
                "ldap_require_group", "nonce_secret") and raw.strip().lower() in ("", "none"):
        return None
    return raw


def _check_number(config: Config, name: str, *, minimum: float, whole: bool) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or (
        whole and not isinstance(value, int)
    ):
        kind = "a whole number" if whole else "a number"
        raise ConfigError(f"{name} must be {kind}, not {value!r}")
    if not math.isfinite(value):
        # NaN compares false with everything: a NaN cache_ttl would never expire.
        raise ConfigError(f"{name} must be a finite number, not {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {value!r}")


USERS_REQUIRED = (
    "users is required: pass a path to an htpasswd file, a mapping of user name to "
    "password hash, or a callable (username, password) -> bool. Leaving it out "
    "would be an open gate."
)


#: The client-address headers a trusted proxy may write, by lower-case name.
FORWARDED_HEADERS = {
    "x-forwarded-for": "X-Forwarded-For",
    "forwarded": "Forwarded",
    "x-real-ip": "X-Real-IP",
}


#: What ``schemes`` may name.
SCHEME_NAMES = ("basic", "digest", "bearer")
#: What ``digest_algorithms`` may name (RFC 7616 §3.3; the -sess variants are not offered).
DIGEST_ALGORITHMS = ("SHA-256", "SHA-512-256", "MD5")


def _validate_schemes(config: Config) -> None:
    schemes = config.schemes
    if isinstance(schemes, str) or not schemes:
        raise ConfigError("schemes must be a non-empty list such as ('basic',) or "
                          "('basic', 'digest')")
    names = []
    for name in schemes:
        lowered = name.strip().lower() if isinstance(name, str) else name
        if lowered not in SCHEME_NAMES:
            raise ConfigError(f"unknown scheme {name!r} in schemes; choose from "
                              f"{', '.join(SCHEME_NAMES)}")
        if lowered in names:
            raise ConfigError(f"scheme {lowered!r} is listed twice in schemes")
        names.append(lowered)
    object.__setattr__(config, "schemes", tuple(names))
    algorithms = config.digest_algorithms
    if isinstance(algorithms, str) or not algorithms:
        raise ConfigError("digest_algorithms must be a non-empty list such as ('SHA-256',)")
    canonical = []
    for algorithm in algorithms:
        upper = algorithm.strip().upper() if isinstance(algorithm, str) else algorithm
        if upper not in DIGEST_ALGORITHMS:
            raise ConfigError(f"unknown Digest algorithm {algorithm!r} in digest_algorithms; "
                              f"choose from {', '.join(DIGEST_ALGORITHMS)}")
        if upper in canonical:
            raise ConfigError(f"Digest algorithm {upper!r} is listed twice in digest_algorithms")
        canonical.append(upper)
    object.__setattr__(config, "digest_algorithms", tuple(canonical))
    _check_number(config, "nonce_ttl", minimum=1, whole=False)
    secret = config.nonce_secret
    if secret is not None and (not isinstance(secret, str | bytes) or len(secret) < 16):
        raise ConfigError("nonce_secret must be a string of at least 16 characters (e.g. "
                          "the output of 'python -c \"import secrets; print(secrets.token_hex(32))\"')")
    if config.tokens is not None and "bearer" not in names:
        raise ConfigError("tokens is set but schemes does not include 'bearer': add it, e.g. "
                          "schemes=('basic', 'bearer')")


def _validate(config: Config) -> None:
    # ``users`` may be left out here: the error-only middleware needs none. The gate
    # refuses to start without it (see Gate.__init__), so no gate is ever open.
    if config.mode not in ("proxy", "origin"):
        raise ConfigError(f"mode must be 'proxy' or 'origin', not {config.mode!r}")
    if not isinstance(config.realm, str) or not config.realm:
        raise ConfigError("realm must be a non-empty string")
    if any(ch in config.realm for ch in '"\\') or any(
        ord(ch) < 0x20 or ord(ch) == 0x7F for ch in config.realm
    ):
        raise ConfigError(
            f"realm {config.realm!r} contains a quote, backslash, CR, LF or another control "
            "character; use plain printable text"
        )
    try:
        config.realm.encode("latin-1")
    except UnicodeEncodeError:
        raise ConfigError("realm must be Latin-1 text (it travels in a header)") from None
    for path in config.exempt_paths:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigError(f"exempt_paths entries must start with '/', not {path!r}")
        if "*" in path[:-1]:
            raise ConfigError(
                f"exempt_paths entry {path!r}: '*' is allowed only at the end, as a prefix"
            )
    for name in ("cache_ttl", "reload_interval"):
        _check_number(config, name, minimum=0, whole=False)
    _check_number(config, "failure_window", minimum=0.001, whole=False)
    _check_number(config, "cache_size", minimum=1, whole=True)
    _check_number(config, "max_failures", minimum=0, whole=True)
    _check_number(config, "max_error_body", minimum=0, whole=True)
    if config.max_failures_per_user is not None:
        _check_number(config, "max_failures_per_user", minimum=1, whole=True)
    networks = []
    for cidr in config.trusted_proxies:
        try:
            networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            raise ConfigError(f"trusted_proxies entry {cidr!r} is not an IP network") from None
    object.__setattr__(config, "_networks", tuple(networks))
    if not isinstance(config.forwarded_header, str) or \
            config.forwarded_header.lower() not in FORWARDED_HEADERS:
        raise ConfigError(
            f"forwarded_header must be one of {', '.join(map(repr, FORWARDED_HEADERS.values()))}"
            f" (the one header your trusted proxies write), not {config.forwarded_header!r}"
        )
    for name in ("max_concurrent_hashes", "max_queued_hashes"):
        if getattr(config, name) is not None:
            _check_number(config, name, minimum=1 if name == "max_concurrent_hashes" else 0,
                          whole=True)
    header = config.request_id_header
    if header is not None and (
        not header or not all(ch.isalnum() or ch == "-" for ch in header)
    ):
        raise ConfigError(f"request_id_header {header!r} is not a valid header name")
    _validate_ldap(config)
    _validate_schemes(config)
    for name in ("keep_authorization", "debug", "request_id_in_body", "request_id_on_success",
                 "html_errors", "pass_json_errors", "metrics", "ldap_starttls",
                 "ldap_nested_groups"):
        if not isinstance(getattr(config, name), bool):
            raise ConfigError(f"{name} must be True or False")


def _is_ldap_url(users: object) -> bool:
    return isinstance(users, str) and users[:8].lower().startswith(("ldap://", "ldaps://"))


def _validate_ldap(config: Config) -> None:
    _check_number(config, "ldap_timeout", minimum=0.001, whole=False)
    _check_number(config, "ldap_pool_size", minimum=1, whole=True)
    for name in ("ldap_bind_dn", "ldap_bind_password", "ldap_ca_file", "ldap_require_group"):
        if getattr(config, name) is not None and not isinstance(getattr(config, name), str):
            raise ConfigError(f"{name} must be a string")
    directory = _is_ldap_url(config.users)
    if config.users is not None and not directory:
        given = [f.name for f in fields(config) if f.name.startswith("ldap_")
                 and f.name not in ("ldap_timeout", "ldap_pool_size")
                 and getattr(config, f.name) not in (None, False)]
        if given:
            raise ConfigError(f"{given[0]} applies to a directory only: set users to an "
                              "ldap:// or ldaps:// URL, or leave it out")


def _close_matches(word: str, candidates: list[str]) -> list[str]:
    """The nearest candidate for a mistyped name; difflib is imported only for a mistake."""
    import difflib

    return difflib.get_close_matches(word, candidates, n=1)
