"""Writing the results: ``results.md`` (table, versions, machine, details) and the chart."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from harness import HERE, CaseResult, Settings

MEASURED_PACKAGES = (
    "proxygate", "starlette", "flask", "flask-httpauth", "django", "uvicorn", "gunicorn",
    "werkzeug", "libpass", "bcrypt",
)


def package_versions() -> dict[str, str]:
    versions = {"python": f"{platform.python_implementation()} {platform.python_version()}"}
    for name in MEASURED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    if versions["proxygate"] == "not installed":
        # Run from a checkout without `pip install -e .`: name the source instead.
        import proxygate

        where = Path(proxygate.__file__).parent
        versions["proxygate"] = f"{getattr(proxygate, '__version__', '?')} (from {where})"
    commit = _git("rev-parse", "--short", "HEAD")
    if commit:
        dirty = _git("status", "--porcelain", "--", "src") or ""
        versions["proxygate"] += f", checkout {commit}{' + uncommitted src changes' if dirty else ''}"
    import servers

    versions["wrk"] = servers.wrk_version()
    return versions


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "unknown"
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                    break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "nproc": str(usable),
        "cpu": cpu,
        "memory": mem,
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        # Other work on the machine moves absolute times; the paired ratios less so.
        "load average at the end (1, 5, 15 min)": ", ".join(f"{v:.2f}" for v in os.getloadavg()),
    }


def verdict(result: CaseResult) -> str:
    if result.error:
        return "skipped" if result.error.startswith("skipped") else "**error**"
    if result.met is None:
        return "—"
    return "met" if result.met else "**missed**"


def write_markdown(path: Path, settings: Settings, results: Sequence[CaseResult],
                   *, seconds: float, chart: Path | None, profile_md: list[str]) -> None:
    versions = package_versions()
    box = machine()
    lines: list[str] = []
    add = lines.append
    add("# proxygate benchmarks")
    add("")
    if settings.smoke:
        add("**Smoke run**: a few requests per case to prove the scripts work. The numbers below "
            "mean nothing and no target is judged.")
        add("")
    add(f"Run `python benchmarks/run.py{' --smoke' if settings.smoke else ''}` on "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {seconds:.0f} s wall time. "
        "Costs are microseconds per request, in process (no server, no socket): "
        "the median over rounds of the paired difference from the bare app, with its "
        "interquartile range. See README.md for the method.")
    add("")
    add("| case | anchor | anchor's added cost | proxygate | ratio (proxygate ÷ anchor) | target | |")
    add("|---|---|---|---|---|---|---|")
    for r in results:
        if r.error:
            add(f"| {r.case_id}: {r.title} | {r.anchor} | — | {r.error.splitlines()[0][:160]} "
                f"| — | {r.target_text} | {verdict(r)} |")
            continue
        add(f"| {r.case_id}: {r.title} | {r.anchor} | {r.anchor_cell} | {r.proxygate_cell} "
            f"| {r.ratio_cell} | {r.target_text} | {verdict(r)} |")
    add("")
    if chart is not None:
        add(f"![added cost per request]({chart.name})")
        add("")
    add("## Machine")
    add("")
    for key, value in box.items():
        add(f"- {key}: {value}")
    add("")
    add("## Versions")
    add("")
    for key, value in versions.items():
        add(f"- {key}: {value}")
    add("")
    add("## Cases in detail")
    for r in results:
        add("")
        add(f"### {r.case_id}: {r.title}")
        add("")
        add(f"Anchor: {r.anchor}. Target: {r.target_text}.")
        if r.error:
            add("")
            add("```")
            add(r.error.rstrip())
            add("```")
        if r.details:
            add("")
            lines.extend(r.details)
    if profile_md:
        add("")
        lines.extend(profile_md)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_chart(path: Path, results: Sequence[CaseResult]) -> Path | None:
    with_bars = [r for r in results if r.bars and not r.error]
    if not with_bars:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height = 0.8 + sum(0.45 * len(r.bars) + 0.6 for r in with_bars)
    fig, axes = plt.subplots(len(with_bars), 1, figsize=(8, height), squeeze=False,
                             gridspec_kw={"height_ratios": [len(r.bars) for r in with_bars]})
    for ax, r in zip(axes[:, 0], with_bars, strict=True):
        labels = [b.contender for b in r.bars]
        medians = [b.median_us for b in r.bars]
        lower = [b.median_us - b.q1_us for b in r.bars]
        upper = [b.q3_us - b.median_us for b in r.bars]
        colors = ["#1f77b4" if b.is_proxygate else "#b0b0b0" for b in r.bars]
        ys = range(len(r.bars))
        ax.barh(ys, medians, xerr=[lower, upper], color=colors, capsize=3, height=0.6)
        ax.set_yticks(list(ys), labels, fontsize=8)
        ax.axvline(0, color="black", linewidth=0.6)
        ax.set_title(f"{r.case_id}: {r.title}", fontsize=9, loc="left")
        ax.tick_params(axis="x", labelsize=8)
        for y, b in zip(ys, r.bars, strict=True):
            ax.annotate(f"{b.median_us:.2f} µs", (max(b.median_us, b.q3_us), y), xytext=(6, 0),
                        textcoords="offset points", va="center", fontsize=7)
        ax.margins(x=0.18)
    axes[-1, 0].set_xlabel("added cost per request over the bare app (µs, median, IQR bars)")
    fig.suptitle("proxygate (blue) beside the anchors (grey), in process", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
