"""End to end on 127.0.0.1: a real server, a real load generator (wrk), with and without proxygate.

Bare (A), proxygate (B) and the anchor (C) start once, each on a free loopback port,
and stay up; wrk then alternates between them, A B C A B C … A, so that whatever the
machine's neighbours do during the run falls on all alike. Every wrk run sends the same
request, credentials included. Each B (and C) is divided by the mean of the A runs on
either side of it, so drift that is linear over a cycle cancels.
"""

from __future__ import annotations

import statistics

from drive import basic
from harness import HERE, CaseResult, Settings
from servers import LABELS, SERVERS, WRK, Server, start, tail, wrk


def compare(settings: Settings, result: CaseResult, *, server: str,
            against_anchor: bool = False) -> None:
    """Bare (A), proxygate (B) and the anchor (C) on one server kind, run A B C A B C … A."""
    if WRK is None:
        result.error = "skipped: wrk is not installed (apt-get install wrk)"
        return
    import apps

    spec = SERVERS[server]
    path = str(spec.get("path", ""))
    credentials = basic(apps.USER, apps.PASSWORD)
    headers = {"bare": "Proxy-Authorization: " + credentials,
               "proxygate": "Proxy-Authorization: " + credentials,
               "anchor": "Authorization: " + credentials}
    connections = int(spec["connections"])  # type: ignore[call-overload]
    # Server logs are scratch: never next to the committed results.
    logs = (HERE / "out" if settings.out.resolve() == HERE else settings.out) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    servers: list[Server] = []
    runs: dict[str, list[float]] = {label: [] for label in LABELS}
    errors: list[str] = []
    try:
        for label in LABELS:
            servers.append(start(server, label, logs / f"{server}-{label}.log"))
        bare = servers[0]
        s = bare
        try:
            # Warm each (imports, the credential cache, the CPU's frequency) before counting.
            for s in servers:
                wrk(s.url + path, seconds=1, connections=connections, header=headers[s.label],
                    errors=bool(path))
            # A B C A B C … A: every B and C run sits between two A runs and is
            # compared with their mean, so drift that is linear over a cycle cancels.
            for s in [*servers * settings.e2e_pairs, bare]:
                rps, err = wrk(s.url + path, seconds=settings.e2e_seconds,
                               connections=connections, header=headers[s.label],
                               errors=bool(path))
                runs[s.label].append(rps)
                if err:
                    errors.append(f"{s.label}: {err}")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\nserver log ({s.label}):\n{tail(s.log)}") from None
    finally:
        for s in servers:
            s.stop()
    a = runs["bare"]

    def ratios(label: str) -> list[float]:
        return [r / ((a[i] + a[i + 1]) / 2) for i, r in enumerate(runs[label])]

    pg, anchor = ratios("proxygate"), ratios("anchor")
    ratio = statistics.median(pg)
    result.anchor_cell = (f"{spec['anchor']}: {statistics.median(anchor):.3f} x bare "
                          f"[{min(anchor):.3f}…{max(anchor):.3f}]")
    result.proxygate_cell = (f"{statistics.median(runs['proxygate']):,.0f} req/s vs "
                             f"{statistics.median(a):,.0f} bare")
    result.ratio_value = ratio
    result.ratio_cell = f"{ratio:.3f} x bare [{min(pg):.3f}…{max(pg):.3f}]"
    if against_anchor:
        # Judged against the anchor's throughput in the same cycle (B ÷ C, side by side).
        versus = [b / c for b, c in zip(runs["proxygate"], runs["anchor"], strict=True)]
        result.ratio_value = statistics.median(versus)
        result.ratio_cell = (f"{result.ratio_value:.3f} x the anchor [{min(versus):.3f}…"
                             f"{max(versus):.3f}]; {ratio:.3f} x bare")
    result.raw.update(runs)
    seconds = max(1, round(settings.e2e_seconds))
    result.details.append(
        f"`{server}`, one worker, `wrk -t1 -c{connections} -d{seconds}s`; proxygate and bare get "
        "the same `Proxy-Authorization` header, the anchor "
        f"({spec['anchor']}) the same credentials in `Authorization`. Runs in the order "
        f"{'A B C ' * len(runs['proxygate'])}A (A = bare, B = proxygate, C = anchor), after a "
        "1 s warm-up of each."
    )
    result.details.append(
        "Requests/s, " + "; ".join(
            f"{label}: " + ", ".join(f"{r:,.0f}" for r in runs[label]) for label in LABELS
        ) + ". Ratio = each B (or C) ÷ the mean of the A runs on either side of it; "
        "median [min…max]. The table's ratio is proxygate's throughput over bare; the "
        "anchor's, over the same bare runs, is given for scale."
    )
    if against_anchor:
        result.details.append(
            "Judged against the anchor: each proxygate run ÷ the anchor run of the same "
            "cycle, median [min…max] (target: at least the anchor; toward 0.95 x bare)."
        )
    if errors:
        result.details.append("wrk reported " + "; ".join(errors))


def e2e_uvicorn(settings: Settings, result: CaseResult) -> None:
    compare(settings, result, server="uvicorn", against_anchor=True)


def e2e_gunicorn(settings: Settings, result: CaseResult) -> None:
    compare(settings, result, server="gunicorn")


def e2e_not_found(settings: Settings, result: CaseResult) -> None:
    """The app's 404 under uvicorn, rewritten by the middleware: what ``asgi-404``'s
    in-process cost comes to where a client waits for it."""
    compare(settings, result, server="uvicorn-404", against_anchor=True)
    result.details.append(_NOT_FOUND_NOTE.format(
        how="proxygate's `ErrorEnvelopeMiddleware` rewriting it"))


def e2e_not_found_handlers(settings: Settings, result: CaseResult) -> None:
    """The same 404 with proxygate set up as docs/starlette.md shows it."""
    compare(settings, result, server="uvicorn-404-handlers", against_anchor=True)
    result.details.append(_NOT_FOUND_NOTE.format(
        how="proxygate's exception handler inside the app (`install_error_handlers`), "
            "the envelope middleware outside passing it on"))


_NOT_FOUND_NOTE = (
    "Every request asks for a missing page, so every answer is the app's 404: plain text "
    "from bare Starlette, the envelope from {how}, `{{\"detail\": ...}}` from the "
    "anchor's handler; wrk's count of error responses must equal its count of requests "
    "in every run."
)
