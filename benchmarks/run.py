"""Run every benchmark case and write ``results.md`` and ``added-cost.png``.

    python benchmarks/run.py                 # full run, about 15 minutes on 2 cores
    python benchmarks/run.py --smoke         # seconds: proves the scripts work, judges nothing
    python benchmarks/run.py --only asgi-auth --only wsgi-flask
    python benchmarks/run.py --smoke --out /tmp/bench

Exits 1 when a case errors, 0 otherwise; a missed target is reported in the
table, not in the exit code (a noisy neighbour must not fail a build).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from pathlib import Path

from checkout import ensure_proxygate_importable

ensure_proxygate_importable()

from cases import CASES  # noqa: E402
from harness import HERE, CaseResult, Settings  # noqa: E402

CHART_NAME = "added-cost.png"


class _QuietConstruction(logging.Filter):
    """Drop the WSGI shell's once-per-construction proxy-mode notice: this run builds dozens."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("proxygate WSGI proxy mode")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="a few requests per case, no targets: for CI")
    parser.add_argument("--only", action="append", metavar="CASE",
                        choices=[c.case_id for c in CASES],
                        help="run only this case (repeatable): " + ", ".join(c.case_id for c in CASES))
    parser.add_argument("--out", type=Path, default=None,
                        help="where results.md, the chart and profiles go "
                             "(default: benchmarks/ for a complete full run, else benchmarks/out/)")
    parser.add_argument("--no-profile", action="store_true", help="skip the hot-path profile")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("proxygate").addFilter(_QuietConstruction())
    # Only a complete full run replaces the committed results.
    out: Path = args.out or (HERE if not args.smoke and not args.only else HERE / "out")
    out.mkdir(parents=True, exist_ok=True)
    settings = Settings.quick(out) if args.smoke else Settings.full(out)
    selected = [c for c in CASES if not args.only or c.case_id in args.only]

    started = time.monotonic()
    results: list[CaseResult] = []
    for case in selected:
        result = CaseResult(case.case_id, case.title, case.anchor, target=case.target,
                            target_text=str(case.target) if case.target else "report the ratio")
        t0 = time.monotonic()
        print(f"[{time.monotonic() - started:6.1f}s] {case.case_id} …", flush=True)
        try:
            case.run(settings, result)
        except Exception:
            result.error = traceback.format_exc()
        result.judge(settings)
        results.append(result)
        status = result.error.splitlines()[-1] if result.error else (
            f"ratio {result.ratio_cell}" + ("" if result.met is None else
                                            ("  met" if result.met else "  MISSED")))
        print(f"          {case.case_id}: {status} ({time.monotonic() - t0:.1f} s)", flush=True)

    profile_md: list[str] = []
    if not args.no_profile and not args.only:
        print(f"[{time.monotonic() - started:6.1f}s] profiling the hot path …", flush=True)
        from hot_path_profile import profile_hot_path

        try:
            profile_md = profile_hot_path(out, 500 if args.smoke else 50_000)
        except Exception:
            profile_md = ["## Profile of the hot path", "", "```", traceback.format_exc(), "```"]

    import report

    chart = report.write_chart(out / CHART_NAME, results)
    results_path = out / "results.md"
    report.write_markdown(results_path, settings, results, seconds=time.monotonic() - started,
                          chart=chart, profile_md=profile_md)
    print(f"wrote {results_path}" + (f" and {chart}" if chart else ""), flush=True)
    for r in results:
        if r.error and not r.error.startswith("skipped"):
            print(f"\n{r.case_id} failed:\n{r.error}", file=sys.stderr)
    return 1 if any(r.error and not r.error.startswith("skipped") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
