"""Each deterministic rule of CONFORMANCE.md, pinned to its exact answer on both backends.

The differential test only shows that memory and SQLite agree; these show
that what they agree on is the contract.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from taskward.api import DuplicateTaskError, ManualClock, NotLeasedError
from taskward.backends.base import BrokerBackend

MakeBroker = Callable[..., BrokerBackend]
"""The ``make`` fixture: opens a broker of the backend under test."""


def fetch_ids(broker: BrokerBackend, worker: str, times: int) -> list[str | None]:
    """What ``times`` consecutive fetches return, as task ids (None for nothing)."""
    out: list[str | None] = []
    for _ in range(times):
        delivery = broker.fetch(worker)
        out.append(None if delivery is None else delivery.task_id)
    return out


def publish(broker: BrokerBackend, *ids: str, priority: int = 0) -> None:
    for task_id in ids:
        broker.publish({"id": task_id}, task_id=task_id, priority=priority)


# ---------------------------------------------------------------- ordering


def test_one_queue_delivers_in_publish_order(make: MakeBroker) -> None:
    broker = make()
    publish(broker, "a", "b", "c")
    assert fetch_ids(broker, "w", 4) == ["a", "b", "c", None]


def test_best_means_highest_priority_then_smallest_seq(make: MakeBroker) -> None:
    broker = make()
    broker.publish(1, task_id="low", priority=0)
    broker.publish(2, task_id="high1", priority=5)
    broker.publish(3, task_id="mid", priority=1)
    broker.publish(4, task_id="high2", priority=5)
    assert fetch_ids(broker, "w", 4) == ["high1", "high2", "mid", "low"]


def test_a_delivery_carries_payload_count_expiry_and_seq(
    make: MakeBroker, clock: ManualClock
) -> None:
    broker = make(lease_ms=100)
    broker.publish({"x": [1, 2]}, task_id="a", priority=3)
    clock.advance(7)
    delivery = broker.fetch("w")
    assert delivery is not None
    assert (delivery.task_id, delivery.payload, delivery.priority) == ("a", {"x": [1, 2]}, 3)
    assert (delivery.deliveries, delivery.lease_expiry_ms, delivery.seq) == (1, 107, 1)


def test_a_nacked_task_keeps_its_place_in_line(make: MakeBroker) -> None:
    broker = make()
    publish(broker, "a", "b", "c")
    assert fetch_ids(broker, "w", 1) == ["a"]
    broker.nack("w", "a")
    first = broker.fetch("w")
    assert first is not None
    assert (first.task_id, first.deliveries) == ("a", 2)


def test_fetch_many_is_the_same_as_fetching_one_at_a_time(make: MakeBroker) -> None:
    broker = make()
    broker.publish_many(["p", "q", "r"], task_ids=["a", "b", "c"])
    broker.publish("s", task_id="d", priority=9)
    assert [d.task_id for d in broker.fetch_many("w", 3)] == ["d", "a", "b"]
    assert [d.task_id for d in broker.fetch_many("w", 3)] == ["c"]


def test_a_rejected_duplicate_does_not_use_up_a_seq(make: MakeBroker) -> None:
    broker = make()
    publish(broker, "a")
    with pytest.raises(DuplicateTaskError):
        broker.publish_many([1, 2], task_ids=["b", "a"])
    publish(broker, "b")
    delivered = broker.fetch_many("w", 2)
    assert [(d.task_id, d.seq) for d in delivered] == [("a", 1), ("b", 2)]


# ------------------------------------------------------------- leases


def test_a_lease_is_held_strictly_before_its_expiry(make: MakeBroker, clock: ManualClock) -> None:
    broker = make(lease_ms=100)
    publish(broker, "a")
    broker.fetch("w")
    clock.advance(99)
    broker.extend("w", "a")
    clock.advance(100)
    with pytest.raises(NotLeasedError):
        broker.ack("w", "a")
    assert broker.stats().ready == 1


def test_extend_returns_the_new_expiry_and_keeps_the_lease(
    make: MakeBroker, clock: ManualClock
) -> None:
    broker = make(lease_ms=100)
    publish(broker, "a")
    broker.fetch("w")
    clock.advance(60)
    assert broker.extend("w", "a") == 160
    clock.advance(60)
    broker.ack("w", "a")
    assert broker.stats().acked == 1


def test_leases_end_in_seq_order_not_expiry_order(make: MakeBroker, clock: ManualClock) -> None:
    broker = make(lease_ms=100, max_deliveries=1)
    publish(broker, "a", "b")
    broker.fetch("w")
    clock.advance(50)
    broker.fetch("w")
    clock.advance(10)
    broker.extend("w", "a")  # a now expires at 160, after b at 150
    clock.advance(200)
    assert broker.dead_letters() == ["a", "b"]


def test_an_expired_task_comes_back_with_its_delivery_count(
    make: MakeBroker, clock: ManualClock
) -> None:
    broker = make(lease_ms=100, max_deliveries=3)
    publish(broker, "a")
    broker.fetch("w1")
    clock.advance(100)
    again = broker.fetch("w2")
    assert again is not None
    assert (again.task_id, again.deliveries, again.lease_expiry_ms) == ("a", 2, 200)


def test_a_task_is_dead_lettered_when_deliveries_reach_the_maximum(
    make: MakeBroker, clock: ManualClock
) -> None:
    broker = make(lease_ms=100, max_deliveries=2)
    publish(broker, "a", "b")
    broker.fetch("w")  # a
    broker.nack("w", "a")
    broker.fetch("w")  # a again, deliveries 2
    broker.nack("w", "a")  # reached the maximum: dead, not ready
    broker.fetch("w")  # b
    broker.nack("w", "b", requeue=False)
    broker.fetch("w")
    assert broker.fetch("w") is None
    assert broker.dead_letter_reasons() == [
        ("a", "nacked after 2 deliveries (max_deliveries reached)"),
        ("b", "nacked without requeue"),
    ]


def test_dead_letters_are_listed_in_the_order_tasks_died(
    make: MakeBroker, clock: ManualClock
) -> None:
    broker = make(lease_ms=100, max_deliveries=1)
    publish(broker, "a", "b", "c")
    broker.fetch_many("w", 3)
    broker.nack("w", "c", requeue=False)
    clock.advance(100)
    assert broker.dead_letters() == ["c", "a", "b"]
    assert broker.dead_letter_reasons()[1] == (
        "a", "lease expired after 1 deliveries (max_deliveries reached)")


def test_an_acked_id_is_still_a_duplicate(make: MakeBroker) -> None:
    broker = make()
    publish(broker, "a")
    broker.fetch("w")
    broker.ack("w", "a")
    with pytest.raises(DuplicateTaskError):
        publish(broker, "a")
    assert broker.stats().acked == 1


def test_only_the_holder_may_ack(make: MakeBroker) -> None:
    broker = make()
    publish(broker, "a")
    broker.fetch("w1")
    with pytest.raises(NotLeasedError, match="leased by 'w1'"):
        broker.ack("w2", "a")
    broker.ack("w1", "a")
    with pytest.raises(NotLeasedError, match="ACKED"):
        broker.ack("w1", "a")


def test_a_rejected_call_still_runs_the_prelude(make: MakeBroker, clock: ManualClock) -> None:
    broker = make(lease_ms=100, max_deliveries=1)
    publish(broker, "a")
    broker.fetch("w1")
    clock.advance(100)
    with pytest.raises(NotLeasedError):
        broker.ack("w1", "a")
    stats = broker.stats()
    assert (stats.leased, stats.dead) == (0, 1)
    assert broker.dead_letters() == ["a"]


def test_ack_many_is_all_or_nothing(make: MakeBroker) -> None:
    broker = make()
    publish(broker, "a", "b", "c")
    broker.fetch_many("w1", 2)
    broker.fetch("w2")
    with pytest.raises(NotLeasedError):
        broker.ack_many("w1", ["a", "b", "c"])
    assert broker.stats().leased == 3
    broker.ack_many("w1", ["a", "b"])
    assert (broker.stats().leased, broker.stats().acked) == (1, 2)


def test_ack_and_fetch_acks_then_hands_out_the_next_task(make: MakeBroker) -> None:
    broker = make()
    publish(broker, "a", "b")
    broker.fetch("w")
    following = broker.ack_and_fetch("w", "a")
    assert following is not None
    assert following.task_id == "b"
    assert broker.ack_and_fetch("w", "b") is None
    assert broker.stats().acked == 2


def test_ack_and_fetch_fetches_nothing_when_the_ack_is_refused(make: MakeBroker) -> None:
    broker = make()
    publish(broker, "a", "b")
    broker.fetch("w1")
    with pytest.raises(NotLeasedError):
        broker.ack_and_fetch("w2", "a")
    assert (broker.stats().ready, broker.stats().leased) == (1, 1)


# ------------------------------------------------------------- round robin


def test_round_robin_assigns_in_rotation_order(make: MakeBroker) -> None:
    broker = make(policy="round_robin", workers=["w1", "w2", "w3"])
    publish(broker, "a", "b", "c", "d")
    assert fetch_ids(broker, "w2", 2) == ["b", None]
    assert fetch_ids(broker, "w1", 3) == ["a", "d", None]


def test_the_cursor_skips_workers_that_are_not_live(make: MakeBroker, clock: ManualClock) -> None:
    broker = make(policy="round_robin", workers=["w1", "w2", "w3"], worker_timeout_ms=1000)
    clock.advance(500)
    broker.heartbeat("w1")
    broker.heartbeat("w3")
    clock.advance(500)  # w2 was last seen at 0: 1000 ago, not live
    publish(broker, "a", "b", "c")
    assert fetch_ids(broker, "w3", 2) == ["b", None]
    assert fetch_ids(broker, "w1", 3) == ["a", "c", None]


def test_a_dead_workers_ready_tasks_move_on_by_the_cursor(
    make: MakeBroker, clock: ManualClock
) -> None:
    broker = make(policy="round_robin", workers=["w1", "w2", "w3"], worker_timeout_ms=1000)
    publish(broker, "p", "q", "r")  # w1, w2, w3; the cursor is past w3
    clock.advance(500)
    broker.heartbeat("w1")
    broker.heartbeat("w3")
    clock.advance(700)
    assert fetch_ids(broker, "w1", 3) == ["p", "q", None]  # q wrapped around to w1
    publish(broker, "s")  # the cursor is past w1; w2 is still dead
    assert fetch_ids(broker, "w3", 3) == ["r", "s", None]


def test_workers_who_call_join_the_rotation_in_first_seen_order(make: MakeBroker) -> None:
    broker = make(policy="round_robin")
    broker.heartbeat("b")
    with pytest.raises(NotLeasedError):
        broker.ack("a", "nothing")  # rejected, yet "a" was seen
    publish(broker, "x", "y", "z")
    assert fetch_ids(broker, "a", 2) == ["y", None]
    assert fetch_ids(broker, "b", 3) == ["x", "z", None]


def test_tasks_wait_unassigned_until_a_worker_shows_up(make: MakeBroker) -> None:
    broker = make(policy="round_robin")
    publish(broker, "a", "b")
    assert broker.stats().ready == 2
    assert fetch_ids(broker, "late", 3) == ["a", "b", None]


def test_an_expired_lease_returns_to_the_holders_queue(
    make: MakeBroker, clock: ManualClock
) -> None:
    broker = make(policy="round_robin", workers=["w1", "w2"], lease_ms=100,
                  worker_timeout_ms=10_000)
    publish(broker, "a", "b")
    broker.fetch("w1")
    clock.advance(100)
    assert fetch_ids(broker, "w2", 2) == ["b", None]
    assert fetch_ids(broker, "w1", 1) == ["a"]


def test_a_requeued_task_goes_back_to_the_same_workers_queue(make: MakeBroker) -> None:
    broker = make(policy="round_robin", workers=["w1", "w2"])
    publish(broker, "a", "b")
    broker.fetch("w1")
    broker.nack("w1", "a")
    assert fetch_ids(broker, "w2", 2) == ["b", None]
    assert fetch_ids(broker, "w1", 1) == ["a"]


# ------------------------------------------------------------- stealing


def test_stealing_takes_from_the_fullest_peer_ties_to_the_smallest_id(
    make: MakeBroker,
) -> None:
    broker = make(policy="work_stealing", workers=["b", "c", "a"])
    publish(broker, "t1", "t2", "t3", "t4", "t5", "t6")  # b: t1 t4, c: t2 t5, a: t3 t6
    assert fetch_ids(broker, "b", 7) == ["t1", "t4", "t3", "t2", "t6", "t5", None]


def test_a_steal_takes_the_victims_best_task(make: MakeBroker) -> None:
    broker = make(policy="work_stealing", workers=["w1", "w2"])
    broker.publish(0, task_id="mine", priority=0)
    broker.publish(0, task_id="low", priority=0)
    broker.publish(0, task_id="spare", priority=0)
    broker.publish(0, task_id="urgent", priority=7)  # w2: low, urgent
    assert fetch_ids(broker, "w1", 2) == ["mine", "spare"]
    assert fetch_ids(broker, "w1", 1) == ["urgent"]


def test_a_stolen_task_belongs_to_the_thief(make: MakeBroker) -> None:
    broker = make(policy="work_stealing", workers=["w1", "w2"])
    publish(broker, "a", "b")
    broker.fetch("w1")
    assert fetch_ids(broker, "w1", 1) == ["b"]
    broker.nack("w1", "b")
    assert fetch_ids(broker, "w2", 1) == ["b"]  # w2 steals it back from w1's queue


def test_leased_tasks_are_never_stolen(make: MakeBroker) -> None:
    broker = make(policy="work_stealing", workers=["w1", "w2"])
    publish(broker, "a", "b")
    broker.fetch("w2")
    assert fetch_ids(broker, "w2", 1) == ["a"]  # stolen from w1: READY there
    assert fetch_ids(broker, "w1", 1) == [None]  # b is leased by w2


def test_round_robin_without_stealing_leaves_an_empty_worker_idle(make: MakeBroker) -> None:
    broker = make(policy="round_robin", workers=["w1", "w2"])
    publish(broker, "a")
    assert fetch_ids(broker, "w2", 1) == [None]


def test_stats_count_what_the_prelude_would_leave(make: MakeBroker, clock: ManualClock) -> None:
    broker = make(lease_ms=100, max_deliveries=2, workers=["w1"], worker_timeout_ms=500)
    publish(broker, "a", "b", "c", "d")
    broker.fetch_many("w1", 3)
    broker.ack("w1", "a")
    broker.nack("w1", "b", requeue=False)
    clock.advance(100)
    stats = broker.stats()
    assert (stats.ready, stats.leased, stats.acked, stats.dead) == (2, 0, 1, 1)
    assert stats.workers_live == 1
    clock.advance(400)
    assert broker.stats().workers_live == 0
