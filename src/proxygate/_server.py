"""What server runs the gate (worker processes, threads), read once at start-up, and the
warnings that follow from it: counters split across workers, cached users stuck behind hashes.

Servers do not tell an app how they run it, but each builds the app while its own
configuration object is on the call stack: gunicorn's ``cfg`` (the worker or the
application holds it), uvicorn's ``Config`` (its ``load()`` imports the app) and
hypercorn's ``config`` (a local of the worker function). The middleware looks for one
of them when it is constructed; found none, it says nothing.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from proxygate.auth.throttle import MemoryThrottleStore

if TYPE_CHECKING:
    from proxygate.gate import Gate

__all__ = ["ServerFacts", "detect_server", "warn_about_server"]

logger = logging.getLogger("proxygate")

#: How many frames up the stack to look: the app is built a few dozen frames below the
#: server's entry point (an import machinery's worth), never hundreds.
_DEPTH = 200


@dataclass(frozen=True)
class ServerFacts:
    name: str
    workers: int
    #: gunicorn only: threads per worker and the worker class as configured.
    threads: int = 1
    worker_class: str = ""

    @property
    def serves_wsgi_concurrently(self) -> bool:
        """Whether a WSGI request can be served while another one hashes in the same worker.

        gunicorn's sync worker (and gthread with one thread) serves one request at a
        time; gevent and eventlet run bcrypt on the one hub thread, which it blocks.
        """
        if self.name != "gunicorn":
            return True
        kind = self.worker_class.rsplit(".", 1)[-1].lower()
        if "uvicorn" in self.worker_class.lower():
            return True  # an ASGI worker: not a WSGI app at all
        return kind in ("sync", "syncworker", "gthread", "threadworker") and self.threads > 1


def detect_server(frame: FrameType | None = None) -> ServerFacts | None:
    """The facts of the server whose configuration is on the call stack, if any."""
    frame = frame if frame is not None else sys._getframe(1)
    depth = 0
    while frame is not None and depth < _DEPTH:
        local = frame.f_locals
        for name in ("self", "cfg", "config"):
            facts = _facts_of(local.get(name))
            if facts is not None:
                return facts
        frame = frame.f_back
        depth += 1
    return None


def _facts_of(candidate: Any) -> ServerFacts | None:
    if candidate is None:
        return None
    module = type(candidate).__module__
    if module.startswith("gunicorn"):
        cfg: Any = candidate if module == "gunicorn.config" else getattr(candidate, "cfg", None)
        if cfg is None or type(cfg).__module__ != "gunicorn.config":
            return None
        try:
            return ServerFacts("gunicorn", int(cfg.workers), int(cfg.threads),
                               str(cfg.worker_class_str))
        except (AttributeError, TypeError, ValueError):
            return None
    if module == "uvicorn.config" and type(candidate).__name__ == "Config":
        return ServerFacts("uvicorn", int(getattr(candidate, "workers", 1) or 1))
    if module == "hypercorn.config" and type(candidate).__name__ == "Config":
        return ServerFacts("hypercorn", int(getattr(candidate, "workers", 1) or 1))
    return None


def warn_about_server(gate: Gate, *, wsgi: bool, facts: ServerFacts | None = None) -> None:
    """One WARNING per finding, at construction: each worker process builds its gate once.

    ``facts`` defaults to :func:`detect_server` from the caller's caller (the shell's
    constructor is the caller).
    """
    if facts is None:
        caller = sys._getframe(2)
        facts = detect_server(caller)
        if facts is None:
            return
    if facts.workers > 1 and isinstance(gate.throttle.store, MemoryThrottleStore):
        logger.warning(
            "proxygate: %s runs %d worker processes and the throttle counts failures in "
            "memory, so each worker counts alone: a client gets up to %d times max_failures "
            "wrong passwords before a 429. Share the counters: "
            "throttle_store='redis://host:6379/0' (docs/throttling.md).",
            facts.name, facts.workers, facts.workers,
        )
    if wsgi and not facts.serves_wsgi_concurrently:
        logger.warning(
            "proxygate: gunicorn's %r worker with %d thread(s) serves one request at a time, "
            "so a user whose credential is cached still waits behind every password hash "
            "(bcrypt cost 12: about 0.3 s each) running in that worker. Use "
            "--worker-class gthread --threads N with N above the hash budget (%s) so cached "
            "users keep flowing (docs/deployment.md).",
            facts.worker_class, facts.threads,
            f"{gate.hash_budget.concurrency} hashing + {gate.hash_budget.queue} queued",
        )
