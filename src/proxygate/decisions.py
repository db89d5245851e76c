"""What the core decides, as plain values: Forward (with the Identity), Deny, and the
``scope["auth"]`` marker. No behaviour; the gate builds them, the shells read them."""

from __future__ import annotations

from proxygate.errors.envelope import ErrorResponse

__all__ = ["ANONYMOUS", "AUTHENTICATED", "AuthInfo", "Deny", "Forward", "Identity"]


class Identity:
    """The authenticated user, shaped so Starlette's ``request.user`` works without Starlette."""

    __slots__ = ("scheme", "username")
    is_authenticated = True

    def __init__(self, username: str, scheme: str = "Basic") -> None:
        self.username = username
        #: The scheme that succeeded, as CGI's AUTH_TYPE spells it: Basic, Digest, Bearer.
        self.scheme = scheme

    @property
    def display_name(self) -> str:
        return self.username

    @property
    def identity(self) -> str:
        return self.username

    def __repr__(self) -> str:
        return f"Identity({self.username!r}, scheme={self.scheme!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Identity) and other.username == self.username
                and other.scheme == self.scheme)

    def __hash__(self) -> int:
        return hash(self.username)


class AuthInfo:
    """``scope["auth"]``: Starlette's ``@requires("authenticated")`` reads ``.scopes``."""

    __slots__ = ()
    scopes = ("authenticated",)

    def __repr__(self) -> str:
        return "AuthInfo(scopes=('authenticated',))"


AUTHENTICATED = AuthInfo()


class Forward:
    """Let the request through. ``identity`` is None for exempt paths; ``headers`` go on the
    app's response (Digest's ``Authentication-Info``), and are usually none."""

    __slots__ = ("headers", "identity")

    def __init__(self, identity: Identity | None,
                 headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        self.identity = identity
        self.headers = headers


class Deny:
    """Answer with ``response``; the app never sees the request."""

    __slots__ = ("response",)

    def __init__(self, response: ErrorResponse) -> None:
        self.response = response


ANONYMOUS = Forward(None)
