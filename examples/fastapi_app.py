"""A small FastAPI service behind proxygate: envelopes in the app and in the OpenAPI schema.

Needs ``pip install "proxygate[fastapi,serve]"``. From the checkout's root, start the server
and try it (demo user ``demo``, password ``demo-password``, from ``users.htpasswd``)::

    uvicorn --app-dir examples fastapi_app:app --port 8000
    curl -x http://127.0.0.1:8000 --proxy-user demo:demo-password http://127.0.0.1:8000/whoami

Set ``DEMO_USERS_FILE`` to use another htpasswd file (``proxygate users add FILE NAME``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.authentication import requires

from proxygate.contrib.starlette import (
    ProxyGateMiddleware,
    error_responses,
    install_error_handlers,
)

USERS = os.environ.get("DEMO_USERS_FILE", str(Path(__file__).with_name("users.htpasswd")))

app = FastAPI(title="reports", responses=error_responses())
install_error_handlers(app)
app.add_middleware(ProxyGateMiddleware, users=USERS, realm="examples", exempt_paths=["/healthz"])


class Signup(BaseModel):
    name: str = Field(min_length=2)
    password: str = Field(min_length=12)


@app.get("/")
@requires("authenticated")
async def index(request: Request) -> dict[str, Any]:
    return {"service": "fastapi", "user": request.user.username}


@app.get("/whoami")
async def whoami(request: Request) -> dict[str, Any]:
    return {
        "user": request.user.username if request.user.is_authenticated else None,
        "scopes": list(request.auth.scopes),
        "proxy_authorization": request.headers.get("proxy-authorization"),
        "authorization": request.headers.get("authorization"),
    }


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def lines() -> AsyncIterator[bytes]:
        for number in range(5):
            yield f"report line {number}\n".encode()

    return StreamingResponse(lines(), media_type="text/plain")


@app.get("/boom")
async def boom() -> None:
    raise RuntimeError("lost the connection to postgres://reports:hunter2@db.internal")


@app.get("/forbidden")
async def forbidden() -> None:
    raise HTTPException(403, "You may not see the reports.")


@app.post("/signup", status_code=201)
async def signup(form: Signup) -> dict[str, str]:
    return {"created": form.name}
