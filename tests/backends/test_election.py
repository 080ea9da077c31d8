"""The election rules of CONFORMANCE.md, pinned to exact answers on both backends."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from taskward.api import ConfigError, ManualClock, PayloadError
from taskward.backends.base import BrokerBackend

MakeBroker = Callable[..., BrokerBackend]
"""The ``make`` fixture: opens a broker of the backend under test."""

ELECTION = {"election_lease_ms": 1000, "member_timeout_ms": 3000, "election_margin_ms": 0}


def test_the_first_node_to_tick_is_granted_epoch_one(make: MakeBroker) -> None:
    broker = make(**ELECTION)
    assert broker.is_leader("n2") == (False, None)
    broker.tick("n2")
    assert broker.is_leader("n2") == (True, 1)
    assert (broker.stats().leader, broker.stats().epoch) == ("n2", 1)


def test_a_holder_resigns_when_a_smaller_member_is_live(make: MakeBroker) -> None:
    broker = make(**ELECTION)
    broker.tick("n2")
    broker.tick("n1")  # the lease is held: n1 only joins
    assert broker.is_leader("n1") == (False, None)
    broker.tick("n2")  # n1 is live and smaller: n2 resigns, the lease is free at once
    assert broker.is_leader("n2") == (False, None)
    assert broker.stats().leader is None
    broker.tick("n1")
    assert broker.is_leader("n1") == (True, 2)


def test_renewal_keeps_the_epoch_but_a_regrant_bumps_it(
    make: MakeBroker, clock: ManualClock
) -> None:
    broker = make(**ELECTION)
    broker.tick("n1")
    clock.advance(999)
    broker.tick("n1")  # held: renewed until 1999
    assert broker.is_leader("n1") == (True, 1)
    clock.advance(1000)  # now 1999 == expiry: the lease ran out
    assert broker.is_leader("n1") == (False, None)
    broker.tick("n1")
    assert broker.is_leader("n1") == (True, 2)


def test_ids_compare_as_strings(make: MakeBroker) -> None:
    broker = make(**ELECTION)
    broker.tick("n2")
    broker.tick("n10")
    broker.tick("n2")  # "n10" < "n2": n2 resigns
    broker.tick("n10")
    assert broker.is_leader("n10") == (True, 2)
    assert broker.is_leader("n2") == (False, None)


def test_a_member_that_stops_ticking_stops_blocking(make: MakeBroker, clock: ManualClock) -> None:
    broker = make(**ELECTION)
    broker.tick("n1")
    broker.tick("n2")
    clock.advance(2999)
    broker.tick("n2")  # n1 ticked 2999 ago: still live, and its lease expired
    assert broker.is_leader("n2") == (False, None)
    clock.advance(1)
    broker.tick("n2")  # n1 is 3000 ago: no longer a live member
    assert broker.is_leader("n2") == (True, 2)


def test_belief_ends_a_safety_margin_before_the_lease(make: MakeBroker, clock: ManualClock) -> None:
    broker = make(election_lease_ms=1000, election_margin_ms=200)
    broker.tick("n1")
    clock.advance(799)
    assert broker.is_leader("n1") == (True, 1)
    clock.advance(1)
    assert broker.is_leader("n1") == (False, None)
    assert broker.stats().leader == "n1"  # the store's lease still runs


def test_the_store_accepts_only_fenced_writes_from_the_current_holder(
    make: MakeBroker, clock: ManualClock
) -> None:
    broker = make(**ELECTION)
    broker.tick("n2")
    assert broker.leader_write("n2", 1, {"v": 1}) is True
    assert broker.leader_write("n2", 0, "stale epoch") is False
    assert broker.leader_write("n3", 1, "not the holder") is False
    broker.tick("n1")
    broker.tick("n2")  # resigns
    assert broker.leader_write("n2", 1, "after resigning") is False
    broker.tick("n1")
    assert broker.leader_write("n1", 2, [2]) is True
    clock.advance(1000)
    assert broker.leader_write("n1", 2, "lease expired") is False
    assert broker.fenced_writes() == [(1, "n2", {"v": 1}), (2, "n1", [2])]


def test_a_paused_leader_is_fenced_off_after_its_successor_is_elected(
    make: MakeBroker, clock: ManualClock
) -> None:
    broker = make(**ELECTION)
    broker.tick("n1")
    _, old_epoch = broker.is_leader("n1")
    clock.advance(1000)  # n1 is paused past its lease
    broker.tick("n2")  # n1 is still a live member, but its lease is expired and
    assert broker.is_leader("n2") == (False, None)  # smaller: n2 must wait
    clock.advance(2000)
    broker.tick("n2")
    assert broker.is_leader("n2") == (True, 2)
    assert old_epoch == 1
    assert broker.leader_write("n1", old_epoch, "late write") is False
    assert broker.leader_write("n2", 2, "fresh write") is True


def test_election_calls_do_not_run_the_broker_prelude(
    make: MakeBroker, clock: ManualClock
) -> None:
    broker = make(lease_ms=100, max_deliveries=1, **ELECTION)
    broker.publish(1, task_id="a")
    broker.fetch("w")
    clock.advance(100)
    broker.tick("n1")
    broker.is_leader("n1")
    broker.leader_write("n1", 1, None)
    assert broker.stats().leased == 0  # stats counts what the prelude would do
    assert broker.dead_letter_reasons()[0][0] == "a"


def test_a_leader_write_that_is_not_json_changes_nothing(make: MakeBroker) -> None:
    broker = make(**ELECTION)
    broker.tick("n1")
    with pytest.raises(PayloadError):
        broker.leader_write("n1", 1, {"nan": float("nan")})
    with pytest.raises(ConfigError):
        broker.leader_write("n1", "1", "epoch must be an int")  # type: ignore[arg-type]
    assert broker.fenced_writes() == []
