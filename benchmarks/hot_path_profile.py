"""Where proxygate's time goes on the hot path: authenticated requests with a cached credential.

Two views of each loop of requests (ASGI and WSGI with a cached credential,
and the ASGI envelope rewriting an app's 404):

- cProfile, restricted to functions in proxygate's own files, ranked by the
  time spent in the function itself, with ``file:line`` (deterministic,
  counts every call, inflates tiny functions);
- pyinstrument's call tree (sampling, so proportions stay honest), written
  next to the results as ``profile-<path>.txt``.

Run alone: ``python benchmarks/hot_path_profile.py [--requests N] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
from collections.abc import Callable
from pathlib import Path

from checkout import ensure_proxygate_importable

ensure_proxygate_importable()

from drive import AsgiDriver, Request, basic, wsgi_contender  # noqa: E402

import apps  # noqa: E402

_PROXYGATE_MARK = "/proxygate/"


#: (title, what is profiled) for each loop below.
PATHS = {
    "asgi": "ASGI: authenticated request, cached credential (Starlette + ProxyGateMiddleware)",
    "wsgi": "WSGI: authenticated request, cached credential (Flask + ProxyGateMiddleware)",
    "asgi-404": "ASGI: the app's 404 rewritten to the envelope (Starlette + ErrorEnvelopeMiddleware)",
}


def _loops() -> dict[str, tuple[Callable[[int], int], Callable[[], None]]]:
    proxy = Request(headers=(("Proxy-Authorization", basic(apps.USER, apps.PASSWORD)),))
    driver = AsgiDriver()
    asgi = driver.contender("asgi", apps.starlette_proxygate(), proxy).run_batch
    wsgi = wsgi_contender("wsgi", apps.flask_proxygate(), proxy).run_batch
    missing = driver.contender("asgi-404", apps.starlette_envelope(), Request("/no-such-page"))
    return {"asgi": (asgi, lambda: None), "wsgi": (wsgi, lambda: None),
            "asgi-404": (missing.run_batch, driver.close)}


def _short(path: str) -> str:
    i = path.rfind("/src/proxygate/")
    if i >= 0:
        return path[i + len("/src/"):]
    i = path.rfind(_PROXYGATE_MARK)
    return path[i + 1:] if i >= 0 else path


def profile_hot_path(out: Path, requests: int) -> list[str]:
    from pyinstrument import Profiler

    lines = ["## Profile of the hot path", ""]
    lines.append(
        f"{requests:,} requests down each path below, after a warm-up. cProfile, proxygate's own "
        "functions only, by time in the function itself (cProfile's overhead inflates small "
        "functions; read it for ranking, not for absolute cost). Full call trees from "
        "pyinstrument: " + ", ".join(f"`profile-{s}.txt`" for s in PATHS) + "."
    )
    for shell, (run_batch, close) in _loops().items():
        run_batch(200)
        profiler = cProfile.Profile()
        profiler.enable()
        run_batch(requests)
        profiler.disable()
        stats = pstats.Stats(profiler)
        rows = []
        total_tt = 0.0
        for (filename, line, func), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
            total_tt += tottime
            if _PROXYGATE_MARK in filename:
                rows.append((tottime, cumtime, ncalls, f"{_short(filename)}:{line}", func))
        rows.sort(reverse=True)
        own = sum(r[0] for r in rows)
        lines += ["", f"### {PATHS[shell]}", "",
                  f"proxygate's own functions: {own / max(total_tt, 1e-12):.0%} of the profiled "
                  f"time ({own / requests * 1e6:.2f} µs per request under cProfile).", "",
                  "| function | file:line | calls/request | own µs/request | cumulative µs/request |",
                  "|---|---|---|---|---|"]
        for tottime, cumtime, ncalls, where, func in rows[:12]:
            lines.append(f"| `{func}` | {where} | {ncalls / requests:.1f} | "
                         f"{tottime / requests * 1e6:.2f} | {cumtime / requests * 1e6:.2f} |")

        sampler = Profiler(interval=0.0001)
        sampler.start()
        run_batch(requests)
        sampler.stop()
        (out / f"profile-{shell}.txt").write_text(
            sampler.output_text(unicode=True, color=False, show_all=False), encoding="utf-8"
        )
        close()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print("\n".join(profile_hot_path(args.out, args.requests)))


if __name__ == "__main__":
    main()
