"""Z3 encodings generated from the model's own actions, and the strengthening lemmas.

Nothing here restates a transition: :class:`Z3Ops` is one more interpretation
of the :class:`~taskward.models.core.Ops` vocabulary, so calling an action's
guard and effect on a frame of solver variables *is* the symbolic transition.
``Trans(s, s')`` is the disjunction, over every action instance, of
``guard(s) and s' == effect(s)``, selected by an integer per step so that a
solver model decodes into ``(action, args)``. The explorer-only ``prune``
filter is deliberately ignored: the solver sees the unpruned relation.

The lemma registry (:data:`LEMMAS`, :data:`BASE`) holds the strengthening
invariants of the inductive proofs, written in the same vocabulary as the
invariants of :mod:`taskward.specs.invariants`, so the docs can render them
and the explorer could check them too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import z3
from taskward.models import broker as B
from taskward.models.core import Action, Model, Ops, SymState, V, count
from taskward.specs import intervals
from taskward.specs.invariants import INVARIANTS as C_INVS
from taskward.specs.invariants import Invariant

Term = Any
"""A z3 expression (z3 ships no type information)."""


def _is_term(x: object) -> bool:
    return isinstance(x, z3.ExprRef)


class Z3Ops:
    """The Ops vocabulary over z3 terms, folding whatever is already concrete.

    Action code mixes configured constants (Python ints and bools) with state
    values; folding the constant cases keeps the terms small and means a
    guard such as ``npub < tasks`` stays a term while ``k == thief`` stays a
    Python bool.

    ``width`` selects the value sort: signed bit-vectors of that many bits
    (what every checker uses: the solver bit-blasts them to SAT, an order of
    magnitude faster than integer arithmetic on these if-heavy terms) or, with
    ``None``, unbounded Ints. ``memo`` lets the instances of one step share a
    prelude (see :func:`taskward.models.core.memoised` and :meth:`pick`)."""

    __slots__ = ("_memo", "_picks", "current", "tag", "width")

    def __init__(self, width: int | None = None, *, memo: bool = False, tag: str = "") -> None:
        self.width = width
        self._memo: dict[Any, tuple[tuple[V, ...], Any]] | None = {} if memo else None
        self._picks: dict[Any, tuple[Term, dict[int, V]]] = {}
        self.current = -1
        """The instance being built (set by :func:`step`)."""
        self.tag = tag

    def num(self, x: V) -> Term:
        """A value as a term of this interpretation's sort (bools stay Bool)."""
        if _is_term(x):
            return x
        if isinstance(x, bool):
            return z3.BoolVal(x)
        return z3.BitVecVal(int(x), self.width) if self.width else z3.IntVal(int(x))

    def ite(self, c: V, a: V, b: V) -> V:
        if not _is_term(c):
            return a if c else b
        if z3.is_true(c):
            return a
        if z3.is_false(c):
            return b
        if _same(a, b):
            return a
        return z3.If(c, self.num(a), self.num(b))

    def and_(self, *xs: V) -> V:
        rest = []
        for x in xs:
            if not _is_term(x):
                if not x:
                    return False
                continue
            if z3.is_false(x):
                return False
            if not z3.is_true(x):
                rest.append(x)
        if not rest:
            return True
        return rest[0] if len(rest) == 1 else z3.And(*rest)

    def or_(self, *xs: V) -> V:
        rest = []
        for x in xs:
            if not _is_term(x):
                if x:
                    return True
                continue
            if z3.is_true(x):
                return True
            if not z3.is_false(x):
                rest.append(x)
        if not rest:
            return False
        return rest[0] if len(rest) == 1 else z3.Or(*rest)

    def not_(self, x: V) -> V:
        return z3.Not(x) if _is_term(x) else not x

    def b2i(self, x: V) -> V:
        if not _is_term(x):
            return 1 if x else 0
        return z3.If(x, self.num(1), self.num(0))

    def memo(self, tag: Any, s: SymState, fn: Callable[[], tuple[V, ...]]) -> tuple[V, ...]:
        """``fn()``, computed once per ``tag`` and input terms while memoising.

        Keyed by the terms' AST ids; the input tuple is kept alongside the
        result so no id can be recycled while its entry exists."""
        if self._memo is None:
            return fn()
        key = (tag, tuple(x.get_id() if _is_term(x) else ("v", x) for x in s))
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = (tuple(s), fn())
        return hit[1]

    def pick(self, tag: Any, arg: V) -> V | None:
        """One term standing for ``arg`` of whichever instance fires, or None.

        While memoising, the instance being built records its ``arg`` and gets
        the shared term; :func:`step` then ties the term to each instance's
        ``arg`` under its selector, so a prelude built once over the term is
        exactly that instance's prelude whenever it fires."""
        if self._memo is None or self.current < 0:
            return None
        if tag not in self._picks:
            name = f"pick{len(self._picks)}@{self.tag}"
            var = z3.BitVec(name, self.width) if self.width else z3.Int(name)
            self._picks[tag] = (var, {})
        var, args = self._picks[tag]
        args[self.current] = arg
        return var

    def picks_of(self, i: int) -> list[tuple[Term, Term]]:
        """Each picked term and the ``arg`` instance ``i`` gave it (for substitution)."""
        return [(var, self.num(args[i])) for var, args in self._picks.values() if i in args]

    def pick_constraints(self, act: Term) -> list[Term]:
        """Each picked term equals the ``arg`` of the instance that fires."""
        return [z3.Implies(act == i, var == self.num(a))
                for var, args in self._picks.values() for i, a in sorted(args.items())]


def _same(a: V, b: V) -> bool:
    if _is_term(a) and _is_term(b):
        return bool(a.eq(b))
    if _is_term(a) or _is_term(b):
        return False
    return bool(type(a) is type(b) and a == b)


INT_OPS = Z3Ops()
"""Unbounded-integer interpretation (for terms that are not about a model's state)."""


HEADROOM = 2
"""Spare bits above the analysed extremes, for states outside the slot ranges a
mutant may reach (the correct models' ranges are proven by the induction)."""

def width_of(m: Model) -> int:
    """Bits of the signed bit-vector sort that holds every value ``m``'s checks compute.

    Found by running every action, invariant, lemma and the progress rank over
    intervals (:mod:`taskward.specs.intervals`): bit-vector arithmetic then
    agrees exactly with integer arithmetic, and the solver bit-blasts the
    narrowest sort that is still exact (width drives solver time)."""
    if "_z3_width" not in m.extra:
        invs = [i for i in C_INVS if i.system == _system(m)]
        state_fns: list[Any] = [i.state for i in invs if i.state is not None]
        state_fns += [lm.pred for i in invs for lm in strengthening(i)]
        if _system(m) == "broker":
            state_fns.append(progress_rank)

        def steps(o: Any, mm: Model, pre: Any, mid: Any, post: Any, args: Any, res: Any,
                  name: str) -> None:
            for i in invs:
                for p in i.step_preds(name):
                    p(o, mm, pre, mid, post, args, res)

        ext = intervals.extremes(m, state_fns, [steps])
        m.extra["_z3_width"] = intervals.signed_width(ext) + HEADROOM
    return int(m.extra["_z3_width"])


def _system(m: Model) -> str:
    return "broker" if m.name.startswith("broker") else "election"


_OPS: dict[int, Z3Ops] = {}


def ops_for(m: Model) -> Z3Ops:
    """The (non-memoising) interpretation for ``m``'s state terms."""
    w = width_of(m)
    if w not in _OPS:
        _OPS[w] = Z3Ops(w)
    return _OPS[w]


def as_bool(x: V) -> Term:
    """A predicate value as a z3 Bool (predicates may fold to Python bools)."""
    return x if _is_term(x) else z3.BoolVal(bool(x))


def num(m: Model, x: V) -> Term:
    """A value of ``m`` as a term of its sort."""
    return ops_for(m).num(x)


def value(zm: Any, t: Term) -> int:
    """The integer a solver model gives a value term (bit-vectors read as signed)."""
    v = zm.eval(t, model_completion=True)
    return int(v.as_signed_long()) if z3.is_bv(v) else int(v.as_long())


# ------------------------------------------------------------------ frames


def frame(m: Model, tag: str) -> list[Term]:
    """One bit-vector variable per state slot, named after the slot (``st[2]@3``)."""
    w = width_of(m)
    return [z3.BitVec(f"{n}@{tag}", w) for n in m.layout.slot_names()]


def concrete_frame(m: Model, s: Sequence[int]) -> list[Term]:
    """A concrete state as constant terms of ``m``'s sort."""
    return [num(m, v) for v in s]


def type_inv(m: Model, s: SymState) -> Term:
    """Every slot inside the range its layout declares."""
    return z3.And([z3.And(lo <= v, v <= hi) for v, (lo, hi) in zip(s, m.layout.bounds(),
                                                                   strict=True)])


def init_eq(m: Model, s: SymState) -> Term:
    """The frame is the model's initial state."""
    return z3.And([v == x for v, x in zip(s, m.init, strict=True)])


@dataclass
class StepEnc:
    """The symbolic step from ``pre`` to ``post``: per instance its guard, effect and result.

    ``act`` selects the instance that fires; ``mid`` (the state after the
    prelude) is built only when a transition invariant asks for it."""

    model: Model
    pre: list[Term]
    post: list[Term]
    act: Term
    insts: list[tuple[Action, tuple[int, ...]]]
    guards: list[Term]
    effects: list[tuple[V, ...]]
    results: list[V]
    ops: Z3Ops
    _mids: dict[int, tuple[V, ...]] = field(default_factory=dict)

    def relation(self) -> Term:
        """``Trans(pre, post)`` with ``act`` naming the instance that fires."""
        n = len(self.insts)
        parts = [self.act >= 0, self.act < n, _select(self.act, self.guards),
                 *self.ops.pick_constraints(self.act)]
        for j, p in enumerate(self.post):
            parts.append(p == _select(self.act, [self.ops.num(e[j]) for e in self.effects]))
        return z3.And(parts)

    def instance(self, i: int) -> tuple[Term, list[Term], Term]:
        """Guard, effect and result of instance ``i`` alone (its picks substituted), for
        evaluating it outside the relation."""
        sub = self.ops.picks_of(i)

        def f(x: V) -> Term:
            t = self.ops.num(x)
            return z3.substitute(t, *sub) if sub else t
        return f(self.guards[i]), [f(e) for e in self.effects[i]], f(self.results[i])

    def mid(self, i: int) -> tuple[V, ...]:
        a, args = self.insts[i]
        if i not in self._mids:
            self.ops.current = i
            self._mids[i] = (tuple(a.prelude(self.ops, self.pre, *args)) if a.prelude
                             else tuple(self.pre))
            self.ops.current = -1
        return self._mids[i]

    def fires(self, name: str) -> list[int]:
        return [i for i, (a, _) in enumerate(self.insts) if a.name == name]


def _select(act: Term, terms: list[Term]) -> Term:
    """``terms[act]`` as an if-chain over the groups of instances that agree on the term.

    Most instances leave most slots unchanged, so grouping equal terms (the
    largest group is the default) keeps the chain short and lets the solver
    see at once which slots a step may touch."""
    groups: dict[int, tuple[Term, list[int]]] = {}
    for i, t in enumerate(terms):
        key = t.get_id()
        groups.setdefault(key, (t, []))[1].append(i)
    ordered = sorted(groups.values(), key=lambda g: len(g[1]))
    out = ordered[-1][0]
    for t, idx in ordered[:-1]:
        out = z3.If(z3.Or([act == i for i in idx]), t, out)
    return out


def step(m: Model, pre: list[Term], post: list[Term], tag: str) -> StepEnc:
    """Generate the symbolic step by running every action instance on solver terms.

    One memoising interpretation serves all instances of the step, so the
    instances of one caller share a single prelude term instead of building
    it again each (the round-robin prelude is most of a step's terms)."""
    insts = m.instances()
    ops = Z3Ops(width_of(m), memo=True, tag=tag)
    guards, effects, results = [], [], []
    for i, (a, args) in enumerate(insts):
        ops.current = i
        guards.append(as_bool(a.guard(ops, pre, *args)))
        eff, res = a.effect(ops, pre, *args)
        effects.append(tuple(eff))
        results.append(res)
    ops.current = -1
    act = z3.BitVec(f"act@{tag}", max(width_of(m), len(insts).bit_length() + 1))
    return StepEnc(m, pre, post, act, insts, guards, effects, results, ops)


def state_holds(inv: Invariant, m: Model, s: SymState) -> Term:
    """The invariant's state predicate on a frame (true when it has none)."""
    return as_bool(inv.state(ops_for(m), m, s)) if inv.state is not None else z3.BoolVal(True)


def step_holds(inv: Invariant, st: StepEnc) -> Term:
    """The invariant's transition predicates on whichever instance fires in ``st``."""
    parts = []
    for i, (a, args) in enumerate(st.insts):
        for pred in inv.step_preds(a.name):
            ok = pred(st.ops, st.model, st.pre, st.mid(i), st.post, args, st.results[i])
            parts.append(z3.Implies(st.act == i, as_bool(ok)))
    return z3.And(parts) if parts else z3.BoolVal(True)


def decode_step(st: StepEnc, zm: Any) -> tuple[str, tuple[int, ...]]:
    """The ``(action, args)`` a solver model chose for this step."""
    a, args = st.insts[zm.eval(st.act, model_completion=True).as_long()]
    return a.name, args


def decode_state(m: Model, s: Sequence[Term], zm: Any) -> tuple[int, ...]:
    return tuple(value(zm, v) for v in s)


# ------------------------------------------------------------- strengthening

LemmaPred = Callable[[Ops, Model, SymState], V]


@dataclass(frozen=True, slots=True)
class Lemma:
    """One strengthening invariant: proven inductive together with the claim, never assumed."""

    name: str
    text: str
    pred: LemmaPred


def _tasks(m: Model) -> range:
    return range(m.config.tasks)


def _nodes(m: Model) -> range:
    return range(m.config.nodes)


def b_unpublished_blank(o: Ops, m: Model, s: SymState) -> V:
    L = m.layout
    return o.and_(*[o.or_(t < L.get(s, "npub"),
                          o.and_(L.get(s, "st", t) == B.UNPUB, L.get(s, "dl", t) == 0,
                                 L.get(s, "ackc", t) == 0))
                    for t in _tasks(m)])


def b_seq_counts_publishes(o: Ops, m: Model, s: SymState) -> V:
    return m.layout.get(s, "nseq") == m.layout.get(s, "npub")


def b_ready_has_deliveries_left(o: Ops, m: Model, s: SymState) -> V:
    L, M = m.layout, m.config.max_deliveries
    return o.and_(*[o.or_(L.get(s, "st", t) != B.READY, L.get(s, "dl", t) < M)
                    for t in _tasks(m)])


def b_acks_match_status(o: Ops, m: Model, s: SymState) -> V:
    L = m.layout
    return o.and_(*[L.get(s, "ackc", t) == o.b2i(L.get(s, "st", t) == B.ACKED)
                    for t in _tasks(m)])


def b_seq_is_publish_order(o: Ops, m: Model, s: SymState) -> V:
    L = m.layout
    return o.and_(*[o.or_(t >= L.get(s, "npub"), L.get(s, "sq", t) == t) for t in _tasks(m)])


def b_steady_is_live(o: Ops, m: Model, s: SymState) -> V:
    L, c = m.layout, m.config
    return o.and_(*[o.or_(L.get(s, "gone", k) != 0, L.get(s, "age", k) < c.worker_timeout)
                    for k in range(c.workers)])


def b_rotation_order(o: Ops, m: Model, s: SymState) -> V:
    """Read from the cursor, always-live workers' counts never fall and span at most one."""
    L, W = m.layout, m.config.workers
    cur = L.get(s, "cursor")

    def dist(k: int) -> V:
        return o.ite(k >= cur, k - cur, k - cur + W)

    conds = []
    for i in range(W):
        for j in range(W):
            if i == j:
                continue
            steady = o.and_(L.get(s, "gone", i) == 0, L.get(s, "gone", j) == 0)
            ai, aj = L.get(s, "asg", i), L.get(s, "asg", j)
            conds.append(o.or_(o.not_(steady), dist(i) > dist(j),
                               o.and_(ai <= aj, aj <= ai + 1)))
    return o.and_(*conds)


def e_belief_bounded(o: Ops, m: Model, s: SymState) -> V:
    L, c = m.layout, m.config
    return o.and_(*[L.get(s, "bel", n) + c.margin
                    <= c.lease + L.get(s, "paused", n) + L.get(s, "drift", n)
                    for n in _nodes(m)])


def e_one_current_epoch(o: Ops, m: Model, s: SymState) -> V:
    return count(o, [m.layout.get(s, "stale", n) == 0 for n in _nodes(m)]) <= 1


def e_last_write_current(o: Ops, m: Model, s: SymState) -> V:
    L = m.layout
    wnode = L.get(s, "wnode")
    return o.or_(L.get(s, "wage") != 0,
                 *[o.and_(wnode == n, L.get(s, "stale", n) == 0) for n in _nodes(m)])


def e_believer_holds(o: Ops, m: Model, s: SymState) -> V:
    L, c = m.layout, m.config
    return o.and_(*[o.or_(L.get(s, "bel", n) <= 0,
                          o.and_(L.get(s, "holder") == n,
                                 L.get(s, "bel", n) + c.margin
                                 <= L.get(s, "lrem") + L.get(s, "paused", n)
                                 + L.get(s, "drift", n)))
                    for n in _nodes(m)])


BASE: dict[str, tuple[Lemma, ...]] = {
    "broker": (
        Lemma("unpublished-blank", "a task of index >= npub is UNPUBLISHED with no deliveries "
              "and no acks", b_unpublished_blank),
        Lemma("seq-counts-publishes", "nseq == npub", b_seq_counts_publishes),
        Lemma("ready-has-deliveries-left", "a READY task has dl < max_deliveries",
              b_ready_has_deliveries_left),
        Lemma("acks-match-status", "ackc[t] == 1 if t is ACKED else 0", b_acks_match_status),
    ),
    "election": (
        Lemma("belief-bounded", "bel[n] + margin <= lease + paused[n] + drift[n]",
              e_belief_bounded),
    ),
}
"""Well-formedness every broker/election proof needs (the slot ranges are not inductive alone)."""

LEMMAS: dict[str, tuple[Lemma, ...]] = {
    "I1": (),
    "I2": (Lemma("seq-is-publish-order", "sq[t] == t for every published task t",
                 b_seq_is_publish_order),),
    "I3a": (Lemma("one-current-epoch", "at most one node has stale == 0", e_one_current_epoch),
            Lemma("last-write-current", "wage == 0 => wnode is a node with stale == 0",
                  e_last_write_current)),
    "I3b": (Lemma("believer-holds", "bel[n] > 0 => holder == n and bel[n] + margin <= lrem + "
                  "paused[n] + drift[n]", e_believer_holds),),
    "I4": (),
    "I6": (Lemma("steady-is-live", "gone[k] == 0 => age[k] < worker_timeout", b_steady_is_live),
           Lemma("rotation-order", "for always-live workers i, j with i before j reading "
                 "cyclically from the cursor: asg[i] <= asg[j] <= asg[i] + 1",
                 b_rotation_order)),
    "I7": (),
    "I9": (),
}
"""Per-invariant strengthening, on top of :data:`BASE` of its system and the slot ranges."""


def strengthening(inv: Invariant) -> tuple[Lemma, ...]:
    """Every lemma the inductive proof of ``inv`` uses (base of its system first)."""
    return BASE[inv.system] + LEMMAS.get(inv.id, ())


def strengthening_text(inv: Invariant) -> str:
    """The text the docs render for ``inv``'s strengthening."""
    return "; ".join(f"{lm.name}: {lm.text}" for lm in strengthening(inv))


# ------------------------------------------------------------------ progress (I5)


def progress_rank(o: Ops, m: Model, s: SymState) -> V:
    """I5's ranking: per unfinished task, (max_deliveries - dl) * (lease + 2), plus
    ``exp + 1`` while LEASED. Deliveries, acks, dead-letters, nacks and lease
    expiry all lower it; only publish and extend can raise it."""
    L, c = m.layout, m.config
    total: V = 0
    for t in range(c.tasks):
        st, dl, exp = L.get(s, "st", t), L.get(s, "dl", t), L.get(s, "exp", t)
        left = (c.max_deliveries - dl) * (c.lease + 2)
        total = total + o.ite(st == B.READY, left, o.ite(st == B.LEASED, left + exp + 1, 0))
    return total
