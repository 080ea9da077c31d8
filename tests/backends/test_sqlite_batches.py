"""SQLite batch paths: a few multi-row statements per batch call, all or nothing.

``publish_many`` inserts a batch in multi-row INSERTs and ``ack_many`` acks it
in set-based UPDATEs, each naming up to ``_CHUNK`` tasks with every value bound
as itself. A batch of several statements shares a savepoint, so a refusal in
its last statement still leaves nothing, with the same typed errors as one
task at a time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

import taskward
from taskward.api import DuplicateTaskError, ManualClock, NotLeasedError, Stats
from taskward.backends.base import NewTask
from taskward.backends.sqlite import _CHUNK, SQLiteBroker, _chunks

ODD_IDS = ['quote"s', "slash/and\\back", "tâche-日本", "emoji-😀", "line\u2028sep",
           "{braces}:x", " ", "\\u0000 literally"]
ODD_PAYLOADS = [{"s": 'a"b'}, ["\u2028", "\x00"], 1.5e300, -0.0, "", None, "😀", {"n": 2**70}]


@pytest.fixture
def broker(tmp_path: Path, clock: ManualClock) -> Iterator[SQLiteBroker]:
    opened = taskward.connect(f"sqlite:///{tmp_path / 'batches.db'}", clock=clock)
    assert isinstance(opened, SQLiteBroker)
    yield opened
    opened.close()


def rows(broker: SQLiteBroker) -> list[tuple[object, ...]]:
    """Every task row as stored, to compare before and after a refused call."""
    assert broker._conn is not None
    return broker._conn.execute("SELECT * FROM tasks ORDER BY seq").fetchall()


SEVERAL = 2 * _CHUNK + 45
"""A batch size that takes several statements of different sizes."""


@pytest.mark.parametrize("count", [1, 2, 3, 127, 128, 129, 300, 1000])
def test_chunks_cover_a_batch_once_in_order_with_few_sizes(count: int) -> None:
    pieces = _chunks(count)
    assert [start for start, _ in pieces] == [sum(size for _, size in pieces[:i])
                                              for i in range(len(pieces))]
    assert sum(size for _, size in pieces) == count
    assert all(size <= _CHUNK and size & (size - 1) == 0 for _, size in pieces)


def test_a_batch_larger_than_the_variable_limit_is_one_call(broker: SQLiteBroker) -> None:
    assert broker._conn is not None
    count = broker._conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 8 + 1
    count = max(count, 40_000)
    ids = broker.publish_many(list(range(count)))
    got = broker.fetch_many("w", count)
    assert [d.task_id for d in got] == ids
    assert [d.payload for d in got] == list(range(count))
    assert [d.seq for d in got] == list(range(1, count + 1))
    broker.ack_many("w", ids)
    assert broker.stats().acked == count


def test_a_batch_keeps_its_order_priority_and_payloads_exactly(broker: SQLiteBroker) -> None:
    broker.publish_many(["low"], task_ids=["first"], priority=-(2**63))
    broker.publish_many(ODD_PAYLOADS, task_ids=ODD_IDS, priority=2**63 - 1)
    got = broker.fetch_many("w", 20)
    assert [d.task_id for d in got] == [*ODD_IDS, "first"]
    assert [d.payload for d in got] == [*ODD_PAYLOADS, "low"]
    assert [d.priority for d in got] == [2**63 - 1] * len(ODD_IDS) + [-(2**63)]
    assert all(d.deliveries == 1 for d in got)
    broker.ack_many("w", [*ODD_IDS, "first"])
    assert broker.stats().acked == len(ODD_IDS) + 1


def test_ids_with_a_nul_round_trip_and_are_acked(broker: SQLiteBroker) -> None:
    ids = ["nul\x00a", "nul\x00b", "plain"]
    broker.publish_many([1, 2, 3], task_ids=ids)
    got = broker.fetch_many("w", 3)
    assert [d.task_id for d in got] == ids
    broker.ack_many("w", ids)
    assert broker.stats() == Stats(0, 0, 3, 0, 1, None, 0)
    with pytest.raises(DuplicateTaskError, match="nul"):
        broker.publish_many([4, 5], task_ids=["fresh", "nul\x00b"])
    assert broker.stats().acked == 3


def test_ack_many_of_nul_ids_still_refuses_one_not_held(broker: SQLiteBroker) -> None:
    broker.publish_many([1, 2], task_ids=["nul\x00a", "nul\x00b"])
    broker.fetch("w")
    before = rows(broker)
    with pytest.raises(NotLeasedError, match="READY"):
        broker.ack_many("w", ["nul\x00a", "nul\x00b"])
    assert rows(broker) == before


def test_an_id_already_stored_refuses_the_whole_batch(broker: SQLiteBroker) -> None:
    broker.publish_many([1, 2], task_ids=["a", "b"])
    before = rows(broker)
    with pytest.raises(DuplicateTaskError, match="'b' was already published"):
        broker.publish_many([3, 4, 5], task_ids=["c", "b", "d"])
    assert rows(broker) == before
    broker.publish_many([3, 4], task_ids=["c", "d"])
    assert [d.seq for d in broker.fetch_many("w", 4)] == [1, 2, 3, 4]


def test_a_repeated_id_reaching_the_store_inserts_nothing(broker: SQLiteBroker) -> None:
    """The store's own guard: the one INSERT aborts whole, so no row of the batch stays."""
    broker.publish(0, task_id="kept")
    before = rows(broker)
    twice = [NewTask("x", "1", 0), NewTask("y", "2", 0), NewTask("x", "3", 0)]
    with pytest.raises(DuplicateTaskError):
        broker._publish(twice)
    assert rows(broker) == before
    assert broker.publish_many([1, 2], task_ids=["x", "y"]) == ["x", "y"]


def test_a_repeated_id_inside_a_batch_is_refused_before_the_store(broker: SQLiteBroker) -> None:
    before = rows(broker)
    with pytest.raises(DuplicateTaskError, match="appears twice"):
        broker.publish_many([1, 2, 3], task_ids=["x", "y", "x"])
    assert rows(broker) == before


def test_a_duplicate_in_the_last_statement_undoes_the_earlier_ones(
    broker: SQLiteBroker,
) -> None:
    ids = [f"t{i:04d}" for i in range(SEVERAL)]
    broker.publish(0, task_id=ids[-1])
    before = rows(broker)
    with pytest.raises(DuplicateTaskError, match=f"'{ids[-1]}' was already published"):
        broker.publish_many(list(range(SEVERAL)), task_ids=ids)
    assert rows(broker) == before
    broker.publish_many(list(range(SEVERAL - 1)), task_ids=ids[:-1])
    got = broker.fetch_many("w", SEVERAL)
    assert [d.task_id for d in got] == [ids[-1], *ids[:-1]]
    assert [d.payload for d in got] == [0, *range(SEVERAL - 1)]


def test_a_task_not_held_in_the_last_statement_undoes_the_earlier_acks(
    broker: SQLiteBroker,
) -> None:
    ids = broker.publish_many(list(range(SEVERAL)))
    broker.fetch_many("w", SEVERAL - 1)
    before = rows(broker)
    with pytest.raises(NotLeasedError, match=f"'{ids[-1]}'.*READY"):
        broker.ack_many("w", ids)
    assert rows(broker) == before
    broker.ack_many("w", ids[:-1])
    assert broker.stats() == Stats(1, 0, SEVERAL - 1, 0, 1, None, 0)


def test_round_robin_batches_spread_over_several_statements(
    tmp_path: Path, clock: ManualClock
) -> None:
    broker = taskward.connect(f"sqlite:///{tmp_path / 'rr.db'}", clock=clock,
                              policy="round_robin", workers=["w1", "w2", "w3"])
    try:
        ids = broker.publish_many(list(range(SEVERAL)))
        for k, worker in enumerate(["w1", "w2", "w3"]):
            got = broker.fetch_many(worker, SEVERAL)
            assert [d.task_id for d in got] == ids[k::3]
    finally:
        broker.close()


def test_a_lone_surrogate_fails_a_batch_as_it_fails_one_task(broker: SQLiteBroker) -> None:
    with pytest.raises(UnicodeEncodeError):
        broker.publish(1, task_id="\ud800")
    with pytest.raises(UnicodeEncodeError):
        broker.publish_many([1, 2], task_ids=["fine", "\ud800"])
    assert rows(broker) == []
