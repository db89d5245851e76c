"""Start-up: what ``import proxygate.asgi`` costs, and how soon ``proxygate serve`` answers.

Both alternate proxygate with its anchor in fresh processes, pair by pair, and
report the median of the per-pair ratios: a neighbour's burst slows one pair,
not the median.
"""

from __future__ import annotations

import http.client
import statistics
import subprocess
import sys
import time

from harness import HERE, CaseResult, Settings, subprocess_env
from servers import free_port

ANCHOR_MODULE = "starlette.middleware.authentication"


def _installed_env(settings: Settings) -> dict[str, str]:
    """The environment of a real install: bytecode cached (pip compiles at install time).

    Without it (``PYTHONDONTWRITEBYTECODE`` is set in some shells and CI images) every
    start compiles this checkout's sources, while the anchor's come from site-packages
    already compiled: a comparison of compilers, not of imports. The cache goes to a
    scratch directory, never next to the sources.
    """
    env = subprocess_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(settings.out / "pycache")
    return env


def _import_us(module: str, env: dict[str, str]) -> int:
    """Microseconds ``python -X importtime`` gives ``module``'s own import, with what it pulls in."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                          capture_output=True, text=True, env=env, check=True)
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip() == module and not parts[2].startswith("  "):
            return int(parts[1])
    raise RuntimeError(f"no importtime line for {module}:\n{done.stderr[-2000:]}")


def import_time(settings: Settings, result: CaseResult) -> None:
    pairs = 3 if settings.smoke else 31
    env = _installed_env(settings)
    _import_us("proxygate.asgi", env)  # fills the bytecode cache, as an install does
    _import_us(ANCHOR_MODULE, env)
    mine: list[int] = []
    anchor: list[int] = []
    for _ in range(pairs):
        mine.append(_import_us("proxygate.asgi", env))
        anchor.append(_import_us(ANCHOR_MODULE, env))
    ratios = [m / a for m, a in zip(mine, anchor, strict=True)]
    result.anchor_cell = f"{statistics.median(anchor) / 1000:.1f} ms"
    result.proxygate_cell = f"{statistics.median(mine) / 1000:.1f} ms"
    result.ratio_value = statistics.median(ratios)
    q = statistics.quantiles(ratios) if len(ratios) > 1 else [ratios[0]] * 3
    result.ratio_cell = f"{result.ratio_value:.3f} [IQR {q[0]:.3f}…{q[2]:.3f}]"
    result.details.append(
        f"`python -X importtime -c 'import proxygate.asgi'` and the same for `{ANCHOR_MODULE}`, "
        f"each in a fresh interpreter with its bytecode cached (as an install has it), "
        f"alternated {pairs} times; the module's cumulative "
        "import time (what the interpreter had already imported at start-up counts for "
        "neither). Ratio = proxygate's ÷ the anchor's, pair by pair, median [IQR]."
    )
    result.raw.update({"proxygate_us": mine, "anchor_us": anchor})


def _first_200(command: list[str], port: int, env: dict[str, str],
               deadline: float = 60.0) -> float:
    """Seconds from spawning ``command`` to its first 200 on ``/healthz``."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=HERE,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - started < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{command} exited with {proc.returncode} before answering")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/healthz")
                status = connection.getresponse().status
                connection.close()
                if status == 200:
                    return time.perf_counter() - started
            except OSError:
                time.sleep(0.002)  # not listening yet: the next connect comes soon
        raise RuntimeError(f"{command} gave no 200 within {deadline:.0f} s")
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def first_200(settings: Settings, result: CaseResult) -> None:
    pairs = 1 if settings.smoke else 9
    env = _installed_env(settings)
    bare: list[float] = []
    mine: list[float] = []
    for attempt in range(pairs + 1):  # the first pair fills the bytecode cache, uncounted
        port = free_port()
        plain = _first_200([sys.executable, "-m", "uvicorn", "--port", str(port),
                            "--log-level", "warning", "bare_asgi:app"], port, env)
        port = free_port()
        served = _first_200([sys.executable, "-m", "proxygate", "serve", "--port", str(port),
                             "--log-level", "warning"], port, env)
        if attempt:
            bare.append(plain)
            mine.append(served)
    ratios = [m / b for m, b in zip(mine, bare, strict=True)]
    result.anchor_cell = f"bare uvicorn: {statistics.median(bare) * 1000:.0f} ms"
    result.proxygate_cell = f"{statistics.median(mine) * 1000:.0f} ms"
    result.ratio_value = statistics.median(ratios)
    result.ratio_cell = (f"{result.ratio_value:.2f} x bare [{min(ratios):.2f}…"
                         f"{max(ratios):.2f}]")
    result.details.append(
        "Time from spawning the process to the first 200 on `/healthz` (polled every 2 ms): "
        "`proxygate serve` with no arguments (the demo app, a demo users file written at "
        "start, `/healthz` exempt) against `uvicorn bare_asgi:app`, a framework-less app "
        f"that imports nothing of proxygate. {pairs} pairs, alternated, after one that "
        "fills the bytecode cache (as an install does); ratio per pair, "
        "median [min…max]. Milliseconds, bare: "
        + ", ".join(f"{b * 1000:.0f}" for b in bare) + "; proxygate serve: "
        + ", ".join(f"{m * 1000:.0f}" for m in mine) + "."
    )
