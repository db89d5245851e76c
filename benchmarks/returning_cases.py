"""Returning users: what the verification cache makes of a slow hash, and Digest's own work.

The first request of each user pays its hash before the rounds start; the rounds time
the requests after it, through the same proxygate instance."""

from __future__ import annotations

from harness import CaseResult, Settings, describe_pairs, expect, run_pairs, signed, spread_ratio


def bcrypt_returning_user(settings: Settings, result: CaseResult) -> None:
    from drive import AsgiDriver

    import apps

    req = apps.requests()
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
