"""The flood case (issue 13): a returning user's p99 while fifty addresses send wrong bcrypt-12
passwords, against the same user's p99 with no flood, and the hashing CPU the flood forces.

One server (uvicorn, or gunicorn with gthread workers) runs proxygate with its default
hash budget. The returning user (a bcrypt-12 hash, cached after its first request) sends
requests one after another on one kept-alive connection, in rounds of three phases: with
nobody else around; while ``flood_attack.py`` (a process of its own, so its threads cost the
measuring client nothing) floods from fifty addresses; and while the same attackers send the
same requests to a path the app answers 503 itself (the floor: what answering them costs the
server when the gate does no work for them). The phases' order rotates round by round, so the
machine's drift over a run falls on each alike. The server's CPU time is read from
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
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bcrypt
from drive import basic
from harness import HERE, CaseResult, Settings, subprocess_env
from servers import free_port, tail, wait_for_port

PASSWORD = "returning-user-pw"
ADDRESSES = 50
#: Rounds of a full run, and the seconds of each phase in a round: 8 s of each phase in all.
ROUNDS = 4
PHASE_SECONDS = 2.0

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


def wait_for(condition: Callable[[dict[str, Any]], bool], port: int, what: str,
             timeout: float = 30.0) -> None:
    """Until ``condition`` holds of the server's budget report."""
    deadline = time.monotonic() + timeout
    while not condition(budget_report(port)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.02)


#: The phases of a round: no flood; the hash flood, wrong passwords the gate must refuse;
#: and the floor, the same attackers sent to a path the app answers 503 itself (no check,
#: no hash), which is what answering them costs the server whatever the gate does.
PHASES = ("quiet", "flood", "floor")


def run_one(server: str, honor: bool, settings: Settings, logs: Path,
            cost12: str) -> dict[str, Any]:
    command, shell = SERVERS[server]
    port = free_port()
    options = {"users": {"returning": cost12, "victim": cost12},
               "trusted_proxies": ["127.0.0.1/32"]}
    env = {**subprocess_env(), "PROXYGATE_FLOOD_OPTIONS": json.dumps(options),
           "PROXYGATE_FLOOD_SHELL": shell}
    log = logs / f"flood-{server}.log"
    rounds, seconds = (1, 1.0) if settings.smoke else (ROUNDS, PHASE_SECONDS)
    # The floor is measured for the hash flood, the judged rows; a request flood is reported.
    phases = PHASES if honor else PHASES[:2]
    latencies: dict[str, list[float]] = {phase: [] for phase in phases}
    cpu = dict.fromkeys(phases, 0.0)
    wall = dict.fromkeys(phases, 0.0)
    counts: dict[str, Counter[str]] = {phase: Counter() for phase in phases[1:]}
    attack_seconds = dict.fromkeys(phases[1:], 0.0)
    header = basic("returning", PASSWORD)
    with log.open("wb") as sink:
        proc = subprocess.Popen([part.format(port=port) for part in command], cwd=HERE,
                                env=env, stdin=subprocess.DEVNULL, stdout=sink,
                                stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc)
        returning_user(port, 0.5, header)  # the first request hashes; then it is cached
        for number in range(rounds):
            # Each round runs every phase, in an order rotated round by round, so that the
            # machine's drift over a run falls on all of them alike.
            for phase in phases[number % len(phases):] + phases[:number % len(phases)]:
                if phase == "quiet":
                    # Quiet means quiet: no hash left running or queued from a flood before.
                    wait_for(lambda report: report["admitted"] == 0, port,
                             "the hashes of the last flood did not finish")
                    measured, used, took = measure(proc.pid, port, seconds, header)
                else:
                    attack = subprocess.Popen(
                        [sys.executable, str(HERE / "flood_attack.py"), "--port", str(port),
                         "--user", "victim", "--seconds", str(seconds + 120),
                         "--addresses", str(ADDRESSES),
                         "--path", "/" if phase == "flood" else "/busy",
                         *(["--honor-retry-after"] if honor else [])],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
                    try:
                        assert attack.stdout is not None
                        if attack.stdout.readline().strip() != "flooding":
                            raise RuntimeError("the attackers did not start")
                        # Measured once half the attackers have had their first 503: the
                        # flood is under way, from the budget (flood) or the app (floor).
                        key = "refused" if phase == "flood" else "busy"
                        before = budget_report(port)[key]
                        wait_for(lambda report, key=key, before=before:
                                 report[key] >= before + ADDRESSES // 2, port,
                                 f"the {phase} never got going")
                        measured, used, took = measure(proc.pid, port, seconds, header)
                    finally:
                        out, _ = attack.communicate(timeout=60)  # closes its stdin: it stops
                    flooded = json.loads(out.strip().splitlines()[-1])
                    counts[phase].update(flooded["answers"])
                    attack_seconds[phase] += flooded["seconds"]
                latencies[phase] += measured
                cpu[phase] += used
                wall[phase] += took
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
    return {"server": server, "honor": honor, "latencies": latencies,
            "cpu": {phase: cpu[phase] / wall[phase] for phase in phases},
            "attack": {phase: dict(counts[phase]) for phase in counts},
            "attack_seconds": attack_seconds,
            "budget": report, "rounds": rounds, "seconds": seconds}


def measure(pid: int, port: int, seconds: float, header: str) -> tuple[list[float], float, float]:
    """The returning user's latencies for ``seconds``, the server's CPU time over them, and
    the wall time they took."""
    cpu0, wall0 = cpu_seconds(pid), time.monotonic()
    measured = returning_user(port, seconds, header)
    return measured, cpu_seconds(pid) - cpu0, time.monotonic() - wall0


def p99_ms(values: list[float]) -> float:
    return percentile(values, 0.99) * 1000


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
        quiet = percentile(run["latencies"]["quiet"], 0.99)
        run["ratio"] = {phase: percentile(values, 0.99) / quiet
                        for phase, values in run["latencies"].items() if phase != "quiet"}
    judged = [run for run in runs if run["honor"]]
    result.ratio_value = max(run["ratio"]["flood"] for run in judged)
    result.ratio_cell = " / ".join(
        f"{r['server']} {r['ratio']['flood']:.2f} x (floor {r['ratio']['floor']:.2f} x)"
        for r in judged)
    result.proxygate_cell = "; ".join(
        f"{r['server']}: p99 {p99_ms(r['latencies']['flood']):.1f} ms flooded vs "
        f"{p99_ms(r['latencies']['quiet']):.1f} ms quiet" for r in judged)
    result.anchor_cell = "the same user, no flood"
    result.raw["flood"] = [{k: v for k, v in r.items() if k != "latencies"} for r in runs]
    cpus = os.cpu_count() or 1
    first = runs[0]
    result.details.append(
        f"{ADDRESSES} attacker threads in their own process, one `X-Forwarded-For` address each "
        "(the loopback peer is the trusted proxy), sending wrong passwords for a bcrypt-12 "
        "user on fresh connections; the returning user (bcrypt 12, cached) sends requests one "
        "after another on one kept-alive connection. Each server runs "
        f"{first['rounds']} {'round' if first['rounds'] == 1 else 'rounds'}; each round "
        f"measures the user for {first['seconds']:g} s "
        "in each phase, in an order rotated round by round: *quiet* (no attackers), *flood* "
        "(the wrong passwords, measured once half the attackers have had a 503) and *floor* "
        "(the same attackers sent to a path the app itself answers `503` with "
        "`Retry-After: 1`: no credential check, no hash). The ratio is the flood's p99 over "
        "the quiet p99, all rounds pooled, for the hash flood; the table's figure is the "
        "worse server's. The floor's ratio is what the same attackers cost the user when "
        "the gate does nothing for them: what the server's own answering costs, the part no "
        f"gate can remove. Default hash budget; {cpus} CPUs; one bcrypt-12 hash took "
        f"{one_hash:.2f} CPU-s here. *Forced hashing* is the hashes the attackers got (their "
        "407s) per second times that CPU cost: the hashing an attacker can force per second."
    )
    result.details.append("")
    result.details.append(
        "Attackers refused with 503 wait its `Retry-After` (1 s), and throttled ones their "
        "429's, in the rows marked *hash flood*: the flood of hashes the target is about. In "
        "rows marked *request flood* they come straight back, as fast as the server answers: "
        "then the server spends itself answering 503s, as it would answering anything, and "
        "that is the edge's rate limit to stop, not the hash budget's; reported, not judged.")
    result.details.append("")
    result.details.append("| server | flood | requests quiet / flooded / floor | p50 quiet → "
                          "flooded | p99 quiet → flooded (floor) | server CPU quiet → "
                          "flooded | attackers' answers/s (407 hashed, 503 refused, 429) | "
                          "forced hashing | peak hashes at once |")
    result.details.append("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        latencies, cpu = r["latencies"], r["cpu"]
        seconds = r["attack_seconds"]["flood"]
        answers = ", ".join(f"{status}: {count / seconds:.1f}"
                            for status, count in sorted(r["attack"]["flood"].items()))
        floor = latencies.get("floor")
        result.details.append(
            f"| {r['server']} | {'hash flood' if r['honor'] else 'request flood'} | "
            f"{len(latencies['quiet'])} / {len(latencies['flood'])} / "
            f"{len(floor) if floor else '—'} | "
            f"{statistics.median(latencies['quiet']) * 1000:.2f} → "
            f"{statistics.median(latencies['flood']) * 1000:.2f} ms | "
            f"{p99_ms(latencies['quiet']):.2f} → {p99_ms(latencies['flood']):.2f} ms "
            f"({f'{p99_ms(floor):.2f} ms' if floor else '—'}) | "
            f"{cpu['quiet']:.2f} → {cpu['flood']:.2f} CPU-s/s | {answers} | "
            f"{r['attack']['flood'].get('407', 0) / seconds * one_hash:.2f} CPU-s/s | "
            f"{r['budget']['peak']} of {r['budget']['concurrency']} "
            f"(+{r['budget']['queue']} queued) |"
        )
    result.details.append("")
    result.details.append(
        "Server CPU-s/s during the flood is the hashing an attacker can force per second of "
        f"wall time (the budget caps it near {first['budget']['concurrency']} CPU-s/s, the "
        "rest is HTTP); without the budget fifty concurrent bcrypt-12 checks would queue "
        "every core's worth of hashing behind each other for tens of seconds."
    )
