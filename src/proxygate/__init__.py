"""proxygate: proxy-style authentication (407/401) and one JSON error envelope for ASGI and WSGI.

The public face is small::

    from proxygate.asgi import ProxyGateMiddleware      # or proxygate.wsgi
    app = ProxyGateMiddleware(app, users="users.htpasswd", realm="internal")
"""

from proxygate.auth.hashing import hash_password, verify_password
from proxygate.auth.schemes.basic import BasicChallenge, BasicCredentials
from proxygate.auth.throttle import MemoryThrottleStore, ThrottleStore
from proxygate.auth.tokens import hash_token
from proxygate.auth.users import HtpasswdUsers, MappingUsers
from proxygate.config import Config, ConfigError
from proxygate.errors.envelope import ErrorResponse
from proxygate.errors.exceptions import MappedError
from proxygate.gate import Gate, Identity

__version__ = "0.1.0"

__all__ = [
    "BasicChallenge",
    "BasicCredentials",
    "Config",
    "ConfigError",
    "ErrorResponse",
    "Gate",
    "HtpasswdUsers",
    "Identity",
    "MappedError",
    "MappingUsers",
    "MemoryThrottleStore",
    "ThrottleStore",
    "__version__",
    "hash_password",
    "hash_token",
    "verify_password",
]
