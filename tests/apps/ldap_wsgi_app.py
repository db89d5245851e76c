"""The WSGI test app behind a directory, its connection pool used once before gunicorn forks.

``gunicorn --preload apps.ldap_wsgi_app:gated``: the master imports this module, logs
``$PROXYGATE_TEST_LDAP_WARM`` (``user:password``) in against the directory, so pooled
connections exist before the fork; each worker must then open its own.
"""

from __future__ import annotations

import os

from apps.wsgi_app import gated

__all__ = ["gated"]

_warm = os.environ.get("PROXYGATE_TEST_LDAP_WARM")
if _warm:
    _user, _, _password = _warm.partition(":")
    if gated.gate.users.verify(_user, _password) is None:
        raise RuntimeError("the warm-up login against the directory failed")
