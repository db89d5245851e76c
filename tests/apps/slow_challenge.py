"""The test ASGI app behind the gate, with its first challenge held back in transit.

``$PROXYGATE_TEST_CHALLENGE_DELAY`` seconds pass before the first 401/407 leaves the
server, as over a slow link: a nonce with a shorter life arrives expired, so the
client's answer meets ``stale=true``. Later challenges go out at once.
"""

from __future__ import annotations

import asyncio
import os

from apps.asgi_app import gated
from proxygate.asgi import Message, Receive, Scope, Send

_DELAY = float(os.environ.get("PROXYGATE_TEST_CHALLENGE_DELAY", "0"))
_held = {"done": False}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        await gated(scope, receive, send)
        return

    async def slow_send(message: Message) -> None:
        if (message["type"] == "http.response.start" and message["status"] in (401, 407)
                and not _held["done"]):
            _held["done"] = True
            await asyncio.sleep(_DELAY)  # the link's delay: the scenario, not a wait for it
        await send(message)

    await gated(scope, receive, slow_send)
