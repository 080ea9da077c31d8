"""Memory and SQLite driven by the same random operations must give identical answers.

Every answer is compared: deliveries (id, payload, priority, count, expiry,
seq), extend's expiry, election beliefs and fenced-write verdicts, and the
*type* of every rejection. SQLite also restarts at random points, which must
be invisible. The rules themselves are pinned in the scenario tests; this
test finds the interleavings nobody thought to write down.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

import taskward
from taskward.api import ManualClock, Policy, TaskwardError
from taskward.backends.base import BrokerBackend
from taskward.backends.sqlite import SQLiteBroker

TASKS = st.sampled_from([f"t{i}" for i in range(6)])
WORKERS = st.sampled_from(["w1", "w2", "w3", "w4"])  # w4 is not in the initial rotation
NODES = st.sampled_from(["n1", "n2", "n3"])
STEPS_MS = st.sampled_from([0, 1, 20, 50, 99, 100, 150, 300, 1000])


class Differential(RuleBasedStateMachine):
    """One memory and one SQLite broker on one clock, fed the same calls."""

    policy: ClassVar[Policy] = "shared"

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="taskward-diff-"))
        self.clock = ManualClock()
        options: dict[str, Any] = {
            "policy": self.policy, "workers": ["w1", "w2", "w3"], "clock": self.clock,
            "lease_ms": 100, "max_deliveries": 2, "worker_timeout_ms": 300,
            "election_lease_ms": 100, "member_timeout_ms": 300, "election_margin_ms": 20,
        }
        self.memory = taskward.connect("memory://", **options)
        self.sqlite = taskward.connect(
            f"sqlite:///{self.directory / 'd.db'}", durability="off", **options)
        self.brokers: tuple[BrokerBackend, ...] = ()
        self.brokers = (self._backend(self.memory), self._backend(self.sqlite))

    @staticmethod
    def _backend(broker: object) -> BrokerBackend:
        assert isinstance(broker, BrokerBackend)
        return broker

    def both(self, call: Any) -> Any:
        """Run ``call`` on each broker; answers and rejection types must be identical."""
        answers = []
        for broker in self.brokers:
            try:
                answers.append(("ok", call(broker)))
            except TaskwardError as exc:
                answers.append(("rejected", type(exc).__name__))
        assert answers[0] == answers[1], f"memory {answers[0]} != sqlite {answers[1]}"
        return answers[0]

    def op(self, call: Any) -> None:
        """A broker operation, then the state both brokers are left in.

        Reading the dead letters runs the prelude again, but at the same
        instant right after an operation it has nothing left to do, so it
        observes without steering the run.
        """
        self.both(call)
        self.both(lambda b: (b.stats(), b.dead_letter_reasons()))

    @rule(task_id=TASKS, priority=st.integers(0, 2))
    def publish(self, task_id: str, priority: int) -> None:
        self.op(lambda b: b.publish({"id": task_id}, task_id=task_id, priority=priority))

    @rule(task_ids=st.lists(TASKS, min_size=1, max_size=3), priority=st.integers(0, 2))
    def publish_many(self, task_ids: list[str], priority: int) -> None:
        self.op(lambda b: b.publish_many(task_ids, task_ids=task_ids, priority=priority))

    @rule(worker=WORKERS)
    def fetch(self, worker: str) -> None:
        self.op(lambda b: b.fetch(worker))

    @rule(worker=WORKERS, n=st.integers(1, 3))
    def fetch_many(self, worker: str, n: int) -> None:
        self.op(lambda b: b.fetch_many(worker, n))

    @rule(worker=WORKERS, task_id=TASKS)
    def ack(self, worker: str, task_id: str) -> None:
        self.op(lambda b: b.ack(worker, task_id))

    @rule(worker=WORKERS, task_id=TASKS)
    def ack_and_fetch(self, worker: str, task_id: str) -> None:
        self.op(lambda b: b.ack_and_fetch(worker, task_id))

    @rule(worker=WORKERS, task_ids=st.lists(TASKS, min_size=1, max_size=3, unique=True))
    def ack_many(self, worker: str, task_ids: list[str]) -> None:
        self.op(lambda b: b.ack_many(worker, task_ids))

    @rule(worker=WORKERS, task_id=TASKS, requeue=st.booleans())
    def nack(self, worker: str, task_id: str, requeue: bool) -> None:
        self.op(lambda b: b.nack(worker, task_id, requeue))

    @rule(worker=WORKERS, task_id=TASKS)
    def extend(self, worker: str, task_id: str) -> None:
        self.op(lambda b: b.extend(worker, task_id))

    @rule(worker=WORKERS)
    def heartbeat(self, worker: str) -> None:
        self.op(lambda b: b.heartbeat(worker))

    @rule(ms=STEPS_MS)
    def advance(self, ms: int) -> None:
        self.clock.advance(ms)

    @rule(node=NODES)
    def tick(self, node: str) -> None:
        self.both(lambda b: b.tick(node))

    @rule(node=NODES)
    def is_leader(self, node: str) -> None:
        self.both(lambda b: b.is_leader(node))

    @rule(node=NODES, epoch=st.integers(0, 4), value=st.integers(0, 9))
    def leader_write(self, node: str, epoch: int, value: int) -> None:
        self.both(lambda b: b.leader_write(node, epoch, {"v": value}))
        self.both(lambda b: (b.stats(), b.fenced_writes()))

    @precondition(lambda self: bool(self.brokers))
    @rule()
    def restart(self) -> None:
        assert isinstance(self.sqlite, SQLiteBroker)
        self.sqlite.restart()

    def teardown(self) -> None:
        for broker in self.brokers:
            broker.close()
        shutil.rmtree(self.directory, ignore_errors=True)


SETTINGS = settings(
    max_examples=100, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class SharedDifferential(Differential):
    policy = "shared"


class RoundRobinDifferential(Differential):
    policy = "round_robin"


class WorkStealingDifferential(Differential):
    policy = "work_stealing"


TestSharedPolicyAgrees = SharedDifferential.TestCase
TestSharedPolicyAgrees.settings = SETTINGS
TestRoundRobinPolicyAgrees = RoundRobinDifferential.TestCase
TestRoundRobinPolicyAgrees.settings = SETTINGS
TestWorkStealingPolicyAgrees = WorkStealingDifferential.TestCase
TestWorkStealingPolicyAgrees.settings = SETTINGS
