"""Gateway configurations: the files each gateway needs to ask the forward-auth service.

Each gateway has a module here (``nginx.py``, ...) with one function::

    def render(options: GatewayOptions) -> list[str]

It writes every file the gateway needs into ``options.directory`` and returns the argv
that starts the gateway in the foreground with them, its first word the gateway's
binary name. ``proxygate gateway-config`` prints that argv shell-quoted.
"""

from __future__ import annotations

import importlib
import ipaddress
import os
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

__all__ = [
    "GATEWAYS",
    "GatewayError",
    "GatewayOptions",
    "ServiceURL",
    "render",
    "renderer",
    "shell_command",
    "write_file",
]

#: Gateway name -> the module whose ``render`` writes its configuration. Imported only
#: when that gateway is asked for, so one gateway's module never costs another's users.
RENDERERS: dict[str, str] = {
    "nginx": "proxygate.gateways.nginx",
    "traefik": "proxygate.gateways.traefik",
    "envoy": "proxygate.gateways.envoy",
    "caddy": "proxygate.gateways.caddy",
}

GATEWAYS: tuple[str, ...] = tuple(RENDERERS)


class GatewayError(ValueError):
    """A configuration that cannot be written: the message says what to change."""


@dataclass(frozen=True)
class ServiceURL:
    """An ``http://host:port/path`` URL taken apart (the service's or the upstream's)."""

    scheme: str
    host: str
    port: int
    path: str

    @property
    def authority(self) -> str:
        """``host:port``, with an IPv6 host in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.authority}"


def parse_url(url: str, what: str) -> ServiceURL:
    """``url`` as a :class:`ServiceURL`; ``what`` names the option in the error."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise GatewayError(f"{what} {url!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GatewayError(f"{what} {url!r} must look like http://HOST:PORT[/PATH]")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise GatewayError(f"{what} {url!r} must not carry a query, fragment or credentials")
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return ServiceURL(parts.scheme, parts.hostname, port, parts.path or "/")


@dataclass(frozen=True)
class GatewayOptions:
    """What every gateway's configuration is made from (``proxygate gateway-config``)."""

    #: Where the gateway listens.
    listen_host: str
    listen_port: int
    #: The forward-auth service the gateway asks, e.g. ``http://127.0.0.1:9000/auth``.
    auth_url: str
    #: Where allowed requests go, e.g. ``http://127.0.0.1:8000``.
    upstream: str
    #: Every file the gateway needs (configuration, temporary files, logs, pid) goes here.
    directory: Path
    realm: str = "proxygate"
    mode: Literal["proxy", "origin"] = "proxy"
    #: The header carrying the user name to the upstream (the service's ``--user-header``).
    user_header: str = "X-Authenticated-User"
    #: More forward-auth service URLs (same path) the gateway spreads requests over.
    extra_auth_urls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.listen_port < 65536:
            raise GatewayError(f"listen port {self.listen_port} is not a port number")
        try:
            ipaddress.ip_address(self.listen_host)
        except ValueError:
            if not self.listen_host or any(ch in self.listen_host for ch in " \t\r\n;{}\"'"):
                raise GatewayError(f"listen host {self.listen_host!r} is not a host") from None
        if self.mode not in ("proxy", "origin"):
            raise GatewayError(f"mode must be 'proxy' or 'origin', not {self.mode!r}")
        if not self.user_header or not all(ch.isalnum() or ch == "-" for ch in self.user_header):
            raise GatewayError(
                f"user header {self.user_header!r} must be letters, digits and '-' only"
            )
        if not self.realm or any(ord(ch) < 0x20 or ch in '"\\' for ch in self.realm):
            raise GatewayError(f"realm {self.realm!r} must be plain printable text")
        auth = self.auth
        for extra in self.extra_auth_urls:
            if parse_url(extra, "auth URL").path != auth.path:
                raise GatewayError("every auth URL must have the same path")
        parse_url(self.upstream, "upstream")

    @property
    def auth(self) -> ServiceURL:
        return parse_url(self.auth_url, "auth URL")

    @property
    def auth_urls(self) -> tuple[ServiceURL, ...]:
        return (self.auth, *(parse_url(url, "auth URL") for url in self.extra_auth_urls))

    @property
    def upstream_url(self) -> ServiceURL:
        return parse_url(self.upstream, "upstream")

    @property
    def status(self) -> int:
        return 407 if self.mode == "proxy" else 401

    @property
    def credential_header(self) -> str:
        return "Proxy-Authorization" if self.mode == "proxy" else "Authorization"

    @property
    def challenge_header(self) -> str:
        return "Proxy-Authenticate" if self.mode == "proxy" else "WWW-Authenticate"


Renderer = Callable[[GatewayOptions], list[str]]


def renderer(gateway: str) -> Renderer:
    """The ``render`` function of ``gateway``'s module."""
    module_name = RENDERERS.get(gateway)
    if module_name is None:
        raise GatewayError(
            f"unknown gateway {gateway!r}; choose one of {', '.join(sorted(RENDERERS))}"
        )
    found: Renderer = importlib.import_module(module_name).render
    return found


def render(gateway: str, options: GatewayOptions) -> list[str]:
    """Write ``gateway``'s files for ``options``; the argv that starts it in the foreground."""
    options.directory.mkdir(parents=True, exist_ok=True)
    return renderer(gateway)(options)


def shell_command(argv: Sequence[str]) -> str:
    return shlex.join(argv)


def write_file(directory: Path, name: str, text: str, *, mode: int = 0o644) -> Path:
    """Write ``directory/name`` whole (a reader never sees half a file)."""
    path = directory / name
    partial = directory / f".{name}.partial"
    partial.write_text(text, encoding="utf-8")
    os.chmod(partial, mode)
    os.replace(partial, path)
    return path
