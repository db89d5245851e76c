"""SECURITY.md names, for each promise, the test that proves it: every one of those tests exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "SECURITY.md"
#: ``tests/test_x.py::test_name`` as SECURITY.md writes a proof.
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test_")}


def test_every_proof_named_in_security_md_is_a_test_that_exists() -> None:
    references = REFERENCE.findall(POLICY.read_text(encoding="utf-8"))
    assert len(references) >= 20, "SECURITY.md names fewer proofs than it has promises"
    missing = []
    for file, name in references:
        path = ROOT / file
        if not path.is_file() or name not in _tests_in(path):
            missing.append(f"{file}::{name}")
    assert not missing, f"SECURITY.md names tests that do not exist: {missing}"
