"""What only the SQLite backend promises: durability, restart, a guarded file format, sharing."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

import taskward
from taskward.api import ManualClock, NotLeasedError, StoreError
from taskward.backends.sqlite import SCHEMA_VERSION, SQLiteBroker


@contextmanager
def opened(path: Path, **options: Any) -> Iterator[SQLiteBroker]:
    broker = taskward.connect(f"sqlite:///{path}", **options)
    assert isinstance(broker, SQLiteBroker)
    try:
        yield broker
    finally:
        broker.close()


def snapshot(path: Path) -> dict[str, bytes]:
    """Every file SQLite might have touched, byte for byte."""
    return {p.name: p.read_bytes() for p in sorted(path.parent.iterdir())}


# ------------------------------------------------------------------ restart


def test_leased_tasks_survive_a_restart(sqlite_path: Path, clock: ManualClock) -> None:
    with opened(sqlite_path, clock=clock, lease_ms=100, policy="round_robin",
                workers=["w1", "w2"]) as broker:
        broker.publish_many(["a", "b", "c"], task_ids=["a", "b", "c"])
        broker.fetch("w1")
        broker.restart()
        assert broker.stats().leased == 1
        broker.ack("w1", "a")  # the holder still holds it
        broker.fetch("w2")
        broker.restart()
        clock.advance(100)
        redelivered = broker.fetch("w2")
        assert redelivered is not None
        assert (redelivered.task_id, redelivered.deliveries) == ("b", 2)


def test_every_task_state_survives_closing_and_reopening(
    sqlite_path: Path, clock: ManualClock
) -> None:
    options = {"clock": clock, "max_deliveries": 1, "policy": "work_stealing",
               "workers": ["w1", "w2"]}
    with opened(sqlite_path, **options) as broker:
        broker.publish_many([1, 2, 3, 4], task_ids=["a", "b", "c", "d"])
        broker.fetch("w1")
        broker.ack("w1", "a")
        broker.fetch("w2")
        broker.nack("w2", "b", requeue=False)
        broker.fetch("w1")
        broker.tick("n1")
        broker.leader_write("n1", 1, {"k": "v"})
        before = broker.stats()
    with opened(sqlite_path, **options) as again:
        assert again.stats() == before
        assert again.dead_letters() == ["b"]
        assert again.fenced_writes() == [(1, "n1", {"k": "v"})]
        assert [d.task_id for d in again.fetch_many("w2", 2)] == ["d"]
        again.ack("w1", "c")


def test_seq_keeps_increasing_across_restarts(sqlite_path: Path) -> None:
    with opened(sqlite_path) as broker:
        broker.publish_many([1, 2], task_ids=["a", "b"])
        for delivery in broker.fetch_many("w", 2):
            broker.ack("w", delivery.task_id)
        broker.restart()
        broker.publish(3, task_id="c")
        delivery = broker.fetch("w")
        assert delivery is not None
        assert delivery.seq == 3


def test_a_restart_keeps_the_round_robin_cursor(sqlite_path: Path) -> None:
    with opened(sqlite_path, policy="round_robin", workers=["w1", "w2", "w3"]) as broker:
        broker.publish(1, task_id="a")
        broker.restart()
        broker.publish(2, task_id="b")
        assert [d.task_id for d in broker.fetch_many("w2", 2)] == ["b"]


# ------------------------------------------------------------------ the file format


def test_the_file_uses_wal_and_full_sync_by_default(sqlite_path: Path) -> None:
    with opened(sqlite_path) as broker:
        conn = broker._conn
        assert conn is not None
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    with opened(sqlite_path, durability="normal") as relaxed:
        assert relaxed._conn is not None
        assert relaxed._conn.execute("PRAGMA synchronous").fetchone()[0] == 1


def test_the_meta_table_records_the_schema_version(sqlite_path: Path) -> None:
    with opened(sqlite_path):
        pass
    with closing(sqlite3.connect(sqlite_path)) as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta"))
    assert meta == {"schema": "taskward", "version": str(SCHEMA_VERSION)}


def test_a_file_that_is_not_sqlite_is_refused_untouched(sqlite_path: Path) -> None:
    sqlite_path.write_bytes(b"hello, this is a text file\n" * 100)
    before = snapshot(sqlite_path)
    with pytest.raises(StoreError, match=r"not an SQLite database.*new file"):
        taskward.connect(f"sqlite:///{sqlite_path}")
    assert snapshot(sqlite_path) == before


def test_another_applications_database_is_refused_untouched(sqlite_path: Path) -> None:
    with closing(sqlite3.connect(sqlite_path)) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        conn.commit()
    before = snapshot(sqlite_path)
    with pytest.raises(StoreError, match="not a taskward one"):
        taskward.connect(f"sqlite:///{sqlite_path}")
    assert snapshot(sqlite_path) == before


def test_a_newer_schema_is_refused_with_an_upgrade_hint(sqlite_path: Path) -> None:
    with opened(sqlite_path):
        pass
    with closing(sqlite3.connect(sqlite_path)) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'version'")
        conn.commit()
    before = snapshot(sqlite_path)
    with pytest.raises(StoreError, match=r"schema v99.*upgrade taskward"):
        taskward.connect(f"sqlite:///{sqlite_path}")
    assert snapshot(sqlite_path) == before


def test_a_corrupt_database_is_refused_untouched(sqlite_path: Path) -> None:
    with opened(sqlite_path) as broker:
        broker.publish_many(list(range(50)))
    raw = bytearray(sqlite_path.read_bytes())
    raw[100:4096] = b"\xff" * (4096 - 100)  # the schema page, after the header
    sqlite_path.write_bytes(bytes(raw))
    before = snapshot(sqlite_path)
    with pytest.raises(StoreError, match="corrupt"):
        taskward.connect(f"sqlite:///{sqlite_path}")
    assert snapshot(sqlite_path) == before


def test_an_empty_file_becomes_a_new_broker(sqlite_path: Path) -> None:
    sqlite_path.touch()
    with opened(sqlite_path) as broker:
        broker.publish(1, task_id="a")
        assert broker.stats().ready == 1


# ------------------------------------------------------------------ sharing


def test_two_connections_to_one_file_share_every_task(sqlite_path: Path) -> None:
    with opened(sqlite_path) as producer, opened(sqlite_path) as consumer:
        producer.publish_many([1, 2], task_ids=["a", "b"])
        got = consumer.fetch("w")
        assert got is not None
        assert got.task_id == "a"
        with pytest.raises(NotLeasedError):
            producer.ack("other", "a")
        producer.ack("w", "a")
        assert consumer.stats().acked == 1


def test_a_lock_held_past_the_busy_timeout_is_a_definite_error(sqlite_path: Path) -> None:
    with opened(sqlite_path, busy_timeout_ms=50) as broker:
        broker.publish(1, task_id="a")
        with closing(sqlite3.connect(sqlite_path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreError, match="locked") as refused:
                broker.publish(2, task_id="b")
            assert refused.value.definite
            other.execute("ROLLBACK")
        broker.publish(2, task_id="b")  # "b" was never stored
        assert broker.stats().ready == 2


def test_threads_on_separate_connections_never_share_a_delivery(sqlite_path: Path) -> None:
    total = 200
    with opened(sqlite_path, durability="off") as broker:
        broker.publish_many(list(range(total)))
    seen: list[str] = []
    lock = threading.Lock()

    def drain(name: str) -> None:
        with opened(sqlite_path, durability="off") as mine:
            while (delivery := mine.fetch(name)) is not None:
                mine.ack(name, delivery.task_id)
                with lock:
                    seen.append(delivery.task_id)

    threads = [threading.Thread(target=drain, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == total
    assert len(set(seen)) == total
