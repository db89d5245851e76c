"""The start-up warnings, decided from server facts without a server (the real servers are
in test_attack_servers.py): which worker setups split counters or stall cached users."""

from __future__ import annotations

import logging

import pytest

from proxygate._server import ServerFacts, detect_server, warn_about_server
from proxygate.config import Config
from proxygate.gate import Gate


def never(username: str, password: str) -> bool:
    return False


def warnings_for(facts: ServerFacts, *, wsgi: bool, caplog: pytest.LogCaptureFixture,
                 **options: object) -> list[str]:
    gate = Gate(Config(users=never, **options))  # type: ignore[arg-type]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="proxygate"):
        warn_about_server(gate, wsgi=wsgi, facts=facts)
    return [record.getMessage() for record in caplog.records]


@pytest.mark.parametrize(("worker_class", "threads", "flows"), [
    ("sync", 1, False),
    ("sync", 4, True),  # gunicorn runs sync with threads as gthread
    ("gthread", 1, False),
    ("gthread", 8, True),
    ("gevent", 1, False),  # bcrypt runs on the hub's one thread and blocks it
    ("eventlet", 100, False),
    ("uvicorn.workers.UvicornWorker", 1, True),
    ("gunicorn.workers.sync.SyncWorker", 2, True),
])
def test_which_gunicorn_workers_keep_cached_wsgi_users_flowing(worker_class: str, threads: int,
                                                               flows: bool) -> None:
    assert ServerFacts("gunicorn", 1, threads, worker_class).serves_wsgi_concurrently is flows


def test_several_workers_with_the_memory_store_are_told_to_share_counters(
        caplog: pytest.LogCaptureFixture) -> None:
    messages = warnings_for(ServerFacts("uvicorn", 4), wsgi=False, caplog=caplog)
    assert len(messages) == 1
    assert "uvicorn runs 4 worker processes" in messages[0]
    assert "up to 4 times max_failures" in messages[0]
    assert "redis://" in messages[0]


def test_several_workers_with_a_shared_store_are_not_warned(
        caplog: pytest.LogCaptureFixture) -> None:
    gate = Gate(Config(users=never))
    gate.throttle.store = object()  # type: ignore[assignment]  # stands for Redis or yours
    with caplog.at_level(logging.WARNING, logger="proxygate"):
        warn_about_server(gate, wsgi=False, facts=ServerFacts("uvicorn", 4))
    assert caplog.records == []


def test_a_sync_gunicorn_worker_is_told_how_to_keep_cached_users_flowing(
        caplog: pytest.LogCaptureFixture) -> None:
    messages = warnings_for(ServerFacts("gunicorn", 1, 1, "sync"), wsgi=True, caplog=caplog,
                            max_concurrent_hashes=2, max_queued_hashes=3)
    assert len(messages) == 1
    assert "--worker-class gthread --threads N" in messages[0]
    assert "2 hashing + 3 queued" in messages[0]


def test_the_asgi_shell_is_never_warned_about_worker_classes(
        caplog: pytest.LogCaptureFixture) -> None:
    assert warnings_for(ServerFacts("gunicorn", 1, 1, "sync"), wsgi=False, caplog=caplog) == []


def test_no_server_on_the_stack_means_no_facts_and_no_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    assert detect_server() is None
    gate = Gate(Config(users=never))
    with caplog.at_level(logging.WARNING, logger="proxygate"):
        warn_about_server(gate, wsgi=True)
    assert caplog.records == []


def test_a_gunicorn_config_on_the_stack_is_found() -> None:
    from gunicorn.config import Config as GunicornConfig

    def build_app(cfg: GunicornConfig) -> ServerFacts | None:
        return detect_server()

    cfg = GunicornConfig()
    cfg.set("workers", 3)
    cfg.set("threads", 2)
    # gunicorn itself names sync-with-threads gthread.
    assert build_app(cfg) == ServerFacts("gunicorn", 3, 2, "gthread")
