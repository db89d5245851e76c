"""Audit the installed test environment for known vulnerabilities: pip-audit, then PyPI's JSON API.

Run with the environment's own Python: ``python .ci/audit_dependencies.py PATH/TO/pip-audit``
(pip-audit lives in a venv of its own, so its dependencies are not what gets audited).

pip-audit's PyPI service asks ``/pypi/<name>/<version>/json``. Where that answers, pip-audit
decides alone. Where it does not (a mirror or proxy that serves only ``/pypi/<name>/json``,
and OSV unreachable), pip-audit reports every package as "not found" and passes having
audited nothing. For each package it skipped, this script reads ``/pypi/<name>/json``,
whose ``vulnerabilities`` are those of the latest release: they are the installed
version's exactly when the installed version is the latest. Anything else is listed as
not audited, by name and version.

Fails on any known vulnerability, and when nothing at all could be audited (a check
that audits nothing proves nothing).
"""

from __future__ import annotations

import concurrent.futures
import importlib.metadata
import json
import re
import subprocess
import sys
import sysconfig
import urllib.error
import urllib.request
from typing import Any

PYPI = "https://pypi.org/pypi/{name}/json"
#: Ours: installed from the checkout, not from PyPI.
LOCAL = {"proxygate"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, str]:
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = canonical(dist.metadata["Name"] or "")
        if name and name not in LOCAL:
            found[name] = dist.version
    return found


def run_pip_audit(pip_audit: str) -> dict[str, list[str]] | None:
    """{name: [vulnerability ids]} for what pip-audit audited; None if it could not run."""
    site = sysconfig.get_paths()["purelib"]
    command = [pip_audit, "--format", "json", "--progress-spinner", "off", "--path", site]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    try:
        report = json.loads(result.stdout)
    except ValueError:
        print(f"pip-audit gave no report (exit {result.returncode}):\n{result.stderr[-2000:]}")
        return None
    audited: dict[str, list[str]] = {}
    for dependency in report.get("dependencies", []):
        if "skip_reason" in dependency:
            continue
        audited[canonical(dependency["name"])] = [v["id"] for v in dependency.get("vulns", [])]
    return audited


def latest_release(name: str) -> dict[str, Any] | None:
    for _attempt in range(3):
        try:
            with urllib.request.urlopen(PYPI.format(name=name), timeout=20) as response:
                document: dict[str, Any] = json.load(response)
                return document
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
        except (urllib.error.URLError, TimeoutError, ValueError):
            pass
    return None


def main() -> int:
    pip_audit = sys.argv[1] if len(sys.argv) > 1 else "pip-audit"
    packages = installed()
    audited = run_pip_audit(pip_audit) or {}
    print(f"pip-audit audited {len(audited)} of {len(packages)} installed packages")
    rest = sorted(set(packages) - set(audited))
    not_audited: list[str] = []
    from_latest = 0
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for name, document in zip(rest, pool.map(latest_release, rest), strict=True):
            latest = document["info"]["version"] if document else None
            if document is None or latest != packages[name]:
                not_audited.append(f"{name} {packages[name]} (latest on PyPI: {latest or '?'})")
                continue
            from_latest += 1
            audited[name] = [v["id"] for v in document.get("vulnerabilities", [])
                             if not v.get("withdrawn")]
    print(f"PyPI's JSON API audited {from_latest} more (installed version is the latest)")
    found = {name: ids for name, ids in audited.items() if ids}
    for name, ids in sorted(found.items()):
        print(f"VULNERABLE: {name} {packages.get(name, '?')}: {', '.join(ids)}")
    if not_audited:
        print(f"not audited ({len(not_audited)}): PyPI's per-version JSON is unreachable from "
              "here and the installed version is not the latest:")
        for line in not_audited:
            print(f"  {line}")
    if not audited:
        print("nothing could be audited: failing, an audit of nothing proves nothing")
        return 1
    if found:
        return 1
    print(f"no known vulnerabilities in {len(audited)} audited packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
