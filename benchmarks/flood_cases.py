"""The flood case (issue 13): a returning user's p99 while fifty addresses send wrong bcrypt-12
passwords, against the same user's p99 with no flood, and the hashing CPU the flood forces.

One server (uvicorn, or gunicorn with gthread workers) runs proxygate with its default
hash budget. The returning user (a bcrypt-12 hash, cached after its first request) sends
requests one after another on one kept-alive connection: first with nobody else around,
then while ``flood_attack.py`` (a process of its own, so its threads cost the measuring
client nothing) floods from fifty addresses. The server's CPU time is read from
``/proc/PID/stat`` over each phase: what the flood costs the server per second of wall
time is the attacker's forced work, bounded by the budget.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bcrypt
from drive import basic
from harness import HERE, CaseResult, Settings, subprocess_env
from servers import free_port, tail, wait_for_port

PASSWORD = "returning-user-pw"
ADDRESSES = 50

SERVERS = {
    "uvicorn": ([sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}",
                 "--workers", "1", "--no-access-log", "--log-level", "warning",
                 "flood_app:app"], "asgi"),
    # One worker, threads above the default budget (2 CPUs: 1 hashing + 2 queued).
    "gunicorn-gthread": ([sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:{port}",
                          "--workers", "1", "--worker-class", "gthread", "--threads", "16",
                          "--log-level", "warning", "flood_app:app"], "wsgi"),
}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid``, its threads and its child processes (gunicorn's
    workers) so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12])) / ticks
    return own + sum(cpu_seconds(int(child)) for child in children)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def returning_user(port: int, seconds: float, header: str) -> list[float]:
    """Latencies (s) of back-to-back requests on one kept-alive connection for ``seconds``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies: list[float] = []
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            connection.request("GET", "/", headers={"Proxy-Authorization": header})
            response = connection.getresponse()
            response.read()
            latencies.append(time.perf_counter() - started)
            if response.status != 200:
                raise RuntimeError(f"the returning user got {response.status}")
    finally:
        connection.close()
    return latencies


def budget_report(port: int) -> dict[str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/budget")
        report: dict[str, Any] = json.loads(connection.getresponse().read())
        return report
    finally:
        connection.close()


def wait_for_full_budget(port: int, timeout: float = 30.0) -> None:
    """Until the flood has had an attempt refused: from then on the budget is full."""
    deadline = time.monotonic() + timeout
    while budget_report(port)["refused"] == 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the flood never filled the hash budget in {timeout:.0f} s")
        time.sleep(0.05)


def run_one(server: str, honor: bool, settings: Settings, logs: Path,
            cost12: str) -> dict[str, Any]:
    command, shell = SERVERS[server]
    port = free_port()
    options = {"users": {"returning": cost12, "victim": cost12},
               "trusted_proxies": ["127.0.0.1/32"]}
    env = {**subprocess_env(), "PROXYGATE_FLOOD_OPTIONS": json.dumps(options),
           "PROXYGATE_FLOOD_SHELL": shell}
    log = logs / f"flood-{server}.log"
    seconds = 1.0 if settings.smoke else 8.0
    # The flood outlasts the measured phase: it fills the budget first, then keeps it full.
    attack_seconds = seconds + (1.0 if settings.smoke else 3.0)
    header = basic("returning", PASSWORD)
    with log.open("wb") as sink:
        proc = subprocess.Popen([part.format(port=port) for part in command], cwd=HERE,
                                env=env, stdin=subprocess.DEVNULL, stdout=sink,
                                stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc)
        returning_user(port, 0.5, header)  # the first request hashes; then it is cached
        cpu0 = cpu_seconds(proc.pid)
        quiet = returning_user(port, seconds, header)
        quiet_cpu = (cpu_seconds(proc.pid) - cpu0) / seconds
        attack = subprocess.Popen(
            [sys.executable, str(HERE / "flood_attack.py"), "--port", str(port), "--user",
             "victim", "--seconds", str(attack_seconds), "--addresses", str(ADDRESSES),
             *(["--honor-retry-after"] if honor else [])],
            stdout=subprocess.PIPE, text=True, env=env)
        assert attack.stdout is not None
        if attack.stdout.readline().strip() != "flooding":
            raise RuntimeError("the attackers did not start")
        wait_for_full_budget(port)
        cpu1, wall1 = cpu_seconds(proc.pid), time.monotonic()
        flooded = returning_user(port, seconds, header)
        flood_cpu = (cpu_seconds(proc.pid) - cpu1) / (time.monotonic() - wall1)
        out, _ = attack.communicate(timeout=seconds + 120)
        counts = json.loads(out.strip().splitlines()[-1])
        report = budget_report(port)
    except Exception as exc:
        raise RuntimeError(f"{server}: {exc}\nserver log:\n{tail(log)}") from None
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return {"server": server, "honor": honor, "quiet": quiet, "flooded": flooded, "quiet_cpu": quiet_cpu,
            "flood_cpu": flood_cpu, "attack": counts, "budget": report,
            "attack_seconds": attack_seconds}


def flood(settings: Settings, result: CaseResult) -> None:
    logs = (HERE / "out" if settings.out.resolve() == HERE else settings.out) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.process_time()
    cost12 = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(12)).decode()
    one_hash = time.process_time() - started
    # The hash flood (attackers wait the Retry-After of a 503 or 429) is what the target is about;
    # full runs add the same attackers coming straight back, a request flood on top.
    # A smoke run proves the scripts on one server in a few seconds.
    variants = [(server, True) for server in SERVERS]
    if settings.smoke:
        variants = variants[:1]
    else:
        variants += [(server, False) for server in SERVERS]
    runs = [run_one(server, honor, settings, logs, cost12) for server, honor in variants]
    for run in runs:
        run["ratio"] = percentile(run["flooded"], 0.99) / percentile(run["quiet"], 0.99)
    judged = [run for run in runs if run["honor"]]
    result.ratio_value = max(run["ratio"] for run in judged)
    result.ratio_cell = " / ".join(f"{r['server']} {r['ratio']:.2f} x" for r in judged)
    result.proxygate_cell = "; ".join(
        f"{r['server']}: p99 {percentile(r['flooded'], 0.99) * 1000:.1f} ms flooded vs "
        f"{percentile(r['quiet'], 0.99) * 1000:.1f} ms quiet" for r in judged)
    result.anchor_cell = "the same user, no flood"
    result.raw["flood"] = [{k: v for k, v in r.items() if k not in ("quiet", "flooded")}
                           for r in runs]
    cpus = os.cpu_count() or 1
    result.details.append(
        f"{ADDRESSES} attacker threads in their own process, one `X-Forwarded-For` address each "
        "(the loopback peer is the trusted proxy), sending wrong passwords for a bcrypt-12 "
        "user back to back on fresh connections; the returning user (bcrypt 12, cached) "
        "sends requests one after another on one kept-alive connection, for "
        f"{'1' if settings.smoke else '8'} s quiet, then as long during the flood (once "
        "the flood has filled the budget: an attempt was refused). Default hash budget; "
        f"{cpus} CPUs; one bcrypt-12 hash took {one_hash:.2f} CPU-s here. The ratio is the "
        "flooded p99 over the quiet p99, for the hash flood; the table's figure is the worse "
        "server's. *Forced hashing* is the hashes the attackers got (their 407s) per second "
        "times that CPU cost: the hashing an attacker can force per second."
    )
    result.details.append("")
    result.details.append(
        "Attackers refused with 503 wait its `Retry-After` (1 s), and throttled ones their "
        "429's, in the rows marked *hash "
        "flood*: the flood of hashes the target is about. In rows marked *request flood* "
        "they come straight back, as fast as the server answers: then the server spends "
        "itself answering 503s, as it would answering anything, and that is the edge's "
        "rate limit to stop, not the hash budget's; reported, not judged.")
    result.details.append("")
    result.details.append("| server | flood | requests quiet / flooded | p50 quiet → flooded | "
                          "p99 quiet → flooded | server CPU quiet → flooded | attackers' "
                          "answers/s (407 hashed, 503 refused, 429) | forced hashing | "
                          "peak hashes at once |")
    result.details.append("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        seconds = r["attack_seconds"]
        answers = ", ".join(f"{status}: {count / seconds:.1f}"
                            for status, count in r["attack"].items())
        result.details.append(
            f"| {r['server']} | {'hash flood' if r['honor'] else 'request flood'} | "
            f"{len(r['quiet'])} / {len(r['flooded'])} | "
            f"{statistics.median(r['quiet']) * 1000:.2f} → "
            f"{statistics.median(r['flooded']) * 1000:.2f} ms | "
            f"{percentile(r['quiet'], 0.99) * 1000:.2f} → "
            f"{percentile(r['flooded'], 0.99) * 1000:.2f} ms | "
            f"{r['quiet_cpu']:.2f} → {r['flood_cpu']:.2f} CPU-s/s | {answers} | "
            f"{r['attack'].get('407', 0) / seconds * one_hash:.2f} CPU-s/s | "
            f"{r['budget']['peak']} of {r['budget']['concurrency']} "
            f"(+{r['budget']['queue']} queued) |"
        )
    result.details.append("")
    result.details.append(
        "Server CPU-s/s during the flood is the hashing an attacker can force per second of "
        f"wall time (the budget caps it near {runs[0]['budget']['concurrency']} CPU-s/s, the "
        "rest is HTTP); without the budget fifty concurrent bcrypt-12 checks would queue "
        "every core's worth of hashing behind each other for tens of seconds."
    )
