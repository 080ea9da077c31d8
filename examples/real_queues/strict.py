"""Holder bookkeeping in front of a real queue, to find the differences behind the first one.

Neither library knows which worker fetched a message, so both accept an ack
from anyone: the first difference ``taskward check`` reports. Wrapping them in
this guard (the adapter remembers who fetched what, and refuses settles from
anyone else) lets the checker report the *next* differences.

    PYTHONPATH=examples taskward check --impl real_queues.strict:persistqueue
    PYTHONPATH=examples taskward check --impl real_queues.strict:litequeue
"""

from __future__ import annotations

from typing import Any

from real_queues.litequeue_impl import LiteQueueImpl
from real_queues.persistqueue_impl import PersistQueueImpl


class Strict:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.holder: dict[str, str] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def fetch(self, worker: str) -> str | None:
        got: str | None = self.inner.fetch(worker)
        if got is not None:
            self.holder[got] = worker
        return got

    def _check(self, worker: str, task_id: str) -> None:
        if self.holder.get(task_id) != worker:
            raise ValueError(f"{worker} does not hold {task_id}")

    def ack(self, worker: str, task_id: str) -> None:
        self._check(worker, task_id)
        self.inner.ack(worker, task_id)
        del self.holder[task_id]

    def nack(self, worker: str, task_id: str, requeue: bool) -> None:
        self._check(worker, task_id)
        self.inner.nack(worker, task_id, requeue)
        del self.holder[task_id]

    def extend(self, worker: str, task_id: str) -> None:
        self._check(worker, task_id)
        self.inner.extend(worker, task_id)


def persistqueue(config: dict[str, Any]) -> Strict:
    return Strict(PersistQueueImpl(config))


def litequeue(config: dict[str, Any]) -> Strict:
    return Strict(LiteQueueImpl(config))
