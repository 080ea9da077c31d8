"""persist-queue's ``SQLiteAckQueue`` behind the conformance contract.

    PYTHONPATH=examples taskward check --impl real_queues.persistqueue_impl:factory

The adapter only translates: task ids are the queue items, ``fetch`` is
``get``, ``ack``/``nack``/``nack(requeue=False)`` are ``ack``/``nack``/
``ack_failed`` on the item's ``pqid``, ``restart`` closes and reopens the
file. The library has no workers, leases, priorities or election, so the
adapter declares ``broker``, ``shared`` and ``restart`` only, and anything
the library accepts is reported as accepted. See docs/real-queues.md for
where its semantics differ.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

from persistqueue import SQLiteAckQueue
from persistqueue.exceptions import Empty

FAILED = 9
"""``AckStatus.ack_failed`` in persist-queue's status column."""


class PersistQueueImpl:
    def __init__(self, config: dict[str, Any]) -> None:
        self.workers = set(config["workers"])
        self.folder = tempfile.mkdtemp(prefix="pq-check-")
        self.q = self._open()
        self.ids: dict[str, int] = {}

    def _open(self) -> SQLiteAckQueue:
        return SQLiteAckQueue(self.folder, multithreading=True)

    def _pqid(self, worker: str, task_id: str) -> int:
        if worker not in self.workers:
            raise ValueError(f"unknown worker {worker!r}")
        if task_id not in self.ids:
            raise KeyError(f"unknown task {task_id!r}")
        return self.ids[task_id]

    def capabilities(self) -> list[str]:
        return ["broker", "shared", "restart"]

    def publish(self, task_id: str, priority: int) -> None:
        if task_id in self.ids:
            raise ValueError(f"task_id {task_id!r} reused")  # the library would take it
        self.ids[task_id] = int(self.q.put(task_id))

    def fetch(self, worker: str) -> str | None:
        if worker not in self.workers:
            raise ValueError(f"unknown worker {worker!r}")
        try:
            item = self.q.get(block=False, raw=True)
        except Empty:
            return None
        return str(item["data"])

    def ack(self, worker: str, task_id: str) -> None:
        self.q.ack(id=self._pqid(worker, task_id))

    def nack(self, worker: str, task_id: str, requeue: bool) -> None:
        pqid = self._pqid(worker, task_id)
        if requeue:
            self.q.nack(id=pqid)
        else:
            self.q.ack_failed(id=pqid)

    def extend(self, worker: str, task_id: str) -> None:
        self._pqid(worker, task_id)  # no leases: nothing to renew

    def heartbeat(self, worker: str) -> None:
        if worker not in self.workers:
            raise ValueError(f"unknown worker {worker!r}")

    def dead_letters(self) -> list[str]:
        return [str(row["data"]) for row in self.q.queue() if row["status"] == FAILED]

    def advance(self, ms: int) -> None:
        """The library reads no clock the checker could move."""

    def restart(self) -> None:
        self.q.close()
        self.q = self._open()

    def close(self) -> None:
        self.q.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def factory(config: dict[str, Any]) -> PersistQueueImpl:
    return PersistQueueImpl(config)
