"""The example services of examples/ as the tests use them: loaded in process, or as server commands.

Every example reads its users file from ``DEMO_USERS_FILE``; :func:`demo_users_file`
writes one per test process with the documented demo user hashed at bcrypt cost 4,
so failed logins cost microseconds instead of a quarter second. Django can be set
up once per process, so every test module that needs it calls :func:`setup_django`,
which configures the example site (tests vary it with ``override_settings``).
"""

from __future__ import annotations

import atexit
import importlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DEMO_PASSWORD",
    "DEMO_USER",
    "DJANGO_SITE",
    "EXAMPLES",
    "ExampleServer",
    "demo_users_file",
    "load_example",
    "server_for",
    "setup_django",
]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DJANGO_SITE = EXAMPLES / "django_site"
DEMO_USER = "demo"
DEMO_PASSWORD = "demo-password"  # the documented demo account

_USERS_FILE = Path(tempfile.gettempdir()) / f"proxygate-demo-users-{os.getpid()}.htpasswd"


def demo_users_file() -> Path:
    """The fast users file for this process, also exported as ``DEMO_USERS_FILE``."""
    if not _USERS_FILE.exists():
        from proxygate.auth.hashing import hash_password

        line = f"{DEMO_USER}:{hash_password(DEMO_PASSWORD, 'bcrypt', rounds=4)}\n"
        partial = _USERS_FILE.with_suffix(".partial")
        partial.write_text(line)
        partial.replace(_USERS_FILE)
        atexit.register(_USERS_FILE.unlink, missing_ok=True)
    os.environ["DEMO_USERS_FILE"] = str(_USERS_FILE)
    return _USERS_FILE


def _importable(path: Path) -> None:
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def setup_django() -> None:
    """Configure Django with the example site's settings, once per process."""
    from django.conf import settings

    if settings.configured:
        return
    demo_users_file()
    _importable(DJANGO_SITE)
    os.environ["DJANGO_SETTINGS_MODULE"] = "demo_site.settings"
    import django

    django.setup()


def load_example(name: str) -> tuple[str, Any]:
    """``("wsgi" | "asgi", app)`` for an example, imported in this process."""
    demo_users_file()
    if name in ("django_wsgi", "django_asgi"):
        setup_django()
        if name == "django_wsgi":
            from django.core.wsgi import get_wsgi_application

            return "wsgi", get_wsgi_application()
        from django.core.asgi import get_asgi_application

        return "asgi", get_asgi_application()
    _importable(EXAMPLES)
    module = importlib.import_module(name)
    if name == "plain_wsgi":
        return "wsgi", module.application
    return ("wsgi" if name == "flask_app" else "asgi"), module.app


@dataclass(frozen=True)
class ExampleServer:
    """How one example runs under one real server."""

    example: str
    server: str  # gunicorn, uvicorn, runserver
    command: tuple[str, ...]
    cwd: Path
    #: Whether a 407's Proxy-Authenticate reaches the client through this server.
    passes_proxy_authenticate: bool
    ready: str | None = None


def server_for(example: str, server: str) -> ExampleServer:
    python = sys.executable
    gunicorn = (python, "-m", "gunicorn", "--bind", "127.0.0.1:{port}", "--workers", "1",
                "--access-logfile", "-")
    uvicorn = (python, "-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}")
    table: dict[tuple[str, str], tuple[tuple[str, ...], Path]] = {
        ("plain_wsgi", "gunicorn"): ((*gunicorn, "plain_wsgi:application"), EXAMPLES),
        ("flask_app", "gunicorn"): ((*gunicorn, "flask_app:app"), EXAMPLES),
        ("django_wsgi", "gunicorn"): ((*gunicorn, "demo_site.wsgi"), DJANGO_SITE),
        ("django_wsgi", "runserver"): (
            (python, "manage.py", "runserver", "127.0.0.1:{port}", "--noreload"), DJANGO_SITE),
        ("plain_asgi", "uvicorn"): ((*uvicorn, "plain_asgi:app"), EXAMPLES),
        ("starlette_app", "uvicorn"): ((*uvicorn, "starlette_app:app"), EXAMPLES),
        ("fastapi_app", "uvicorn"): ((*uvicorn, "fastapi_app:app"), EXAMPLES),
        ("django_asgi", "uvicorn"): ((*uvicorn, "demo_site.asgi:application"), DJANGO_SITE),
    }
    command, cwd = table[(example, server)]
    ready = {"gunicorn": "Booting worker", "uvicorn": "Application startup complete",
             "runserver": "Quit the server"}[server]
    return ExampleServer(example, server, command, cwd,
                         passes_proxy_authenticate=server == "uvicorn", ready=ready)
