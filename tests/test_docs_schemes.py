"""Every client snippet in docs/schemes.md, run as written against real servers.

Only the addresses change: ``http://proxy.internal:8080`` becomes a proxy-mode server,
``http://app.internal:8000`` an origin-mode one, and ``$TOKEN`` / ``TOKEN`` a real token.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxygate.auth.digest_file import digest_fields
from proxygate.auth.tokens import hash_token, new_token
from support.binaries import require_binary
from support.servers import RunningServer
from test_schemes_clients import uvicorn

pytestmark = pytest.mark.server

DOC = Path(__file__).resolve().parent.parent / "docs" / "schemes.md"
SNIPPET = re.compile(r"<!-- snippet: ([a-z-]+) -->\n```(console|python)\n(.*?)\n```", re.DOTALL)
TOKEN = new_token()


def snippets() -> dict[str, tuple[str, str]]:
    return {name: (kind, code) for name, kind, code in SNIPPET.findall(DOC.read_text())}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RunningServer]]:
    folder = tmp_path_factory.mktemp("docs")
    users = folder / "users.digest"
    users.write_text("alice:internal:" + digest_fields("alice", "internal", "wonderland",
                                                       ("MD5", "SHA-256", "SHA-512-256")) + "\n")
    tokens = folder / "tokens"
    tokens.write_text(f"ci-deploy:{hash_token(TOKEN)}\n")
    common = {"users": str(users), "tokens": str(tokens)}
    # urllib reads the first challenge only and knows MD5 only: Digest and MD5 go first.
    with uvicorn({**common, "schemes": ["digest", "basic", "bearer"],
                  "digest_algorithms": ["MD5", "SHA-256"]}) as proxy, \
            uvicorn({**common, "schemes": ["digest", "bearer"], "mode": "origin"}) as origin:
        yield {"proxy": proxy, "origin": origin}


def localize(code: str, servers: dict[str, RunningServer]) -> str:
    return (code.replace("http://proxy.internal:8080", servers["proxy"].url)
            .replace("http://app.internal:8000", servers["origin"].url))


def test_the_page_has_the_snippets_this_test_knows() -> None:
    assert sorted(snippets()) == sorted([
        "curl-proxy-digest", "curl-digest", "httpx-digest", "requests-digest",
        "urllib-proxy-digest", "curl-proxy-bearer", "curl-bearer", "httpx-bearer"])


@pytest.mark.parametrize("name", sorted(snippets()))
def test_a_snippet_works_as_written(name: str, servers: dict[str, RunningServer],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)  # the snippets' own proxy, nobody else's
    kind, code = snippets()[name]
    code = localize(code, servers)
    if kind == "console":
        require_binary("curl", install="apt-get install curl")
        command = code.removeprefix("$ ")
        done = subprocess.run(["bash", "-c", command + " --fail -sS --max-time 20"],
                              capture_output=True, text=True, timeout=60, check=False,
                              env={"PATH": "/usr/bin:/bin", "TOKEN": TOKEN})
        assert done.returncode == 0, done.stderr
        body: Any = json.loads(done.stdout)
    else:
        namespace: dict[str, Any] = {"TOKEN": TOKEN}
        exec(compile(code, f"docs/schemes.md:{name}", "exec"), namespace)
        response = namespace["response"]
        raw = response.read() if hasattr(response, "read") and not hasattr(response, "json") \
            else response.content
        body = json.loads(raw)
    assert body["user"] == ("ci-deploy" if "bearer" in name else "alice")
