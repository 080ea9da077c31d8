"""Differential test: the memory and Redis backends give identical answers.

Hypothesis drives both with the same random operations under one ManualClock
(the shape of Hypothesis's own in-memory vs Redis ExampleDatabase test). Any
difference in a result, a delivery, a refusal or a count is a failure, and
Hypothesis shrinks it to a short replayable trace.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from redis_server_fixture import RedisServer

from taskward.api import BrokerConfig, Delivery, ManualClock, TaskwardError
from taskward.backends.redis import RedisBroker

memory = pytest.importorskip("taskward.backends.memory")

pytestmark = pytest.mark.redis

WORKERS = ["w1", "w2", "w3", "w4"]  # w4 is not configured: it joins the rotation when seen
NODES = ["n1", "n2", "n3"]
TASKS = [f"t{i}" for i in range(8)]

worker = st.sampled_from(WORKERS)
task = st.sampled_from(TASKS)
node = st.sampled_from(NODES)
held = st.tuples(st.just("held"), st.sampled_from(
    ["ack", "ack", "nack", "nack_dead", "extend", "ack_and_fetch", "ack_and_fetch_many"]
), st.integers(0, 3))
"""Settle a recent delivery (k-th from the end), so acks and nacks really happen."""
publish = st.tuples(st.just("publish"), task, st.sampled_from([0, 0, 1, 2, -(2**63), 2**63 - 1]))
fetch = st.tuples(st.just("fetch"), worker)
operation = st.one_of(
    publish, publish, fetch, fetch, held, held, held, held, held,
    st.tuples(st.just("publish_many"), st.lists(task, min_size=1, max_size=3),
              st.integers(-1, 1)),
    st.tuples(st.just("fetch_many"), worker, st.integers(1, 3)),
    st.tuples(st.just("ack"), worker, task),
    st.tuples(st.just("ack_many"), worker, st.lists(task, min_size=1, max_size=2)),
    st.tuples(st.just("nack"), worker, task, st.booleans()),
    st.tuples(st.just("extend"), worker, task),
    st.tuples(st.just("heartbeat"), worker),
    st.tuples(st.just("dead_letters")),
    st.tuples(st.just("dead_letter_reasons")),
    st.tuples(st.just("stats")),
    st.tuples(st.just("advance"), st.sampled_from([0, 1, 300, 999, 1000, 2500, 3000])),
    st.tuples(st.just("tick"), node),
    st.tuples(st.just("is_leader"), node),
    st.tuples(st.just("leader_write"), node, st.integers(0, 4)),
    st.tuples(st.just("fenced_writes")),
    st.tuples(st.just("restart")),
)


def resolve(op: tuple[Any, ...], delivered: list[tuple[str, str]]) -> tuple[Any, ...]:
    """Turn a ("held", verb, k) operation into a concrete call on a recent delivery."""
    if op[0] != "held" or not delivered:
        return op if op[0] != "held" else ("heartbeat", "w1")
    holder, task_id = delivered[-1 - op[2] % len(delivered)]
    verb = op[1]
    if verb == "nack":
        return ("nack", holder, task_id, True)
    if verb == "nack_dead":
        return ("nack", holder, task_id, False)
    return (verb, holder, task_id)


def run(broker: Any, clock: ManualClock, op: tuple[Any, ...], step: int) -> Any:
    """One operation; its outcome as a comparable value (result, or refusal type)."""
    name, *args = op
    if name == "advance":
        return None  # the clock is shared: advanced once by the caller
    if name == "restart":
        return broker.restart() if isinstance(broker, RedisBroker) else None
    if name == "ack_and_fetch_many" and not isinstance(broker, RedisBroker):
        try:  # the memory backend has no batch form: ack, then fetch
            broker.ack(*args)
        except TaskwardError as exc:
            return ("refused", type(exc).__name__)
        return broker.fetch_many(args[0], 2)
    if name == "ack_and_fetch_many":
        return run(broker, clock, ("_afm", args[0], [args[1]], 2), step)
    if name == "_afm":
        name = "ack_and_fetch_many"
    try:
        if name == "publish":
            return broker.publish({"step": step}, task_id=args[0], priority=args[1])
        if name == "publish_many":
            return broker.publish_many([step] * len(args[0]), task_ids=args[0],
                                       priority=args[1])
        if name == "leader_write":
            return broker.leader_write(args[0], args[1], {"step": step})
        return getattr(broker, name)(*args)
    except TaskwardError as exc:
        return ("refused", type(exc).__name__)


EXAMPLES = int(os.environ.get("TASKWARD_DIFF_EXAMPLES", "60"))
"""Raise for a longer hunt, e.g. TASKWARD_DIFF_EXAMPLES=3000."""


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=st.sampled_from(["shared", "round_robin", "work_stealing"]),
       max_deliveries=st.integers(1, 3),
       ops=st.lists(operation, min_size=15, max_size=60))
def test_redis_answers_exactly_like_the_memory_backend(
    redis_server: RedisServer, policy: str, max_deliveries: int, ops: list[tuple[Any, ...]],
) -> None:
    clock = ManualClock()
    config = BrokerConfig(
        policy=policy, workers=("w1", "w2", "w3"), lease_ms=1000,  # type: ignore[arg-type]
        max_deliveries=max_deliveries,
        worker_timeout_ms=3000, election_lease_ms=1000, member_timeout_ms=3000,
        election_margin_ms=0, clock=clock,
    )
    model = memory.MemoryBroker(config)
    real = RedisBroker(redis_server.url("d-" + uuid.uuid4().hex[:12]), config)
    try:
        delivered: list[tuple[str, str]] = []
        for step, raw in enumerate([("publish_many", TASKS[-3:], 0), *ops]):
            op = resolve(raw, delivered)
            if op[0] == "advance":
                clock.advance(op[1])
            expected = run(model, clock, op, step)
            got = run(real, clock, op, step)
            assert got == expected, f"step {step} {op}: redis {got!r} != memory {expected!r}"
            for item in expected if isinstance(expected, list) else [expected]:
                if isinstance(item, Delivery):
                    delivered.append((op[1], item.task_id))
            refused = isinstance(got, tuple) and got[:1] == ("refused",)
            event(f"{op[0]} {'refused' if refused else 'done'}")
        assert real.stats() == model.stats()
        assert real.dead_letter_reasons() == model.dead_letter_reasons()
    finally:
        real.close()
        model.close()
