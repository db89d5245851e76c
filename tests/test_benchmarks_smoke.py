"""The benchmark scripts still run: a smoke run writes a results table with every case in it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# The test extra installs the anchors: a smoke run that skips itself would prove nothing,
# so a missing one fails here, by name.
import django  # noqa: F401
import flask_httpauth  # noqa: F401
import matplotlib  # noqa: F401
import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "run.py"


def checkout_env() -> dict[str, str]:
    """This checkout's src first: the venv may hold another checkout's editable install."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return env

def registered_cases() -> list[str]:
    """Every case ``benchmarks/cases.py`` lists: a case added there is smoke-run here too."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import cases  # the benchmarks' registry

        return [case.case_id for case in cases.CASES]
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


#: The rows issue 15 asked for, which must never silently leave the table.
ISSUE_15_ROWS = ("e2e-uvicorn", "asgi-429", "flood-429", "import-time", "first-200", "asgi-404")


def test_the_registry_keeps_every_row_issue_15_asked_for() -> None:
    assert set(ISSUE_15_ROWS) <= set(registered_cases())


@pytest.mark.server
# Under a minute on an idle 2-core machine, twice that with neighbours: several cases
# start real servers (uvicorn, gunicorn, nginx, slapd).
@pytest.mark.timeout(200)
def test_smoke_run_writes_a_row_for_every_case(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False, env=checkout_env(),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = (tmp_path / "results.md").read_text(encoding="utf-8")
    rows = [line for line in results.splitlines() if line.startswith("| ")]
    for case_id in registered_cases():
        assert any(row.startswith(f"| {case_id}: ") for row in rows), f"no row for {case_id}"
    assert "Smoke run" in results
    assert (tmp_path / "added-cost.png").stat().st_size > 0


def test_smoke_run_leaves_the_committed_results_alone(tmp_path: Path) -> None:
    committed = ROOT / "benchmarks" / "results.md"
    before = committed.read_bytes() if committed.exists() else None
    done = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--only", "asgi-auth", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False, env=checkout_env(),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "results.md").exists()
    after = committed.read_bytes() if committed.exists() else None
    assert before == after
