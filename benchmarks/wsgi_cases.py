"""WSGI in process: Flask and Django behind ``proxygate.wsgi`` against their usual auth."""

from __future__ import annotations

from harness import CaseResult, Settings, cost_comparison, expect, run_pairs


def wsgi_flask(settings: Settings, result: CaseResult) -> None:
    from drive import wsgi_contender, wsgi_exchange

    import apps

    req = apps.requests()
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
