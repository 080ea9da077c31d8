"""Parametric proofs of I2 and I3a: for any number of tasks, workers, nodes, at any depth.

The bounded proofs of :mod:`taskward.check.z3check` stop at the sizes they were
run at. These run on the relational models of :mod:`taskward.specs.parametric`,
whose universes Z3 chooses freely, so ``unsat`` means the claim holds in every
finite instance. Per model, each query with its own timeout:

* ``Init => Inv``;
* per transition, ``Inv and T => Inv'`` (so a failure names the action), and a
  non-vacuity query that ``Inv and T`` is satisfiable at all (a transition no
  state satisfying Inv can take would make its consecution proof empty);
* ``Inv => Safety``, where Safety is the claim plus its consequences.

``pass`` only when every proof query is ``unsat`` and every transition is
enabled somewhere; ``unknown`` on a solver timeout, and also when consecution
fails: the counterexample to induction (CTI) is a finite structure of the
relational model, not a reachable run of the executable one, so it is never
reported as ``fail``. The CTI goes in the note and in ``stats["cti"]``.

:class:`StructureChecker` evaluates the same transitions and invariant over a
given finite structure (quantifiers expanded), which is how the test suite
checks that the hand-written relational model admits every reachable step of
the executable model.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import z3

from taskward.check.verdict import Result, Verdict
from taskward.specs import parametric as P
from taskward.specs.parametric import RelModel, RState, Sig, Structure, Symbol, Term

CHECK = "z3-parametric"
BOUND: dict[str, Any] = {"tasks": "any", "workers": "any", "nodes": "any", "depth": "unbounded"}


@dataclass
class Query:
    """One solver question: the assertions, the answer a proof needs, and its context."""

    name: str
    kind: str
    """``init``, ``enabled``, ``consecution`` or ``safety``."""
    action: str | None
    assertions: list[Term]
    expect: Any
    pre: RState
    post: RState | None = None
    params: dict[str, Term] = field(default_factory=dict)
    goals: list[tuple[str, Term]] = field(default_factory=list)
    """Named conjuncts whose conjunction the query negates (to name what broke)."""


def queries(rm: RelModel) -> list[Query]:
    """Every query of the proof of ``rm``, in the order they are run."""
    g = rm.sig
    pre, post = g.state(""), g.state("'")
    ax = rm.axioms(g, pre)
    inv_pre = [lm.pred(g, pre) for lm in rm.invariant()]
    inv_goals = [(lm.name, lm.pred(g, post)) for lm in rm.invariant()]
    init = [lm.pred(g, pre) for lm in rm.init]
    pre_goals = [(lm.name, lm.pred(g, pre)) for lm in rm.invariant()]
    out = [Query("init", "init", None, [*ax, *init, z3.Not(z3.And(inv_pre))], z3.unsat, pre,
                 goals=pre_goals)]
    for t in rm.transitions:
        params = t.declare(g, t.name)
        rel = t.relation(g, pre, post, params)
        out.append(Query(f"enabled:{t.name}", "enabled", t.name, [*ax, *inv_pre, rel],
                         z3.sat, pre, post, params))
        out.append(Query(f"consecution:{t.name}", "consecution", t.name,
                         [*ax, *inv_pre, rel, z3.Not(z3.And([x for _, x in inv_goals]))],
                         z3.unsat, pre, post, params, inv_goals))
    safe = [(lm.name, lm.pred(g, pre)) for lm in rm.all_safety()]
    out.append(Query("safety", "safety", None,
                     [*ax, *inv_pre, z3.Not(z3.And([x for _, x in safe]))], z3.unsat, pre,
                     goals=safe))
    return out


@dataclass
class Answer:
    query: Query
    result: Any
    seconds: float
    model: Any = None
    reason: str = ""


def run(q: Query, timeout_s: float, extra: Sequence[Term] = ()) -> Answer:
    """Ask one query on a fresh solver with its own timeout."""
    s = z3.Solver()
    s.set("timeout", max(1, int(timeout_s * 1000)))
    s.add(*q.assertions, *extra)
    t = time.perf_counter()
    r = s.check()
    dt = time.perf_counter() - t
    if r == z3.sat:
        return Answer(q, r, dt, s.model())
    return Answer(q, r, dt, reason=s.reason_unknown() if r == z3.unknown else "")


# ------------------------------------------------------------------ proving


def prove_model(rm: RelModel, timeout_s: float = 30.0) -> Result:
    """All queries of one model, summarised as one ``z3-parametric`` row."""
    answers = [run(q, timeout_s) for q in queries(rm)]
    stats: dict[str, Any] = {
        "transitions": [t.name for t in rm.transitions],
        "lemmas": [lm.name for lm in rm.lemmas],
        "claim": [lm.name for lm in rm.all_safety()],
    }
    extra: list[Answer] = []
    verdict, note = _summarise(rm, answers, stats, extra, timeout_s)
    spent = answers + extra
    stats |= {"solver_s": round(sum(a.seconds for a in spent), 3), "queries": len(spent),
              "slowest_query_s": round(max(a.seconds for a in spent), 3)}
    return Result(rm.claim, CHECK, verdict, _bound(rm), stats, None, _label(rm), note)


def _label(rm: RelModel) -> str:
    return f"{rm.name}-relational" + (f" [mutant {rm.mutant}]" if rm.mutant else "")


def _bound(rm: RelModel) -> dict[str, Any]:
    extra: dict[str, Any] = {"priorities": "any"} if rm.claim == "I2" else {}
    if any(a.name == "one-priority" for a in rm.assumptions):
        extra["priorities"] = 1
    return {**BOUND, **extra}


def _summarise(rm: RelModel, answers: list[Answer], stats: dict[str, Any],
               extra: list[Answer], timeout_s: float) -> tuple[Verdict, str]:
    """pass only when every answer is the one a proof needs; the first CTI goes in the note."""
    gaveup = [a for a in answers if a.result == z3.unknown]
    wrong = [a for a in answers if a.result != z3.unknown and a.result != a.query.expect]
    if not gaveup and not wrong:
        lemmas = ", ".join(lm.name for lm in rm.lemmas)
        return "pass", (f"inductive for any number of elements of every sort: "
                        f"{', '.join(lm.name for lm in rm.all_safety())}; lemmas: {lemmas}")
    notes = [f"{a.query.name}: solver gave up ({a.reason})" for a in gaveup]
    vacuous = [a.query.action for a in wrong if a.query.kind == "enabled"]
    if vacuous:
        notes.append(f"no state satisfying Inv can take {', '.join(map(str, vacuous))}")
    ctis = [_cti(rm, smallest(rm.sig, a, timeout_s, extra))
            for a in wrong if a.query.kind != "enabled"]
    stats["failed"] = [a.query.name for a in gaveup + wrong]
    if ctis:
        stats["cti"] = {k: v for k, v in ctis[0].items() if k != "text"}
        notes += [c["text"] for c in ctis]
    return "unknown", " | ".join(notes)


# ------------------------------------------------------------------ CTIs


MAX_CTI_SIZE = 6


def size_bound(sig: Sig, sort: str, n: int) -> Term:
    """At most ``n`` elements of ``sort``: used only to shrink a CTI, never in a proof."""
    els = [z3.Const(f"{sort}#max{i}", sig.sort(sort)) for i in range(n)]
    x = z3.Const(f"{sort}#x", sig.sort(sort))
    return z3.ForAll([x], z3.Or([x == e for e in els]))


def smallest(sig: Sig, a: Answer, timeout_s: float, spent: list[Answer]) -> Answer:
    """The same failing query again, each universe in turn as small as it can be.

    Only for reading: the proof query had no bound, and any model of it is a CTI."""
    bounds: list[Term] = []
    best = a
    for sort in sig.sort_names:
        for n in range(1, MAX_CTI_SIZE + 1):
            b = run(a.query, timeout_s, [*bounds, size_bound(sig, sort, n)])
            spent.append(b)
            if b.result == z3.sat:
                bounds.append(size_bound(sig, sort, n))
                best = b
                break
    return best


def _universe(sig: Sig, zm: Any) -> dict[str, list[Any]]:
    """The model's elements per sort; an ordered sort's in the model's order."""
    out: dict[str, list[Any]] = {}
    for name in sig.sort_names:
        els = list(zm.get_universe(sig.sort(name)) or [])
        if name in sig.order_names:
            below = {str(a): sum(z3.is_true(zm.eval(sig.lt(name, b, a), model_completion=True))
                                 for b in els) for a in els}
            els.sort(key=lambda a: below[str(a)])
        out[name] = els
    return out


def _graph(sym: Symbol, decl: Term, zm: Any, uni: Mapping[str, list[Any]],
           index: Mapping[str, dict[str, int]]) -> set[tuple[int, ...]]:
    """The true tuples (relations) or argument-value tuples (functions) of one symbol."""
    out: set[tuple[int, ...]] = set()
    for combo in product(*(range(len(uni[a])) for a in sym.args)):
        els = [uni[a][i] for a, i in zip(sym.args, combo, strict=True)]
        val = zm.eval(decl(*els) if sym.args else decl, model_completion=True)
        if sym.result == P.BOOL:
            if z3.is_true(val):
                out.add(combo)
        else:
            out.add((*combo, index[sym.result].get(str(val), -1)))
    return out


def decode(sig: Sig, zm: Any, state: RState) -> Structure:
    """A solver model's interpretation of one state copy, as a finite :class:`Structure`."""
    uni = _universe(sig, zm)
    index = {s: {str(e): i for i, e in enumerate(els)} for s, els in uni.items()}
    graphs = {sym.name: _graph(sym, state[sym.name], zm, uni, index) for sym in sig.symbols
              if all(uni[a] for a in sym.args) and (sym.result == P.BOOL or uni[sym.result])}
    return Structure.of({s: len(els) for s, els in uni.items()}, graphs)


def _decode_params(sig: Sig, zm: Any, params: dict[str, Term], syms: Iterable[Symbol]
                   ) -> dict[str, set[tuple[int, ...]]]:
    uni = _universe(sig, zm)
    index = {s: {str(e): i for i, e in enumerate(els)} for s, els in uni.items()}
    return {p.name: _graph(p, params[p.name], zm, uni, index) for p in syms}


def elem(sort: str, i: int) -> str:
    """An element's printed name: ``t0``, ``w1``, ``e2`` (ordered sorts: by rank)."""
    return f"{sort[0].lower()}{i}"


def show(sig: Sig, sym: Symbol, graph: Iterable[tuple[int, ...]]) -> str:
    """One symbol's value, readably: ``{t0, t1}``, ``{t0->p1}``, ``s3``, ``true``."""
    tuples = sorted(graph)
    sorts = [*sym.args, *([] if sym.result == P.BOOL else [sym.result])]

    def names(tp: tuple[int, ...]) -> list[str]:
        return [elem(s, i) for s, i in zip(sorts, tp, strict=True)]

    if not sym.args:
        return ("true" if tuples else "false") if sym.result == P.BOOL else names(tuples[0])[0]
    if sym.result != P.BOOL:
        return "{" + ", ".join(f"{','.join(names(tp)[:-1])}->{names(tp)[-1]}"
                               for tp in tuples) + "}"
    if len(sym.args) == 1:
        return "{" + ", ".join(names(tp)[0] for tp in tuples) + "}"
    return "{" + ", ".join(f"({','.join(names(tp))})" for tp in tuples) + "}"


def _cti(rm: RelModel, a: Answer) -> dict[str, Any]:
    """A counterexample (to induction, or to Init/Safety) as universe sizes and true tuples."""
    g, q, zm = rm.sig, a.query, a.model
    pre = decode(g, zm, q.pre)
    broken = _broken(rm, q, decode(g, zm, q.post) if q.post is not None else pre)
    out: dict[str, Any] = {"query": q.name, "action": q.action, "broken": broken,
                           "sizes": pre.size(), "pre": _shown(g, pre.graph(), nonempty=True)}
    head = f"{q.name}: {', '.join(broken)} fails"
    if q.post is not None and q.action is not None:
        t = rm.transition(q.action)
        params = _decode_params(g, zm, q.params, t.params)
        post = decode(g, zm, q.post)
        changes = {n: (show(g, g.by_name[n], pre.graph()[n]), show(g, g.by_name[n], v))
                   for n, v in post.graph().items() if v != pre.graph().get(n)}
        ps = {p.name: show(g, p, params[p.name]) for p in t.params}
        out |= {"params": ps, "changes": {k: list(v) for k, v in changes.items()}}
        head = (f"CTI for {rm.name}: {', '.join(broken)} not preserved by {q.action}"
                f"({', '.join(f'{k}={v}' for k, v in ps.items())})")
    sizes = ", ".join(f"{k}={v}" for k, v in pre.size().items())
    shown = "; ".join(f"{k}={v}" for k, v in out["pre"].items())
    text = f"{head} in a structure with {sizes}: {shown}"
    if "changes" in out:
        text += "; changes " + "; ".join(f"{k}: {a} -> {b}" for k, (a, b) in
                                         out["changes"].items())
    out["text"] = text
    return out


def _broken(rm: RelModel, q: Query, s: Structure) -> list[str]:
    """The goals of ``q`` that are false in the CTI's structure (its post-state for
    consecution), evaluated over its finite universe."""
    if all(s.size().values()) and len(s.graphs) == len(rm.sig.symbols):
        chk = StructureChecker(rm, s.size(), transitions=False)
        out = chk.failing(s, claims=q.kind == "safety")
        if out:
            return out
    return _broken_by_query(q)


def _broken_by_query(q: Query) -> list[str]:
    """Which named goals can fail at all (when the structure cannot be evaluated)."""
    out = []
    for name, x in q.goals:
        r = run(Query(q.name, q.kind, q.action, [*q.assertions[:-1], z3.Not(x)], z3.unsat,
                      q.pre), 10.0)
        if r.result == z3.sat:
            out.append(name)
    return out


def _shown(g: Sig, graphs: Mapping[str, frozenset[tuple[int, ...]]], *, nonempty: bool
           ) -> dict[str, str]:
    return {n: show(g, g.by_name[n], v) for n, v in graphs.items()
            if not nonempty or v or g.by_name[n].result != P.BOOL}


# ------------------------------------------------------------------ entry points


def prove_parametric(timeout_s: float = 30.0, *, mutant: str | None = None) -> list[Result]:
    """The ``z3-parametric`` rows: I2 per policy and its FIFO corollary, and I3a.

    With ``mutant`` (one of :data:`taskward.specs.parametric.PARAM_MUTANTS`),
    the rows of the models that mutant is planted in; none of them may pass."""
    return [prove_model(rm, timeout_s) for rm in P.models(mutant)]


def total_solver_s(rows: Iterable[Result]) -> float:
    """The solver time of every ``z3-parametric`` row together."""
    return round(sum(float(r.stats.get("solver_s", 0.0)) for r in rows if r.checker == CHECK),
                 3)


def cti_at_least(rm: RelModel, action: str, sort: str, n: int, timeout_s: float = 10.0
                 ) -> dict[str, int] | None:
    """The universe sizes of a CTI of ``action`` with at least ``n`` elements of ``sort``
    (``None`` when there is none): the queries bound no universe, so a broken transition
    has counterexamples of every size at least its smallest one."""
    q = next(x for x in queries(rm) if x.name == f"consecution:{action}")
    els = [z3.Const(f"{sort}#{i}", rm.sig.sort(sort)) for i in range(n)]
    a = run(q, timeout_s, [z3.Distinct(*els)] if n > 1 else [])
    if a.result != z3.sat:
        return None
    return decode(rm.sig, a.model, q.pre).size()


# ------------------------------------------------------------- finite structures


class StructureChecker:
    """The relational transitions and invariant of one model over one finite universe.

    Built on the grounded signature, so the formulas are exactly the proof's,
    with every quantifier expanded over named elements; each transition sits
    behind a selector, so checking a step is one incremental solver call."""

    def __init__(self, rm: RelModel, sizes: Mapping[str, int], *,
                 transitions: bool = True) -> None:
        self.rm = rm
        self.sizes = dict(sizes)
        self.g = rm.sig.grounded(sizes)
        self.pre, self.post = self.g.state(""), self.g.state("'")
        self.solver = z3.Solver()
        self.solver.add(*rm.axioms(self.g, self.pre))
        self.take: dict[str, Term] = {}
        for t in rm.transitions if transitions else ():
            sel = z3.Bool(f"take:{t.name}")
            rel = t.relation(self.g, self.pre, self.post, t.declare(self.g, t.name))
            self.solver.add(z3.Implies(sel, rel))
            self.take[t.name] = sel
        self.inv = [(lm.name, lm.pred(self.g, self.pre)) for lm in rm.invariant()]
        self.claims = [(lm.name, lm.pred(self.g, self.pre)) for lm in rm.all_safety()]
        self._lits: dict[str, dict[str, list[list[Term]]]] = {}
        self._bad = {False: z3.Bool("inv-broken"), True: z3.Bool("claim-broken")}
        for claims, goals in ((False, self.inv), (True, self.claims)):
            self.solver.add(z3.Implies(self._bad[claims], z3.Not(z3.And([x for _, x in goals]))))

    def _literals(self, st: RState) -> dict[str, list[list[Term]]]:
        """Per symbol and argument tuple (in product order), the atom for each possible value
        (for a relation: the negated atom, then the atom)."""
        els, out = self.g.elements, {}
        for sym in self.g.symbols:
            rows = []
            for combo in product(*(range(self.sizes[a]) for a in sym.args)):
                decl = st[sym.name]
                app = decl(*[els[a][i] for a, i in zip(sym.args, combo, strict=True)]) \
                    if sym.args else decl
                rows.append([z3.Not(app), app] if sym.result == P.BOOL
                            else [app == e for e in els[sym.result]])
            out[sym.name] = rows
        return out

    def facts(self, st: RState, s: Structure) -> list[Term]:
        """Literals pinning every symbol of ``st`` to its graph in ``s``."""
        if s.size() != self.sizes:
            raise ValueError(f"structure sizes {s.size()} differ from {self.sizes}")
        lits = self._lits.get(st.tag)
        if lits is None:
            lits = self._lits[st.tag] = self._literals(st)
        graphs, out = s.graph(), []
        for sym in self.g.symbols:
            rows, graph = lits[sym.name], graphs[sym.name]
            combos = product(*(range(self.sizes[a]) for a in sym.args))
            if sym.result == P.BOOL:
                out += [row[combo in graph] for row, combo in zip(rows, combos, strict=True)]
            else:
                value = {tp[:-1]: tp[-1] for tp in graph}
                out += [row[value[combo]] for row, combo in zip(rows, combos, strict=True)]
        return out

    def check(self, lits: Sequence[Term]) -> Any:
        """``check-sat-assuming`` the literals, through the C API: z3's Python wrapper
        re-casts every assumption, which costs more than the solving here."""
        arr = (z3.Ast * len(lits))()
        for i, t in enumerate(lits):
            arr[i] = t.as_ast()
        s = self.solver
        return z3.CheckSatResult(z3.Z3_solver_check_assumptions(s.ctx.ref(), s.solver,
                                                                len(lits), arr))

    def admits(self, names: Sequence[str], pre: Structure, post: Structure) -> bool:
        """Some transition in ``names`` takes ``pre`` to ``post`` (for some parameters)."""
        facts = self.facts(self.pre, pre) + self.facts(self.post, post)
        return any(self.check([self.take[n], *facts]) == z3.sat for n in names)

    def false_in(self, s: Structure, lemmas: Sequence[P.Lemma]) -> list[str]:
        """The named formulas (e.g. the initial condition) that are false in ``s``."""
        out = []
        for lm in lemmas:
            self.solver.push()
            try:
                self.solver.add(z3.Not(lm.pred(self.g, self.pre)))
                if self.check(self.facts(self.pre, s)) == z3.sat:
                    out.append(lm.name)
            finally:
                self.solver.pop()
        return out

    def failing(self, s: Structure, *, claims: bool = False) -> list[str]:
        """The conjuncts of the inductive invariant (or, with ``claims``, of the claim and
        its consequences) that are false in ``s``."""
        goals = self.claims if claims else self.inv
        if self.check([self._bad[claims], *self.facts(self.pre, s)]) != z3.sat:
            return []
        zm = self.solver.model()
        return [n for n, x in goals if z3.is_false(zm.eval(x, model_completion=True))]
