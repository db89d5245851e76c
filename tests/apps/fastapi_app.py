"""A plain FastAPI app speaking its own JSON errors, behind proxygate's middleware, for real servers.

Routes: ``/items/{n}`` raises ``HTTPException(404, "Item n not found")``; ``POST /items``
validates a body (FastAPI's own 422 list); ``/problem-500`` answers a problem+json 500
whose ``detail`` holds ``SECRET``. No proxygate handlers are installed: every error body
is FastAPI's own. Run with ``uvicorn apps.fastapi_app:app`` and ``$PROXYGATE_TEST_GATE``.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from starlette.responses import JSONResponse, Response

from apps._options import SECRET, gate_options
from proxygate.contrib.starlette import ProxyGateMiddleware


class Item(BaseModel):
    name: str
    price: float


app = FastAPI()


@app.get("/items/{number}")
async def item(number: int) -> dict[str, int]:
    raise HTTPException(404, f"Item {number} not found")


@app.post("/items")
async def create(item: Item) -> Item:
    return item


@app.get("/problem-500")
async def problem_500() -> Response:
    return JSONResponse({"type": "about:blank", "title": "Internal Server Error", "status": 500,
                         "detail": f"psycopg: password {SECRET} rejected"},
                        status_code=500, media_type="application/problem+json")


app.add_middleware(ProxyGateMiddleware, **gate_options())
