"""A small, plain-Python implementation of the conformance contract, with mutation switches.

It follows ``CONFORMANCE.md`` line by line so that it passes ``taskward check``
unchanged; each *mutant* flips one rule the way real queues and elections get
it wrong. The catalogue in ``catalogue.py`` names every mutant, what it breaks
and which adapter form the tests use to reach it.

Run it in-process with ``--impl mutant_impls.reference:factory`` (with
``examples/`` on ``PYTHONPATH``) or over JSON lines with ``jsonlines_server.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

READY, LEASED, ACKED, DEAD = "READY", "LEASED", "ACKED", "DEAD"


class Rejected(Exception):
    """A definite rejection: the operation did nothing."""

    definite = True


@dataclass
class Task:
    seq: int
    priority: int
    state: str = READY
    owner: str | None = None
    expiry: int = 0
    deliveries: int = 0


class Reference:
    """Broker and election in one object; ``mutant`` names the one rule to get wrong."""

    def __init__(self, config: dict[str, Any], mutant: str | None = None) -> None:
        self.c = config
        self.m = mutant or ""
        self.workers: list[str] = list(config["workers"])
        self.nodes: set[str] = set(config["nodes"])
        self.per_worker = config["policy"] != "shared"
        self.now = 0
        self.seen = dict.fromkeys(self.workers, 0)
        self.cursor = 0
        self.tasks: dict[str, Task] = {}
        self.order: list[str] = []
        self.next_seq = 0
        self.dead: list[str] = []
        self.members: dict[str, int] = {}
        self.holder: str | None = None
        self.lease_end = 0
        self.epoch = 0
        self.beliefs: dict[str, tuple[int, int]] = {}

    # ------------------------------------------------------------ helpers
    def capabilities(self) -> list[str]:
        return ["broker", "leases", "priority", "shared", "round_robin", "work_stealing",
                "restart", "election"]

    def _worker(self, w: str) -> str:
        if w not in self.seen:
            raise Rejected(f"unknown worker {w!r}")
        return w

    def _node(self, n: str) -> str:
        if n not in self.nodes:
            raise Rejected(f"unknown node {n!r}")
        return n

    def _live(self, w: str) -> bool:
        if self.m == "heartbeat_ignored":
            return self.now < self.c["worker_timeout_ms"]
        return self.now - self.seen[w] < self.c["worker_timeout_ms"]

    def _assign(self) -> str | None:
        n = len(self.workers)
        for step in range(n):
            i = (self.cursor + step) % n
            if self.m == "rr_to_dead_worker" or self._live(self.workers[i]):
                self.cursor = (i + 1) % n
                return self.workers[i]
        return None

    def _by_seq(self) -> list[Task]:
        return sorted(self.tasks.values(), key=lambda t: t.seq)

    def _kill(self, tid: str, task: Task) -> None:
        task.state, task.owner = DEAD, None
        self.dead.append(tid)

    def _requeue(self, task: Task, worker: str | None) -> None:
        task.state, task.owner = READY, worker
        if self.m == "tail_redelivery":
            self.next_seq += 1
            task.seq = self.next_seq

    def _exhausted(self, task: Task) -> bool:
        limit = self.c["max_deliveries"] + (1 if self.m == "max_deliveries_plus_one" else 0)
        return task.deliveries >= limit

    def _prelude(self, worker: str | None) -> None:
        if worker is not None and self.m != "heartbeat_ignored":
            self.seen[worker] = self.now
        if self.m != "leases_never_expire":
            late = self.m == "expiry_one_tick_late"
            for tid in [i for i in self.order]:
                task = self.tasks[tid]
                ended = task.expiry < self.now if late else task.expiry <= self.now
                if task.state == LEASED and ended:
                    if self._exhausted(task):
                        self._kill(tid, task)
                    else:
                        self._requeue(task, task.owner)
        if self.per_worker:
            for task in self._by_seq():
                if task.state == READY and (task.owner is None or not self._live(task.owner)):
                    task.owner = self._assign()

    def _better(self, a: Task, b: Task) -> bool:
        if a.priority != b.priority:
            higher = a.priority > b.priority
            return not higher if self.m == "priority_inversion" else higher
        return a.seq > b.seq if self.m == "lifo" else a.seq < b.seq

    def _best(self, tasks: list[tuple[str, Task]]) -> str | None:
        best: tuple[str, Task] | None = None
        for tid, t in tasks:
            if best is None or self._better(t, best[1]):
                best = (tid, t)
        return None if best is None else best[0]

    def _ready_of(self, w: str | None) -> list[tuple[str, Task]]:
        return [(i, t) for i, t in self.tasks.items()
                if t.state == READY and (w is None or t.owner == w)]

    def _choose(self, worker: str) -> str | None:
        if not self.per_worker:
            return self._best(self._ready_of(None))
        own = self._best(self._ready_of(worker))
        if own is not None or self.c["policy"] == "round_robin":
            return own
        steal_leased = self.m == "steal_leased"
        best_victim, most = None, 0
        for w in sorted(self.workers):
            if w == worker:
                continue
            n = sum(1 for t in self.tasks.values() if t.owner == w and (
                t.state == READY or (steal_leased and t.state == LEASED)))
            if n > most:
                best_victim, most = w, n
        if best_victim is None:
            return None
        pool = [(i, t) for i, t in self.tasks.items() if t.owner == best_victim and (
            t.state == READY or (steal_leased and t.state == LEASED))]
        return self._best(pool)

    def _held(self, worker: str, tid: str) -> Task:
        task = self.tasks.get(tid)
        fresh = task is not None and (self.m == "stale_ack" or task.expiry > self.now)
        if task is None or task.state != LEASED or task.owner != worker or not fresh:
            raise Rejected(f"{worker} does not hold {tid}")
        return task

    # ------------------------------------------------------------ broker
    def publish(self, task_id: str, priority: int = 0) -> None:
        self._prelude(None)
        if task_id in self.tasks and self.m != "duplicate_ids":
            raise Rejected(f"task_id {task_id!r} reused")
        if task_id in self.tasks:
            task_id = f"{task_id}#{self.next_seq + 1}"
        self.next_seq += 1
        task = Task(self.next_seq, priority)
        self.tasks[task_id] = task
        self.order.append(task_id)
        if self.per_worker:
            task.owner = self._assign()

    def fetch(self, worker: str) -> str | None:
        self._prelude(self._worker(worker))
        tid = self._choose(worker)
        if tid is None:
            return None
        task = self.tasks[tid]
        task.state, task.owner = LEASED, worker
        task.expiry = self.now + self.c["lease_ms"]
        task.deliveries += 1
        return tid.split("#")[0]

    def ack(self, worker: str, task_id: str) -> None:
        if self.m == "stale_ack":
            self.seen[self._worker(worker)] = self.now
            task = self._held(worker, task_id)
            task.state, task.owner = ACKED, None
            self._prelude(worker)
            return
        self._prelude(self._worker(worker))
        task = self._held(worker, task_id)
        task.state, task.owner = ACKED, None

    def nack(self, worker: str, task_id: str, requeue: bool = True) -> None:
        self._prelude(self._worker(worker))
        task = self._held(worker, task_id)
        if self.m == "nack_loses_task" and requeue:
            task.state, task.owner = ACKED, None
        elif not requeue or self._exhausted(task):
            self._kill(task_id, task)
        else:
            self._requeue(task, worker)

    def extend(self, worker: str, task_id: str) -> None:
        self._prelude(self._worker(worker))
        task = self._held(worker, task_id)
        task.expiry = self.now + self.c["lease_ms"]

    def heartbeat(self, worker: str) -> None:
        self._prelude(self._worker(worker))

    def dead_letters(self) -> list[str]:
        self._prelude(None)
        return list(self.dead)

    def advance(self, ms: int) -> None:
        self.now += ms

    def restart(self) -> None:
        if self.m == "restart_drops_leases":
            for tid in [i for i, t in self.tasks.items() if t.state == LEASED]:
                del self.tasks[tid]
                self.order.remove(tid)

    # ------------------------------------------------------------ election
    def _smaller_live(self, node: str) -> bool:
        if self.m == "non_minimal_leader":
            return False
        return any(m < node and self.now - t < self.c["member_timeout_ms"]
                   for m, t in self.members.items())

    def tick(self, node: str) -> None:
        self.members[self._node(node)] = self.now
        smaller = self._smaller_live(node)
        held = self.holder is not None and self.now < self.lease_end
        lease = self.c["election_lease_ms"]
        if held and self.holder == node:
            if smaller:
                self.holder = None
                if self.m != "belief_after_resign":
                    self.beliefs.pop(node, None)
            else:
                self.lease_end = self.now + lease
                self.beliefs[node] = (self.now, self.epoch)
        elif not held and not smaller:
            if not (self.m == "epoch_reused_on_regrant" and self.holder == node):
                self.epoch += 1
            self.holder, self.lease_end = node, self.now + lease
            self.beliefs[node] = (self.now, self.epoch)

    def is_leader(self, node: str) -> list[Any]:
        belief = self.beliefs.get(self._node(node))
        if belief is not None and self.now < belief[0] + self.c["election_lease_ms"]:
            return [True, belief[1]]
        return [False, None]

    def leader_write(self, node: str, epoch: int, value: Any = None) -> bool:
        self._node(node)
        if self.m == "no_fencing":
            return node in self.beliefs
        return epoch == self.epoch and self.holder == node and self.now < self.lease_end

    def close(self) -> None:
        pass


def factory(config: dict[str, Any]) -> Reference:
    """The correct implementation (``--impl mutant_impls.reference:factory``)."""
    return Reference(config)
