"""Memory: a million failed logins with distinct names, each scenario in a fresh process.

``memory_probe.py`` runs the flood and reads its own resident memory; this module starts
it once per scenario and tabulates what it reports."""

from __future__ import annotations

import json
import subprocess
import sys

from harness import HERE, CaseResult, Settings, subprocess_env


def memory_failed_logins(settings: Settings, result: CaseResult) -> None:
    reports = []
    for scenario in ("one-client", "many-clients"):
        cmd = [sys.executable, str(HERE / "memory_probe.py"), "--scenario", scenario,
               "--logins", str(settings.memory_logins)]
        done = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True,
                              timeout=900, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"memory probe ({scenario}) failed ({done.returncode}): "
                               f"{done.stderr[-2000:]}")
        reports.append(json.loads(done.stdout.strip().splitlines()[-1]))
    result.raw["memory"] = reports
    growth = {r["scenario"]: r["growth_kib"] / 1024 for r in reports}
    worst = max(growth.values())
    result.proxygate_cell = "; ".join(f"{name}: +{mib:.1f} MiB RSS" for name, mib in growth.items())
    result.ratio_cell = f"+{worst:.1f} MiB (worst)"
    result.ratio_value = worst
    result.details.append(
        f"{settings.memory_logins:,} failed logins through `proxygate.wsgi.ProxyGateMiddleware`, "
        "each with a user name never seen before and a wrong password, in a fresh process per "
        "scenario; VmRSS read from /proc/self/status after a short warm-up and again after the "
        "flood (garbage collected). The target applies to the worst scenario."
    )
    result.details.append("")
    result.details.append("| scenario | setup | responses | RSS before → after | growth | peak | "
                          "failed logins/s |")
    result.details.append("|---|---|---|---|---|---|---|")
    for r in reports:
        result.details.append(
            f"| {r['scenario']} | {r['setup']} | {r['statuses']} | "
            f"{r['rss_before_kib'] / 1024:.1f} → {r['rss_after_kib'] / 1024:.1f} MiB | "
            f"+{r['growth_kib'] / 1024:.1f} MiB | {r['hwm_kib'] / 1024:.1f} MiB | "
            f"{r['logins'] / r['seconds']:,.0f} |"
        )
