"""Concurrent consumers: every task is delivered to exactly one of them while its lease holds."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import taskward
from taskward.backends.base import BrokerBackend

TASKS = 300


def drain(broker: BrokerBackend, worker: str) -> list[str]:
    """Fetch and ack until the broker has nothing left for ``worker``."""
    done: list[str] = []
    delivery = broker.fetch(worker)
    while delivery is not None:
        done.append(delivery.task_id)
        delivery = broker.ack_and_fetch(worker, delivery.task_id)
    return done


def drain_file(path: str, worker: str, out: multiprocessing.Queue[list[str]]) -> None:
    """A consumer process with its own connection to the shared file."""
    broker = taskward.connect(f"sqlite:///{path}", durability="normal")
    assert isinstance(broker, BrokerBackend)
    try:
        out.put(drain(broker, worker))
    finally:
        broker.close()


def test_threads_sharing_one_memory_broker_never_share_a_task() -> None:
    broker = taskward.connect("memory://", policy="work_stealing")
    assert isinstance(broker, BrokerBackend)
    broker.publish_many(list(range(TASKS)))
    results: dict[str, list[str]] = {}

    def run(name: str) -> None:
        results[name] = drain(broker, name)

    threads = [threading.Thread(target=run, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    delivered = [task_id for done in results.values() for task_id in done]
    assert sorted(delivered) == sorted(set(delivered))
    assert len(delivered) == TASKS
    assert broker.stats().acked == TASKS
    broker.close()


def test_processes_sharing_one_sqlite_file_never_share_a_task(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    broker = taskward.connect(f"sqlite:///{path}", durability="normal")
    assert isinstance(broker, BrokerBackend)
    ids = broker.publish_many(list(range(TASKS)))
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[list[str]] = context.Queue()
    processes = [
        context.Process(target=drain_file, args=(str(path), f"p{i}", out)) for i in range(3)
    ]
    for process in processes:
        process.start()
    delivered = [task_id for _ in processes for task_id in out.get(timeout=120)]
    for process in processes:
        process.join()
        assert process.exitcode == 0
    out.close()
    out.join_thread()
    assert sorted(delivered) == sorted(ids)
    assert broker.stats().acked == TASKS
    broker.close()
