"""Hypothesis stateful testing of the model: long random walks past what the explorer exhausts.

One rule draws any enabled action instance (unpruned: every call a real
client could make), applies it, and checks every safety invariant of the
model after the step (state predicates) and on the step (transition
predicates). At the end of each run a bounded *drain* checks the liveness
claims: with publishing stopped and every up worker calling each round, every
task finishes (I5); with no more faults and every reachable node ticking each
round, the minimum such node holds the lease (I8). Hypothesis shrinks a
failure to a minimal trace, which is returned for replay.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Verbosity, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    rule,
    run_state_machine_as_test,
)

from taskward.models import broker as B
from taskward.models.core import CONCRETE, Model, State
from taskward.specs.invariants import Invariant, applicable


class Violation(AssertionError):
    """An invariant failed; carries its id so the caller can attribute the failure."""

    def __init__(self, invariant: str, message: str) -> None:
        super().__init__(f"{invariant}: {message}")
        self.invariant = invariant


@dataclass
class WalkResult:
    """What one Hypothesis campaign found."""

    examples: int = 0
    steps: int = 0
    seconds: float = 0.0
    violated: str | None = None
    trace: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    message: str = ""


def check_step(m: Model, invs: list[Invariant], pre: State, name: str, args: tuple[int, ...],
               post: State, result: int) -> None:
    """Raise :class:`Violation` if the step or the state it reached breaks an invariant."""
    mid = None
    for inv in invs:
        preds = inv.step_preds(name)
        if preds and mid is None:
            mid = m.mid(pre, name, args)
        for p in preds:
            assert mid is not None
            if not p(CONCRETE, m, pre, mid, post, args, result):
                raise Violation(inv.id, f"step {m.label(name, args)} breaks {inv.name}")
        if inv.state is not None and not inv.state(CONCRETE, m, post):
            raise Violation(inv.id, f"state after {m.label(name, args)} breaks {inv.name}")


Trace = list[tuple[str, tuple[int, ...]]]


def drain_broker(m: Model, s: State, rounds: int) -> tuple[State, Trace]:
    """Fair schedule with publishing stopped: each round every up worker fetches and acks."""
    c: B.BrokerConfig = m.config
    L = m.layout
    steps: list[tuple[str, tuple[int, ...]]] = []
    for _ in range(rounds):
        for w in range(c.workers):
            if not L.get(s, "up", w):
                continue
            st_ = m.apply(s, "fetch", (w,))
            steps.append(("fetch", (w,)))
            s = st_.post
            if st_.result != B.NONE:
                s = m.apply(s, "ack", (w, st_.result)).post
                steps.append(("ack", (w, st_.result)))
        s = m.apply(s, "advance", ()).post
        steps.append(("advance", ()))
    return s, steps


def drain_election(m: Model, s: State, rounds: int
                   ) -> tuple[State, list[tuple[str, tuple[int, ...]]]]:
    """Fault-free fair schedule: every up, reachable node ticks, then time passes."""
    L = m.layout
    steps: list[tuple[str, tuple[int, ...]]] = []
    for _ in range(rounds):
        for n in range(m.config.nodes):
            if L.get(s, "up", n) and not L.get(s, "iso", n):
                s = m.apply(s, "tick", (n,)).post
                steps.append(("tick", (n,)))
        s = m.apply(s, "advance", ()).post
        steps.append(("advance", ()))
    return s, steps


def check_liveness(m: Model, invs: list[Invariant], s: State
                   ) -> list[tuple[str, tuple[int, ...]]]:
    """Run the bounded drain for each liveness invariant; raise if it does not converge."""
    ids = {i.id for i in invs if i.kind == "liveness"}
    if "I5" in ids and any(m.layout.get(s, "up", w) for w in range(m.config.workers)):
        c: B.BrokerConfig = m.config
        rounds = c.tasks * (c.max_deliveries + 1) * (c.lease + 1) + c.worker_timeout
        end, steps = drain_broker(m, s, rounds)
        if any(m.layout.get(end, "st", t) in (B.READY, B.LEASED) for t in range(c.tasks)):
            raise Violation("I5", f"tasks unfinished after {rounds} fair rounds")
        return steps
    if "I8" in ids:
        cfg = m.config
        rounds = 2 * cfg.lease + cfg.member_timeout + 1
        end, steps = drain_election(m, s, rounds)
        ready = [n for n in range(cfg.nodes)
                 if m.layout.get(end, "up", n) and not m.layout.get(end, "iso", n)]
        if ready and m.layout.get(end, "holder") != min(ready):
            raise Violation("I8", f"no convergence to the minimum node after {rounds} rounds")
        return steps
    return []


def machine_for(m: Model, record: WalkResult, invs: list[Invariant]
                ) -> type[RuleBasedStateMachine]:
    """A rule-based state machine over ``m`` that records its trace into ``record``.

    Swarm testing: each run first draws which kinds of action it may use, so
    some runs do little but advance time and pause, others only publish and
    fetch. Rare fault sequences (a pause long enough for a new election, an ack
    right after expiry) become likely instead of drowned in uniform choice."""
    instances = m.instances()
    names = sorted({a.name for a in m.actions})

    class ModelMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.s: State = m.init
            self.trace: list[tuple[str, tuple[int, ...]]] = []
            self.allowed: set[str] = set(names)
            record.examples += 1
            record.trace = self.trace

        @initialize(swarm=st.sets(st.sampled_from(names), min_size=1))
        def choose_swarm(self, swarm: set[str]) -> None:
            self.allowed = set(swarm) | {"advance"}

        @rule(data=st.data())
        def step(self, data: Any) -> None:
            enabled = [(a.name, args) for a, args in instances
                       if a.name in self.allowed and m.enabled(self.s, a, args, prune=False)]
            name, args = data.draw(st.sampled_from(enabled), label="action")
            st_ = m.apply(self.s, name, args)
            self.trace.append((name, args))
            record.steps += 1
            check_step(m, invs, self.s, name, args, st_.post, st_.result)
            self.s = st_.post

        def teardown(self) -> None:
            self.trace += check_liveness(m, invs, self.s)

    ModelMachine.__name__ = f"Machine_{m.name}"
    return ModelMachine


run: Any = run_state_machine_as_test
"""Typed in newer Hypothesis releases, untyped in older ones: called through Any."""


def walk(m: Model, *, examples: int = 200, steps: int = 40, seed: int | None = 0,
         invariants: list[Invariant] | None = None) -> WalkResult:
    """Run a campaign; on failure the recorded trace is Hypothesis's shrunk minimal one."""
    record = WalkResult()
    cls = machine_for(m, record, invariants if invariants is not None else applicable(m))
    conf = settings(max_examples=examples, stateful_step_count=steps, deadline=None,
                    database=None, derandomize=seed is not None, verbosity=Verbosity.quiet,
                    suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    start = time.perf_counter()
    try:
        run(cls, settings=conf)
    except Violation as v:
        record.violated = v.invariant
        record.message = str(v)
    record.seconds = time.perf_counter() - start
    if record.violated is None:
        record.trace = []
    return record
