"""The throttled answer: a 429 in process against a cached success, and a 429 flood under uvicorn.

A throttled client gets the cheapest answer proxygate gives: no hash, no worker
thread, and (per client and window) one log record rather than one per request.
Both cases run with the ``proxygate`` logger writing INFO to a file, as under a
server: a record per 429 would show up here.
"""

from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import (
    HERE,
    CaseResult,
    Settings,
    describe_pairs,
    expect,
    run_pairs,
    spread_ratio,
    subprocess_env,
)
from servers import WRK, free_port, tail, wait_for_port

#: The address the flood comes from; the cached user's requests come from another.
ATTACKER = ("192.0.2.99", 40000)
#: The offered load a one-address flood is judged at: the old path (a thread hop and a
#: WARNING per 429) used 0.6 to 0.8 of a core for it on the 2-core machine.
FLOOD_RATE = 5000


def _scratch_logs(settings: Settings) -> Path:
    """Where server and log output go: never next to the committed results."""
    logs = (HERE / "out" if settings.out.resolve() == HERE else settings.out) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return logs


def _log_like_a_server(path: str) -> logging.Handler:
    """INFO records of ``proxygate`` to a file, the way ``proxygate serve`` logs."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("proxygate")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return handler


def asgi_throttled(settings: Settings, result: CaseResult) -> None:
    from drive import AsgiDriver, Request, basic

    import apps

    logs = _scratch_logs(settings)
    handler = _log_like_a_server(str(logs / "asgi-429.log"))
    cached = Request(headers=(("Proxy-Authorization", basic(apps.USER, apps.PASSWORD)),))
    wrong = Request(headers=(("Proxy-Authorization", basic(apps.USER, "wrong")),),
                    client=ATTACKER)
    driver = AsgiDriver()
    try:
        bare, pg = apps.starlette_bare(), apps.starlette_proxygate()
        expect("bare", driver.exchange(bare, cached), 200, body_has=apps.BODY)
        expect("cached success", driver.exchange(pg, cached), 200, body_has=apps.BODY)
        for _ in range(20):  # past max_failures: from here on every answer is a 429
            driver.exchange(pg, wrong)
        expect("throttled", driver.exchange(pg, wrong), 429, header="retry-after")
        measured = run_pairs(settings, [
            driver.contender("bare", bare, cached),
            driver.contender("cached success", pg, cached),
            driver.contender("throttled (429)", pg, wrong),
        ])
    finally:
        driver.close()
        logging.getLogger("proxygate").removeHandler(handler)
        handler.close()
    describe_pairs(result, measured)
    # time(429) / time(cached success), round by round.
    ratio = measured.throughput_ratio("cached success", "throttled (429)")
    cached_time = measured.time_per_request("cached success")
    throttled = measured.time_per_request("throttled (429)")
    result.anchor_cell = f"cached success: {cached_time.median / 1000:.2f} µs a request"
    result.proxygate_cell = f"429: {throttled.median / 1000:.2f} µs a request"
    result.ratio_value = ratio.median
    result.ratio_cell = spread_ratio(ratio)
    result.details.append("")
    result.details.append(
        "Ratio = the throttled request's whole time (Starlette app, gate, envelope) ÷ the "
        "cached success's, through the same middleware, round by round. The `proxygate` "
        "logger writes INFO to a file meanwhile, as under a server."
    )


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _flood(port: int, pid: int, seconds: float, header: str) -> tuple[float, int, str]:
    """CPU seconds the server spent, the responses it gave, and wrk's output."""
    assert WRK is not None
    before = _cpu_seconds(pid)
    done = subprocess.run(
        [WRK, "-t1", "-c32", f"-d{max(1, round(seconds))}s", "-H", header,
         f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, timeout=seconds + 60, check=False)
    spent = _cpu_seconds(pid) - before
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited {done.returncode}: {done.stdout}{done.stderr}")
    count = int(done.stdout.split(" requests in ")[0].split()[-1])
    return spent, count, done.stdout


def flood_429(settings: Settings, result: CaseResult) -> None:
    """One address floods wrong passwords at a throttled server; its CPU per 429 is read
    from /proc, and the share of a core a 5,000-a-second flood takes follows from it."""
    if WRK is None:
        result.error = "skipped: wrk is not installed (apt-get install wrk)"
        return
    from drive import basic

    import apps

    logs = _scratch_logs(settings)
    wrong = "Proxy-Authorization: " + basic(apps.USER, "wrong")
    right = "Proxy-Authorization: " + basic(apps.USER, apps.PASSWORD)
    per_request: dict[str, list[float]] = {"429 flood": [], "bare 200": []}
    servers: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}
    try:
        for label, factory in (("429 flood", "starlette_proxygate_logging"),
                               ("bare 200", "starlette_bare")):
            port = free_port()
            log = logs / f"flood-429-{label.split()[0]}.log"
            with log.open("wb") as sink:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "uvicorn", "--factory", "--host", "127.0.0.1",
                     "--port", str(port), "--workers", "1", "--no-access-log",
                     "--log-level", "warning", f"apps:{factory}"],
                    env=subprocess_env(), stdin=subprocess.DEVNULL, stdout=sink,
                    stderr=subprocess.STDOUT)
            servers[label] = (port, proc)
            wait_for_port(port, proc)
        headers = {"429 flood": wrong, "bare 200": right}
        for label, (port, proc) in servers.items():  # warm up; throttle the attacker
            _flood(port, proc.pid, 1, headers[label])
        rounds = 1 if settings.smoke else 5
        for _ in range(rounds):
            for label, (port, proc) in servers.items():
                spent, count, out = _flood(port, proc.pid, settings.e2e_seconds, headers[label])
                if label == "429 flood" and "Non-2xx or 3xx responses" not in out:
                    raise RuntimeError(f"the flood was not throttled:\n{out}")
                per_request[label].append(spent / max(count, 1))
    finally:
        for _port, proc in servers.values():
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
    flood_log = logs / "flood-429-429.log"
    lines = len(tail(flood_log, 10**7).splitlines())
    cost = statistics.median(per_request["429 flood"])
    bare = statistics.median(per_request["bare 200"])
    share = cost * FLOOD_RATE
    result.anchor_cell = (f"a bare 200 at the same rate: {bare * FLOOD_RATE:.2f} of a core "
                          f"({bare * 1e6:.1f} µs CPU each)")
    result.proxygate_cell = f"{cost * 1e6:.1f} µs CPU a 429; {lines} log lines in all"
    result.ratio_value = share
    result.ratio_cell = f"{share:.2f} of a core"
    result.details.append(
        f"uvicorn (one worker) serving the Starlette app behind proxygate, its `proxygate` "
        f"logger at INFO to a file; `wrk -t1 -c32` from one address with a wrong password, "
        f"{rounds} runs of {max(1, round(settings.e2e_seconds))} s after a 1 s warm-up that "
        f"gets it throttled. The server's CPU time (utime + stime from /proc) per response, "
        f"times {FLOOD_RATE:,} responses a second, is the share of a core the flood takes. "
        f"The same for bare uvicorn + Starlette serving a 200, alternated run by run, for "
        f"scale. CPU µs per request, 429: "
        + ", ".join(f"{v * 1e6:.1f}" for v in per_request["429 flood"])
        + "; bare: " + ", ".join(f"{v * 1e6:.1f}" for v in per_request["bare 200"]) + "."
    )
    result.raw.update({"cpu_per_429": per_request["429 flood"],
                       "cpu_per_bare": per_request["bare 200"], "log_lines": lines,
                       "measured_at": time.time()})
