"""Native adapters: proxygate the way Django, Flask and Starlette/FastAPI users already work.

Each module imports its own framework and nothing else does: ``proxygate.contrib.django``,
``proxygate.contrib.flask``, ``proxygate.contrib.starlette``. They translate settings,
hooks and identities; every decision stays in :class:`proxygate.Gate`.
"""

__all__ = ["missing_extra"]


def missing_extra(module: str, extra: str, exc: ModuleNotFoundError) -> ModuleNotFoundError:
    """The error an adapter raises when its framework is absent: it names the extra to install."""
    package = (exc.name or "a dependency").partition(".")[0]
    return ModuleNotFoundError(
        f"{module} needs the {extra!r} extra ({package} is not installed): "
        f"pip install 'proxygate[{extra}]'",
        name=exc.name,
    )
