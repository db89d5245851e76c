"""Directory users: a returning LDAP user against a returning htpasswd user, and what a miss costs.

Both cases start a real OpenLDAP slapd on 127.0.0.1 (the test suite's own fixture,
``tests/support/slapd.py``) and stop it by its PID when done.
"""

from __future__ import annotations

import base64
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness import CaseResult, Settings, describe_pairs, expect, run_pairs, spread_ratio

TESTS = Path(__file__).resolve().parent.parent / "tests"


@contextmanager
def running_directory() -> Iterator[object]:
    if str(TESTS) not in sys.path:
        sys.path.append(str(TESTS))
    from support.slapd import Slapd, find_binaries

    if find_binaries() is None:
        raise RuntimeError("slapd, slapadd or openssl is missing: apt-get install slapd "
                           "ldap-utils openssl")
    with tempfile.TemporaryDirectory(prefix="proxygate-bench-slapd-") as root, \
            Slapd(Path(root) / "slapd", tls=False) as directory:
        yield directory


def ldap_returning_user(settings: Settings, result: CaseResult) -> None:
    from drive import AsgiDriver, Request, basic
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route

    import apps
    import proxygate.asgi

    with running_directory() as directory:
        options = directory.options()  # type: ignore[attr-defined]
        ldap_app = Starlette(routes=[Route("/", apps.hello)], middleware=[
            Middleware(proxygate.asgi.ProxyGateMiddleware, **options)])
        file_app = apps.starlette_proxygate()
        file_req = Request(headers=(("Proxy-Authorization", basic(apps.USER, apps.PASSWORD)),))
        ldap_req = Request(headers=(("Proxy-Authorization", basic("alice", "alice-pw")),))
        driver = AsgiDriver()
        try:
            # The first request of each pays for its verification; the case is the ones after.
            expect("htpasswd user", driver.exchange(file_app, file_req), 200)
            expect("directory user", driver.exchange(ldap_app, ldap_req), 200)
            measured = run_pairs(settings, [
                driver.contender("bare", apps.starlette_bare(), Request()),
                driver.contender("htpasswd user", file_app, file_req),
                driver.contender("directory user", ldap_app, ldap_req),
            ])
        finally:
            driver.close()
    describe_pairs(result, measured)
    ratio = measured.throughput_ratio("directory user", "htpasswd user")
    file_t = measured.time_per_request("htpasswd user")
    ldap_t = measured.time_per_request("directory user")
    result.anchor_cell = f"{1e9 / file_t.median:,.0f} req/s (htpasswd user)"
    result.proxygate_cell = f"{1e9 / ldap_t.median:,.0f} req/s (directory user)"
    result.ratio_value = ratio.median
    result.ratio_cell = spread_ratio(ratio)
    result.details.append("")
    result.details.append(
        "Ratio = the directory user's requests per second ÷ the htpasswd (apr1) user's, round by "
        "round, each through its own proxygate after its first (verifying) request: a returning "
        "directory user is served from the verification cache, with no directory round trip.")


def ldap_cache_miss(settings: Settings, result: CaseResult) -> None:
    from proxygate.config import Config
    from proxygate.gate import Check, Deny, Forward, Gate, HeadFromPairs

    rounds = 15 if settings.smoke else 301
    # A WARNING per failed login would be most of what this case prints.
    logging.getLogger("proxygate.auth").setLevel(logging.ERROR)
    with running_directory() as directory:
        # No cache, no throttle: every request is a miss that asks the directory.
        gate = Gate(Config.from_mapping(directory.options(  # type: ignore[attr-defined]
            cache_ttl=0, max_failures=0)))
        from support.slapd import GROUP
        grouped = Gate(Config.from_mapping(directory.options(  # type: ignore[attr-defined]
            cache_ttl=0, max_failures=0, ldap_require_group=GROUP)))

        def seconds(user: str, password: str, expected: type, gate: Gate = gate) -> float:
            value = b"Basic " + base64.b64encode(f"{user}:{password}".encode())
            started = time.perf_counter()
            decision = gate.decide(HeadFromPairs("GET", "/", [(b"proxy-authorization", value)],
                                                 "10.0.0.1"))
            assert isinstance(decision, Check)
            outcome = decision.run()
            elapsed = time.perf_counter() - started
            if not isinstance(outcome, expected) or (
                    isinstance(outcome, Deny) and outcome.response.status != 407):
                raise AssertionError(f"{user}: unexpected {outcome!r}")
            return elapsed

        for _ in range(3):
            seconds("alice", "alice-pw", Forward)
            seconds("alice", "alice-pw", Forward, grouped)
        good: list[float] = []
        wrong: list[float] = []
        unknown: list[float] = []
        g_wrong: list[float] = []
        g_unknown: list[float] = []
        g_outsider: list[float] = []
        for number in range(rounds):  # interleaved, so load drifts hit all alike
            good.append(seconds("alice", "alice-pw", Forward))
            wrong.append(seconds("carol", f"guess{number}", Deny))
            unknown.append(seconds(f"nobody{number}", "guess", Deny))
            g_wrong.append(seconds("alice", f"guess{number}", Deny, grouped))
            g_unknown.append(seconds(f"nobody{number}", "guess", Deny, grouped))
            g_outsider.append(seconds("carol", "carol-pw", Deny, grouped))
    med = {name: statistics.median(values) * 1000
           for name, values in (("good", good), ("wrong", wrong), ("unknown", unknown),
                                ("g_wrong", g_wrong), ("g_unknown", g_unknown),
                                ("g_outsider", g_outsider))}
    spread = max(max(med[a] / med[b], med[b] / med[a]) for a, b in (
        ("unknown", "wrong"), ("g_unknown", "g_wrong"), ("g_outsider", "g_wrong")))
    result.anchor_cell = f"wrong password {med['wrong']:.2f} ms (search + failed bind)"
    result.proxygate_cell = (f"unknown user {med['unknown']:.2f} ms (search + padding); "
                             f"good login {med['good']:.2f} ms (search + bind)")
    result.ratio_value = spread
    result.ratio_cell = (f"{med['unknown'] / med['wrong']:.3f} (unknown ÷ wrong); worst pair "
                         f"{spread:.3f}")
    result.raw["ldap_miss_ms"] = med
    result.details.append(
        f"{rounds} interleaved rounds through `Gate.decide` + `Check.run` against slapd on "
        "127.0.0.1 (passwords stored as {CRYPT} sha512-crypt, 20,000 rounds), cache and "
        "throttle off, so each request is one search as "
        "the service account and one bind as the user (the unknown user: the search, then a "
        "wait as long as the median failed bind, since no bind is ever tried for a name that "
        "does not exist).")
    result.details.append("")
    result.details.append("| request | median |")
    result.details.append("|---|---|")
    for name, label in (("good", "good password: search + bind"),
                        ("wrong", "wrong password: search + failed bind"),
                        ("unknown", "unknown user: search + padding"),
                        ("g_wrong", "with a required group, wrong password: search + group + "
                                    "failed bind"),
                        ("g_unknown", "with a required group, unknown user: search + padding"),
                        ("g_outsider", "with a required group, right password of a non-member: "
                                       "search + group + padding (no bind)")):
        result.details.append(f"| {label} | {med[name]:.3f} ms |")
    result.details.append("")
    result.details.append("The target: for unknown vs wrong, and with a group for unknown vs wrong "
                          "and outsider vs wrong, the larger of the two ratios ≤ 1.5 (the "
                          f"worst here: {spread:.3f}).")
