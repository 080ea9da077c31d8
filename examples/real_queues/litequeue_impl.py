"""litequeue's ``LiteQueue`` behind the conformance contract.

    PYTHONPATH=examples taskward check --impl real_queues.litequeue_impl:factory

``publish`` is ``put`` (the task id is the message data), ``fetch`` is
``pop``, ``ack`` is ``done``, ``nack`` is ``retry`` (requeue) or
``mark_failed``, ``dead_letters`` is ``list_failed``, ``restart`` reopens the
file. No workers, leases, priorities or election: the adapter declares
``broker``, ``shared`` and ``restart``. See docs/real-queues.md.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from litequeue import LiteQueue


class LiteQueueImpl:
    def __init__(self, config: dict[str, Any]) -> None:
        self.workers = set(config["workers"])
        self.folder = tempfile.mkdtemp(prefix="lq-check-")
        self.path = str(Path(self.folder) / "queue.db")
        self.q = LiteQueue(self.path)
        self.ids: dict[str, str] = {}

    def _mid(self, worker: str, task_id: str) -> str:
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
        self.ids[task_id] = str(self.q.put(task_id).message_id)

    def fetch(self, worker: str) -> str | None:
        if worker not in self.workers:
            raise ValueError(f"unknown worker {worker!r}")
        message = self.q.pop()
        return None if message is None else str(message.data)

    def ack(self, worker: str, task_id: str) -> None:
        self.q.done(self._mid(worker, task_id))

    def nack(self, worker: str, task_id: str, requeue: bool) -> None:
        mid = self._mid(worker, task_id)
        if requeue:
            self.q.retry(mid)
        else:
            self.q.mark_failed(mid)

    def extend(self, worker: str, task_id: str) -> None:
        self._mid(worker, task_id)

    def heartbeat(self, worker: str) -> None:
        if worker not in self.workers:
            raise ValueError(f"unknown worker {worker!r}")

    def dead_letters(self) -> list[str]:
        return [str(m.data) for m in self.q.list_failed()]

    def advance(self, ms: int) -> None:
        """litequeue reads the wall clock only in list_locked; nothing to move."""

    def restart(self) -> None:
        self.q.close()
        self.q = LiteQueue(self.path)

    def close(self) -> None:
        self.q.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def factory(config: dict[str, Any]) -> LiteQueueImpl:
    return LiteQueueImpl(config)
