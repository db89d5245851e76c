"""The rules that keep the documentation's code blocks honest (README.md, "Developing")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([*ROOT.glob("*.md"), *(ROOT / "docs").glob("*.md")])
#: python runs, json and toml must parse (conftest.py); the rest is shown, not run.
LANGUAGES = {"python", "json", "toml", "console", "text", "markdown"}
FENCE = re.compile(r"^\s*```(.*)$")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_block_says_its_language_so_none_is_left_out_by_accident(page: Path) -> None:
    inside = False
    for number, line in enumerate(page.read_text().splitlines(), 1):
        match = FENCE.match(line)
        if match is None:
            continue
        if not inside:
            assert match[1].strip() in LANGUAGES, f"{page.name}:{number}: ```{match[1]}"
        inside = not inside
    assert not inside, f"{page.name}: a block is never closed"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_a_skipped_block_is_a_named_fragment(page: Path) -> None:
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if re.match(r"\s*<!--+\s*skip\b", line):
            assert re.fullmatch(r'\s*<!-- skip: next "fragment: [^"]+" -->', line), \
                f"{page.name}:{number}: {line.strip()}"
