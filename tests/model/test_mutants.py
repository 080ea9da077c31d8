"""Every model mutant is killed, and its counterexample replays step by step in the model.

This is what keeps the checks from being vacuous: each invariant has at least
one mutant here that only a working check of that invariant can catch.
"""

from __future__ import annotations

import pytest
from taskward.models.compiled import compile_model
from taskward.models.core import Model
from taskward.models.mutants import MUTANTS
from taskward.specs.invariants import BY_ID, INVARIANTS

from taskward.check.explorer import Counterexample, explore, replay
from taskward.check.stateful import Violation, check_step, walk

# shortest counterexample lengths at the mutants' small bounds (BFS finds shortest ones)
TRACE_LENGTH = {
    "own-view-election": 2, "no-fencing": 6, "tail-redelivery": 5, "no-lease-expiry": 12,
    "rr-dead-worker": 11, "lifo": 3, "steal-leased": 3, "stale-ack": 4,
    "restart-drops-leases": 3, "nack-loses-task": 2, "priority-inversion": 3, "no-stealing": 2,
    "sticky-cursor": 2, "dead-letter-off-by-one": 6, "pause-beyond-margin": 6,
    "non-minimal-grant": 5, "never-resign": 13, "epoch-reuse": 5,
}
# Hypothesis needs larger campaigns for the mutants whose failure needs a precise fault order
HYPOTHESIS_BUDGET = {"no-fencing": 2000, "stale-ack": 2000, "pause-beyond-margin": 4000}


def test_every_invariant_is_the_target_of_some_mutant() -> None:
    targeted = {i for mu in MUTANTS.values() for i in mu.breaks}
    assert targeted == {i.id for i in INVARIANTS}


def test_every_naive_claim_of_the_semantics_has_a_mutant() -> None:
    sections = {mu.section for mu in MUTANTS.values()}
    assert {"5.1", "5.2", "5.3", "5.4", "5.5", "5.6"} <= sections


def explore_mutant(name: str) -> tuple[Model, Counterexample]:
    mu = MUTANTS[name]
    m = compile_model(mu.build())
    invs = [BY_ID[i] for i in mu.breaks]
    liveness = any(i.kind == "liveness" for i in invs)
    res = explore(m, invariants=invs, stop_on_violation=not liveness)
    assert set(res.violations) == set(mu.breaks), f"{name} survived the explorer"
    return m, res.violations[mu.breaks[0]]


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_the_explorer_kills_the_mutant_with_a_short_trace(name: str) -> None:
    _m, cex = explore_mutant(name)
    assert len(cex.steps) == TRACE_LENGTH[name]


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_the_mutant_counterexample_replays_and_violates_the_same_invariant(name: str) -> None:
    m, cex = explore_mutant(name)
    inv = BY_ID[MUTANTS[name].breaks[0]]
    steps = replay(m, [(s.action, s.args) for s in cex.steps])
    assert [s.result for s in steps] == [s.result for s in cex.steps]
    if inv.kind == "liveness":
        assert cex.loop_from is not None
        states = [m.init] + [s.post for s in steps]
        canon = m.canon or (lambda x: x)
        assert canon(states[cex.loop_from]) == canon(states[-1]), "the loop must close"
        return
    s = m.init
    with pytest.raises(Violation) as caught:
        for st in steps:
            check_step(m, [inv], s, st.action, st.args, st.post, st.result)
            s = st.post
    assert caught.value.invariant == inv.id


# killed by Hypothesis within a few seconds each: in every default run
QUICK_FOR_HYPOTHESIS = ("lifo", "no-lease-expiry", "nack-loses-task", "no-stealing",
                        "own-view-election")


@pytest.mark.parametrize("name", QUICK_FOR_HYPOTHESIS)
def test_hypothesis_kills_a_mutant_quickly_and_shrinks_the_trace(name: str) -> None:
    hypothesis_kills(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(MUTANTS) - set(QUICK_FOR_HYPOTHESIS)))
def test_hypothesis_kills_every_other_mutant(name: str) -> None:
    hypothesis_kills(name)


def hypothesis_kills(name: str) -> None:
    mu = MUTANTS[name]
    invs = [BY_ID[i] for i in mu.breaks]
    res = walk(compile_model(mu.build()), examples=HYPOTHESIS_BUDGET.get(name, 1000), steps=30,
               invariants=invs)
    assert res.violated in mu.breaks, f"{name} survived Hypothesis"
    assert 0 < len(res.trace) <= 60
