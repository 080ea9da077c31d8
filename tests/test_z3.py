"""The Z3 checks agree with the explorer, and their proofs and counterexamples are real.

The symbolic relation is generated from the model's actions, so the first test
pins it against the concrete model on every reachable state of small bounds;
the rest compare verdicts with the exhaustive explorer and replay every
solver counterexample through the executable model.
"""

from __future__ import annotations

import pytest
import z3
from taskward.models import broker as B
from taskward.models import election as E
from taskward.models.core import CONCRETE, Model
from taskward.models.mutants import MUTANTS
from taskward.specs import intervals
from taskward.specs import z3enc as Z
from taskward.specs.invariants import BY_ID

from taskward.check import z3check as C
from taskward.check.explorer import explore, replay

TINY_SHARED = B.BrokerConfig(policy="shared", workers=1, tasks=2, priorities=2, lease=1,
                             max_deliveries=1, worker_timeout=1, crashes=False)
TINY_RR = B.BrokerConfig(policy="round_robin", workers=2, tasks=1, priorities=1, lease=1,
                         max_deliveries=1, worker_timeout=1)
TINY_ELECTION = E.ElectionConfig(nodes=2, lease=2, member_timeout=1, stale_cap=1, margin=1,
                                 max_pause=1)
SAFETY_MUTANTS = sorted(n for n, mu in MUTANTS.items()
                        if all(BY_ID[i].kind == "safety" for i in mu.breaks))


def tiny_models() -> list[Model]:
    return [B.build(TINY_SHARED, symmetry=False), B.build(TINY_RR), E.build(TINY_ELECTION)]


def test_z3_ops_fold_concrete_values_and_build_terms_otherwise() -> None:
    o, x = Z.INT_OPS, z3.Int("x")
    assert o.ite(True, 1, x) == 1
    assert o.and_(True, True) is True
    assert o.and_(x > 0, False) is False
    assert o.or_(False, x > 0).eq(x > 0)
    assert o.not_(False) is True
    s = z3.Solver()
    s.add(o.b2i(o.and_(x > 0, x < 2)) + o.ite(x == 1, 5, 0) == 6)
    assert s.check() == z3.sat and s.model()[x].as_long() == 1


def _disagreements(model: Model, states: list[tuple[int, ...]]) -> list[str]:
    """Instances whose guard, successor or answer differ between z3 and Python."""
    pre, post = Z.frame(model, "p"), Z.frame(model, "q")
    st = Z.step(model, pre, post, "s")
    out = []
    for s in states:
        zs = z3.Solver()
        zs.add(*[v == x for v, x in zip(pre, s, strict=True)])
        if zs.check() != z3.sat:
            return [f"state {s} is not representable"]
        zm = zs.model()
        for i, (a, args) in enumerate(st.insts):
            enabled = bool(a.guard(CONCRETE, s, *args))
            guard, effects, result = st.instance(i)
            if z3.is_true(zm.eval(guard, model_completion=True)) != enabled:
                out.append(f"guard of {a.name}{args}")
            elif enabled:
                eff, r = a.effect(CONCRETE, s, *args)
                got = [Z.value(zm, e) for e in effects]
                if got != [int(v) for v in eff] or Z.value(zm, result) != r:
                    out.append(f"effect of {a.name}{args}")
    return out


def _sample(model: Model) -> list[tuple[int, ...]]:
    res = explore(model, liveness=False)
    assert res.complete
    states: list[tuple[int, ...]] = model.extra["_graph"].states
    return states[:: max(1, len(states) // 150)]


@pytest.mark.parametrize("model", tiny_models(), ids=lambda m: m.name)
def test_the_generated_relation_agrees_with_the_model_on_every_reachable_state(
        model: Model) -> None:
    """Guard, successor and answer of every unpruned instance, evaluated by z3 and by Python."""
    assert _disagreements(model, _sample(model)) == []


def test_the_analysed_bit_width_holds_every_value_and_a_narrower_one_breaks_agreement() -> None:
    """Bit-vectors are exact only without overflow: every concrete value lies inside the
    interval analysis's extremes, and forcing a width below them makes the relation
    disagree with the model, so the agreement test above would catch a bad width."""
    model = B.build(TINY_RR)
    ext = intervals.extremes(model)
    states = _sample(model)
    for s in states:
        for a, args in model.instances():
            if a.guard(CONCRETE, s, *args):
                eff, _ = a.effect(CONCRETE, s, *args)
                assert all(ext.lo <= v <= ext.hi for v in eff), (a.name, args)
    assert Z.width_of(model) >= intervals.signed_width(ext)
    narrow = B.build(TINY_RR)
    narrow.extra["_z3_width"] = intervals.signed_width(ext) - 1
    assert _disagreements(narrow, states) != []


@pytest.mark.parametrize("index,depth", [(0, 9), (1, 10), (2, 8)],
                         ids=["shared", "round_robin", "election"])
def test_bmc_and_the_explorer_pass_the_correct_models(index: int, depth: int) -> None:
    """The broker bounds are below the BMC depth, so both checks cover every reachable state."""
    model = tiny_models()[index]
    res = explore(model, liveness=False)
    assert res.complete and not res.violations
    rows = C.bmc(model, depth, timeout_s=30)
    assert {r.invariant for r in rows} == set(res.checked)
    assert all(r.verdict == "pass" and r.bound["depth"] == depth for r in rows), rows
    if model.name.startswith("broker"):
        assert res.depth < depth


@pytest.mark.parametrize("name", SAFETY_MUTANTS)
def test_bmc_kills_each_safety_mutant_like_the_explorer_and_the_trace_replays(name: str) -> None:
    mu = MUTANTS[name]
    m = mu.build()
    rows = C.bmc(m, 12, timeout_s=10, invariants=list(mu.breaks))
    assert {r.invariant for r in rows if r.verdict == "fail"} == set(mu.breaks)
    inv = BY_ID[mu.breaks[0]]
    trace = rows[0].counterexample
    assert trace is not None
    path = [(s["action"], tuple(s["args"])) for s in trace]
    steps = replay(m, path)
    assert C.violates(m, inv, [m.init, *[s.post for s in steps]], path)
    ex = explore(m, invariants=[inv], liveness=False, stop_on_violation=True)
    assert inv.id in ex.violations
    # the explorer prunes instances that equal a heartbeat in the correct model; BMC never
    # prunes, so its shortest trace is never longer (nack-loses-task: shorter).
    assert len(path) <= len(ex.violations[inv.id].steps)


@pytest.mark.parametrize("model", tiny_models(), ids=lambda m: m.name)
def test_induction_proves_every_safety_invariant_of_the_correct_models(model: Model) -> None:
    rows = C.induction(model, timeout_s=30)
    assert rows and all(r.verdict == "pass" for r in rows), [(r.invariant, r.note) for r in rows]
    assert {r.invariant for r in rows} == {i.id for i in C.safety_of(model)}


def test_induction_without_a_needed_lemma_shows_a_readable_cti(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(Z.LEMMAS, "I3a", ())
    (row,) = C.induction(E.build(TINY_ELECTION), invariants=["I3a"])
    assert row.verdict == "unknown"
    assert row.note.startswith("CTI: I3a (transition) does not survive leader_write(")
    assert row.stats["cti"]["pre"]["wage"] == 0


def test_induction_does_not_pass_a_mutant() -> None:
    (row,) = C.induction(MUTANTS["epoch-reuse"].build(), invariants=["I3a"])
    assert row.verdict != "pass"


def test_unknown_is_reported_when_the_budget_runs_out() -> None:
    rows = C.bmc(tiny_models()[0], 50, timeout_s=10, budget_s=0.5)
    assert rows and all(r.verdict == "unknown" for r in rows)
    assert all(r.stats["depth_reached"] < 50 for r in rows)


def test_the_progress_ranking_is_proven_for_the_correct_broker_and_not_without_expiry() -> None:
    (ok,) = C.ranking(B.build(TINY_RR))
    assert ok.verdict == "pass" and ok.checker == "z3-ranking"
    (bad,) = C.ranking(MUTANTS["no-lease-expiry"].build())
    assert bad.verdict == "unknown" and "falls-on-progress" in bad.note


SMALL = {"workers": 2, "tasks": 3, "priorities": 2, "lease": 2, "max_deliveries": 2,
         "worker_timeout": 2}


@pytest.mark.parametrize("policy,steps", [("shared", 3), ("round_robin", 8),
                                          ("work_stealing", 3)])
def test_the_fair_step_bound_of_i5_is_proven_and_exact(policy: str, steps: int) -> None:
    """unsat at ``steps`` and sat one step earlier: the bound is proven and tight."""
    m = B.build(B.BrokerConfig(policy=policy, **SMALL), symmetry=False)
    (row,) = C.progress_bound(m, timeout_s=60)
    assert (row.verdict, row.checker, row.invariant) == ("pass", "z3-progress", "I5"), row.note
    assert row.stats["steps"] == steps and row.stats["tight"] is True
    assert row.bound["window"] == 3 and row.bound["depth"] == "unbounded"


def test_the_bound_does_not_pass_when_its_start_states_are_not_proven_inductive(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``unpublished-blank`` the rank still falls within 3 steps from every state
    satisfying Inv, but Inv no longer covers every reachable state: unknown, with the CTI."""
    base = tuple(lm for lm in Z.BASE["broker"] if lm.name != "unpublished-blank")
    monkeypatch.setitem(Z.BASE, "broker", base)
    m = B.build(B.BrokerConfig(policy="shared", **SMALL), symmetry=False)
    (row,) = C.progress_bound(m, timeout_s=30, max_steps=8, lasso_len=4)
    assert row.verdict == "unknown" and "not proven inductive" in row.note
    assert "CTI" in row.note


def test_a_window_too_short_for_every_worker_makes_the_assumptions_vacuous() -> None:
    """With a 1-step window both workers would have to fetch in one step: no path obeys it,
    and the check says so instead of passing."""
    m = B.build(B.BrokerConfig(policy="shared", **SMALL), symmetry=False)
    path = C._FairPath(m, C.FairWindow(1))
    path.grow(4)
    inv = [f(path.frames[0]) for _, f in C.conjuncts(m, BY_ID["I9"])]
    timer = C._Timer(30)
    row = C._progress_result(m, path, 4, inv, timer, {}, C.FairWindow(1), 3)
    assert row.verdict == "unknown" and row.note.startswith("vacuous")


@pytest.mark.parametrize("name", sorted(n for n, mu in MUTANTS.items() if "I5" in mu.breaks))
def test_the_progress_check_fails_each_i5_mutant_with_a_fair_lasso_that_replays(
        name: str) -> None:
    m = MUTANTS[name].build()
    (row,) = C.progress_bound(m, timeout_s=20, max_steps=6, lasso_len=14)
    assert row.verdict == "fail" and row.counterexample, row.note
    trace = row.counterexample
    loop = [i for i, s in enumerate(trace) if s["loop"]]
    assert loop and loop == list(range(loop[0], len(trace)))
    steps = replay(m, [(s["action"], tuple(s["args"])) for s in trace])
    states = [m.init, *[s.post for s in steps]]
    start = states[loop[0]]
    assert states[-1] == start
    assert any(m.layout.get(start, "st", t) in (B.READY, B.LEASED) for t in range(m.config.tasks))
    cycle = [trace[i]["action"] for i in loop]
    assert "advance" in cycle and "publish" not in cycle and "extend" not in cycle
    ups = [w for w in range(m.config.workers) if m.layout.get(start, "up", w)]
    assert ups and all(any(trace[i]["action"] == "fetch" and trace[i]["args"] == [w]
                               for i in loop) for w in ups)


def test_the_correct_model_has_no_fair_lasso_where_the_mutant_has_one() -> None:
    ok = B.build(B.BrokerConfig(policy="shared", workers=2, tasks=1, priorities=1, lease=1,
                                max_deliveries=1, worker_timeout=2))
    assert C.fair_lasso(ok, 10, timeout_s=30) is None
    cex = C.fair_lasso(MUTANTS["no-lease-expiry"].build(), 10, timeout_s=30)
    assert cex is not None and cex.loop_from is not None
