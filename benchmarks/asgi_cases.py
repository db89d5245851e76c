"""ASGI in process: the gate's cached request, its denial, and the app's 404 made the envelope.

Each case builds the bare route, the anchor a Starlette user would otherwise pick and
proxygate, all serving the same request, checks each answer, then times them in paired
rounds (see ``pairs.py``)."""

from __future__ import annotations

from typing import Any

from harness import Bar, CaseResult, Settings, added, cost_comparison, expect, run_pairs, spread_ratio
from pairs import PairedResult


def asgi_authenticated(settings: Settings, result: CaseResult) -> None:
    from drive import AsgiDriver

    import apps

    req = apps.requests()
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

    req = apps.requests()
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

    missing = apps.requests()["missing"]
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
                           *(v / 1000 for v in added(measured, "proxygate-handlers+middleware"))))
