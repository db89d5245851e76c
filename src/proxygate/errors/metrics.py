"""Optional Prometheus counters (extra ``prometheus``): responses, normalized errors, auth outcomes.

Off by default. When off, or when ``prometheus_client`` is not installed and
metrics were never asked for, nothing is imported and callers hold ``None``:
the hot path pays one ``is None`` test.

Wiring (each call is a dict look-up and a lock-free-ish counter increment):

- :meth:`ErrorMetrics.response` once per HTTP response, from the shells, with the status sent;
- :meth:`ErrorMetrics.error` by :class:`~proxygate.errors.handler.ErrorHandler` itself
  for every error response it produces or lets through;
- :meth:`ErrorMetrics.auth` from the gate's audit with its outcome and reason.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["ERROR_REASONS", "ErrorMetrics", "make_metrics"]

#: Why an error response looks the way it does (the ``reason`` label).
ERROR_REASONS = frozenset({"exception", "rewritten", "passed", "denied"})

_STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
_lock = threading.Lock()
_by_registry: dict[int, ErrorMetrics] = {}


class ErrorMetrics:
    """Four counters on one registry. Build with :func:`make_metrics`, which shares per registry."""

    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import REGISTRY, Counter

        registry = REGISTRY if registry is None else registry
        self.registry = registry
        self.responses = Counter(
            "proxygate_responses", "HTTP responses sent, by status class.",
            ["status_class"], registry=registry,
        )
        self.errors = Counter(
            "proxygate_error_responses",
            "Error responses by reason: exception (an unhandled or mapped exception), rewritten "
            "(the app's error response replaced by the envelope), passed (the app's JSON error "
            "let through), denied (authentication or throttling).",
            ["reason", "status"], registry=registry,
        )
        self.normalized = Counter(
            "proxygate_normalized_errors", "Error envelopes proxygate rendered, by status.",
            ["status"], registry=registry,
        )
        self.auth_outcomes = Counter(
            "proxygate_auth_outcomes", "Authentication outcomes (success, failure, throttled).",
            ["outcome", "reason"], registry=registry,
        )
        # Children resolved once: labels() costs a lock and a dict build per call.
        self._classes = [self.responses.labels(name) for name in _STATUS_CLASSES]

    def response(self, status: int) -> None:
        index = status // 100 - 1
        if 0 <= index < len(self._classes):
            self._classes[index].inc()

    def error(self, status: int, reason: str) -> None:
        self.errors.labels(reason, str(status)).inc()

    def rendered(self, status: int) -> None:
        self.normalized.labels(str(status)).inc()

    def auth(self, outcome: str, reason: str) -> None:
        self.auth_outcomes.labels(outcome, reason).inc()


def make_metrics(enabled: bool, registry: Any = None) -> ErrorMetrics | None:
    """The shared :class:`ErrorMetrics` for ``registry`` (default: the global one), or None.

    Several middleware instances in one process share the counters instead of
    failing on duplicate registration.
    """
    if not enabled:
        return None
    try:
        import prometheus_client
    except ImportError:
        raise ValueError(
            "metrics=True needs prometheus_client: pip install 'proxygate[prometheus]'"
        ) from None
    key = id(registry if registry is not None else prometheus_client.REGISTRY)
    with _lock:
        found = _by_registry.get(key)
        if found is None:
            found = _by_registry[key] = ErrorMetrics(registry)
        return found
