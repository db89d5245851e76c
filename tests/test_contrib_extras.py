"""Each adapter imported without its framework says which extra to install."""

from __future__ import annotations

import subprocess
import sys

import pytest

from support.servers import child_env


@pytest.mark.parametrize(
    ("module", "extra", "absent"),
    [
        ("proxygate.contrib.django", "django", ["asgiref"]),
        ("proxygate.contrib.django", "django", ["django"]),
        ("proxygate.contrib.flask", "flask", ["flask"]),
        ("proxygate.contrib.flask", "flask", ["werkzeug"]),
        ("proxygate.contrib.starlette", "starlette", ["starlette"]),
    ],
)
def test_an_adapter_without_its_framework_names_the_extra(
    module: str, extra: str, absent: list[str]
) -> None:
    # A None entry in sys.modules makes the import fail as if the package were not installed.
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in absent)
    code = f"import sys; {blocked}; import {module}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=child_env(), timeout=60, check=False)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last == (f"ModuleNotFoundError: {module} needs the {extra!r} extra "
                    f"({absent[0]} is not installed): pip install 'proxygate[{extra}]'")
