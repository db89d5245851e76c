"""Gate options for the test apps, handed over by the test through one environment variable."""

from __future__ import annotations

import json
import os
from typing import Any

ENV = "PROXYGATE_TEST_GATE"
#: Secret text the /boom route puts in its exception: it must never reach a client.
SECRET = "s3cret-do-not-leak-4f2a"


def gate_options() -> dict[str, Any]:
    """``json.loads($PROXYGATE_TEST_GATE)``; lists become tuples, as Config expects."""
    raw = os.environ.get(ENV)
    if not raw:
        raise RuntimeError(f"set {ENV} to the JSON of the gate options")
    options: dict[str, Any] = json.loads(raw)
    return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}


#: How long /stream and /slow wait for the file the test creates before giving up.
WAIT_LIMIT = 15.0


def budget_report(budget: Any) -> dict[str, int]:
    """What ``/budget`` answers: the gate's hash budget as this process saw it."""
    return {"peak": budget.peak, "refused": budget.refused, "admitted": budget.admitted,
            "concurrency": budget.concurrency, "pid": os.getpid()}
