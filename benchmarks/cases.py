"""Every benchmark case, in one table: what it measures, against which anchor, to what target.

The rows of ``results.md`` come from here, in this order: first what issue 15 named
users feel (end to end, the throttled answer, start-up), then the cost of each path in
process, then the other families. A case's code lives in its family's module
(``asgi_cases``, ``e2e_cases``, ...), imported only when the case runs, so a run of a
few cases loads nothing the others need.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from harness import Case, CaseResult, Settings, Target

__all__ = ["CASES"]


def _in(module: str, function: str) -> Callable[[Settings, CaseResult], None]:
    """``module.function``, imported when the case runs."""

    def run(settings: Settings, result: CaseResult) -> None:
        getattr(importlib.import_module(module), function)(settings, result)

    return run


CASES: list[Case] = [
    # What users feel (issue 15's table).
    Case("e2e-uvicorn", "end to end: uvicorn + Starlette, returning user (throughput ratio)",
         "Starlette AuthenticationMiddleware under the same server",
         Target(">=", 1.0, " x the anchor"), _in("e2e_cases", "e2e_uvicorn")),
    Case("asgi-429", "ASGI, a throttled request (429) against a cached success, in process",
         "the cached success through the same middleware", Target("<=", 2.0),
         _in("throttle_cases", "asgi_throttled")),
    Case("flood-429", "one-address 429 flood under uvicorn (share of a core at 5,000/s)",
         "a bare 200 at the same rate, for scale", Target("<=", 0.2, " of a core"),
         _in("throttle_cases", "flood_429")),
    Case("import-time", "import proxygate.asgi (time ratio)",
         "import starlette.middleware.authentication", Target("<=", 1.0),
         _in("startup_cases", "import_time")),
    Case("first-200", "first 200 from proxygate serve (time ratio)",
         "bare uvicorn, a framework-less app", Target("<=", 1.3),
         _in("startup_cases", "first_200")),
    Case("asgi-404", "ASGI, app 404 rewritten to the envelope by the middleware",
         "Starlette HTTPException → JSON handler", Target("<=", 1.5),
         _in("asgi_cases", "asgi_not_found")),
    Case("e2e-404", "end to end: uvicorn + Starlette, the app's 404 (throughput ratio)",
         "Starlette HTTPException → JSON handler under the same server",
         Target(">=", 0.95, " x the anchor"), _in("e2e_cases", "e2e_not_found")),
    Case("e2e-404-handlers", "end to end: the same 404, proxygate set up as docs/starlette.md shows",
         "Starlette HTTPException → JSON handler under the same server",
         Target(">=", 0.95, " x the anchor"), _in("e2e_cases", "e2e_not_found_handlers")),
    # The in-process cost of each path.
    Case("asgi-auth", "ASGI, authenticated request, cached credential, envelope on",
         "Starlette AuthenticationMiddleware + docs BasicAuthBackend (checks no password)",
         None, _in("asgi_cases", "asgi_authenticated")),
    Case("asgi-denied", "ASGI, denied request (no credentials)",
         "same anchor's error path (@requires → 403)", Target("<=", 0.5),
         _in("asgi_cases", "asgi_denied")),
    Case("asgi-404-handlers", "ASGI, app 404 → envelope by proxygate's Starlette handler",
         "Starlette HTTPException → JSON handler", Target("<=", 1.0),
         _in("asgi_cases", "asgi_not_found_handlers")),
    Case("wsgi-flask", "WSGI, authenticated request (Flask)",
         "Flask-HTTPAuth login_required, same apr1 hash", Target("<=", 0.2),
         _in("wsgi_cases", "wsgi_flask")),
    Case("wsgi-django", "WSGI, Django view",
         "RemoteUserMiddleware fed by a header", None, _in("wsgi_cases", "wsgi_django")),
    Case("e2e-gunicorn", "end to end: gunicorn + Flask, wrk (throughput ratio)",
         "the same app without proxygate (and with Flask-HTTPAuth, for scale)",
         Target(">=", 0.95), _in("e2e_cases", "e2e_gunicorn")),
    # Returning users, memory, floods, directories, gateways.
    Case("bcrypt-returning", "bcrypt cost 12 user, returning (throughput ratio)",
         "same user with a cheap (apr1) hash", Target(">=", 0.9),
         _in("returning_cases", "bcrypt_returning_user")),
    Case("digest-returning", "ASGI, returning Digest user (SHA-256, next nc) beside cached Basic",
         "the same gate, a cached Basic user", None,
         _in("returning_cases", "digest_returning_user")),
    Case("memory-failed-logins", "memory: 1,000,000 failed logins with distinct names",
         "—", Target("<=", 50.0, " MiB"), _in("memory_cases", "memory_failed_logins")),
    Case("hash-flood", "returning user's p99 while 50 addresses send wrong bcrypt-12 passwords",
         "the same user's p99 with no flood", Target("<=", 2.0), _in("flood_cases", "flood")),
    Case("ldap-returning", "LDAP directory user, returning (throughput ratio)",
         "an htpasswd (apr1) user, returning", Target(">=", 0.9),
         _in("directory_cases", "ldap_returning_user")),
    Case("ldap-miss", "LDAP cache miss: one search + one bind; unknown vs wrong password",
         "a wrong password (search + failed bind)", Target("<=", 1.5),
         _in("directory_cases", "ldap_cache_miss")),
    Case("e2e-nginx-apr1", "end to end: nginx + forward-auth vs nginx auth_basic, apr1 file",
         "nginx auth_basic (C), checking the apr1 hash every request", Target(">=", 1.0),
         _in("gateway_cases", "e2e_nginx_apr1")),
    Case("e2e-nginx-bcrypt12",
         "end to end: nginx + forward-auth vs nginx auth_basic, bcrypt cost-12 file",
         "nginx auth_basic (C), checking the bcrypt hash every request", None,
         _in("gateway_cases", "e2e_nginx_bcrypt12")),
]
