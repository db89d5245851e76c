"""Native adapters: proxygate the way Django, Flask and Starlette/FastAPI users already work.

Each module imports its own framework and nothing else does: ``proxygate.contrib.django``,
``proxygate.contrib.flask``, ``proxygate.contrib.starlette``. They translate settings,
hooks and identities; every decision stays in :class:`proxygate.Gate`.
"""
