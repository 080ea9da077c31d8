"""Bad input gets a typed error naming the fix, and the broker's state is unchanged."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import taskward
from taskward.api import (
    BrokerConfig,
    ConfigError,
    DuplicateTaskError,
    ManualClock,
    NotLeasedError,
    PayloadError,
    Stats,
)
from taskward.backends.base import BrokerBackend
from taskward.backends.memory import MemoryBroker
from taskward.backends.sqlite import SQLiteBroker

MakeBroker = Callable[..., BrokerBackend]
"""The ``make`` fixture: opens a broker of the backend under test."""


def counts(broker: BrokerBackend) -> tuple[int, int, int, int]:
    stats: Stats = broker.stats()
    return stats.ready, stats.leased, stats.acked, stats.dead


# ------------------------------------------------------------------ connect


def test_connect_opens_each_embedded_backend(tmp_path: Path) -> None:
    with taskward.connect("memory://") as memory:  # type: ignore[attr-defined]
        assert isinstance(memory, MemoryBroker)
    sqlite = taskward.connect(f"sqlite:///{tmp_path / 'a.db'}", policy="round_robin",
                              workers=["w1"], lease_ms=5, durability="normal")
    try:
        assert isinstance(sqlite, SQLiteBroker)
        assert sqlite.config.policy == "round_robin"
        assert sqlite.config.workers == ("w1",)
        assert "restart" in sqlite.capabilities()
    finally:
        sqlite.close()


def test_an_unknown_scheme_names_the_accepted_ones() -> None:
    with pytest.raises(ConfigError, match=r"memory://.*sqlite:///.*redis://"):
        taskward.connect("postgres://localhost/db")


def test_an_unknown_option_names_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"leese_ms.*valid:.*lease_ms"):
        taskward.connect("memory://", leese_ms=5)
    with pytest.raises(ConfigError, match="durability"):
        taskward.connect("memory://", durability="full")  # an sqlite option only


@pytest.mark.parametrize(
    ("options", "fix"),
    [
        ({"policy": "fifo"}, "shared, round_robin, work_stealing"),
        ({"lease_ms": -1}, "positive"),
        ({"lease_ms": "100"}, "must be an int"),
        ({"max_deliveries": 0}, "at least 1"),
        ({"workers": "w1"}, "list of non-empty"),
        ({"workers": ["w1", "w1"]}, "distinct"),
        ({"clock": object()}, "now_ms"),
        ({"election_margin_ms": 20_000}, "below election_lease_ms"),
    ],
)
def test_bad_options_are_refused_with_the_fix(options: dict[str, Any], fix: str) -> None:
    with pytest.raises(ConfigError, match=fix):
        taskward.connect("memory://", **options)


def test_sqlite_urls_must_name_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="memory://"):
        taskward.connect("sqlite:///:memory:")
    with pytest.raises(ConfigError, match="synchronous"):
        taskward.connect(f"sqlite:///{tmp_path / 'a.db'}", synchronous="sometimes")
    assert not (tmp_path / "a.db").exists()


def test_redis_urls_without_the_backend_give_an_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "taskward.backends.redis", None)
    with pytest.raises(ConfigError, match=r"pip install 'taskward\[redis\]'"):
        taskward.connect("redis://127.0.0.1:1/0")
    with pytest.raises(ConfigError, match=r"pip install 'taskward\[redis\]'"):
        taskward.connect("rediss://127.0.0.1:1/0", namespace="x")


def test_the_package_exports_connect_the_api_types_and_a_version() -> None:
    assert taskward.connect is not None
    assert taskward.BrokerConfig is BrokerConfig
    assert taskward.__version__ == "0.1.0"
    assert set(taskward.__all__) >= {"connect", "Delivery", "NotLeasedError", "ManualClock"}


# ------------------------------------------------------------------ payloads


@pytest.mark.parametrize(
    "payload", [{1, 2}, object(), {"x": math.nan}, math.inf, b"bytes", {("a",): 1}]
)
def test_a_payload_that_is_not_json_is_refused_and_nothing_is_stored(
    make: MakeBroker, payload: Any
) -> None:
    broker = make()
    with pytest.raises(PayloadError, match="JSON"):
        broker.publish(payload, task_id="a")
    assert counts(broker) == (0, 0, 0, 0)
    broker.publish("fine", task_id="a")  # the id was not taken
    assert counts(broker) == (1, 0, 0, 0)


def test_a_payload_that_contains_itself_is_refused(make: MakeBroker) -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    broker = make()
    with pytest.raises(PayloadError):
        broker.publish(cyclic, task_id="a")
    assert counts(broker) == (0, 0, 0, 0)


def test_payloads_are_stored_as_compact_standard_json(make: MakeBroker) -> None:
    broker = make()
    payload = {"s": 'é"\n', "n": [1, -0.0, 1e300, 2**70], "b": True, "z": None, "1": {}}
    broker.publish(payload, task_id="a")
    delivery = broker.fetch("w")
    assert delivery is not None
    assert delivery.payload == payload
    assert json.dumps(delivery.payload) == json.dumps(payload)


def test_one_bad_payload_rejects_the_whole_batch(make: MakeBroker) -> None:
    broker = make()
    with pytest.raises(PayloadError):
        broker.publish_many([1, 2, {3}], task_ids=["a", "b", "c"])
    assert counts(broker) == (0, 0, 0, 0)


def test_payloads_round_trip_as_json_never_as_python_objects(make: MakeBroker) -> None:
    broker = make()
    broker.publish({"t": (1, 2), "n": None, "f": 0.5}, task_id="a")
    delivery = broker.fetch("w")
    assert delivery is not None
    assert delivery.payload == {"t": [1, 2], "n": None, "f": 0.5}


# ------------------------------------------------------------------ duplicates


def test_a_duplicate_inside_a_batch_rejects_the_batch(make: MakeBroker) -> None:
    broker = make()
    with pytest.raises(DuplicateTaskError, match="twice"):
        broker.publish_many([1, 2, 3], task_ids=["a", "b", "a"])
    assert counts(broker) == (0, 0, 0, 0)


def test_a_duplicate_against_a_stored_task_rejects_the_batch(make: MakeBroker) -> None:
    broker = make(policy="round_robin", workers=["w1", "w2"])
    broker.publish(0, task_id="b")  # to w1; the cursor moves to w2
    with pytest.raises(DuplicateTaskError, match="'b' was already published"):
        broker.publish_many([1, 2, 3], task_ids=["a", "b", "c"])
    assert counts(broker) == (1, 0, 0, 0)
    broker.publish(0, task_id="a")  # the failed batch did not move the cursor
    assert [d.task_id for d in broker.fetch_many("w2", 2)] == ["a"]


# ------------------------------------------------------------------ ids and counts


@pytest.mark.parametrize(
    ("call", "fix"),
    [
        (lambda b: b.fetch(""), "worker must be a non-empty string"),
        (lambda b: b.fetch(7), "worker must be a non-empty string"),
        (lambda b: b.fetch_many("w", 0), "n must be an int >= 1"),
        (lambda b: b.publish(1, task_id=""), "task_id must be a non-empty string"),
        (lambda b: b.publish(1, priority=1.5), "priority must be an int"),
        (lambda b: b.publish(1, priority=True), "priority must be an int"),
        (lambda b: b.publish(1, priority=2**63), "priority must be an int"),
        (lambda b: b.publish_many([1, 2], task_ids=["a"]), "one id each"),
        (lambda b: b.ack_many("w", ["a", "a"]), "ack each task once"),
        (lambda b: b.ack_many("w", "ab"), "list of task ids"),
        (lambda b: b.publish_many("ab"), "list of payloads"),
        (lambda b: b.tick(""), "node must be a non-empty string"),
    ],
)
def test_malformed_arguments_are_refused_before_the_store_is_touched(
    make: MakeBroker, clock: ManualClock, call: Any, fix: str
) -> None:
    broker = make(lease_ms=100, max_deliveries=1)
    broker.publish(0, task_id="a")
    broker.fetch("w")
    clock.advance(100)
    with pytest.raises(ConfigError, match=fix):
        call(broker)
    assert broker.stats().dead == 1
    assert broker.dead_letter_reasons()[0][0] == "a"


def test_acking_a_task_you_do_not_hold_changes_nothing(make: MakeBroker) -> None:
    broker = make()
    broker.publish_many([1, 2], task_ids=["a", "b"])
    broker.fetch("w1")
    for worker, task_id in [("w2", "a"), ("w1", "b"), ("w1", "nope")]:
        with pytest.raises(NotLeasedError, match="fetch it first"):
            broker.ack(worker, task_id)
        with pytest.raises(NotLeasedError):
            broker.nack(worker, task_id)
        with pytest.raises(NotLeasedError):
            broker.extend(worker, task_id)
    assert counts(broker) == (1, 1, 0, 0)
    broker.ack("w1", "a")
    assert counts(broker) == (1, 0, 1, 0)


def test_a_closed_broker_refuses_further_calls(make: MakeBroker) -> None:
    broker = make()
    broker.close()
    with pytest.raises(taskward.StoreError, match="closed"):
        broker.publish(1)
    broker.close()  # closing twice is harmless
