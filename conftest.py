"""Every code block in README.md, the other top-level *.md files and docs/*.md runs in the suite.

Collected by Sybil (why Sybil: README.md, "Developing"). Each page runs top to bottom
in one namespace, in a fresh directory holding ``users.htpasswd`` with the user
``alice``, password ``secret`` (bcrypt cost 4), with ``app`` standing for the reader's
own ASGI app until a block defines one.

- ```python blocks run; ```json and ```toml blocks must parse; a ```toml block whose
  first line is ``# NAME.toml`` is also written to NAME.toml for the blocks after it.
- ``<!-- invisible-code-block: python -->`` adds setup or checks a reader does not need.
- ``<!-- skip: next "fragment: why" -->`` before a block marks it a fragment: it is
  reported as skipped with that reason, never run by accident or left out unnoticed.
- ```console blocks are not run here; the commands that matter have their own tests
  (tests/test_quick_start.py, tests/test_example_commands.py, tests/test_cli_*.py).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from sybil import Example, Sybil
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

from proxygate.auth.hashing import hash_password

_PREVIOUS_DIRECTORY = "__previous_directory__"
_PAGE_DIRECTORY = "__page_directory__"


async def your_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The reader's own ASGI app, in blocks that wrap it: answers 200 to every request."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"your app"})


def _setup(namespace: dict[str, Any]) -> None:
    directory = tempfile.mkdtemp(prefix="proxygate-docs-")
    namespace[_PREVIOUS_DIRECTORY] = os.getcwd()
    namespace[_PAGE_DIRECTORY] = directory
    os.chdir(directory)
    Path("users.htpasswd").write_text(f"alice:{hash_password('secret', 'bcrypt', rounds=4)}\n")
    namespace["app"] = your_app
    namespace["__name__"] = "__main__"  # Flask(__name__) finds its root path from it


def _teardown(namespace: dict[str, Any]) -> None:
    directory = namespace[_PAGE_DIRECTORY]
    os.chdir(namespace[_PREVIOUS_DIRECTORY])
    sys.path[:] = [entry for entry in sys.path if not entry.startswith(directory)]
    # Removed at exit, not now: the page's gates still watch their users file, and
    # would log it missing for the rest of the run.
    atexit.register(shutil.rmtree, directory, ignore_errors=True)


def _parses_as_json(example: Example) -> None:
    json.loads(example.parsed)


def _parses_as_toml(example: Example) -> None:
    text = str(example.parsed)
    tomllib.loads(text)
    first = text.splitlines()[0] if text else ""
    if first.startswith("# ") and first.endswith(".toml"):
        Path(first[2:].strip()).write_text(text)


pytest_collect_file = Sybil(
    parsers=[
        SkipParser(),
        PythonCodeBlockParser(),
        CodeBlockParser(language="json", evaluator=_parses_as_json),
        CodeBlockParser(language="toml", evaluator=_parses_as_toml),
    ],
    patterns=["*.md"],
    setup=_setup,
    teardown=_teardown,
).pytest()
