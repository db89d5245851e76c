"""Optional Prometheus counters: off costs nothing, on counts responses, errors and auth outcomes."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from proxygate.config import Config
from proxygate.errors.handler import ErrorHandler, HeadFromPairs
from proxygate.errors.metrics import ErrorMetrics, make_metrics
from support.servers import child_env


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def _handler(registry: CollectorRegistry, **options: Any) -> ErrorHandler:
    handler = ErrorHandler(Config(users={}, **options))
    handler.metrics = make_metrics(True, registry)
    return handler


def _head() -> HeadFromPairs:
    return HeadFromPairs("GET", "/", [], "127.0.0.1")


def test_metrics_are_off_by_default() -> None:
    assert ErrorHandler(Config(users={})).metrics is None


def test_metrics_off_is_none() -> None:
    assert make_metrics(False) is None


def test_metrics_off_never_imports_prometheus_client() -> None:
    code = ("import sys; from proxygate.asgi import ErrorEnvelopeMiddleware as A; "
            "from proxygate.wsgi import ErrorEnvelopeMiddleware as W; "
            "A(lambda *a: None, users={}); W(lambda *a: None, users={}); "
            "print('prometheus_client' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=child_env(), check=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_metrics_without_prometheus_client_fail_with_the_extra_named(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ValueError, match=r"proxygate\[prometheus\]"):
        make_metrics(True, object())


def test_one_registry_gets_one_set_of_counters() -> None:
    registry = CollectorRegistry()
    assert make_metrics(True, registry) is make_metrics(True, registry)


def test_responses_are_counted_by_status_class() -> None:
    registry = CollectorRegistry()
    metrics = ErrorMetrics(registry)
    for status in (200, 204, 302, 404, 503, 101):
        metrics.response(status)
    assert _value(registry, "proxygate_responses_total", status_class="2xx") == 2
    for name in ("1xx", "3xx", "4xx", "5xx"):
        assert _value(registry, "proxygate_responses_total", status_class=name) == 1


def test_unhandled_exception_counts_as_exception_and_normalized() -> None:
    registry = CollectorRegistry()
    _handler(registry).exception_response(_head(), RuntimeError("x"))
    assert _value(registry, "proxygate_error_responses_total", reason="exception",
                  status="500") == 1
    assert _value(registry, "proxygate_normalized_errors_total", status="500") == 1


def test_replaced_app_error_counts_as_rewritten() -> None:
    registry = CollectorRegistry()
    _handler(registry).replace_response(_head(), 404, [(b"content-type", b"text/html")], None)
    assert _value(registry, "proxygate_error_responses_total", reason="rewritten",
                  status="404") == 1
    assert _value(registry, "proxygate_normalized_errors_total", status="404") == 1


def test_passed_json_error_counts_as_passed_not_normalized() -> None:
    registry = CollectorRegistry()
    handler = _handler(registry, pass_json_errors=True)
    handler.response_action(409, [(b"content-type", b"application/json")])
    assert _value(registry, "proxygate_error_responses_total", reason="passed",
                  status="409") == 1
    assert _value(registry, "proxygate_normalized_errors_total", status="409") == 0


def test_success_decision_counts_no_error() -> None:
    registry = CollectorRegistry()
    _handler(registry).response_action(200, [])
    assert registry.get_sample_value("proxygate_error_responses_total",
                                     {"reason": "passed", "status": "200"}) is None


def test_auth_outcomes_are_counted_by_outcome_and_reason() -> None:
    registry = CollectorRegistry()
    metrics = ErrorMetrics(registry)
    metrics.auth("failure", "bad_password")
    metrics.auth("failure", "bad_password")
    metrics.auth("success", "cached")
    assert _value(registry, "proxygate_auth_outcomes_total", outcome="failure",
                  reason="bad_password") == 2
    assert _value(registry, "proxygate_auth_outcomes_total", outcome="success",
                  reason="cached") == 1
