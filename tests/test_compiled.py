"""The compiled model is the model: same guards, filters, preludes, effects, results, states.

Agreement is checked on every reachable state of small bounds (the explorer's
own state list), instance by instance, values *and* their Python types; then
on random walks at a larger bound; then the explored state and transition
counts, through the explorer and through the fused successor function.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from taskward.models import broker as B
from taskward.models import election as E
from taskward.models.compiled import (
    TraceError,
    compile_model,
    state_check_fn,
    successors_fn,
)
from taskward.models.core import CONCRETE, Action, Model, Ops, State, SymState, V, Writer
from taskward.models.mutants import MUTANTS
from taskward.specs.invariants import Invariant, applicable

from taskward.check.explorer import explore

SMALL_BROKER = {"workers": 2, "tasks": 2, "priorities": 2, "lease": 1, "max_deliveries": 1,
                "worker_timeout": 1}
SMALL_ELECTION = E.ElectionConfig(nodes=2, lease=2, member_timeout=1, margin=1, max_pause=1,
                                  stale_cap=1)


def broker(policy: str, **kw: Any) -> Model:
    return B.build(B.BrokerConfig(policy=policy, **{**SMALL_BROKER, **kw}))


MODELS = [
    pytest.param(lambda: broker("shared"), id="broker-shared"),
    # one priority keeps the per-worker policies' every-state check quick; the
    # random walks below cover two priorities for every policy
    pytest.param(lambda: broker("round_robin", priorities=1), id="broker-round_robin"),
    pytest.param(lambda: broker("work_stealing", priorities=1), id="broker-work_stealing"),
    pytest.param(lambda: E.build(SMALL_ELECTION), id="election"),
]


def typed(v: Any) -> Any:
    """A value with its type, so ``True`` and ``1`` do not compare equal."""
    if isinstance(v, tuple | list):
        return tuple(typed(x) for x in v)
    return (type(v).__name__, v)


def safety(m: Model) -> list[Invariant]:
    return [i for i in applicable(m) if i.kind == "safety"]


def step_checks(m: Model) -> dict[str, list[tuple[Any, Any]]]:
    return {a.name: [(i, p) for i in safety(m) for p in i.step_preds(a.name)]
            for a in m.actions}


def reachable(m: Model) -> list[State]:
    explore(m, liveness=False)
    states: list[State] = m.extra["_graph"].states
    return states


def assert_instance_agrees(m: Model, cm: Model, s: State,
                           checks: dict[str, list[tuple[Any, Any]]] | None = None
                           ) -> list[tuple[Any, ...]]:
    """Every part of every enabled action instance gives the same typed value on ``s``.

    Returns what the explorer's loop computes for ``s`` from the interpreted
    model: ``(name, args, result, post, every step check holds)`` per edge."""
    edges = []
    for a, ca in zip(m.actions, cm.actions, strict=True):
        for args in a.instances():
            where = f"{a.name}{args} on {s}"
            enabled = a.guard(CONCRETE, s, *args)
            assert typed(ca.guard(CONCRETE, s, *args)) == typed(enabled), where
            if not enabled:
                continue
            if a.prune is not None:
                assert ca.prune is not None
                assert typed(ca.prune(CONCRETE, s, *args)) == typed(a.prune(CONCRETE, s, *args))
            mid = s
            if a.prelude is not None:
                assert ca.prelude is not None
                mid = a.prelude(CONCRETE, s, *args)
                assert typed(ca.prelude(CONCRETE, s, *args)) == typed(mid), where
            post, result = a.effect(CONCRETE, s, *args)
            assert typed(ca.effect(CONCRETE, s, *args)) == typed((post, result)), where
            if checks is not None and m.enabled(s, a, args, prune=True):
                ok = all(p(CONCRETE, m, s, mid, post, args, result) for _, p in checks[a.name])
                edges.append((a.name, args, result, post, ok))
    return edges


@pytest.mark.parametrize("make", MODELS)
def test_every_reachable_state_agrees(make: Any) -> None:
    m = make()
    cm = compile_model(m)
    checks = step_checks(m)
    succ = successors_fn(m, checks)
    state_ok = state_check_fn(m, [(i, i.state) for i in safety(m)])
    states = reachable(m)
    assert len(states) > 100
    for s in states:
        expected = assert_instance_agrees(m, cm, s, checks)
        assert typed(succ(s)) == typed(expected), s
        assert state_ok(s) is all(i.state(CONCRETE, m, s) for i in safety(m) if i.state)


@pytest.mark.parametrize("make", MODELS)
def test_explored_counts_identical(make: Any) -> None:
    m = make()
    plain = explore(m)
    comp = explore(compile_model(m))
    assert (comp.states, comp.transitions, comp.depth) == (plain.states, plain.transitions,
                                                          plain.depth)
    assert comp.fired == plain.fired
    assert sorted(comp.violations) == sorted(plain.violations)
    assert fused_count(m) == (plain.states, plain.transitions)


def fused_count(m: Model) -> tuple[int, int]:
    """The explorer's breadth-first loop driven by the one generated successor function."""
    succ = successors_fn(m)
    canon = m.canon or (lambda x: x)
    seen = {canon(m.init)}
    frontier = [canon(m.init)]
    transitions = 0
    while frontier:
        nxt = []
        for s in frontier:
            for _name, _args, _result, post, _ok in succ(s):
                transitions += 1
                p = canon(post)
                if p not in seen:
                    seen.add(p)
                    nxt.append(p)
        frontier = nxt
    return len(seen), transitions


@pytest.mark.parametrize("policy", B.POLICIES)
def test_random_walks_at_a_larger_bound(policy: str) -> None:
    m = B.build(B.BrokerConfig(policy=policy, workers=3, tasks=3, priorities=2, lease=2,
                               max_deliveries=2, worker_timeout=2))
    cm = compile_model(m)
    rng = random.Random(policy)
    for _walk in range(4):
        s = m.init
        for _ in range(60):
            assert_instance_agrees(m, cm, s)
            steps = list(m.successors(s))
            s = rng.choice(steps).post


def test_the_step_check_flag_reports_a_violation() -> None:
    """``ok`` is False exactly on the edges where a step predicate fails."""
    m = broker("round_robin")
    seen = []

    def never_fetch(o: Ops, m: Model, pre: SymState, mid: SymState, post: SymState,
                    args: tuple[int, ...], result: V) -> V:
        seen.append(args)
        return result == B.NONE

    succ = successors_fn(m, {"fetch": [("no-delivery", never_fetch)]})
    s = m.apply(m.init, "publish", (1,)).post
    flags = {(name, args): ok for name, args, _r, _p, ok in succ(s)}
    assert flags[("fetch", (0,))] is False or flags[("fetch", (1,))] is False
    assert all(ok for (name, _), ok in flags.items() if name != "fetch")
    assert seen, "the predicate was traced"


class AckWithoutLease(B.Broker):
    """A mutant: ack accepted from anyone, so it must compile like the original."""

    def ack(self, o: Ops, s: SymState, worker: int, t: int) -> tuple[tuple[V, ...], V]:
        w = Writer(self.L, self.pre(o, s, worker))
        ok = w.get("st", t) == B.LEASED
        w.set("st", o.ite(ok, B.ACKED, w.get("st", t)), t)
        w.set("ackc", w.get("ackc", t) + o.b2i(ok), t)
        return w.state(), o.b2i(ok)


def test_a_mutant_subclass_compiles_and_agrees() -> None:
    c = B.BrokerConfig(policy="shared", **SMALL_BROKER)
    impl = AckWithoutLease(c)
    m = Model("broker[shared]", impl.L, B.initial(c, impl.L), impl.actions(), c,
              mutant="ack-without-lease")
    cm = compile_model(m)
    assert cm.action("ack").effect is not compile_model(broker("shared")).action("ack").effect
    states = reachable(m)
    for s in states[:: max(1, len(states) // 300)]:
        assert_instance_agrees(m, cm, s)
    assert explore(cm, liveness=False).states == len(states)


def test_branching_on_a_state_value_names_the_action() -> None:
    m = broker("shared")

    def bad_effect(o: Ops, s: SymState) -> tuple[tuple[V, ...], V]:
        return tuple(s), (1 if s[0] == B.READY else 0)

    bad = Action("peek", (), lambda o, s: True, bad_effect, "env", "")
    m.actions = (*m.actions, bad)
    with pytest.raises(TraceError, match=r"effect of peek\(\)"):
        compile_model(m)


def test_non_concrete_ops_run_the_original_code() -> None:
    m = broker("shared")
    cm = compile_model(m)
    calls: list[str] = []

    class Recording:
        def ite(self, c: V, a: V, b: V) -> V:
            calls.append("ite")
            return a if c else b

        def and_(self, *xs: V) -> V:
            calls.append("and")
            return all(xs)

        def or_(self, *xs: V) -> V:
            return any(xs)

        def not_(self, x: V) -> V:
            return not x

        def b2i(self, x: V) -> V:
            return 1 if x else 0

    post, _ = cm.action("fetch").effect(Recording(), m.init, 0)
    assert calls and post == m.action("fetch").effect(CONCRETE, m.init, 0)[0]


class AnyoneHolds(B.Broker):
    """Overrides only a helper that ack/nack/extend call: their own code is unchanged."""

    def holds(self, o: Ops, w: Writer, worker: int, t: int) -> V:
        return o.and_(w.get("st", t) == B.LEASED, w.get("exp", t) > 0)


def test_the_cache_tells_an_overridden_helper_apart() -> None:
    """Same name, configuration and method code, no mutant label: still not the cached model."""
    c = B.BrokerConfig(policy="shared", **SMALL_BROKER)
    plain = compile_model(B.build(c))
    impl = AnyoneHolds(c)
    m = Model("broker[shared]", impl.L, B.initial(c, impl.L), impl.actions(), c)
    cm = compile_model(m)
    s = m.init
    for name, args in [("publish", (0,)), ("fetch", (0,))]:
        s = m.apply(s, name, args).post
    assert m.action("ack").effect(CONCRETE, s, 1, 0)[1] == 1, "worker 1 acks worker 0's task"
    assert cm.action("ack").effect(CONCRETE, s, 1, 0)[1] == 1
    assert plain.action("ack").effect(CONCRETE, s, 1, 0)[1] == 0


def test_an_untraceable_check_is_left_to_the_caller() -> None:
    """A predicate with a Python ``if`` on a value compiles as failing, for its action only."""
    m = broker("round_robin")

    def branches(o: Ops, m: Model, pre: SymState, mid: SymState, post: SymState,
                 args: tuple[int, ...], result: V) -> V:
        return bool(result == B.NONE) or True

    def state_branches(o: Ops, m: Model, s: SymState) -> V:
        return bool(s[0] == 0) or True

    succ = successors_fn(m, {"fetch": [("branchy", branches)]})
    assert any("branchy on fetch(0,)" in u for u in succ.untraced)  # type: ignore[attr-defined]
    s = m.apply(m.init, "publish", (1,)).post
    for name, _args, _r, _p, ok in succ(s):
        assert ok is (name != "fetch")
    state_ok = state_check_fn(m, [("branchy", state_branches)])
    assert state_ok(s) is False
    assert state_ok.untraced  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_every_mutant_compiles_and_agrees_on_random_walks(name: str) -> None:
    m = MUTANTS[name].build()
    cm = compile_model(m)
    checks = step_checks(m)
    succ = successors_fn(m, checks)
    state_ok = state_check_fn(m, [(i, i.state) for i in safety(m)])
    assert succ.untraced == () and state_ok.untraced == ()  # type: ignore[attr-defined]
    rng = random.Random(name)
    for _walk in range(3):
        s = m.init
        for _ in range(25):
            expected = assert_instance_agrees(m, cm, s, checks)
            assert typed(succ(s)) == typed(expected), s
            assert state_ok(s) is all(i.state(CONCRETE, m, s) for i in safety(m) if i.state)
            s = rng.choice(expected)[3]
