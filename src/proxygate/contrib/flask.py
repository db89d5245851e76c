"""Flask: ``ProxyGate(app)`` or ``gate.init_app(app)``, options from ``PROXYGATE_*`` config keys.

::

    app = Flask(__name__)
    app.config["PROXYGATE_USERS"] = "users.htpasswd"
    ProxyGate(app)

The extension wraps ``app.wsgi_app`` in :class:`proxygate.wsgi.ProxyGateMiddleware`,
so every response Flask (or Werkzeug's routing) emits passes the same rewrite policy
as any WSGI app; the user is ``flask.g.proxygate_user`` and ``request.remote_user``.

Werkzeug's debugger wraps the whole Flask app, outside ``wsgi_app``: its ``/console``
answers before proxygate sees a request. The extension says so loudly (a WARNING at
``init_app`` in debug mode, and at the first request the debugger is seen wrapping the
app), and refuses to start when the debugger would run unguarded (``WERKZEUG_DEBUG_PIN=off``).
"""

from __future__ import annotations

import difflib
import logging
import os
import weakref
from collections.abc import Iterable
from typing import Any

from proxygate.contrib import missing_extra

try:
    from flask import Flask, g, request
    from flask import Response as FlaskResponse
    from werkzeug.exceptions import HTTPException, default_exceptions
except ModuleNotFoundError as _missing:
    raise missing_extra("proxygate.contrib.flask", "flask", _missing) from None

from proxygate.config import Config, ConfigError, option_names
from proxygate.gate import Gate, Identity
from proxygate.wsgi import Environ, ProxyGateMiddleware, StartResponse, request_head

__all__ = ["CONFIG_PREFIX", "ProxyAuthenticationRequired", "ProxyGate", "current_user"]

CONFIG_PREFIX = "PROXYGATE_"

logger = logging.getLogger("proxygate.flask")

#: Set by Werkzeug's ``DebuggedApplication`` (with its console, ``evalex``) on every request
#: it passes to the app: the one sign, inside the app, that the debugger sits outside it.
DEBUGGER_ENVIRON_KEY = "werkzeug.debug.preserve_context"

DEBUGGER_WARNING = (
    "Werkzeug's debugger is on for Flask app %r. It wraps the whole app, outside proxygate: "
    "its console (/console, and the one on every traceback page) answers without "
    "proxygate's credentials, guarded only by the debugger PIN, and runs any Python code "
    "in this process. Never serve it beyond your own machine; production runs a WSGI server "
    "(gunicorn) with debug off."
)


class ProxyAuthenticationRequired(HTTPException):
    """*407 Proxy Authentication Required*, which Werkzeug lacks: ``abort(407)`` raises it.

    proxygate answers it with the envelope and the gate's ``Proxy-Authenticate`` challenge.
    """

    code = 407
    description = "Send valid credentials in the Proxy-Authorization header."


# werkzeug.exceptions.abort and every Flask app created from now on find it;
# init_app registers it with apps that already exist.
default_exceptions.setdefault(407, ProxyAuthenticationRequired)


class _CarriedPastTheGate(BaseException):
    """Carries a view's exception past the WSGI shell (which catches ``Exception``) in tests."""

    def __init__(self, exc: Exception) -> None:
        super().__init__()
        self.exc = exc


def current_user() -> Identity | None:
    """The user proxygate authenticated for this request; None on exempt paths."""
    user: Identity | None = g.get("proxygate_user")
    return user


def _load_user() -> None:
    g.proxygate_user = request.environ.get("proxygate.user")


class ProxyGate:
    """The Flask extension. Constructor options are defaults; ``PROXYGATE_*`` config keys win.

    ``ProxyGate(app, realm="internal")`` or, with an app factory,
    ``gate = ProxyGate(); gate.init_app(app)``.
    """

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        unknown = set(options) - option_names()
        if unknown:
            raise ConfigError(_unknown_message(sorted(unknown)[0], option_names(), prefix=""))
        self.options = options
        self._middlewares: weakref.WeakKeyDictionary[Flask, ProxyGateMiddleware] = (
            weakref.WeakKeyDictionary()
        )
        if app is not None:
            self.init_app(app)

    def config_for(self, app: Flask) -> Config:
        """The options for ``app``: constructor defaults, then its ``PROXYGATE_*`` keys."""
        values = dict(self.options)
        names = option_names()
        for key, value in app.config.items():
            if not key.startswith(CONFIG_PREFIX):
                continue
            name = key[len(CONFIG_PREFIX):].lower()
            if name not in names:
                raise ConfigError(_unknown_message(key, names, prefix=CONFIG_PREFIX))
            values[name] = value
        return Config.from_mapping(values, source="PROXYGATE_* config key")

    def init_app(self, app: Flask) -> None:
        _check_debugger(app)
        middleware = ProxyGateMiddleware(_view_errors_reach_tests(app, app.wsgi_app),
                                         config=self.config_for(app))
        warned = [app.debug]  # warned at init_app already, or not yet

        def wsgi_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
            if not warned[0] and DEBUGGER_ENVIRON_KEY in environ:
                # app.run(debug=True) turns the debugger on after init_app: say it now.
                warned[0] = True
                logger.warning(DEBUGGER_WARNING, app.name)
            try:
                return middleware(environ, start_response)
            except _CarriedPastTheGate as carried:
                exc = carried.exc
            raise exc

        wsgi_app.proxygate = middleware  # type: ignore[attr-defined]
        app.wsgi_app = wsgi_app  # type: ignore[method-assign]
        app.before_request(_load_user)
        app.register_error_handler(HTTPException, _envelope_for(middleware))
        app.aborter.mapping[407] = ProxyAuthenticationRequired
        app.extensions["proxygate"] = self
        self._middlewares[app] = middleware

    def gate_for(self, app: Flask) -> Gate:
        """The :class:`~proxygate.Gate` serving ``app``."""
        return self._middlewares[app].gate


def _envelope_for(middleware: ProxyGateMiddleware) -> Any:
    """Flask's ``abort()`` answered with the envelope, keeping the message the app gave.

    Without this Flask renders its HTML page first and only the status survives the
    rewrite; Starlette and FastAPI hand the exception itself over. One rule for all three
    (docs/errors.md): the app's own 4xx text is the details, a framework's stock text is not.
    """

    def envelope(exc: HTTPException) -> Any:
        if exc.code is None or exc.code < 400:
            return exc  # redirects and the like are not errors
        response = middleware.handler.exception_response(request_head(request.environ), exc,
                                                         log=False)
        return FlaskResponse(
            response.body, status=response.status,
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers],
        )

    return envelope


def _check_debugger(app: Flask) -> None:
    """Warn when debug mode may start Werkzeug's debugger; refuse when its console has no PIN.

    Refusing every debug-mode start would only push teams to leave the gate out while they
    develop, and it would not close the console anyway (the debugger serves it whether or
    not proxygate wraps the app). With the PIN turned off, though, anyone who reaches the
    port runs code in the process, and no promise proxygate makes would hold.
    """
    if not app.debug:
        return
    if os.environ.get("WERKZEUG_DEBUG_PIN", "").strip().lower() == "off":
        raise ConfigError(
            f"Flask app {app.name!r} runs in debug mode with WERKZEUG_DEBUG_PIN=off: Werkzeug's "
            "debugger console would run any code for anyone, outside proxygate. Unset "
            "WERKZEUG_DEBUG_PIN (keep the PIN) or turn debug mode off (no --debug, "
            "FLASK_DEBUG=0, DEBUG=False)."
        )
    logger.warning(DEBUGGER_WARNING, app.name)


def _view_errors_reach_tests(app: Flask, wsgi_app: Any) -> Any:
    """With ``app.testing`` Flask re-raises view exceptions into the test: keep it so."""

    def app_errors(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        try:
            result: Iterable[bytes] = wsgi_app(environ, start_response)
        except Exception as exc:
            if app.testing and app.config.get("PROPAGATE_EXCEPTIONS") is not False:
                raise _CarriedPastTheGate(exc) from None
            raise
        return result

    return app_errors


def _unknown_message(key: str, names: frozenset[str], *, prefix: str) -> str:
    candidates = sorted(prefix + name.upper() if prefix else name for name in names)
    close = difflib.get_close_matches(key, candidates, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    where = "Flask config key" if prefix else "ProxyGate option"
    return f"unknown {where} {key!r}{hint}"
