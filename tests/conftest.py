"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import taskward
from taskward.api import Broker


@pytest.fixture
def connect() -> Iterator[Callable[..., Broker]]:
    """``taskward.connect`` whose brokers are closed after the test, even a failing one."""
    opened: list[Broker] = []

    def open_one(url: str, **options: Any) -> Broker:
        opened.append(taskward.connect(url, **options))
        return opened[-1]

    yield open_one
    for broker in opened:
        broker.close()
