"""The benchmark cases: what each compares, how it is measured, and the target it is held to.

In-process cases build their contenders, check that each one answers the
request the way the case assumes (a benchmark of a broken path measures
nothing), then hand them to :func:`pairs.measure_pairs`. The memory and
end-to-end cases run in other processes (``memory_probe``, ``e2e``).
"""

from __future__ import annotations

import json
import operator
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pairs import Contender, PairedResult, Spread, calibrate_batch, measure_pairs

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Settings:
    smoke: bool
    rounds: int
    #: Wall time one contender's share of a round aims for (full runs).
    block_ms: float
    #: Requests per contender per round when set (smoke runs), instead of calibrating.
    fixed_batch: int | None
    memory_logins: int
    e2e_seconds: float
    #: How many A-then-B pairs each end-to-end comparison runs.
    e2e_pairs: int
    out: Path

    @classmethod
    def full(cls, out: Path) -> Settings:
        return cls(smoke=False, rounds=151, block_ms=10.0, fixed_batch=None,
                   memory_logins=1_000_000, e2e_seconds=3.0, e2e_pairs=10, out=out)

    @classmethod
    def quick(cls, out: Path) -> Settings:
        return cls(smoke=True, rounds=3, block_ms=1.0, fixed_batch=10,
                   memory_logins=2_000, e2e_seconds=1.0, e2e_pairs=1, out=out)


@dataclass(frozen=True)
class Target:
    """``value <op> bound``, e.g. ratio <= 0.5."""

    op: str
    bound: float
    unit: str = "x"

    def met_by(self, value: float) -> bool:
        compare: Callable[[float, float], bool] = {"<=": operator.le, ">=": operator.ge}[self.op]
        return compare(value, self.bound)

    def __str__(self) -> str:
        return f"{'≤' if self.op == '<=' else '≥'} {self.bound:g}{self.unit}"


@dataclass(frozen=True)
class Bar:
    """One bar of the chart: added cost per request in microseconds, with its quartiles."""

    case: str
    contender: str
    is_proxygate: bool
    median_us: float
    q1_us: float
    q3_us: float


@dataclass
class CaseResult:
    case_id: str
    title: str
    anchor: str
    anchor_cell: str = "—"
    proxygate_cell: str = "—"
    ratio_cell: str = "—"
    target: Target | None = None
    target_text: str = "report only"
    ratio_value: float | None = None
    #: True / False against the target, None when there is none or in a smoke run.
    met: bool | None = None
    error: str | None = None
    details: list[str] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def judge(self, settings: Settings) -> None:
        if self.target is not None and self.ratio_value is not None and not settings.smoke:
            self.met = self.target.met_by(self.ratio_value)


@dataclass(frozen=True)
class Case:
    case_id: str
    title: str
    anchor: str
    target: Target | None
    run: Callable[[Settings, CaseResult], None]


# --- helpers ----------------------------------------------------------------


def us(ns: float) -> str:
    return f"{ns / 1000:.2f}"


def spread_us(s: Spread) -> str:
    return f"{us(s.median)} µs [IQR {us(s.q1)}…{us(s.q3)}]"


def signed(s: Spread) -> str:
    """An added cost with its sign: a denial can cost less than serving the route."""
    return ("+" if s.median >= 0 else "") + spread_us(s)


def spread_ratio(s: Spread) -> str:
    return f"{s.median:.3f} [IQR {s.q1:.3f}…{s.q3:.3f}]"


def expect(label: str, got: Any, status: int, *, body_has: bytes | None = None,
           header: str | None = None) -> None:
    if got.status != status:
        raise AssertionError(f"{label}: expected HTTP {status}, got {got.status} {got.body[:200]!r}")
    if body_has is not None and body_has not in got.body:
        raise AssertionError(f"{label}: body lacks {body_has!r}: {got.body[:200]!r}")
    if header is not None and got.header(header) is None:
        raise AssertionError(f"{label}: response lacks the {header} header")


def run_pairs(settings: Settings, contenders: list[Contender]) -> PairedResult:
    if settings.fixed_batch is not None:
        batch = settings.fixed_batch
        for c in contenders:
            c.run_batch(batch)
    else:
        batch = calibrate_batch(contenders, target_ms=settings.block_ms)
    return measure_pairs(contenders, rounds=settings.rounds, batch=batch,
                         warmup_rounds=1 if settings.smoke else 3)


def describe_pairs(result: CaseResult, measured: PairedResult) -> None:
    """Fill the per-case details with every contender's time and added cost."""
    result.details.append(
        f"{measured.rounds} rounds x {measured.batch} requests per contender, order rotated "
        f"each round, GC paused; medians over rounds with interquartile range."
    )
    result.details.append("")
    result.details.append("| contender | time per request | added over bare (paired) | MAD |")
    result.details.append("|---|---|---|---|")
    for name in measured.per_request_ns:
        own = measured.time_per_request(name)
        if name == measured.baseline:
            result.details.append(f"| {name} (baseline) | {spread_us(own)} | — | — |")
            continue
        added = measured.added_cost(name)
        result.details.append(
            f"| {name} | {spread_us(own)} | {spread_us(added)} | {us(added.mad)} µs |"
        )
    result.raw["per_request_ns"] = measured.per_request_ns
    result.raw["batch"] = measured.batch


def cost_comparison(result: CaseResult, measured: PairedResult, *, proxygate: str,
                    anchor: str, extra_anchors: tuple[str, ...] = ()) -> None:
    """The common shape of a cost case: proxygate's added cost over the anchor's."""
    describe_pairs(result, measured)
    pg = measured.added_cost(proxygate)
    an = measured.added_cost(anchor)
    ratio = measured.cost_ratio(proxygate, anchor)
    result.anchor_cell = signed(an)
    result.proxygate_cell = signed(pg)
    result.ratio_value = ratio.median
    result.ratio_cell = spread_ratio(ratio)
    result.details.append("")
    result.details.append(
        f"Ratio = proxygate's added cost ÷ {anchor}'s added cost, computed round by round "
        f"(a slow round slows both): median {spread_ratio(ratio)}; ratio of the medians "
        f"{pg.median / an.median if an.median else float('nan'):.3f}."
    )
    for other in extra_anchors:
        r = measured.cost_ratio(proxygate, other)
        result.details.append(f"Against {other}: ratio {spread_ratio(r)}.")
    for name in (anchor, *extra_anchors, proxygate):
        s = measured.added_cost(name)
        result.bars.append(Bar(result.case_id, name, name == proxygate,
                               s.median / 1000, s.q1 / 1000, s.q3 / 1000))


# --- ASGI cases ---------------------------------------------------------------


def _asgi_requests() -> dict[str, Any]:
    from drive import Request, basic

    import apps

    return {
        "proxy": Request(headers=(("Proxy-Authorization", basic(apps.USER, apps.PASSWORD)),)),
        "origin": Request(headers=(("Authorization", basic(apps.USER, apps.PASSWORD)),)),
        "none": Request(),
        "missing": Request(path="/no-such-page"),
        "slow_user": Request(
            headers=(("Proxy-Authorization", basic(apps.SLOW_USER, apps.PASSWORD)),)
        ),
    }


def asgi_authenticated(settings: Settings, result: CaseResult) -> None:
    from drive import AsgiDriver

    import apps

    req = _asgi_requests()
    driver = AsgiDriver()
    try:
        bare, anchor, pg = apps.starlette_bare(), apps.starlette_auth_anchor(), apps.starlette_proxygate()
        expect("bare", driver.exchange(bare, req["proxy"]), 200, body_has=apps.BODY)
        expect("starlette-auth", driver.exchange(anchor, req["origin"]), 200, body_has=apps.BODY)
        expect("proxygate", driver.exchange(pg, req["proxy"]), 200, body_has=apps.BODY)
        measured = run_pairs(settings, [
            driver.contender("bare", bare, req["proxy"]),
            driver.contender("starlette-auth", anchor, req["origin"]),
            driver.contender("proxygate", pg, req["proxy"]),
        ])
    finally:
        driver.close()
    cost_comparison(result, measured, proxygate="proxygate", anchor="starlette-auth")


def asgi_denied(settings: Settings, result: CaseResult) -> None:
    from drive import AsgiDriver

    import apps

    req = _asgi_requests()
    driver = AsgiDriver()
    try:
        bare, anchor, pg = apps.starlette_bare(), apps.starlette_auth_anchor(), apps.starlette_proxygate()
        expect("bare", driver.exchange(bare, req["none"]), 200)
        expect("starlette-auth", driver.exchange(anchor, req["none"]), 403)
        expect("proxygate", driver.exchange(pg, req["none"]), 407,
               header="Proxy-Authenticate")
        measured = run_pairs(settings, [
            driver.contender("bare", bare, req["none"]),
            driver.contender("starlette-auth", anchor, req["none"]),
            driver.contender("proxygate", pg, req["none"]),
        ])
    finally:
        driver.close()
    cost_comparison(result, measured, proxygate="proxygate", anchor="starlette-auth")
    result.details.append(
        "The baseline is the bare route serving the same credential-less request (200). "
        "A denial that never reaches the route can cost less than serving it: a negative "
        "added cost means exactly that."
    )


def _not_found_pairs(settings: Settings, contenders: dict[str, Any]) -> PairedResult:
    """Bare, the anchor and ``contenders`` (name -> app) on the router's 404, checked first."""
    from drive import AsgiDriver

    import apps

    missing = _asgi_requests()["missing"]
    driver = AsgiDriver()
    try:
        bare = apps.starlette_bare()
        anchor = apps.starlette_json_errors_anchor()
        expect("bare", driver.exchange(bare, missing), 404)
        expect("starlette-json-handler", driver.exchange(anchor, missing), 404,
               body_has=b'"detail"')
        for name, app in contenders.items():
            got = driver.exchange(app, missing)
            expect(name, got, 404, body_has=b'"error"')
            if not (got.header("content-type") or "").startswith("application/"):
                raise AssertionError(f"{name}: 404 not turned into the envelope: {got.headers}")
        return run_pairs(settings, [
            driver.contender("bare", bare, missing),
            driver.contender("starlette-json-handler", anchor, missing),
            *(driver.contender(name, app, missing) for name, app in contenders.items()),
        ])
    finally:
        driver.close()


def asgi_not_found(settings: Settings, result: CaseResult) -> None:
    import apps

    measured = _not_found_pairs(settings, {"proxygate-envelope": apps.starlette_envelope()})
    cost_comparison(result, measured, proxygate="proxygate-envelope",
                    anchor="starlette-json-handler")
    result.details.append(
        "The middleware lets the app answer first and then rewrites what it sent: it "
        "watches the start, reads the short text body (it may become `details`), and sends "
        "the envelope instead. The anchor never builds the plain-text response at all. "
        "`asgi-404-handlers` measures proxygate's own exception handler, the anchor's "
        "mechanism."
    )
    result.details.extend(f"Note: {note}" for note in apps.NOTES)


def asgi_not_found_handlers(settings: Settings, result: CaseResult) -> None:
    import apps

    measured = _not_found_pairs(settings, {
        "proxygate-handlers": apps.starlette_envelope_handlers(),
        "proxygate-handlers+middleware": apps.starlette_envelope_documented(),
    })
    cost_comparison(result, measured, proxygate="proxygate-handlers",
                    anchor="starlette-json-handler")
    both = measured.cost_ratio("proxygate-handlers+middleware", "starlette-json-handler")
    result.details.append(
        "`proxygate-handlers+middleware` is the setup docs/starlette.md shows (the handlers "
        "inside, the envelope middleware outside, which then passes the envelope on "
        f"unread): ratio {spread_ratio(both)} against the same anchor."
    )
    result.bars.append(Bar(result.case_id, "proxygate-handlers+middleware", True,
                           *(v / 1000 for v in _added(measured, "proxygate-handlers+middleware"))))


def _added(measured: PairedResult, name: str) -> tuple[float, float, float]:
    s = measured.added_cost(name)
    return s.median, s.q1, s.q3


def bcrypt_returning_user(settings: Settings, result: CaseResult) -> None:
    from drive import AsgiDriver

    import apps

    req = _asgi_requests()
    users = {apps.USER: apps.cheap_hash(), apps.SLOW_USER: apps.bcrypt_hash()}
    driver = AsgiDriver()
    try:
        bare = apps.starlette_bare()
        pg = apps.starlette_proxygate(users)
        expect("bare", driver.exchange(bare, req["proxy"]), 200)
        # The first request of each user pays for its hash; the case is about the ones after.
        expect("cheap-hash user", driver.exchange(pg, req["proxy"]), 200)
        expect("bcrypt-12 user", driver.exchange(pg, req["slow_user"]), 200)
        measured = run_pairs(settings, [
            driver.contender("bare", bare, req["proxy"]),
            driver.contender("cheap-hash user", pg, req["proxy"]),
            driver.contender("bcrypt-12 user", pg, req["slow_user"]),
        ])
    finally:
        driver.close()
    describe_pairs(result, measured)
    ratio = measured.throughput_ratio("bcrypt-12 user", "cheap-hash user")
    cheap = measured.time_per_request("cheap-hash user")
    slow = measured.time_per_request("bcrypt-12 user")
    result.anchor_cell = f"{1e9 / cheap.median:,.0f} req/s (cheap-hash user)"
    result.proxygate_cell = f"{1e9 / slow.median:,.0f} req/s (bcrypt-12 user)"
    result.ratio_value = ratio.median
    result.ratio_cell = spread_ratio(ratio)
    result.details.append("")
    result.details.append(
        "Ratio = the bcrypt user's requests per second ÷ the cheap-hash user's, round by round, "
        "both through the same proxygate instance after each user's first (verifying) request."
    )


def digest_returning_user(settings: Settings, result: CaseResult) -> None:
    from drive import AsgiDriver, Request, basic

    import apps

    driver = AsgiDriver()
    client = apps.DigestClient()
    try:
        bare = apps.starlette_bare()
        pg = apps.starlette_proxygate(apps.digest_users_file(), schemes=("basic", "digest"),
                                      realm=apps.REALM, nonce_secret=apps.NONCE_SECRET)
        challenge = driver.exchange(pg, Request())
        expect("challenge", challenge, 407)
        client.take(challenge.headers)
        plain = Request()
        basic_header = ("Proxy-Authorization", basic(apps.USER, apps.PASSWORD))
        expect("basic user", driver.exchange(pg, Request(headers=(basic_header,))), 200)
        expect("digest user", driver.exchange(pg, Request(headers=(client.next(),))), 200)
        measured = run_pairs(settings, [
            driver.contender_fresh("bare", bare, plain, lambda: basic_header),
            driver.contender_fresh("basic user (cached)", pg, plain, lambda: basic_header),
            driver.contender_fresh("digest user", pg, plain, client.next),
        ])
    finally:
        driver.close()
    describe_pairs(result, measured)
    basic_cost = measured.added_cost("basic user (cached)")
    digest_cost = measured.added_cost("digest user")
    ratio = measured.cost_ratio("digest user", "basic user (cached)")
    result.anchor_cell = f"{signed(basic_cost)} (Basic, cached)"
    result.proxygate_cell = f"{signed(digest_cost)} (Digest, next nc)"
    result.ratio_value = ratio.median
    result.ratio_cell = spread_ratio(ratio)
    result.details.append("")
    result.details.append(
        "Ratio = the Digest user's added cost ÷ the cached Basic user's, round by round, through "
        "one gate offering both from one digest users file. Every Digest request carries the "
        "next nc for one nonce (made before the clock starts): nonce HMAC, two digests, the "
        "response compare and the replay memory, no password hash and no thread."
    )


# --- WSGI cases ---------------------------------------------------------------


def wsgi_flask(settings: Settings, result: CaseResult) -> None:
    from drive import wsgi_contender, wsgi_exchange

    import apps

    req = _asgi_requests()
    bare = apps.flask_bare()
    anchor = apps.flask_httpauth_anchor()
    plain = apps.flask_httpauth_anchor(plaintext=True)
    pg = apps.flask_proxygate()
    expect("bare", wsgi_exchange(bare, req["proxy"]), 200, body_has=apps.BODY)
    expect("flask-httpauth", wsgi_exchange(anchor, req["origin"]), 200, body_has=apps.BODY)
    expect("flask-httpauth", wsgi_exchange(anchor, req["none"]), 401)
    expect("flask-httpauth-plaintext", wsgi_exchange(plain, req["origin"]), 200)
    expect("proxygate", wsgi_exchange(pg, req["proxy"]), 200, body_has=apps.BODY)
    expect("proxygate", wsgi_exchange(pg, req["none"]), 407)
    measured = run_pairs(settings, [
        wsgi_contender("bare", bare, req["proxy"]),
        wsgi_contender("flask-httpauth", anchor, req["origin"]),
        wsgi_contender("flask-httpauth-plaintext", plain, req["origin"]),
        wsgi_contender("proxygate", pg, req["proxy"]),
    ])
    cost_comparison(result, measured, proxygate="proxygate", anchor="flask-httpauth",
                    extra_anchors=("flask-httpauth-plaintext",))
    result.details.append(
        "flask-httpauth verifies the same apr1 hash on every request (it has no cache); "
        "flask-httpauth-plaintext compares a plaintext password instead, the cheapest any "
        "verify_password callback can be. It is shown for scale and carries no target."
    )


def wsgi_django(settings: Settings, result: CaseResult) -> None:
    import django_site
    from drive import Request, basic, wsgi_contender, wsgi_exchange

    import apps

    proxy = Request(headers=(("Proxy-Authorization", basic(apps.USER, apps.PASSWORD)),))
    remote = Request(headers=((django_site.REMOTE_USER_HEADER, apps.USER),))
    import proxygate.wsgi

    bare = django_site.bare()
    anchor = django_site.remote_user_anchor()
    pg = proxygate.wsgi.ProxyGateMiddleware(django_site.bare(), users=apps.cheap_users())
    expect("bare", wsgi_exchange(bare, proxy), 200)
    expect("django-remote-user", wsgi_exchange(anchor, remote), 200, header="Set-Cookie")
    expect("proxygate", wsgi_exchange(pg, proxy), 200)
    measured = run_pairs(settings, [
        wsgi_contender("bare", bare, proxy),
        wsgi_contender("django-remote-user", anchor, remote),
        wsgi_contender("proxygate", pg, proxy),
    ])
    cost_comparison(result, measured, proxygate="proxygate", anchor="django-remote-user")
    result.details.append(
        "The anchor trusts a header a front proxy would set, so it checks no password, but "
        "as documented it logs the user in on every cookie-less request: a user lookup, a "
        "last_login update and a session insert in SQLite (in memory)."
    )


# --- out-of-process cases ----------------------------------------------------------


def subprocess_env() -> dict[str, str]:
    """Environment for child processes: this directory and the checkout's src importable."""
    env = dict(os.environ)
    parts = [str(HERE)]
    src = HERE.parent / "src"
    if (src / "proxygate").is_dir():
        parts.append(str(src))
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


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


def e2e_uvicorn(settings: Settings, result: CaseResult) -> None:
    import e2e

    e2e.compare(settings, result, server="uvicorn")


def e2e_gunicorn(settings: Settings, result: CaseResult) -> None:
    import e2e

    e2e.compare(settings, result, server="gunicorn")


def e2e_nginx_apr1(settings: Settings, result: CaseResult) -> None:
    import gateway

    gateway.compare(settings, result, scheme="apr1")


def e2e_nginx_bcrypt12(settings: Settings, result: CaseResult) -> None:
    import gateway

    gateway.compare(settings, result, scheme="bcrypt12")


CASES: list[Case] = [
    Case("asgi-auth", "ASGI, authenticated request, cached credential, envelope on",
         "Starlette AuthenticationMiddleware + docs BasicAuthBackend", Target("<=", 0.5),
         asgi_authenticated),
    Case("asgi-denied", "ASGI, denied request (no credentials)",
         "same anchor's error path (@requires → 403)", Target("<=", 0.5), asgi_denied),
    Case("asgi-404", "ASGI, app 404 rewritten to the envelope",
         "Starlette HTTPException → JSON handler", Target("<=", 1.0), asgi_not_found),
    Case("asgi-404-handlers", "ASGI, app 404 → envelope by proxygate's Starlette handler",
         "Starlette HTTPException → JSON handler", Target("<=", 1.0), asgi_not_found_handlers),
    Case("wsgi-flask", "WSGI, authenticated request (Flask)",
         "Flask-HTTPAuth login_required, same apr1 hash", Target("<=", 0.2), wsgi_flask),
    Case("wsgi-django", "WSGI, Django view",
         "RemoteUserMiddleware fed by a header", None, wsgi_django),
    Case("bcrypt-returning", "bcrypt cost 12 user, returning (throughput ratio)",
         "same user with a cheap (apr1) hash", Target(">=", 0.9), bcrypt_returning_user),
    Case("digest-returning", "ASGI, returning Digest user (SHA-256, next nc) beside cached Basic",
         "the same gate, a cached Basic user", None, digest_returning_user),
    Case("memory-failed-logins", "memory: 1,000,000 failed logins with distinct names",
         "—", Target("<=", 50.0, " MiB"), memory_failed_logins),
    Case("e2e-uvicorn", "end to end: uvicorn + Starlette, wrk (throughput ratio)",
         "the same app without proxygate (and with Starlette auth, for scale)", Target(">=", 0.95),
         e2e_uvicorn),
    Case("e2e-gunicorn", "end to end: gunicorn + Flask, wrk (throughput ratio)",
         "the same app without proxygate (and with Flask-HTTPAuth, for scale)", Target(">=", 0.95),
         e2e_gunicorn),
    Case("hash-flood", "returning user's p99 while 50 addresses send wrong bcrypt-12 passwords",
         "the same user's p99 with no flood", Target("<=", 2.0),
         lambda settings, result: _flood().flood(settings, result)),
    Case("ldap-returning", "LDAP directory user, returning (throughput ratio)",
         "an htpasswd (apr1) user, returning", Target(">=", 0.9),
         lambda settings, result: _directory().ldap_returning_user(settings, result)),
    Case("ldap-miss", "LDAP cache miss: one search + one bind; unknown vs wrong password",
         "a wrong password (search + failed bind)", Target("<=", 1.5),
         lambda settings, result: _directory().ldap_cache_miss(settings, result)),
    Case("e2e-nginx-apr1", "end to end: nginx + forward-auth vs nginx auth_basic, apr1 file",
         "nginx auth_basic (C), checking the apr1 hash every request", Target(">=", 1.0),
         e2e_nginx_apr1),
    Case("e2e-nginx-bcrypt12",
         "end to end: nginx + forward-auth vs nginx auth_basic, bcrypt cost-12 file",
         "nginx auth_basic (C), checking the bcrypt hash every request", None,
         e2e_nginx_bcrypt12),
]


CASES += [
    Case("asgi-429", "ASGI, a throttled request (429) against a cached success, in process",
         "the cached success through the same middleware", Target("<=", 2.0),
         lambda settings, result: _module("throttle_cases").asgi_throttled(settings, result)),
    Case("flood-429", "one-address 429 flood under uvicorn (share of a core at 5,000/s)",
         "a bare 200 at the same rate, for scale", Target("<=", 0.2, " of a core"),
         lambda settings, result: _module("throttle_cases").flood_429(settings, result)),
    Case("import-time", "import proxygate.asgi (time ratio)",
         "import starlette.middleware.authentication", Target("<=", 1.0),
         lambda settings, result: _module("startup_cases").import_time(settings, result)),
    Case("first-200", "first 200 from proxygate serve (time ratio)",
         "bare uvicorn, a framework-less app", Target("<=", 1.3),
         lambda settings, result: _module("startup_cases").first_200(settings, result)),
]


def _module(name: str) -> Any:
    """A case family's module, imported when one of its cases runs (they import this one)."""
    import importlib

    return importlib.import_module(name)


def _flood() -> Any:
    import flood  # imports this module: loaded when the flood case runs

    return flood


def _directory() -> Any:
    import directory_cases  # imports this module: loaded when a directory case runs

    return directory_cases
