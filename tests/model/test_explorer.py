"""The explorer on the correct models: pinned state counts, no violation, no dead action.

A pinned count changes when the model's behaviour changes; update it only
together with the change that explains it (Stateright pins its counts the same way).
"""

from __future__ import annotations

import pytest
from taskward.models import broker as B
from taskward.models import election as E
from taskward.models.compiled import compile_model
from taskward.specs.invariants import applicable

from taskward.check.explorer import explore

TINY = {"workers": 2, "tasks": 2, "priorities": 1, "lease": 1, "max_deliveries": 1,
        "worker_timeout": 2}


@pytest.mark.parametrize(("policy", "states", "depth"), [
    ("shared", 3157, 14), ("round_robin", 7020, 19), ("work_stealing", 12584, 19)])
def test_the_correct_broker_passes_every_invariant_at_a_pinned_state_count(
        policy: str, states: int, depth: int) -> None:
    m = B.build(B.BrokerConfig(policy=policy, **TINY))  # type: ignore[arg-type]
    res = explore(compile_model(m))
    assert res.complete
    assert res.violations == {}
    assert (res.states, res.depth) == (states, depth)
    assert res.never_fired(m) == []
    assert set(res.checked) | set(res.liveness_checked) == {i.id for i in applicable(m)}


def test_the_correct_election_passes_every_invariant_at_a_pinned_state_count() -> None:
    m = E.build(E.ElectionConfig(nodes=2, lease=2, member_timeout=2, margin=1, max_pause=1,
                                 stale_cap=2))
    res = explore(compile_model(m))
    assert res.complete and res.violations == {}
    assert (res.states, res.depth) == (21104, 22)
    assert res.never_fired(m) == []
    assert sorted(res.liveness_checked) == ["I8"]


def test_symmetry_reduction_only_merges_states_and_changes_no_verdict() -> None:
    cfg = B.BrokerConfig(policy="shared", **TINY)  # type: ignore[arg-type]
    reduced = explore(B.build(cfg))
    full = explore(B.build(cfg, symmetry=False))
    assert reduced.states < full.states
    assert reduced.violations == full.violations == {}


def test_a_budget_that_runs_out_gives_an_incomplete_exploration() -> None:
    m = B.build(B.BrokerConfig(policy="shared", **TINY))  # type: ignore[arg-type]
    res = explore(m, max_states=500)
    assert not res.complete
    assert res.states < 3157


def test_pauses_beyond_the_margin_break_single_belief_but_fencing_still_holds() -> None:
    m = E.build(E.ElectionConfig(nodes=2, lease=2, member_timeout=2, margin=1, max_pause=2,
                                 stale_cap=2))
    res = explore(compile_model(m))
    assert "I3b" in res.violations
    assert "I3a" not in res.violations and "I4" not in res.violations


def test_broker_and_election_composed_on_one_clock_keep_every_safety_invariant() -> None:
    from taskward.check.verify import DEFAULT, build_composed

    m = build_composed(*DEFAULT.composed[0])
    res = explore(m)
    assert res.complete and res.violations == {}
    assert (res.states, res.depth) == (3820, 15)
    assert res.never_fired(m) == []
    assert sorted(res.checked) == ["I1", "I2", "I3a", "I3b", "I4", "I9"]


def test_a_broken_part_is_caught_inside_the_composition() -> None:
    from taskward.models.core import compose
    from taskward.models.mutants import MUTANTS

    from taskward.check.verify import DEFAULT

    election = E.build(DEFAULT.composed[0][1])
    res = explore(compose(MUTANTS["lifo"].build(), election), stop_on_violation=True)
    assert list(res.violations) == ["I2"]
    assert [s.action for s in res.violations["I2"].steps][-1] == "broker.fetch"


@pytest.mark.parametrize("policy", B.POLICIES)
def test_the_explorer_filter_only_skips_calls_that_act_like_a_heartbeat(policy: str) -> None:
    """Soundness of ``prune`` on the correct model: on every reachable state, a
    skipped ack/nack/extend leads where ``heartbeat`` of that worker leads."""
    from taskward.models.core import CONCRETE

    m = B.build(B.BrokerConfig(policy=policy, **TINY), symmetry=False)  # type: ignore[arg-type]
    explore(m, liveness=False)
    skipped = 0
    for s in m.extra["_graph"].states:
        for a, args in m.instances():
            if a.prune is None or not a.guard(CONCRETE, s, *args) or a.prune(CONCRETE, s, *args):
                continue
            skipped += 1
            post, result = a.effect(CONCRETE, s, *args)
            assert result == 0
            assert tuple(post) == m.apply(s, "heartbeat", (args[0],)).post
    assert skipped > 1000
