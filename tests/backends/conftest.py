"""Fixtures for the embedded backends: every broker here is real (memory or an SQLite file)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import taskward
from taskward.api import ManualClock
from taskward.backends.base import BrokerBackend

BACKENDS = ("memory", "sqlite")

MakeBroker = Callable[..., BrokerBackend]


@pytest.fixture
def clock() -> ManualClock:
    """Logical time starting at 0, moved only by the test."""
    return ManualClock()


@pytest.fixture(params=BACKENDS)
def kind(request: pytest.FixtureRequest) -> str:
    """Run the test once per embedded backend."""
    return str(request.param)


@pytest.fixture
def make(kind: str, tmp_path: Path, clock: ManualClock) -> Iterator[MakeBroker]:
    """Open brokers of the current backend on the test's clock; all closed afterwards."""
    opened: list[BrokerBackend] = []

    def open_broker(**options: Any) -> BrokerBackend:
        options.setdefault("clock", clock)
        if kind == "sqlite":
            url = f"sqlite:///{tmp_path / f'broker{len(opened)}.db'}"
        else:
            url = "memory://"
        broker = taskward.connect(url, **options)
        assert isinstance(broker, BrokerBackend)
        opened.append(broker)
        return broker

    yield open_broker
    for broker in opened:
        broker.close()


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "tasks.db"
