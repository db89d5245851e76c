"""Django: ``proxygate.contrib.django.ProxyGateMiddleware`` in ``MIDDLEWARE``, options in ``PROXYGATE``.

::

    INSTALLED_APPS = [..., "proxygate.contrib.django"]      # for `manage.py check`
    MIDDLEWARE = ["proxygate.contrib.django.ProxyGateMiddleware", ...]   # first
    PROXYGATE = {"users": BASE_DIR / "users.htpasswd", "realm": "internal"}

Django turns every exception into a response before an outer middleware sees
it, so the error half works on responses: 4xx/5xx pages (and DEBUG's technical
pages) are replaced by the envelope. The exception Django reported through
``got_request_exception`` is remembered only to apply ``exception_map`` and
proxygate's own ``debug`` option; Django keeps logging it.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from proxygate.contrib import missing_extra

try:
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
    from django.apps import AppConfig
    from django.conf import settings
    from django.core import checks
    from django.core.exceptions import ImproperlyConfigured
    from django.core.signals import got_request_exception
    from django.http import HttpRequest, HttpResponse, HttpResponseBase
except ModuleNotFoundError as _missing:
    raise missing_extra("proxygate.contrib.django", "django", _missing) from None

from proxygate._server import warn_about_server
from proxygate.config import Config, ConfigError
from proxygate.errors.envelope import ErrorResponse
from proxygate.errors.handler import HeadFromPairs, RequestHead
from proxygate.errors.policy import Action
from proxygate.gate import Check, Deny, Forward, Gate
from proxygate.wsgi import EnvironHead, environ_key, from_absolute_form, refuses_hop_by_hop

__all__ = [
    "ProxyGateAppConfig",
    "ProxyGateMiddleware",
    "authenticate_with_django",
    "check_settings",
    "config_from_settings",
]

MIDDLEWARE_PATH = "proxygate.contrib.django.ProxyGateMiddleware"
_HINT = (
    "Fix settings.PROXYGATE: a dict whose keys are the options of proxygate.Config "
    "(users, realm, mode, exempt_paths, debug, ...); see docs/django.md."
)
#: Where the exception Django reported for this request is kept (request.__dict__).
_EXCEPTION_ATTR = "_proxygate_exception"

GetResponse = Callable[[HttpRequest], HttpResponseBase]
AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


def authenticate_with_django(username: str, password: str) -> bool:
    """``users="django"``: the accounts of ``django.contrib.auth``, through ``authenticate()``.

    Inactive users and every backend's own rules apply as they do for a login form.
    """
    from django.contrib.auth import authenticate

    return authenticate(None, username=username, password=password) is not None


def config_from_settings() -> Config:
    """The :class:`~proxygate.Config` that ``settings.PROXYGATE`` describes."""
    options = getattr(settings, "PROXYGATE", None)
    if options is None:
        raise ConfigError(
            "settings.PROXYGATE is missing: add PROXYGATE = {'users': BASE_DIR / 'users.htpasswd'}"
        )
    if not isinstance(options, Mapping):
        raise ConfigError(f"settings.PROXYGATE must be a dict of options, not {type(options).__name__}")
    values = dict(options)
    if values.get("users") == "django":
        values["users"] = authenticate_with_django
    return Config.from_mapping(values, source="PROXYGATE setting")


# -- system checks --------------------------------------------------------------------


@checks.register("proxygate")
def check_settings(app_configs: Sequence[AppConfig] | None = None,
                   **kwargs: Any) -> list[checks.CheckMessage]:
    """``manage.py check``: the PROXYGATE setting builds a working gate; the middleware is listed."""
    messages: list[checks.CheckMessage] = []
    options = getattr(settings, "PROXYGATE", None)
    if not isinstance(options, Mapping):
        what = "missing" if options is None else f"a {type(options).__name__}, not a dict"
        messages.append(checks.Error(f"settings.PROXYGATE is {what}.", hint=_HINT,
                                     id="proxygate.E001"))
    else:
        try:
            config = config_from_settings()
            Gate(config)
        except ConfigError as exc:
            messages.append(checks.Error(f"settings.PROXYGATE: {exc}", hint=_HINT,
                                         id="proxygate.E002"))
        else:
            messages.extend(_check_allowed_hosts(config))
    if MIDDLEWARE_PATH not in getattr(settings, "MIDDLEWARE", ()):
        messages.append(checks.Warning(
            f"{MIDDLEWARE_PATH} is not in MIDDLEWARE: nothing is authenticated.",
            hint=f"Put {MIDDLEWARE_PATH!r} first in MIDDLEWARE so it sees every response.",
            id="proxygate.W001",
        ))
    return messages


#: Names that only ever reach this machine: Django's test client's and loopback's.
_LOCAL_HOSTS = frozenset({"localhost", ".localhost", "127.0.0.1", "::1", "[::1]", "testserver"})


def _check_allowed_hosts(config: Config) -> list[checks.CheckMessage]:
    """Proxy mode with only local names allowed: every forward-proxy request answers 400.

    A forward-proxy client asks for ``http://myservice.internal/report``; Django takes
    the host from the target and refuses one that ``ALLOWED_HOSTS`` does not list,
    before any view runs (the 400 "The request could not be understood").
    """
    if config.mode != "proxy":
        return []
    allowed = [str(host).lower() for host in getattr(settings, "ALLOWED_HOSTS", ())]
    if "*" in allowed or any(host not in _LOCAL_HOSTS for host in allowed):
        return []
    listed = ", ".join(repr(host) for host in allowed) or "nothing"
    return [checks.Warning(
        f"PROXYGATE runs in proxy mode but ALLOWED_HOSTS lists only local names ({listed}): "
        "Django answers 400 to forward-proxy requests for any other host "
        "(curl -x http://127.0.0.1:8000 http://myservice.internal/report).",
        hint="Add the host names clients reach through the proxy to ALLOWED_HOSTS "
        "(ALLOWED_HOSTS = [\"myservice.internal\", ...]).",
        id="proxygate.W002",
    )]


class ProxyGateAppConfig(AppConfig):
    """Listing ``"proxygate.contrib.django"`` in ``INSTALLED_APPS`` registers the checks."""

    name = "proxygate.contrib.django"
    label = "proxygate"
    verbose_name = "proxygate"
    default = True


def _remember_exception(sender: object, request: HttpRequest | None = None,
                        **kwargs: Any) -> None:
    # Django sends this inside its except block (asgiref carries exc_info across threads).
    exc = sys.exc_info()[1]
    if request is not None and exc is not None:
        request.__dict__[_EXCEPTION_ATTR] = exc


got_request_exception.connect(_remember_exception, dispatch_uid="proxygate.contrib.django")


# -- translation ----------------------------------------------------------------------


def _head(request: HttpRequest) -> RequestHead:
    """The request as the core reads it. Under ASGI: the raw headers, where
    ``proxy_authorization`` can never pass for ``Proxy-Authorization``."""
    scope = getattr(request, "scope", None)
    if isinstance(scope, Mapping):
        return HeadFromPairs(request.method or "GET", request.path_info,
                             scope.get("headers", ()), request.META.get("REMOTE_ADDR"),
                             request.META.get("QUERY_STRING", ""))
    head = EnvironHead(request.META)
    head.path = request.path_info or "/"
    return head


def _route_absolute_form(request: HttpRequest) -> None:
    """``GET http://host/path`` from a forward-proxy client routes on ``/path``.

    gunicorn and uvicorn split such a target themselves; runserver (wsgiref) leaves
    the whole URL in ``PATH_INFO``, and Django would resolve every path to 404 and
    match no exempt path. Runs before URL resolution, which reads ``path_info``.
    """
    if request.path_info.startswith("/"):
        return
    meta = request.META
    meta["PATH_INFO"] = request.path_info
    from_absolute_form(meta)
    path_info = meta["PATH_INFO"]
    if not path_info.startswith("/"):
        return  # not an absolute URL either: leave it for Django to refuse
    request.path_info = path_info
    request.path = str(meta.get("SCRIPT_NAME", "")).rstrip("/") + path_info


def _drops_challenge(request: HttpRequest) -> bool:
    """wsgiref (runserver) answers 500 to a hop-by-hop header; leave Proxy-Authenticate out there."""
    return getattr(request, "scope", None) is None and refuses_hop_by_hop(request.META)


def _with_headers(response: HttpResponseBase, decision: Forward) -> HttpResponseBase:
    """The response with what the gate adds to a success (Digest's Authentication-Info)."""
    for name, value in decision.headers:
        response[name.decode("latin-1")] = value.decode("latin-1")
    return response


def _header_pairs(response: HttpResponseBase) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1", "replace"))
            for name, value in response.items()]


def _to_django(response: ErrorResponse, drop_challenge: bool) -> HttpResponse:
    out = HttpResponse(response.body, status=response.status)
    del out["Content-Type"]
    joined: dict[str, list[str]] = {}
    for raw_name, raw_value in response.headers:
        if raw_name == b"set-cookie" or (drop_challenge and raw_name == b"proxy-authenticate"):
            continue  # cookies travel in response.cookies
        joined.setdefault(raw_name.decode("latin-1"), []).append(raw_value.decode("latin-1"))
    for name, values in joined.items():
        out[name] = ", ".join(values)
    return out


def _release(response: HttpResponseBase) -> None:
    """Close what the replaced response holds (files, generators) without a second
    ``request_finished`` signal: the envelope's own close() sends that one."""
    closers = getattr(response, "_resource_closers", None)
    if not closers:
        return
    for closer in closers:
        try:
            closer()
        except Exception:  # noqa: S112 -- as HttpResponseBase.close() does
            continue
    closers.clear()


class ProxyGateMiddleware:
    """Authentication (407, or 401 in origin mode) and the error envelope for a Django project.

    Works in sync and async stacks (``get_wsgi_application()`` and
    ``get_asgi_application()``) the way :class:`django.utils.deprecation.MiddlewareMixin` does.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse | AsyncGetResponse) -> None:
        self.get_response = get_response
        try:
            self.config = config_from_settings()
            self.gate = Gate(self.config)
        except ConfigError as exc:
            raise ImproperlyConfigured(f"settings.PROXYGATE: {exc}") from None
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)
        elif self.gate.is_async:
            raise ImproperlyConfigured(
                "settings.PROXYGATE: an async users or tokens callable needs the ASGI handler "
                "(get_asgi_application) and async-capable middleware after proxygate's"
            )
        gate = self.gate
        self._strip_keys = tuple(
            environ_key(name) for name in gate.strip_headers if b"_" not in name
        )
        # The ORM wants the request's own thread; hashes want any thread.
        self._thread_sensitive = self.config.users is authenticate_with_django
        warn_about_server(gate, wsgi=not self.async_mode)

    def __repr__(self) -> str:
        return f"<ProxyGateMiddleware {self.gate!r}>"

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        _route_absolute_form(request)
        head = _head(request)
        decision = self.gate.decide(head)
        if type(decision) is Check:
            decision = decision.run()
        if type(decision) is Deny:
            return _to_django(decision.response, _drops_challenge(request))
        assert type(decision) is Forward
        self._admit(request, decision)
        response = self.get_response(request)
        assert isinstance(response, HttpResponseBase)
        return _with_headers(self._normalize(request, head, response), decision)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        _route_absolute_form(request)
        head = _head(request)
        decision = self.gate.decide(head)
        if type(decision) is Check:
            decision = await self._check(decision)
        if type(decision) is Deny:
            return _to_django(decision.response, _drops_challenge(request))
        assert type(decision) is Forward
        self._admit(request, decision)
        response = await self.get_response(request)  # type: ignore[misc]
        return _with_headers(self._normalize(request, head, response), decision)

    async def _check(self, check: Check) -> Forward | Deny:
        if not check.is_async:
            return await sync_to_async(check.run, thread_sensitive=self._thread_sensitive)()
        run_blocking = check.needs_thread
        try:
            denied = await sync_to_async(check.admit, thread_sensitive=False)() if run_blocking \
                else check.admit()
            if denied is not None:
                return denied
            verdict = await check.averify()
            if run_blocking:
                return await sync_to_async(check.conclude, thread_sensitive=False)(verdict)
            return check.conclude(verdict)
        except BaseException:
            # An unfinished check gives its reservation back (a success never counts).
            if run_blocking:
                await sync_to_async(check.abandon, thread_sensitive=False)()
            else:
                check.abandon()
            raise

    def _admit(self, request: HttpRequest, decision: Forward) -> None:
        """Strip the credentials, then put the user where Django looks."""
        meta = request.META
        for key in self._strip_keys:
            meta.pop(key, None)
        request.__dict__.pop("headers", None)  # HttpRequest.headers is a cached view of META
        scope = getattr(request, "scope", None)
        if isinstance(scope, dict) and "headers" in scope:
            strip = self.gate.strip_headers
            request.scope = {**scope, "headers": [pair for pair in scope["headers"]  # type: ignore[attr-defined]
                                                  if pair[0] not in strip]}
        identity = decision.identity
        request.proxygate_user = identity  # type: ignore[attr-defined]
        # Django's async RemoteUserMiddleware reads HTTP_REMOTE_USER, a key any client
        # fills by sending a Remote-User header: the gate owns that key as well.
        meta.pop("HTTP_REMOTE_USER", None)
        if identity is not None:
            meta["REMOTE_USER"] = meta["HTTP_REMOTE_USER"] = identity.username
            meta["AUTH_TYPE"] = identity.scheme

    def _normalize(self, request: HttpRequest, head: RequestHead,
                   response: HttpResponseBase) -> HttpResponseBase:
        status = response.status_code
        if status < 400:
            return response
        errors = self.gate.errors
        drop_challenge = _drops_challenge(request)
        headers = _header_pairs(response)
        action = errors.response_action(status, headers)
        if action is Action.PASS:
            patched = errors.with_challenge(status, headers)
            for name, value in patched[len(headers):]:
                if not (drop_challenge and name == b"proxy-authenticate"):
                    response[name.decode("latin-1")] = value.decode("latin-1")
            return response
        exc = request.__dict__.pop(_EXCEPTION_ATTR, None)
        if exc is not None and status >= 500:
            envelope = errors.exception_response(head, exc, log=False)
        else:
            body = None
            if action is Action.INSPECT and isinstance(response, HttpResponse):
                content = response.content
                if len(content) <= errors.policy.max_error_body:
                    body = content
            envelope = errors.replace_response(head, status, headers, body)
        replacement = _to_django(envelope, drop_challenge)
        replacement.cookies = response.cookies
        # Django logged the original already; the handler must not log the stand-in again.
        replacement._has_been_logged = getattr(response, "_has_been_logged", False)  # type: ignore[attr-defined]
        _release(response)
        return replacement
