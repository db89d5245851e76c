"""A one-view Django project configured in code, and its WSGI handlers with and without auth.

Importing this module configures Django for the process (its settings are
global), so only the Django case imports it. Django reads ``MIDDLEWARE``
when a handler is built, so one process holds a bare handler and an
authenticating one side by side. The anchor is the stack Django documents
for authentication done upstream: sessions, the authentication middleware
and ``RemoteUserMiddleware`` subclassed to read a request header, with
``RemoteUserBackend`` creating the user on first sight. The database is
SQLite in memory, so the anchor pays for its queries but never for disk.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import django
from django.conf import settings

#: Header the anchor trusts, as Django's docs show for a front proxy that authenticated.
REMOTE_USER_HEADER = "X-Remote-User"

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="benchmark-only-not-secret",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        AUTHENTICATION_BACKENDS=["django.contrib.auth.backends.RemoteUserBackend"],
        MIDDLEWARE=[],
        USE_TZ=True,
        LOGGING_CONFIG=None,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()

from django.contrib.auth.middleware import RemoteUserMiddleware  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


class HeaderRemoteUserMiddleware(RemoteUserMiddleware):
    header = "HTTP_" + REMOTE_USER_HEADER.upper().replace("-", "_")


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"hello", content_type="text/plain")


urlpatterns = [path("", hello)]


@cache
def _migrated() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def _handler(middleware: list[str]) -> Any:
    _migrated()
    settings.MIDDLEWARE = middleware
    try:
        return WSGIHandler()
    finally:
        settings.MIDDLEWARE = []


def bare() -> Any:
    return _handler([])


def remote_user_anchor() -> Any:
    return _handler(
        [
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            f"{__name__}.HeaderRemoteUserMiddleware",
        ]
    )
