"""The oracle's answers for the calls the contract leaves to it, pinned."""

from __future__ import annotations

from taskward.check.oracle import OK, REJECT, CheckConfig, Oracle, Outcome


def take(o: Oracle, op: str, **args: object) -> Outcome:
    outcomes = o.expect(op, dict(args))
    o.follow(outcomes[0])
    if op == "publish":
        o.remember_publish(str(args["task_id"]), outcomes[0])
    return outcomes[0]


def test_names_outside_the_configuration_are_rejected_and_change_nothing() -> None:
    o = Oracle(CheckConfig())
    before = (o.b, o.e)
    for op, args in (("fetch", {"worker": "zz"}), ("tick", {"node": "zz"}),
                     ("is_leader", {"node": "zz"})):
        (only,) = o.expect(op, args)
        assert only.kind == REJECT and (only.broker, only.election) == before


def test_reused_task_id_and_unknown_task_are_rejections() -> None:
    o = Oracle(CheckConfig())
    assert take(o, "publish", task_id="a", priority=0).kind == OK
    assert take(o, "publish", task_id="a", priority=1).kind == REJECT
    assert take(o, "ack", worker="w1", task_id="nope").kind == REJECT
    assert take(o, "fetch", worker="w1").value == "a"
    assert take(o, "ack", worker="w2", task_id="a").kind == REJECT
    assert take(o, "ack", worker="w1", task_id="a").kind == OK


def test_expired_lease_at_the_limit_is_dead_lettered_in_order() -> None:
    o = Oracle(CheckConfig(max_deliveries=1))
    take(o, "publish", task_id="x", priority=0)
    take(o, "publish", task_id="y", priority=2)
    assert take(o, "fetch", worker="w1").value == "y"
    assert take(o, "fetch", worker="w2").value == "x"
    take(o, "advance", ms=3)
    assert take(o, "dead_letters").value == ["x", "y"]


def test_epochs_count_every_grant_and_refused_writes_allow_false_or_rejection() -> None:
    o = Oracle(CheckConfig())
    take(o, "tick", node="n2")
    assert take(o, "is_leader", node="n2").value == [True, 1]
    take(o, "tick", node="n1")
    take(o, "tick", node="n2")  # resigns: a smaller member is live
    assert take(o, "is_leader", node="n2").value == [False, None]
    take(o, "tick", node="n1")
    assert take(o, "is_leader", node="n1").value == [True, 2]
    assert take(o, "leader_write", node="n1", epoch=2, value=0).value is True
    stale = o.expect("leader_write", {"node": "n1", "epoch": 1, "value": 0})
    assert {(x.kind, x.value) for x in stale} == {(OK, False), (REJECT, None)}
