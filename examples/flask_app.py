"""A small Flask service behind proxygate's Flask extension.

Needs ``pip install "proxygate[flask,gunicorn]"``. From the checkout's root, start one
of the two servers and try it (demo user ``demo``, password ``demo-password``, from
``users.htpasswd``)::

    gunicorn --chdir examples flask_app:app --bind 127.0.0.1:8000
    flask --app examples/flask_app.py run --port 8000          # or Flask's own server
    curl -x http://127.0.0.1:8000 --proxy-user demo:demo-password http://127.0.0.1:8000/whoami

Set ``DEMO_USERS_FILE`` to use another htpasswd file (``proxygate users add FILE NAME``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from flask import Flask, Response, abort, g, jsonify, request

from proxygate.contrib.flask import ProxyGate

app = Flask(__name__)
app.config.update(
    PROXYGATE_USERS=os.environ.get("DEMO_USERS_FILE",
                                   str(Path(__file__).with_name("users.htpasswd"))),
    PROXYGATE_REALM="examples",
    PROXYGATE_EXEMPT_PATHS=["/healthz"],
)
ProxyGate(app)


@app.get("/")
def index() -> Response:
    return jsonify(service="flask", user=g.proxygate_user.username)


@app.get("/whoami")
def whoami() -> Response:
    return jsonify(
        user=g.proxygate_user.username if g.proxygate_user else None,
        remote_user=request.remote_user,
        proxy_authorization=request.headers.get("Proxy-Authorization"),
        authorization=request.headers.get("Authorization"),
    )


@app.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@app.get("/stream")
def stream() -> Response:
    def lines() -> Iterator[str]:
        for number in range(5):
            yield f"report line {number}\n"

    return Response(lines(), mimetype="text/plain")


@app.get("/boom")
def boom() -> Response:
    raise RuntimeError("lost the connection to postgres://reports:hunter2@db.internal")


@app.get("/forbidden")
def forbidden() -> Response:
    abort(403, "You may not see the reports.")
