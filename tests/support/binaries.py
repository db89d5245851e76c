"""Find a server binary the tests run for real (slapd, nginx, traefik, envoy, caddy, ...).

Under CI (``CI`` set, as ``.ci/run`` runs) a missing binary fails the test: CI installs
every one, so a skip there would hide a broken install step. On a developer's machine
the test is skipped with the command that installs the binary, so the README's test
command still runs on a machine that has only Python and pip.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

__all__ = ["curl_binary", "needs_curl", "require_binary"]


def require_binary(name: str, *, install: str, candidates: tuple[str, ...] = ()) -> str:
    """The path of ``name`` (first on PATH, beside this Python, or in ``candidates``).

    ``install`` says how to get it, e.g. ``"apt-get install slapd"``.
    """
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        found = next((path for path in candidates if os.access(path, os.X_OK)), None)
    if found is not None:
        return found
    message = f"{name} is not installed; install it with: {install}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (.ci/run must install it)", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def curl_binary() -> str:
    """curl, for the tests that drive the gate with the forward-proxy client people use."""
    return require_binary("curl", install="apt-get install curl")


#: Mark a test that runs curl: skipped without it on a developer's machine, failed in CI.
needs_curl = pytest.mark.usefixtures("curl_binary")
