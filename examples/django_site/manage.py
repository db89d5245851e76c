#!/usr/bin/env python
"""A small Django site behind proxygate's Django middleware.

Needs ``pip install "proxygate[django,gunicorn,serve]"`` (``serve`` brings uvicorn). From
the checkout's root, start one of the three servers and try it (demo user ``demo``, password
``demo-password``, from ``examples/users.htpasswd``)::

    cd examples/django_site
    python manage.py check                                     # proxygate's system checks too
    gunicorn demo_site.wsgi --bind 127.0.0.1:8000
    python manage.py runserver 8000                            # Django's development server
    uvicorn demo_site.asgi:application --port 8000             # the same site under ASGI
    curl -x http://127.0.0.1:8000 --proxy-user demo:demo-password http://myservice.internal/whoami

The ``curl`` line asks for ``myservice.internal`` through the site as a forward proxy:
that name is in ``ALLOWED_HOSTS`` (demo_site/settings.py), or Django would answer 400.

``DJANGO_DEBUG=1`` turns Django's DEBUG on (the technical pages still become envelopes);
``DEMO_USERS_FILE`` points at another htpasswd file (``proxygate users add FILE NAME``).
"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
