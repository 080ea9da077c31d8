"""The in-process backend: the exact broker and election semantics, nothing durable.

One lock serialises every operation, which makes each one atomic for threads.
Ready queues are heaps with lazy deletion (an entry is valid only while its
task still carries the stamp it was pushed with), so fetching the best task
stays logarithmic; the rare reassignment after a worker dies scans only the
queues that need it.
"""

from __future__ import annotations

import heapq
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from taskward.api import (
    BrokerConfig,
    Delivery,
    DuplicateTaskError,
    JSONValue,
    NotLeasedError,
    Stats,
    StoreError,
)
from taskward.backends.base import (
    ACKED,
    DEAD,
    LEASED,
    READY,
    BrokerBackend,
    ElectionState,
    NewTask,
    Settle,
    TickResult,
    assign,
    check_name,
    decide_tick,
    decode_delivery,
    expiry_reason,
    is_live,
    nack_reason,
    not_leased,
    pick_victim,
    write_accepted,
)

_Entry = tuple[int, int, int]
"""A heap entry: (-priority, seq, stamp) for queues, (expiry, seq, stamp) for leases."""


@dataclass(slots=True)
class _Task:
    seq: int
    task_id: str
    payload: str
    priority: int
    state: int = READY
    owner: str | None = None
    """The queue while READY (None: unassigned or the shared queue), the holder while LEASED."""
    expiry: int = 0
    deliveries: int = 0
    stamp: int = 0


class MemoryBroker(BrokerBackend):
    """A broker whose state lives in this process; lost when the process ends."""

    def __init__(self, config: BrokerConfig) -> None:
        super().__init__(config)
        self._lock = threading.Lock()
        self._tasks: dict[str, _Task] = {}
        self._by_seq: dict[int, _Task] = {}
        self._seq = 0
        self._queues: dict[str | None, list[_Entry]] = {}
        self._ready: dict[str | None, int] = {}
        self._leases: list[_Entry] = []
        self._dead: list[tuple[str, str]] = []
        start = config.clock.now_ms()
        self._rotation: list[str] = list(config.workers)
        self._seen: dict[str, int] = dict.fromkeys(config.workers, start)
        self._cursor = 0
        self._members: dict[str, int] = {}
        self._election = ElectionState(None, None, 0)
        self._writes: list[tuple[int, str, str]] = []
        self._closed = False

    # -- queue bookkeeping --------------------------------------------------

    def _queue_of(self, worker: str) -> str | None:
        """Where a worker's ready tasks wait: its own queue, or the one shared queue."""
        return None if self.config.policy == "shared" else worker

    def _enqueue(self, task: _Task, owner: str | None) -> None:
        task.state, task.owner = READY, owner
        task.stamp += 1
        heapq.heappush(self._queues.setdefault(owner, []), (-task.priority, task.seq, task.stamp))
        self._ready[owner] = self._ready.get(owner, 0) + 1

    def _leave_ready(self, task: _Task) -> None:
        self._ready[task.owner] -= 1
        task.stamp += 1

    def _best(self, owner: str | None) -> _Task | None:
        """Best READY task of a queue: highest priority, then smallest seq."""
        heap = self._queues.get(owner)
        while heap:
            _, seq, stamp = heap[0]
            task = self._by_seq[seq]
            if task.stamp == stamp and task.state == READY:
                return task
            heapq.heappop(heap)
        return None

    def _drain(self, owner: str | None) -> list[_Task]:
        """Take every READY task out of a queue (for reassignment)."""
        heap = self._queues.pop(owner, [])
        tasks = [self._by_seq[seq] for _, seq, stamp in heap if self._by_seq[seq].stamp == stamp]
        tasks = [task for task in tasks if task.state == READY]
        for task in tasks:
            self._leave_ready(task)
        return tasks

    def _lease(self, task: _Task, worker: str, now: int) -> Delivery:
        self._leave_ready(task)
        task.state, task.owner = LEASED, worker
        task.expiry = now + self.config.lease_ms
        task.deliveries += 1
        heapq.heappush(self._leases, (task.expiry, task.seq, task.stamp))
        return decode_delivery(
            task.task_id, task.payload, task.priority, task.deliveries, task.expiry, task.seq
        )

    def _kill(self, task: _Task, reason: str) -> None:
        task.state, task.owner = DEAD, None
        task.stamp += 1
        self._dead.append((task.task_id, reason))

    # -- the prelude --------------------------------------------------------

    def _now(self) -> int:
        """The time of this operation; a closed broker refuses to have one."""
        if self._closed:
            raise StoreError("this broker is closed; connect again")
        return self.config.clock.now_ms()

    def _live(self, worker: str, now: int) -> bool:
        return is_live(self._seen[worker], now, self.config.worker_timeout_ms)

    def _assign(self, now: int) -> str | None:
        owner, self._cursor = assign(self._rotation, lambda w: self._live(w, now), self._cursor)
        return owner

    def _prelude(self, worker: str | None) -> int:
        """CONFORMANCE's three steps, run at the start of every broker operation."""
        now = self._now()
        if worker is not None:
            if worker not in self._seen:
                self._rotation.append(worker)
            self._seen[worker] = now
        self._expire(now)
        if self.config.policy != "shared":
            self._reassign(now)
        return now

    def _expire(self, now: int) -> None:
        """Every lease with expiry <= now ends, in seq order."""
        ended: list[_Task] = []
        while self._leases and self._leases[0][0] <= now:
            _, seq, stamp = heapq.heappop(self._leases)
            task = self._by_seq[seq]
            if task.stamp == stamp and task.state == LEASED:
                ended.append(task)
        for task in sorted(ended, key=lambda t: t.seq):
            holder = task.owner
            assert holder is not None
            if task.deliveries >= self.config.max_deliveries:
                self._kill(task, expiry_reason(task.deliveries))
            else:
                self._enqueue(task, self._queue_of(holder))

    def _reassign(self, now: int) -> None:
        """READY tasks unassigned or in a non-live worker's queue move, in seq order.

        With no live worker every assignment would leave a task unassigned, so
        the unassigned queue is left alone instead of being rebuilt on every call.
        """
        stranded = [
            owner for owner, count in self._ready.items()
            if count > 0 and (owner is None or not self._live(owner, now))
        ]
        if not any(self._live(w, now) for w in self._rotation):
            stranded = [owner for owner in stranded if owner is not None]
        if not stranded:
            return
        tasks = sorted((t for owner in stranded for t in self._drain(owner)), key=lambda t: t.seq)
        for task in tasks:
            self._enqueue(task, self._assign(now))

    # -- broker primitives --------------------------------------------------

    def _publish(self, tasks: Sequence[NewTask]) -> None:
        with self._lock:
            now = self._prelude(None)
            for new in tasks:
                if new.task_id in self._tasks:
                    raise DuplicateTaskError(
                        f"task_id {new.task_id!r} was already published; "
                        "task ids are idempotency keys, use a new one"
                    )
            for new in tasks:
                self._seq += 1
                task = _Task(self._seq, new.task_id, new.payload_json, new.priority)
                self._tasks[new.task_id] = self._by_seq[task.seq] = task
                shared = self.config.policy == "shared"
                self._enqueue(task, None if shared else self._assign(now))

    def _fetch(self, worker: str, n: int) -> list[Delivery]:
        with self._lock:
            return self._take(worker, n, self._prelude(worker))

    def _take(self, worker: str, n: int, now: int) -> list[Delivery]:
        out: list[Delivery] = []
        while len(out) < n:
            task = self._next_for(worker)
            if task is None:
                break
            out.append(self._lease(task, worker, now))
        return out

    def ack_and_fetch(self, worker: str, task_id: str) -> Delivery | None:
        """Ack then fetch under one lock: no other thread can act in between."""
        worker, task_id = check_name(worker, "worker"), check_name(task_id, "task_id")
        with self._lock:
            now = self._prelude(worker)
            self._apply(self._held(worker, task_id), worker, "ack", now)
            found = self._take(worker, 1, now)
            return found[0] if found else None

    def _next_for(self, worker: str) -> _Task | None:
        """Own queue first; with work stealing, then the fullest peer's best task."""
        task = self._best(self._queue_of(worker))
        if task is not None or self.config.policy != "work_stealing":
            return task
        counts = {w: c for w, c in self._ready.items() if w is not None}
        victim = pick_victim(counts, worker)
        return None if victim is None else self._best(victim)

    def _settle(self, worker: str, task_ids: Sequence[str], action: Settle) -> list[int]:
        with self._lock:
            now = self._prelude(worker)
            tasks = [self._held(worker, task_id) for task_id in task_ids]
            results = [self._apply(task, worker, action, now) for task in tasks]
            return [expiry for expiry in results if expiry is not None]

    def _held(self, worker: str, task_id: str) -> _Task:
        """The task if ``worker`` holds its lease (the prelude already ended expired ones)."""
        task = self._tasks.get(task_id)
        if task is None or task.state != LEASED or task.owner != worker:
            state = None if task is None else task.state
            holder = None if task is None else task.owner
            raise NotLeasedError(not_leased(worker, task_id, state, holder))
        return task

    def _apply(self, task: _Task, worker: str, action: Settle, now: int) -> int | None:
        if action == "extend":
            task.stamp += 1
            task.expiry = now + self.config.lease_ms
            heapq.heappush(self._leases, (task.expiry, task.seq, task.stamp))
            return task.expiry
        if action == "ack":
            task.state, task.owner = ACKED, None
            task.stamp += 1
        elif action == "dead" or task.deliveries >= self.config.max_deliveries:
            self._kill(task, nack_reason(action == "requeue", task.deliveries))
        else:
            self._enqueue(task, self._queue_of(worker))
        return None

    def _heartbeat(self, worker: str) -> None:
        with self._lock:
            self._prelude(worker)

    def _dead_letters(self) -> list[tuple[str, str]]:
        with self._lock:
            self._prelude(None)
            return list(self._dead)

    def _stats(self) -> Stats:
        with self._lock:
            now = self._now()
            counts = [0, 0, 0, 0]
            for task in self._tasks.values():
                counts[self._state_after_expiry(task, now)] += 1
            live = sum(1 for w in self._rotation if self._live(w, now))
            held = self._election.expiry is not None and now < self._election.expiry
            leader = self._election.holder if held else None
            return Stats(counts[READY], counts[LEASED], counts[ACKED], counts[DEAD], live,
                         leader, self._election.epoch)

    def _state_after_expiry(self, task: _Task, now: int) -> int:
        if task.state != LEASED or now < task.expiry:
            return task.state
        return DEAD if task.deliveries >= self.config.max_deliveries else READY

    # -- election primitives --------------------------------------------------

    def _tick(self, node: str) -> TickResult:
        with self._lock:
            now = self._now()
            self._members[node] = now
            self._election, outcome = decide_tick(
                node, now, self._election, self._members, self.config
            )
            return TickResult(outcome, self._election.epoch, now)

    def _leader_write(self, node: str, epoch: int, value_json: str) -> bool:
        with self._lock:
            now = self._now()
            if not write_accepted(node, epoch, now, self._election):
                return False
            self._writes.append((epoch, node, value_json))
            return True

    def fenced_writes(self) -> list[tuple[int, str, JSONValue]]:
        with self._lock:
            return [(epoch, node, json.loads(value)) for epoch, node, value in self._writes]

    def close(self) -> None:
        with self._lock:
            self._closed = True
