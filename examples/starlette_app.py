"""A small Starlette service behind proxygate, with envelopes from inside the app too.

Needs ``pip install "proxygate[starlette,serve]"``. From the checkout's root, start the server
and try it (demo user ``demo``, password ``demo-password``, from ``users.htpasswd``)::

    uvicorn --app-dir examples starlette_app:app --port 8000
    curl -x http://127.0.0.1:8000 --proxy-user demo:demo-password http://127.0.0.1:8000/whoami

Set ``DEMO_USERS_FILE`` to use another htpasswd file (``proxygate users add FILE NAME``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from proxygate.contrib.starlette import ProxyGateMiddleware, install_error_handlers

USERS = os.environ.get("DEMO_USERS_FILE", str(Path(__file__).with_name("users.htpasswd")))


@requires("authenticated")
async def index(request: Request) -> Response:
    return JSONResponse({"service": "starlette", "user": request.user.username})


async def whoami(request: Request) -> Response:
    return JSONResponse({
        "user": request.user.username if request.user.is_authenticated else None,
        "scopes": list(request.auth.scopes),
        "proxy_authorization": request.headers.get("proxy-authorization"),
        "authorization": request.headers.get("authorization"),
    })


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def stream(request: Request) -> Response:
    async def lines() -> AsyncIterator[bytes]:
        for number in range(5):
            yield f"report line {number}\n".encode()

    return StreamingResponse(lines(), media_type="text/plain")


async def boom(request: Request) -> Response:
    raise RuntimeError("lost the connection to postgres://reports:hunter2@db.internal")


async def forbidden(request: Request) -> Response:
    raise HTTPException(403, "You may not see the reports.")


app = Starlette(routes=[
    Route("/", index),
    Route("/whoami", whoami),
    Route("/healthz", healthz),
    Route("/stream", stream),
    Route("/boom", boom),
    Route("/forbidden", forbidden),
])
install_error_handlers(app)
app.add_middleware(ProxyGateMiddleware, users=USERS, realm="examples", exempt_paths=["/healthz"])
