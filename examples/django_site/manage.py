#!/usr/bin/env python
"""A small Django site behind proxygate's Django middleware.

Run it (demo user ``demo``, password ``demo-password``, from ``examples/users.htpasswd``)::

    cd examples/django_site
    python manage.py check                                   # proxygate's system checks too
    gunicorn demo_site.wsgi --bind 127.0.0.1:8000             # or: python manage.py runserver
    uvicorn demo_site.asgi:application --port 8000            # the same site under ASGI
    curl -x http://127.0.0.1:8000 --proxy-user demo:demo-password http://127.0.0.1:8000/whoami

``DJANGO_DEBUG=1`` turns Django's DEBUG on (the technical pages still become envelopes);
``DEMO_USERS_FILE`` points at another htpasswd file (``proxygate users add FILE NAME``).
"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
