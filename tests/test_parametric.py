"""The parametric proofs of I2 and I3a hold, are not vacuous, and describe the executable model.

The relational models of ``taskward.specs.parametric`` are written by hand, so
besides the proofs (and one broken transition per claim that must not prove)
this pins them against ``taskward.models``: every reachable transition of
small explorer models, mapped through the abstraction functions, must be a
step of the matching relational transition, and every reachable abstracted
state must satisfy the inductive invariant. The election's epochs are
relative in the model, so absolute epochs are carried along the BFS tree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pytest
import z3
from taskward.models import broker as B
from taskward.models import election as E
from taskward.models import mutants as MU
from taskward.models.core import CONCRETE, Model, State, Writer
from taskward.specs import parametric as P

from taskward.check import z3param as Z
from taskward.check.explorer import explore

# ------------------------------------------------------------------ the proofs


@pytest.fixture(scope="module")
def rows() -> list[Any]:
    return Z.prove_parametric(timeout_s=30.0)


def test_every_claim_is_proven_for_any_size(rows: list[Any]) -> None:
    assert {(r.invariant, r.model) for r in rows} == {
        ("I2", "broker[shared]-relational"), ("I2", "broker[round_robin]-relational"),
        ("I2", "broker[work_stealing]-relational"), ("I2", "broker[fifo]-relational"),
        ("I3a", "election-relational")}
    for r in rows:
        assert r.verdict == "pass", r.note
        assert r.checker == "z3-parametric"
        assert {k: r.bound[k] for k in Z.BOUND} == Z.BOUND
        n_trans = len(r.stats["transitions"])
        assert r.stats["queries"] == 2 * n_trans + 2  # init, enabled + consecution each, safety
        assert r.stats["solver_s"] > 0


def test_the_whole_proof_takes_seconds(rows: list[Any]) -> None:
    assert 0 < Z.total_solver_s(rows) < 10.0
    assert max(r.stats["slowest_query_s"] for r in rows) < 2.0


def test_the_claims_are_the_ones_the_semantics_state() -> None:
    names = {rm.name: [lm.name for lm in rm.all_safety()] for rm in P.models()}
    assert names["election"] == ["one-node-per-epoch", "epochs-increase", "writes-current",
                                 "writes-by-grantee", "writes-monotone", "no-interleaving"]
    assert names["broker[shared]"] == ["no-skip", "only-ready-delivered"]
    assert names["broker[fifo]"][0] == "fifo-prefix"
    assert "seq-is-publish-order" in [lm.name for lm in P.broker_model().lemmas]


@cache
def mutant_rows(mutant: str) -> list[Any]:
    return Z.prove_parametric(timeout_s=30.0, mutant=mutant)


@pytest.mark.parametrize("mutant", P.PARAM_MUTANTS)
def test_every_parametric_mutant_fails_to_prove_with_a_cti(mutant: str) -> None:
    mu = P.MUTANTS[mutant]
    got = mutant_rows(mutant)
    assert [r.model for r in got] == [f"{m}-relational [mutant {mutant}]" for m in mu.models]
    for r in got:
        assert r.verdict == "unknown", r.note  # a CTI is not a reachable counterexample
        assert r.invariant == mu.claim
        assert r.stats["failed"] == [f"consecution:{mu.breaks}"]
        cti = r.stats["cti"]
        assert cti["action"] == mu.breaks and cti["broken"]
        assert all(n >= 1 for n in cti["sizes"].values())
        assert r.note.startswith(f"CTI for {r.model.split('-')[0]}")


def test_the_mutants_break_what_they_are_meant_to() -> None:
    """The CTI names the conjunct the mutation is about (not some incidental lemma)."""
    def broken(mutant: str) -> set[str]:
        return {b for r in mutant_rows(mutant) for b in r.stats["cti"]["broken"]}

    assert "seq-is-publish-order" in broken("tail-nack")
    assert "only-ready-delivered" in broken("steal-leased")
    assert "no-skip" in broken("fetch-worst")
    assert broken("max-seen-fencing") == {"writes-current"}  # monotone writes still hold
    assert broken("reuse-epoch") & {"one-node-per-epoch", "epochs-increase"}


def _quantified(t: Any) -> Iterator[Any]:
    if z3.is_quantifier(t):
        yield t
        yield from _quantified(t.body())
    elif z3.is_app(t):
        for c in t.children():
            yield from _quantified(c)


def _bounds_universe(q: Any) -> bool:
    """Is ``q`` a cardinality bound: ``forall x. x == c1 or ... `` or ``forall x, y. x == y``?"""
    body = q.body()
    parts = body.children() if z3.is_or(body) else [body]
    return all(z3.is_eq(p) and any(z3.is_var(c) for c in p.children()) for p in parts)


def test_the_proof_queries_bound_no_universe() -> None:
    """The only cardinality statement is the FIFO corollary's premise of one priority."""
    for rm in P.models():
        for q in Z.queries(rm):
            bounded = [x for a in q.assertions for x in _quantified(a) if _bounds_universe(x)]
            sorts = {x.var_sort(i).name() for x in bounded for i in range(x.num_vars())}
            assert sorts == ({"Prio"} if rm.name == "broker[fifo]" else set()), (rm.name, q.name)


@pytest.mark.parametrize(("mutant", "action", "sort"), [
    ("tail-nack", "nack", P.TASK), ("steal-leased", "steal", P.WORKER),
    ("no-fencing", "write", P.NODE), ("reuse-epoch", "grant", P.EPOCH)])
def test_ctis_exist_at_every_size(mutant: str, action: str, sort: str) -> None:
    """No size is fixed: the same broken step has counterexamples however large a universe."""
    rm = P.models(mutant)[0]
    for n in (1, 5, 12):
        sizes = Z.cti_at_least(rm, action, sort, n)
        assert sizes is not None and sizes[sort] >= n
    correct = P.models()[[m.name for m in P.models()].index(rm.name)]
    assert Z.cti_at_least(correct, action, sort, 12) is None


def test_a_cti_is_readable() -> None:
    r = mutant_rows("tail-nack")[0]
    cti = r.stats["cti"]
    assert cti["params"]["requeue"] == "true"
    assert "seq" in cti["changes"] and cti["sizes"]["Task"] >= 2
    assert "seq-is-publish-order not preserved by nack(" in r.note


# ------------------------------------------------- agreement with the executable model


@dataclass
class Coverage:
    """What an agreement walk checked."""

    states: int = 0
    transitions: int = 0
    checks: int = 0
    abstract_states: int = 0
    exercised: Counter[str] = field(default_factory=Counter)
    """Per relational transition: checked steps that change the abstract state."""
    rejected: list[tuple[tuple[str, ...], P.Structure, P.Structure]] = field(
        default_factory=list)
    violating: list[tuple[P.Structure, list[str]]] = field(default_factory=list)


class Interner:
    """Abstract each concrete state once and number the distinct structures."""

    def __init__(self, f: Callable[[State], P.Structure]) -> None:
        self.f = f
        self.of_state: dict[State, int] = {}
        self.ids: dict[P.Structure, int] = {}
        self.structs: list[P.Structure] = []

    def __call__(self, s: State) -> int:
        i = self.of_state.get(s)
        if i is None:
            st = self.f(s)
            i = self.ids.setdefault(st, len(self.structs))
            if i == len(self.structs):
                self.structs.append(st)
            self.of_state[s] = i
        return i


def _broker_names(m: Model, name: str, result: int, mid: State, worker: int) -> tuple[str]:
    """The relational transition a concrete broker operation (after its prelude) must be."""
    if name == "publish":
        return ("publish",)
    if name == "fetch" and result != B.NONE:
        if m.config.policy != "work_stealing":
            return ("fetch",)
        L = m.layout
        own = any(L.get(mid, "st", t) == B.READY and L.get(mid, "own", t) == worker
                  for t in range(m.config.tasks))
        return ("fetch",) if own else ("steal",)
    if name in ("ack", "nack") and result == 1:
        return (name,)
    return ("stutter",)


def walk(m: Model, max_states: int | None) -> Any:
    """The explorer's reachable graph (complete unless a mutant's prefix is enough)."""
    res = explore(m, liveness=False, invariants=[], max_states=max_states or 2_000_000)
    assert res.complete or max_states is not None
    return res


def broker_agreement(m: Model, rm: P.RelModel, max_states: int | None = None) -> Coverage:
    """Every reachable step of ``m`` is prelude (``expire`` then ``reassign``) and operation.

    The prelude's expiry half is recomputed with the model's own rule; the
    reassignment half is the rest of the model's prelude."""
    res = walk(m, max_states)
    g, impl, L = m.extra["_graph"], m.extra["impl"], m.layout
    ab = Interner(lambda s: P.abstract_broker(m, s))
    checks: set[tuple[tuple[str, ...], int, int]] = set()
    cov = Coverage(states=res.states, transitions=res.transitions)
    for i, s in enumerate(g.states):
        w = Writer(L, s)
        impl.expire_leases(CONCRETE, w)
        expired = tuple(int(v) for v in w.state())
        mids: dict[int, State] = {}
        for j, name, args, result in g.edges[i]:
            a = m.action(name)
            mid = s
            if a.prelude is not None:
                caller = args[0] if name != "publish" else B.NONE
                mid = mids.get(caller) or mids.setdefault(caller, m.mid(s, name, args))
                checks.add((("expire",), ab(s), ab(expired)))
                if m.config.per_worker:
                    checks.add((("reassign",), ab(expired), ab(mid)))
                else:
                    assert ab(expired) == ab(mid)
            worker = args[0] if args else B.NONE
            checks.add((_broker_names(m, name, result, mid, worker), ab(mid), ab(g.states[j])))
    chk = Z.StructureChecker(rm, P.broker_sizes(m.config))
    assert not chk.false_in(ab.structs[ab(m.init)], rm.init)
    _check(chk, checks, ab.structs, {ab(s) for s in g.states}, cov)
    return cov


IDENTITY_ANYWHERE = {("stutter",), ("expire",)}
"""Transitions that admit the identity step in every state (the frame alone; no lease
ending): checked once, then taken as read."""


def _check(chk: Z.StructureChecker, checks: set[tuple[tuple[str, ...], int, int]],
           structs: list[P.Structure], reachable: set[int], cov: Coverage) -> None:
    identity_ok: set[tuple[str, ...]] = set()
    for names, a, b in checks:
        if a == b and names in identity_ok:
            continue
        if not chk.admits(names, structs[a], structs[b]):
            cov.rejected.append((names, structs[a], structs[b]))
        elif a != b:
            cov.exercised[names[0]] += 1
        elif names in IDENTITY_ANYWHERE:
            identity_ok.add(names)
    for k in reachable:
        bad = chk.failing(structs[k])
        if bad:
            cov.violating.append((structs[k], bad))
    cov.checks += len(checks)
    cov.abstract_states += len(reachable)


def _assert_agrees(cov: Coverage, rm: P.RelModel) -> None:
    assert not cov.rejected, f"not admitted: {cov.rejected[0]}"
    assert not cov.violating, f"Inv fails on a reachable state: {cov.violating[0]}"
    moving = {t.name for t in rm.transitions} - {"stutter"}
    assert set(cov.exercised) == moving, f"never exercised: {moving - set(cov.exercised)}"


def _broker(policy: str, tasks: int, max_deliveries: int, priorities: int = 2) -> Model:
    cfg = B.BrokerConfig(policy=policy, workers=2, tasks=tasks, priorities=priorities, lease=1,
                         max_deliveries=max_deliveries, worker_timeout=1, crashes=False)
    return B.build(cfg, symmetry=False)


AGREEMENT: list[tuple[str, Callable[[], Model], Callable[[], P.RelModel]]] = [
    *[(f"{p}-2w2t2p-redelivery", lambda p=p: _broker(p, tasks=2, max_deliveries=2),  # type: ignore[misc]
       lambda p=p: P.broker_model(p)) for p in B.POLICIES],  # type: ignore[misc]
    ("shared-2w3t2p", lambda: _broker("shared", tasks=3, max_deliveries=1),
     lambda: P.broker_model("shared")),
    ("fifo-2w3t1p", lambda: _broker("shared", tasks=3, max_deliveries=1, priorities=1),
     P.fifo_model),
]


@pytest.mark.parametrize(("name", "model", "rel"), AGREEMENT, ids=[a[0] for a in AGREEMENT])
def test_the_relational_broker_admits_every_reachable_step(
        name: str, model: Callable[[], Model], rel: Callable[[], P.RelModel]) -> None:
    rm = rel()
    cov = broker_agreement(model(), rm)
    _assert_agrees(cov, rm)
    assert cov.checks >= len(cov.exercised) and cov.abstract_states > 1


def _election_names(m: Model, name: str, args: tuple[int, ...], result: int, pre: State,
                    post: State) -> tuple[str]:
    """The relational transition a concrete election step must be."""
    L = m.layout
    if name == "tick" and result == 1:
        return ("grant",)
    if name == "tick" and L.get(pre, "holder") == args[0] != L.get(post, "holder"):
        return ("resign",)
    if name == "leader_write" and result == 1:
        return ("write",)
    if name == "advance" and L.get(pre, "lrem") > 0 == L.get(post, "lrem"):
        return ("lease_expires",)
    return ("stutter",)


def election_agreement(m: Model, rm: P.RelModel, max_states: int | None = None) -> Coverage:
    """Every reachable step, with absolute epochs carried along the BFS tree.

    A state's history is the one of its BFS-tree path; each edge extends its
    source's history, so every edge is checked (once) with a real path, and
    the invariant on every edge's post-state with that path's history (a
    concrete state reached by several paths thus gets several histories)."""
    res = walk(m, max_states)
    g = m.extra["_graph"]
    hist = [P.EpochHistory.start(m.config.nodes)]
    for j in range(1, len(g.states)):
        name, args, result = g.via[j]
        hist.append(hist[g.parent[j]].after(name, args, result))
        assert not P.history_mismatches(m, g.states[j], hist[j])
    ids: dict[P.Structure, int] = {}
    structs: list[P.Structure] = []

    def ab(s: State, h: P.EpochHistory, epochs: int) -> int:
        st = P.abstract_election(m, s, h, epochs)
        k = ids.setdefault(st, len(structs))
        if k == len(structs):
            structs.append(st)
        return k

    by_size: dict[int, tuple[set[tuple[tuple[str, ...], int, int]], set[int]]] = {}
    for i, s in enumerate(g.states):
        h = hist[i]
        by_size.setdefault(h.cur + 1, (set(), set()))[1].add(ab(s, h, h.cur + 1))
        for j, name, args, result in g.edges[i]:
            post, h2 = g.states[j], h.after(name, args, result)
            assert not P.history_mismatches(m, post, h2), (name, args)
            n = h2.cur + 1
            names = _election_names(m, name, args, result, s, post)
            checks, reachable = by_size.setdefault(n, (set(), set()))
            checks.add((names, ab(s, h, n), ab(post, h2, n)))
            reachable.add(ab(post, h2, n))
    cov = Coverage(states=res.states, transitions=res.transitions)
    for n, (checks, reachable) in sorted(by_size.items()):
        chk = Z.StructureChecker(rm, {P.NODE: m.config.nodes, P.EPOCH: n})
        if n == 1:
            assert not chk.false_in(structs[ab(m.init, hist[0], 1)], rm.init)
        _check(chk, checks, structs, reachable, cov)
    return cov


ELECTIONS = {
    "2-nodes": E.ElectionConfig(nodes=2, lease=2, member_timeout=2, margin=1, max_pause=1,
                                stale_cap=2),
    "3-nodes": E.ElectionConfig(nodes=3, lease=2, member_timeout=1, margin=1, max_pause=0,
                                stale_cap=2, isolation=False),
}


@pytest.mark.parametrize("name", ELECTIONS)
def test_the_relational_election_admits_every_reachable_step(name: str) -> None:
    rm = P.election_model()
    cov = election_agreement(E.build(ELECTIONS[name]), rm)
    _assert_agrees(cov, rm)


@pytest.mark.parametrize(("rules", "policy", "transition"), [
    (MU.TailRedelivery, "shared", "nack"), (MU.Lifo, "shared", "fetch"),
    (MU.PriorityInversion, "round_robin", "fetch"), (MU.StealLeased, "work_stealing", "steal")],
    ids=lambda x: getattr(x, "__name__", str(x)))
def test_the_agreement_check_rejects_a_broken_broker(rules: type[B.Broker], policy: str,
                                                     transition: str) -> None:
    """Not vacuous: the executable model's own mutants take steps the relational one refuses."""
    cfg = B.BrokerConfig(policy=policy, workers=2, tasks=2, priorities=2, lease=1,
                         max_deliveries=2, worker_timeout=1, crashes=False)
    cov = broker_agreement(B.build(cfg, symmetry=False, rules=rules), P.broker_model(policy),
                           max_states=20_000)
    assert (transition,) in {names for names, _, _ in cov.rejected}


def test_the_agreement_check_rejects_an_unfenced_election() -> None:
    """Without fencing, a node paused beyond the margin writes with a stale epoch."""
    cfg = E.ElectionConfig(nodes=2, lease=2, member_timeout=2, margin=1, max_pause=2,
                           stale_cap=2)
    cov = election_agreement(E.build(cfg, rules=MU.NoFencing), P.election_model(),
                             max_states=20_000)
    assert ("write",) in {names for names, _, _ in cov.rejected}
    assert any("writes-current" in bad for _, bad in cov.violating)


def test_the_absolute_epochs_would_expose_an_epoch_reusing_election() -> None:
    """The history check is real: a grant that keeps the epoch contradicts the count of grants."""
    with pytest.raises(AssertionError):
        election_agreement(E.build(ELECTIONS["2-nodes"], rules=MU.EpochReuse),
                           P.election_model())
