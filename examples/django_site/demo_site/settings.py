"""Settings of the demo site: proxygate first in MIDDLEWARE, options in PROXYGATE."""

import os
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
# A forward-proxy client asks for http://myservice.internal/...: Django takes the host
# from that target and answers 400 to one not listed here (proxygate's check W002 warns).
ALLOWED_HOSTS = ["myservice.internal", "127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "proxygate.contrib.django",  # registers proxygate's system checks
]

MIDDLEWARE = [
    "proxygate.contrib.django.ProxyGateMiddleware",  # first: it sees every response
    "django.middleware.common.CommonMiddleware",
]

PROXYGATE = {
    "users": os.environ.get("DEMO_USERS_FILE", str(EXAMPLES / "users.htpasswd")),
    "realm": "examples",
    "exempt_paths": ["/healthz"],
}

ROOT_URLCONF = "demo_site.urls"
WSGI_APPLICATION = "demo_site.wsgi.application"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
