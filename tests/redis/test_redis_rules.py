"""Every deterministic rule of CONFORMANCE.md, pinned with exact answers on a real server."""

from __future__ import annotations

from typing import Any

import pytest
from redis_server_fixture import BrokerFactory, RedisServer

from taskward.api import (
    ConfigError,
    DuplicateTaskError,
    ManualClock,
    NotLeasedError,
    PayloadError,
    Stats,
)

pytestmark = pytest.mark.redis


def fetch_ids(broker: Any, worker: str, n: int) -> list[str | None]:
    out: list[str | None] = []
    for _ in range(n):
        got = broker.fetch(worker)
        out.append(None if got is None else got.task_id)
    return out


def dump(server: RedisServer, namespace: str) -> dict[str, Any]:
    """Every key of a namespace with its full value, to prove a call changed nothing."""
    with server.admin() as client:
        out: dict[str, Any] = {}
        for key in client.scan_iter(match="{" + namespace + "}:*"):
            kind = client.type(key)
            if kind == "hash":
                out[key] = client.hgetall(key)
            elif kind == "zset":
                out[key] = client.zrange(key, 0, -1, withscores=True)
            elif kind == "list":
                out[key] = client.lrange(key, 0, -1)
            else:
                out[key] = client.get(key)
        return out


# ------------------------------------------------------------------ shared policy


def test_redis_shared_queue_delivers_highest_priority_then_publish_order(
    make_broker: BrokerFactory,
) -> None:
    broker = make_broker(policy="shared")
    broker.publish("a", task_id="a")
    broker.publish("b", task_id="b", priority=5)
    broker.publish("c", task_id="c", priority=5)
    broker.publish("d", task_id="d", priority=-1)
    broker.publish("e", task_id="e")
    assert fetch_ids(broker, "w1", 6) == ["b", "c", "a", "e", "d", None]


def test_redis_priorities_are_exact_over_the_whole_64_bit_range(
    make_broker: BrokerFactory,
) -> None:
    broker = make_broker(policy="shared")
    priorities = {"lo": -(2**63), "zero": 0, "p53": 2**53, "p53+1": 2**53 + 1, "hi": 2**63 - 1}
    for task_id, priority in priorities.items():
        broker.publish(task_id, task_id=task_id, priority=priority)
    got = [broker.fetch("w1") for _ in priorities]
    assert [d.task_id for d in got if d] == ["hi", "p53+1", "p53", "zero", "lo"]
    assert [d.priority for d in got if d] == [2**63 - 1, 2**53 + 1, 2**53, 0, -(2**63)]


def test_redis_delivery_carries_payload_seq_deliveries_and_expiry(
    make_broker: BrokerFactory,
) -> None:
    clock = ManualClock(500)
    broker = make_broker(policy="shared", clock=clock)
    broker.publish({"k": [1, 2.5, None, "é"]}, task_id="t1", priority=3)
    got = broker.fetch("w1")
    assert got is not None
    assert (got.task_id, got.payload, got.priority) == ("t1", {"k": [1, 2.5, None, "é"]}, 3)
    assert (got.seq, got.deliveries, got.lease_expiry_ms) == (1, 1, 1500)


def test_redis_lease_is_held_while_now_is_before_expiry(make_broker: BrokerFactory) -> None:
    clock = ManualClock()
    broker = make_broker(policy="shared", clock=clock)
    broker.publish_many([1, 2], task_ids=["t1", "t2"])
    assert fetch_ids(broker, "w1", 2) == ["t1", "t2"]
    clock.advance(999)
    broker.ack("w1", "t1")
    clock.advance(1)
    with pytest.raises(NotLeasedError, match="it is READY"):
        broker.ack("w1", "t2")
    got = broker.fetch("w2")
    assert got is not None and (got.task_id, got.deliveries) == ("t2", 2)


def test_redis_expired_leases_end_in_seq_order_and_dead_letter_in_that_order(
    make_broker: BrokerFactory,
) -> None:
    clock = ManualClock()
    broker = make_broker(policy="shared", max_deliveries=1, clock=clock)
    broker.publish_many(["x", "y"], task_ids=["t1", "t2"])
    broker.publish("z", task_id="t3", priority=9)
    assert fetch_ids(broker, "w1", 3) == ["t3", "t1", "t2"]  # leased in this order...
    clock.advance(1000)
    assert broker.dead_letters() == ["t1", "t2", "t3"]  # ...they die in seq order
    reasons = broker.dead_letter_reasons()
    assert reasons[0] == ("t1", "lease expired after 1 deliveries (max_deliveries reached)")
    assert broker.stats() == Stats(0, 0, 0, 3, 3, None, 0)


def test_redis_a_later_lease_expiry_dies_later_even_with_a_smaller_seq(
    make_broker: BrokerFactory,
) -> None:
    clock = ManualClock()
    broker = make_broker(policy="shared", max_deliveries=1, clock=clock)
    broker.publish_many(["x", "y", "z"], task_ids=["t1", "t2", "t3"])
    assert fetch_ids(broker, "w1", 1) == ["t1"]
    clock.advance(10)
    assert fetch_ids(broker, "w1", 2) == ["t2", "t3"]
    broker.extend("w1", "t2")  # t2 expires at 1010 as well
    clock.advance(990)  # now 1000: only t1 expires
    assert broker.dead_letters() == ["t1"]
    clock.advance(10)  # now 1010: t2 and t3 expire together, in seq order
    assert broker.dead_letters() == ["t1", "t2", "t3"]


def test_redis_nack_requeues_with_the_same_seq_so_it_is_first_again(
    make_broker: BrokerFactory,
) -> None:
    broker = make_broker(policy="shared")
    broker.publish_many([1, 2, 3], task_ids=["t1", "t2", "t3"])
    assert fetch_ids(broker, "w1", 2) == ["t1", "t2"]
    broker.nack("w1", "t2")
    got = broker.fetch("w2")
    assert got is not None and (got.task_id, got.seq, got.deliveries) == ("t2", 2, 2)
    broker.nack("w1", "t1", requeue=False)
    assert broker.dead_letter_reasons() == [("t1", "nacked without requeue")]


def test_redis_nack_at_max_deliveries_dead_letters(make_broker: BrokerFactory) -> None:
    broker = make_broker(policy="shared", max_deliveries=2)
    broker.publish("p", task_id="t1")
    for _ in range(2):
        assert fetch_ids(broker, "w1", 1) == ["t1"]
        broker.nack("w1", "t1")
    assert broker.dead_letter_reasons() == [
        ("t1", "nacked after 2 deliveries (max_deliveries reached)")
    ]
    assert broker.fetch("w1") is None


def test_redis_extend_renews_to_now_plus_lease_and_only_for_the_holder(
    make_broker: BrokerFactory,
) -> None:
    clock = ManualClock()
    broker = make_broker(policy="shared", clock=clock)
    broker.publish("p", task_id="t1")
    broker.fetch("w1")
    clock.advance(700)
    assert broker.extend("w1", "t1") == 1700
    with pytest.raises(NotLeasedError, match="leased by 'w1'"):
        broker.extend("w2", "t1")
    clock.advance(999)
    broker.ack("w1", "t1")
    assert broker.stats().acked == 1


def test_redis_ack_and_fetch_acks_then_leases_the_next_in_one_call(
    make_broker: BrokerFactory,
) -> None:
    broker = make_broker(policy="shared")
    broker.publish_many([1, 2], task_ids=["t1", "t2"])
    broker.fetch("w1")
    nxt = broker.ack_and_fetch("w1", "t1")
    assert nxt is not None and nxt.task_id == "t2"
    assert broker.ack_and_fetch("w1", "t2") is None
    with pytest.raises(NotLeasedError):
        broker.ack_and_fetch("w1", "t2")
    assert broker.stats() == Stats(0, 0, 2, 0, 3, None, 0)


def test_redis_batch_calls_match_one_at_a_time(make_broker: BrokerFactory) -> None:
    broker = make_broker(policy="shared")
    ids = broker.publish_many(list(range(10)), task_ids=[f"t{i}" for i in range(10)])
    got = broker.fetch_many("w1", 4)
    assert [d.task_id for d in got] == ids[:4]
    more = broker.ack_and_fetch_many("w1", [d.task_id for d in got], 10)
    assert [d.task_id for d in more] == ids[4:]
    broker.ack_many("w1", ids[4:])
    assert broker.stats() == Stats(0, 0, 10, 0, 3, None, 0)


def test_redis_stats_counts_expired_leases_without_changing_anything(
    make_broker: BrokerFactory, redis_server: RedisServer, namespace: str,
) -> None:
    clock = ManualClock()
    broker = make_broker(policy="shared", max_deliveries=1, clock=clock)
    broker.publish_many([1, 2, 3], task_ids=["t1", "t2", "t3"])
    broker.fetch_many("w1", 2)
    clock.advance(1000)
    before = dump(redis_server, namespace)
    assert broker.stats() == Stats(1, 0, 0, 2, 3, None, 0)
    assert dump(redis_server, namespace) == before


# ------------------------------------------------------------- per-worker policies


def test_redis_round_robin_assigns_in_rotation_and_skips_a_dead_worker(
    make_broker: BrokerFactory,
) -> None:
    clock = ManualClock()
    broker = make_broker(policy="round_robin", clock=clock)
    clock.advance(2000)
    broker.heartbeat("w1")
    broker.heartbeat("w3")
    clock.advance(1000)  # w2 last seen at 0: 3000 - 0 is not < 3000, so w2 is dead
    broker.publish_many(["a", "b", "c"], task_ids=["a", "b", "c"])
    assert fetch_ids(broker, "w3", 2) == ["b", None]
    assert fetch_ids(broker, "w1", 3) == ["a", "c", None]


def test_redis_round_robin_reassigns_a_dead_workers_tasks_in_seq_order(
    make_broker: BrokerFactory,
) -> None:
    clock = ManualClock()
    broker = make_broker(policy="round_robin", clock=clock)
    broker.publish_many(list(range(6)), task_ids=[f"t{i}" for i in range(1, 7)])
    # w1: t1 t4   w2: t2 t5   w3: t3 t6; cursor is back at w1
    clock.advance(2000)
    broker.heartbeat("w1")
    broker.heartbeat("w3")
    clock.advance(1000)
    broker.heartbeat("w3")  # w2 died: t2 -> w1, t5 -> w3
    assert fetch_ids(broker, "w1", 4) == ["t1", "t2", "t4", None]
    assert fetch_ids(broker, "w3", 4) == ["t3", "t5", "t6", None]


def test_redis_with_no_live_worker_tasks_wait_unassigned_until_one_registers(
    make_broker: BrokerFactory,
) -> None:
    clock = ManualClock()
    broker = make_broker(policy="round_robin", clock=clock)
    clock.advance(3000)
    broker.publish_many(["x", "y"], task_ids=["x", "y"])
    assert broker.stats().workers_live == 0
    assert fetch_ids(broker, "w2", 3) == ["x", "y", None]
    broker.publish("z", task_id="z")  # w2 is the only live worker
    assert fetch_ids(broker, "w2", 1) == ["z"]


def test_redis_new_workers_join_the_rotation_after_the_configured_ones(
    make_broker: BrokerFactory,
) -> None:
    broker = make_broker(policy="round_robin", workers=("w1",))
    broker.heartbeat("w9")
    broker.heartbeat("w0")
    broker.publish_many(list(range(4)), task_ids=["a", "b", "c", "d"])
    assert fetch_ids(broker, "w1", 2) == ["a", "d"]
    assert fetch_ids(broker, "w9", 2) == ["b", None]
    assert fetch_ids(broker, "w0", 2) == ["c", None]


def test_redis_expired_lease_returns_to_its_holders_queue(make_broker: BrokerFactory) -> None:
    clock = ManualClock()
    broker = make_broker(policy="round_robin", clock=clock)
    broker.publish_many([1, 2], task_ids=["t1", "t2"])  # t1 -> w1, t2 -> w2
    assert fetch_ids(broker, "w1", 1) == ["t1"]
    clock.advance(1000)
    assert fetch_ids(broker, "w2", 2) == ["t2", None]
    assert fetch_ids(broker, "w1", 1) == ["t1"]


def test_redis_work_stealing_takes_from_the_fullest_peer_ties_to_smallest_id(
    make_broker: BrokerFactory,
) -> None:
    clock = ManualClock()
    broker = make_broker(policy="work_stealing", clock=clock)
    broker.publish_many(list(range(5)), task_ids=[f"t{i}" for i in range(1, 6)])
    # w1: t1 t4   w2: t2 t5   w3: t3
    assert fetch_ids(broker, "w3", 1) == ["t3"]
    assert fetch_ids(broker, "w3", 1) == ["t1"]  # w1 and w2 tie at 2: w1
    assert fetch_ids(broker, "w3", 1) == ["t2"]  # w2 has 2, w1 has 1
    assert fetch_ids(broker, "w3", 2) == ["t4", "t5"]  # tie at 1 again: w1 first
    assert fetch_ids(broker, "w3", 1) == [None]  # leased tasks are never stolen


def test_redis_a_stolen_task_belongs_to_the_thief(make_broker: BrokerFactory) -> None:
    clock = ManualClock()
    broker = make_broker(policy="work_stealing", clock=clock)
    broker.publish_many([1, 2], task_ids=["t1", "t2"])  # t1 -> w1, t2 -> w2
    assert fetch_ids(broker, "w3", 1) == ["t1"]
    clock.advance(1000)  # the lease ends: t1 is READY in w3's queue now
    assert fetch_ids(broker, "w1", 1) == ["t2"]  # w1's own queue is empty: steals from w2
    assert fetch_ids(broker, "w3", 1) == ["t1"]


def test_redis_stealing_respects_priority_in_the_victims_queue(
    make_broker: BrokerFactory,
) -> None:
    broker = make_broker(policy="work_stealing", workers=("w1", "w2"))
    broker.publish_many([1, 2], task_ids=["a", "b"], priority=0)  # a -> w1, b -> w2
    broker.publish("c", task_id="c", priority=9)  # c -> w1
    assert fetch_ids(broker, "w2", 3) == ["b", "c", "a"]


# ---------------------------------------------------------------------- election


def test_redis_election_grants_the_smallest_live_id_and_bumps_the_epoch(
    make_broker: BrokerFactory,
) -> None:
    clock = ManualClock()
    broker = make_broker(clock=clock)
    broker.tick("n2")
    assert broker.is_leader("n2") == (True, 1)
    broker.tick("n1")  # the lease is held: n1 waits
    assert broker.is_leader("n1") == (False, None)
    broker.tick("n2")  # a smaller live member exists: n2 resigns at once
    assert broker.is_leader("n2") == (False, None)
    assert broker.stats().leader is None
    broker.tick("n1")
    assert broker.is_leader("n1") == (True, 2)
    assert broker.stats().leader == "n1" and broker.stats().epoch == 2


def test_redis_leader_belief_ends_at_lease_end_and_a_regrant_bumps_the_epoch(
    make_broker: BrokerFactory,
) -> None:
    clock = ManualClock()
    broker = make_broker(clock=clock)
    broker.tick("n1")
    clock.advance(500)
    broker.tick("n1")  # renewal keeps the epoch
    assert broker.is_leader("n1") == (True, 1)
    clock.advance(999)
    assert broker.is_leader("n1") == (True, 1)
    clock.advance(1)  # 500 + 1000: the renewed lease is over
    assert broker.is_leader("n1") == (False, None)
    broker.tick("n1")
    assert broker.is_leader("n1") == (True, 2)


def test_redis_belief_ends_election_margin_early(make_broker: BrokerFactory) -> None:
    clock = ManualClock()
    broker = make_broker(clock=clock, election_margin_ms=200)
    broker.tick("n1")
    clock.advance(799)
    assert broker.is_leader("n1") == (True, 1)
    clock.advance(1)
    assert broker.is_leader("n1") == (False, None)


def test_redis_fencing_accepts_only_the_current_epoch_from_the_holder(
    make_broker: BrokerFactory,
) -> None:
    clock = ManualClock()
    broker = make_broker(clock=clock)
    broker.tick("n2")
    assert broker.leader_write("n2", 1, "first")
    clock.advance(1000)  # n2's lease is over, n1 takes epoch 2
    broker.tick("n1")
    assert broker.is_leader("n1") == (True, 2)
    assert not broker.leader_write("n2", 1, "stale leader")
    assert not broker.leader_write("n2", 2, "right epoch, not the holder")
    assert not broker.leader_write("n1", 1, "holder, stale epoch")
    assert broker.leader_write("n1", 2, {"v": 2})
    clock.advance(1000)
    assert not broker.leader_write("n1", 2, "expired lease")
    assert broker.fenced_writes() == [(1, "n2", "first"), (2, "n1", {"v": 2})]


def test_redis_a_member_that_stopped_ticking_no_longer_blocks_a_larger_id(
    make_broker: BrokerFactory,
) -> None:
    clock = ManualClock()
    broker = make_broker(clock=clock)
    broker.tick("n1")
    broker.tick("n2")
    clock.advance(3000)  # n1's membership ran out (3000 is not < 3000)
    broker.tick("n2")
    assert broker.is_leader("n2") == (True, 2)


# ------------------------------------------------------------------- bad input


def test_redis_bad_input_is_refused_and_changes_nothing(
    make_broker: BrokerFactory, redis_server: RedisServer, namespace: str,
) -> None:
    broker = make_broker(policy="shared")
    broker.publish("keep", task_id="t1")
    broker.fetch("w1")
    before = dump(redis_server, namespace)
    with pytest.raises(PayloadError):
        broker.publish(float("nan"))
    with pytest.raises(PayloadError):
        broker.publish({"x": object()})
    with pytest.raises(ConfigError):
        broker.publish("x", priority="high")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        broker.publish("x", priority=2**63)
    with pytest.raises(ConfigError):
        broker.publish("x", task_id="")
    with pytest.raises(DuplicateTaskError):
        broker.publish("again", task_id="t1")
    with pytest.raises(DuplicateTaskError):
        broker.publish_many(["new", "dup"], task_ids=["t2", "t1"])
    with pytest.raises(DuplicateTaskError):
        broker.publish_many(["a", "b"], task_ids=["t3", "t3"])
    with pytest.raises(NotLeasedError):
        broker.ack("w1", "nope")
    with pytest.raises(NotLeasedError):
        broker.ack_many("w1", ["t1", "nope"])
    with pytest.raises(ConfigError):
        broker.fetch("")
    with pytest.raises(ConfigError):
        broker.fetch_many("w1", 0)
    assert dump(redis_server, namespace) == before
    assert broker.publish("next", task_id="t2") == "t2"
    got = broker.fetch("w1")
    assert got is not None and got.seq == 2


def test_redis_clients_of_different_policies_share_a_namespace(
    make_broker: BrokerFactory,
) -> None:
    clock = ManualClock()
    workers = make_broker(policy="round_robin", clock=clock)
    publisher = make_broker(policy="shared", clock=clock)  # e.g. `taskward publish`
    publisher.publish_many([1, 2, 3], task_ids=["t1", "t2", "t3"])
    # the round-robin client assigns the shared queue's tasks at its next call
    assert fetch_ids(workers, "w2", 2) == ["t2", None]
    assert fetch_ids(workers, "w1", 1) == ["t1"]
    workers.publish("t4", task_id="t4")  # cursor: w1 (t1), w2 (t2), w3 (t3), then w1
    late = make_broker(policy="shared", clock=clock)  # takes READY tasks back, as SQLite does
    assert fetch_ids(late, "anyone", 3) == ["t3", "t4", None]


def test_redis_restart_reconnects_and_keeps_every_task(make_broker: BrokerFactory) -> None:
    clock = ManualClock()
    broker = make_broker(policy="round_robin", clock=clock)
    broker.publish_many([1, 2, 3], task_ids=["t1", "t2", "t3"])
    broker.fetch("w1")
    broker.tick("n1")
    broker.restart()
    broker.ack("w1", "t1")
    assert fetch_ids(broker, "w2", 1) == ["t2"]
    assert broker.is_leader("n1") == (True, 1)
    assert broker.stats() == Stats(1, 1, 1, 0, 3, "n1", 1)


def test_redis_odd_task_ids_and_payloads_round_trip_exactly(make_broker: BrokerFactory) -> None:
    broker = make_broker(policy="work_stealing")
    ids = ['quote"s', "slash/and\\back", "tâche-日本", "nul\x00byte", "{braces}:x", " "]
    payloads = [{"s": 'a"b'}, ["\u2028", "\x00"], 1.5e300, -0.0, "", None]
    broker.publish_many(payloads, task_ids=ids)
    got = broker.fetch_many("w1", 10)
    assert sorted(d.task_id for d in got) == sorted(ids)
    assert {d.task_id: d.payload for d in got} == dict(zip(ids, payloads, strict=True))
    broker.ack_many("w1", ids)
    assert broker.stats().acked == 6


def test_redis_batches_larger_than_one_script_chunk_work(make_broker: BrokerFactory) -> None:
    clock = ManualClock()
    broker = make_broker(policy="shared", max_deliveries=1, clock=clock)
    ids = broker.publish_many(list(range(9000)), task_ids=[f"t{i:05d}" for i in range(9000)])
    got = broker.fetch_many("w1", 9000)
    assert [d.task_id for d in got] == ids
    assert broker.extend("w1", ids[0]) == 1000
    broker.ack_many("w1", ids[:4500])
    clock.advance(1000)  # 4500 leases end at once: dead-lettered in seq order
    assert broker.dead_letters() == ids[4500:]
    assert broker.stats() == Stats(0, 0, 4500, 4500, 3, None, 0)
    with pytest.raises(DuplicateTaskError):
        broker.publish_many(list(range(8001)), task_ids=[*(f"n{i}" for i in range(8000)), "t08999"])
    assert broker.stats().ready == 0
