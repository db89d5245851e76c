"""The envelopes a gateway answers with itself: the upstream down, the service unreachable.

The service renders every denial; these few responses come from the gateway, so their
text is written into its configuration, rendered here by the same :class:`ErrorRenderer`
so the client cannot tell them apart from the service's. ``{id}`` in the result is where
the gateway puts its request id.
"""

from __future__ import annotations

import http

from proxygate.errors.envelope import ErrorRenderer

__all__ = ["AUTH_UNAVAILABLE_DETAILS", "AUTH_UNAVAILABLE_RETRY_AFTER", "SERVER_ERRORS", "envelope"]

#: Every 5xx status with a name: the upstream statuses a gateway replaces with the envelope.
SERVER_ERRORS: tuple[int, ...] = tuple(int(s) for s in http.HTTPStatus if 500 <= s < 600)
#: What a client is told when the gateway cannot reach the forward-auth service (503).
AUTH_UNAVAILABLE_DETAILS = "The authentication service is unavailable right now."
#: Seconds a client waits before trying again after that 503.
AUTH_UNAVAILABLE_RETRY_AFTER = 5

#: Alphanumeric, so the renderer takes it as a plain id and writes it unescaped.
_MARK = "proxygateRequestIdMark"


def envelope(status: int, details: str | None = None) -> tuple[str, str]:
    """The standard JSON envelope for ``status``, split around its request id.

    Returns ``(before, after)``: the gateway writes ``before + <its request id> + after``.
    """
    body = ErrorRenderer().render(status, details=details, request_id=_MARK).body.decode("utf-8")
    before, mark, after = body.partition(_MARK)
    assert mark, "the envelope carries the request id"
    return before, after
