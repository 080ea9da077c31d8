"""Parametric relational models of I2 and I3a, in the style of Ivy and mypyvy.

The encodings of :mod:`taskward.specs.z3enc` run the model's own actions on a
*fixed* number of tasks, workers and nodes. Here the state is first-order
instead: uninterpreted sorts (``Task``, ``Worker``, ``Prio``, ``Seq``;
``Node``, ``Epoch``), relations and functions over them, and order relations
axiomatised as strict total orders. A proof over this vocabulary holds in
*every* finite structure, so for any number of tasks, workers, nodes,
priorities and epochs, and (being inductive) at any depth.

Decidability. Every query stays in EPR (effectively propositional logic):
the only functions go from ``Task`` into ``Prio`` and ``Seq``, which have no
functions out of them, so there is no cycle of functions between sorts;
every lemma, axiom and guard is universal or a top-level existential; the
negated invariant only adds Skolem constants. No arithmetic. Z3's
model-based quantifier instantiation decides such queries, and answers them
in milliseconds.

Shape of a model. A :class:`RelModel` has an initial condition, one
:class:`Transition` per model action that matters, the claim as named
:class:`Lemma` formulas (``safety``), and the strengthening lemmas that make
claim and lemmas together inductive. Step claims ("every delivery takes the
best ready task") are turned into state claims with *ghost monitors*, as
mypyvy does with history variables: the delivering transition records in a
ghost relation every task it wrongly passed over, and the claim says that
relation stays empty. The monitor is written against the claim's own notion
(publish order), never against the broker's ``seq``, so proving it empty
shows that the broker's order *is* the claim's order.

Over-approximation, and why it is sound. This model is written by hand, not
generated from :mod:`taskward.models`, so everything the claims do not
depend on is made *more* nondeterministic than the executable model, never
less: time is gone (any lease may end at any moment, the store's lease may
expire at any moment); ``max_deliveries`` is gone (a requeue may or may not
dead-letter); liveness and the round-robin cursor are gone (a published or
orphaned READY task may sit in any queue, or none); the victim of a steal is
any peer with a READY task (not necessarily the one with most); worker and
node crashes, pauses, drift, isolation, heartbeats, ``extend`` and
``restart`` change nothing the claims read (a crashed or paused node may
still *attempt* writes: fencing alone must refuse them); the election's
grant needs only a free or expired lease (no minimum-id rule). Every
behaviour of the executable model is a behaviour of the relational one
(``tests/test_parametric.py`` checks this on every reachable transition of
small models through :func:`abstract_broker` / :func:`abstract_election`), so
an invariant of the relational model holds in every reachable state of the
executable one.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import z3
from taskward.models import broker as B
from taskward.models import election as E
from taskward.models.core import Model, State

Term = Any
"""A z3 expression or declaration (z3 ships no type information)."""

BOOL = "Bool"
TASK, WORKER, PRIO, SEQ = "Task", "Worker", "Prio", "Seq"
NODE, EPOCH = "Node", "Epoch"
STATUSES = ("ready", "leased", "acked", "dead")

_fresh = itertools.count()


# ------------------------------------------------------------------ vocabulary


@dataclass(frozen=True, slots=True)
class Symbol:
    """A state relation (``result`` Bool), function, or constant (no ``args``)."""

    name: str
    args: tuple[str, ...]
    result: str = BOOL
    doc: str = ""
    ghost: bool = False
    """History kept only to state a claim; no implementation has it."""


class Sig:
    """Sorts, the strict total orders on some of them, and the state vocabulary.

    A *grounded* signature (``finite`` given) builds the very same formulas
    over a fixed finite universe, with every quantifier expanded over named
    elements: that is how a concrete state of the executable model is
    checked against the relational transitions without any quantifier."""

    def __init__(self, name: str, sorts: Sequence[str], orders: Mapping[str, str],
                 symbols: Sequence[Symbol], finite: Mapping[str, int] | None = None) -> None:
        self.name = name
        self.sort_names = tuple(sorts)
        self.order_names = dict(orders)
        self.symbols = tuple(symbols)
        self.by_name = {s.name: s for s in self.symbols}
        self._sorts = {s: z3.DeclareSort(s) for s in self.sort_names}
        self._lt = {s: z3.Function(rel, self._sorts[s], self._sorts[s], z3.BoolSort())
                    for s, rel in self.order_names.items()}
        self.sizes: dict[str, int] | None = dict(finite) if finite is not None else None
        self.elements: dict[str, list[Term]] = {
            s: [z3.Const(f"{s}!{i}", self._sorts[s]) for i in range(n)]
            for s, n in (finite or {}).items()}

    def sort(self, name: str) -> Term:
        return z3.BoolSort() if name == BOOL else self._sorts[name]

    def lt(self, sort: str, a: Term, b: Term) -> Term:
        """``a`` strictly below ``b`` in the sort's order."""
        return self._lt[sort](a, b)

    def le(self, sort: str, a: Term, b: Term) -> Term:
        return z3.Or(a == b, self._lt[sort](a, b))

    def forall(self, sorts: Sequence[str], body: Callable[..., Term]) -> Term:
        """``forall xs: sorts. body(xs)``; a conjunction over the elements when grounded."""
        if self.sizes is not None:
            combos = itertools.product(*(self.elements[s] for s in sorts))
            return z3.And([body(*xs) for xs in combos])
        xs = [z3.Const(f"{s[0].lower()}{next(_fresh)}", self._sorts[s]) for s in sorts]
        return z3.ForAll(xs, body(*xs))

    def exists(self, sorts: Sequence[str], body: Callable[..., Term]) -> Term:
        if self.sizes is not None:
            combos = itertools.product(*(self.elements[s] for s in sorts))
            return z3.Or([body(*xs) for xs in combos])
        xs = [z3.Const(f"{s[0].lower()}{next(_fresh)}", self._sorts[s]) for s in sorts]
        return z3.Exists(xs, body(*xs))

    def declare(self, sym: Symbol, tag: str) -> Term:
        """The z3 symbol of ``sym`` in the copy of the state named by ``tag``."""
        name = f"{sym.name}{tag}"
        if not sym.args:
            return z3.Const(name, self.sort(sym.result))
        return z3.Function(name, *[self.sort(a) for a in sym.args], self.sort(sym.result))

    def state(self, tag: str) -> RState:
        return RState(self, tag)

    def axioms(self) -> list[Term]:
        """Strict total orders (universal axioms); grounded: distinct elements, the order facts."""
        if self.sizes is not None:
            return self._ground_axioms()
        out = []
        for s in self.order_names:
            out.append(self.forall((s,), lambda x, s=s: z3.Not(self.lt(s, x, x))))
            out.append(self.forall((s, s, s), lambda x, y, z, s=s: z3.Implies(
                z3.And(self.lt(s, x, y), self.lt(s, y, z)), self.lt(s, x, z))))
            out.append(self.forall((s, s), lambda x, y, s=s: z3.Or(
                self.lt(s, x, y), x == y, self.lt(s, y, x))))
        return out

    def _ground_axioms(self) -> list[Term]:
        out = []
        for s, els in self.elements.items():
            if len(els) > 1:
                out.append(z3.Distinct(*els))
            if s in self.order_names:
                out += [self.lt(s, a, b) == z3.BoolVal(i < j)
                        for i, a in enumerate(els) for j, b in enumerate(els)]
        return out

    def closed(self, sort: str, term: Term) -> Term:
        """A grounded signature's domain closure for one constant: it is a named element."""
        return z3.Or([term == e for e in self.elements[sort]])

    def grounded(self, sizes: Mapping[str, int]) -> Sig:
        """The same vocabulary over a finite universe (elements ordered by index)."""
        missing = set(self.sort_names) - set(sizes)
        if missing:
            raise ValueError(f"no size for {sorted(missing)}")
        return Sig(self.name, self.sort_names, self.order_names, self.symbols, sizes)


class RState:
    """One copy of the state vocabulary: ``s.ready(t)``, ``s.nxt`` (pre-state, post-state...)."""

    def __init__(self, sig: Sig, tag: str) -> None:
        self.sig = sig
        self.tag = tag
        self.decls: dict[str, Term] = {s.name: sig.declare(s, tag) for s in sig.symbols}

    def __getattr__(self, name: str) -> Any:
        decls = self.__dict__.get("decls")
        if decls is None or name not in decls:
            raise AttributeError(name)
        return decls[name]

    def __getitem__(self, name: str) -> Term:
        return self.decls[name]


Pred = Callable[[Sig, RState], Term]


@dataclass(frozen=True, slots=True)
class Lemma:
    """A named state formula with readable text: a claim, a lemma, an initial condition."""

    name: str
    text: str
    pred: Pred


@dataclass
class Update:
    """What one transition does: its guard, the new value of each symbol it changes.

    ``defs`` maps a symbol to its new value (a term for a constant, a function
    of the arguments otherwise); symbols in ``havoc`` get any value allowed by
    ``post`` (constraints over the post-state); every other symbol keeps its
    value (the frame)."""

    guard: list[Term] = field(default_factory=list)
    defs: dict[str, Any] = field(default_factory=dict)
    post: list[Term] = field(default_factory=list)
    havoc: tuple[str, ...] = ()


Params = dict[str, Term]
Build = Callable[[Sig, RState, RState, Params], Update]


@dataclass(frozen=True, slots=True)
class Transition:
    """One action of the relational model, over a pre-state, a post-state and parameters.

    Parameters are existentially quantified; a parameter with arguments (a
    relation such as "the set of leases that end") is second-order in form
    but, being existential at the top level, is just one more symbol for the
    solver."""

    name: str
    params: tuple[Symbol, ...]
    text: str
    build: Build
    actions: tuple[str, ...] = ()
    """The executable model's actions (or parts of them) this transition stands for."""

    def declare(self, sig: Sig, tag: str) -> Params:
        return {p.name: sig.declare(p, f"{tag}.{p.name}") for p in self.params}

    def relation(self, sig: Sig, pre: RState, post: RState, params: Params) -> Term:
        """``guard and post == effect(pre)`` with the frame for every untouched symbol."""
        u = self.build(sig, pre, post, params)
        parts = [*u.guard, *u.post]
        for sym in sig.symbols:
            if sym.name not in u.havoc:
                parts.append(_assign(sig, sym, pre, post, u.defs.get(sym.name)))
        if sig.sizes is not None:
            parts += [sig.closed(p.result, params[p.name]) for p in self.params
                      if not p.args and p.result != BOOL]
        return z3.And(parts)


def _assign(sig: Sig, sym: Symbol, pre: RState, post: RState, new: Any) -> Term:
    if not sym.args:
        return post[sym.name] == (pre[sym.name] if new is None else new)
    if new is None:
        return sig.forall(sym.args, lambda *xs: post[sym.name](*xs) == pre[sym.name](*xs))
    return sig.forall(sym.args, lambda *xs: post[sym.name](*xs) == new(*xs))


@dataclass(frozen=True)
class RelModel:
    """A relational model with its claim, the strengthening, and what was over-approximated."""

    name: str
    claim: str
    title: str
    sig: Sig
    init: tuple[Lemma, ...]
    transitions: tuple[Transition, ...]
    safety: tuple[Lemma, ...]
    lemmas: tuple[Lemma, ...]
    consequences: tuple[Lemma, ...] = ()
    """Further claims that follow from the inductive invariant (proven by Inv => Safety)."""
    assumptions: tuple[Lemma, ...] = ()
    """Premises of the scenario (e.g. one priority), asserted as axioms in every query."""
    overapprox: str = ""
    mutant: str | None = None

    def invariant(self) -> tuple[Lemma, ...]:
        """The inductive invariant: the claim and its strengthening."""
        return self.safety + self.lemmas

    def all_safety(self) -> tuple[Lemma, ...]:
        return self.safety + self.consequences

    def transition(self, name: str) -> Transition:
        for t in self.transitions:
            if t.name == name:
                return t
        raise KeyError(f"{self.name} has no transition {name!r}")

    def axioms(self, sig: Sig | None = None, s: RState | None = None) -> list[Term]:
        g = sig or self.sig
        st = s or g.state("")
        return g.axioms() + [a.pred(g, st) for a in self.assumptions]


def _b(*xs: Symbol) -> tuple[Symbol, ...]:
    return xs


def _stutter(actions: tuple[str, ...]) -> Transition:
    def build(g: Sig, s: RState, s2: RState, p: Params) -> Update:
        return Update()
    return Transition("stutter", (), "changes nothing the claim reads", build, actions)


# ============================================================== broker (I2)


def broker_sig() -> Sig:
    """The broker's relational vocabulary (any number of tasks, workers, priorities, seqs)."""
    return Sig("broker", (TASK, WORKER, PRIO, SEQ),
               {PRIO: "prio_lt", SEQ: "seq_lt"}, (
        Symbol("pub", (TASK,), doc="the task has been published"),
        Symbol("ready", (TASK,), doc="READY"),
        Symbol("leased", (TASK,), doc="LEASED"),
        Symbol("acked", (TASK,), doc="ACKED"),
        Symbol("dead", (TASK,), doc="DEAD (dead-lettered)"),
        Symbol("queue", (TASK, WORKER), doc="the READY task waits in the worker's queue"),
        Symbol("holder", (TASK, WORKER), doc="the worker holds the task's lease"),
        Symbol("prio", (TASK,), PRIO, "the task's priority (prio_lt: less urgent)"),
        Symbol("seq", (TASK,), SEQ, "the position the broker orders the task by"),
        Symbol("nxt", (), SEQ, "the next sequence number"),
        Symbol("porder", (TASK, TASK), doc="porder(a, b): a was published before b", ghost=True),
        Symbol("delivered", (TASK,), doc="the task was delivered at least once", ghost=True),
        Symbol("skipped", (TASK, TASK), ghost=True,
               doc="skipped(t, u): t was delivered while u, ahead of t by priority then "
                   "publish order, was READY in the queue t was drawn from"),
        Symbol("misdelivered", (TASK,), ghost=True,
               doc="the task was delivered although not READY in the queue drawn from, or "
                   "stolen while the thief's own queue had a READY task"),
    ))


def ahead(g: Sig, s: RState, u: Term, t: Term) -> Term:
    """``u`` comes before ``t`` in the broker's order: higher priority, then smaller seq."""
    pu, pt = s.prio(u), s.prio(t)
    return z3.Or(g.lt(PRIO, pt, pu), z3.And(pu == pt, g.lt(SEQ, s.seq(u), s.seq(t))))


def ahead_published(g: Sig, s: RState, u: Term, t: Term) -> Term:
    """``u`` comes before ``t`` in the claim's order: higher priority, then published earlier."""
    pu, pt = s.prio(u), s.prio(t)
    return z3.Or(g.lt(PRIO, pt, pu), z3.And(pu == pt, s.porder(u, t)))


Where = Callable[[Term], Term]


def best_in(g: Sig, s: RState, t: Term, inq: Where) -> Term:
    """``t`` is READY in the queue and no READY task of that queue is ahead of it."""
    return z3.And(s.ready(t), inq(t), g.forall((TASK,), lambda u: z3.Implies(
        z3.And(s.ready(u), inq(u)), z3.Not(ahead(g, s, u, t)))))


def deliver(g: Sig, s: RState, w: Term, t: Term, inq: Where, wrong: Term) -> Update:
    """``t`` goes to ``w`` under a lease; the ghost monitors record any breach of I2.

    ``inq`` is the queue the delivery draws from, ``wrong`` says the task was not
    one the claim allows drawing from it at all."""
    return Update(defs={
        "ready": lambda x: z3.And(s.ready(x), x != t),
        "leased": lambda x: z3.Or(s.leased(x), x == t),
        "queue": lambda x, y: z3.And(s.queue(x, y), x != t),
        "holder": lambda x, y: z3.If(x == t, y == w, s.holder(x, y)),
        "delivered": lambda x: z3.Or(s.delivered(x), x == t),
        "skipped": lambda x, y: z3.Or(s.skipped(x, y), z3.And(
            x == t, y != t, s.ready(y), inq(y), ahead_published(g, s, y, t))),
        "misdelivered": lambda x: z3.Or(s.misdelivered(x), z3.And(x == t, wrong)),
    })


def _everywhere(x: Term) -> Term:
    return z3.BoolVal(True)


W_, T_, V_ = Symbol("w", (), WORKER), Symbol("t", (), TASK), Symbol("v", (), WORKER)


def _fetch_shared(g: Sig, s: RState, s2: RState, p: Params) -> Update:
    t = p["t"]
    u = deliver(g, s, p["w"], t, _everywhere, z3.Not(s.ready(t)))
    u.guard.append(best_in(g, s, t, _everywhere))
    return u


def _fetch_worst(g: Sig, s: RState, s2: RState, p: Params) -> Update:
    """Mutant: the shared queue hands out the task at the *back* of the broker's order."""
    t = p["t"]
    u = deliver(g, s, p["w"], t, _everywhere, z3.Not(s.ready(t)))
    u.guard += [s.ready(t), g.forall((TASK,), lambda x: z3.Implies(
        s.ready(x), z3.Not(ahead(g, s, t, x))))]
    return u


def _own(s: RState, w: Term) -> Where:
    return lambda x: s.queue(x, w)


def _fetch_own(g: Sig, s: RState, s2: RState, p: Params) -> Update:
    w, t = p["w"], p["t"]
    u = deliver(g, s, w, t, _own(s, w), z3.Not(z3.And(s.ready(t), s.queue(t, w))))
    u.guard.append(best_in(g, s, t, _own(s, w)))
    return u


def _own_has_ready(g: Sig, s: RState, w: Term) -> Term:
    return g.exists((TASK,), lambda x: z3.And(s.ready(x), s.queue(x, w)))


def _steal_update(g: Sig, s: RState, p: Params) -> Update:
    """The thief ``w`` takes ``t`` from peer ``v``; the claim allows it only when ``w``'s
    own queue has no READY task (``busy`` is that fact, named so the monitor stays EPR)."""
    w, v, t, busy = p["w"], p["v"], p["t"], p["busy"]
    wrong = z3.Or(z3.Not(z3.And(s.ready(t), s.queue(t, v))), busy)
    u = deliver(g, s, w, t, _own(s, v), wrong)
    u.guard += [v != w, busy == _own_has_ready(g, s, w),
                g.forall((TASK,), lambda x: z3.Not(z3.And(s.ready(x), s.queue(x, w))))]
    return u


def _steal(g: Sig, s: RState, s2: RState, p: Params) -> Update:
    u = _steal_update(g, s, p)
    u.guard.append(best_in(g, s, p["t"], _own(s, p["v"])))
    return u


def _steal_leased(g: Sig, s: RState, s2: RState, p: Params) -> Update:
    """Mutant: a thief may also take a task the victim holds under a lease."""
    v, t = p["v"], p["t"]

    def stealable(x: Term) -> Term:
        return z3.Or(z3.And(s.ready(x), s.queue(x, v)), z3.And(s.leased(x), s.holder(x, v)))

    u = _steal_update(g, s, p)
    u.guard += [stealable(t), g.forall((TASK,), lambda x: z3.Implies(
        stealable(x), z3.Not(ahead(g, s, x, t))))]
    return u


def _publish(g: Sig, s: RState, s2: RState, p: Params) -> Update:
    """The next task becomes READY with the next seq, in one queue or none."""
    t, pr, w, assign = p["t"], p["p"], p["w"], p["assign"]
    return Update(
        guard=[z3.Not(s.pub(t))],
        defs={"pub": lambda x: z3.Or(s.pub(x), x == t),
              "ready": lambda x: z3.Or(s.ready(x), x == t),
              "queue": lambda x, y: z3.Or(s.queue(x, y), z3.And(x == t, assign, y == w)),
              "prio": lambda x: z3.If(x == t, pr, s.prio(x)),
              "seq": lambda x: z3.If(x == t, s.nxt, s.seq(x)),
              "porder": lambda x, y: z3.Or(s.porder(x, y), z3.And(s.pub(x), y == t))},
        post=[g.lt(SEQ, s.nxt, s2.nxt)], havoc=("nxt",))


def _settle(s: RState, t: Term) -> dict[str, Any]:
    """``t`` leaves LEASED and its holder."""
    return {"leased": lambda x: z3.And(s.leased(x), x != t),
            "holder": lambda x, y: z3.And(s.holder(x, y), x != t)}


def _ack(g: Sig, s: RState, s2: RState, p: Params) -> Update:
    w, t = p["w"], p["t"]
    return Update(guard=[s.leased(t), s.holder(t, w)],
                  defs={**_settle(s, t), "acked": lambda x: z3.Or(s.acked(x), x == t)})


def _nack_defs(s: RState, w: Term, t: Term, back: Term) -> dict[str, Any]:
    return {**_settle(s, t),
            "ready": lambda x: z3.Or(s.ready(x), z3.And(x == t, back)),
            "dead": lambda x: z3.Or(s.dead(x), z3.And(x == t, z3.Not(back))),
            "queue": lambda x, y: z3.Or(s.queue(x, y), z3.And(x == t, back, y == w))}


def _nack(g: Sig, s: RState, s2: RState, p: Params) -> Update:
    """Back to READY in the nacker's queue keeping its seq, or DEAD (``requeue`` is the
    outcome: a requeue past max_deliveries dead-letters, so it is a free choice)."""
    w, t = p["w"], p["t"]
    return Update(guard=[s.leased(t), s.holder(t, w)], defs=_nack_defs(s, w, t, p["requeue"]))


def _nack_dead(g: Sig, s: RState, s2: RState, p: Params) -> Update:
    """No redelivery: a nack always dead-letters."""
    w, t = p["w"], p["t"]
    return Update(guard=[s.leased(t), s.holder(t, w), z3.Not(p["requeue"])],
                  defs=_nack_defs(s, w, t, p["requeue"]))


def _nack_tail(g: Sig, s: RState, s2: RState, p: Params) -> Update:
    """Mutant: a requeued task gets a fresh seq, at the back of the queue."""
    w, t, back = p["w"], p["t"], p["requeue"]
    return Update(guard=[s.leased(t), s.holder(t, w)],
                  defs={**_nack_defs(s, w, t, back),
                        "seq": lambda x: z3.If(z3.And(x == t, back), s.nxt, s.seq(x))},
                  post=[z3.If(back, g.lt(SEQ, s.nxt, s2.nxt), s2.nxt == s.nxt)], havoc=("nxt",))


def _expire_update(g: Sig, s: RState, p: Params) -> Update:
    E_, D_ = p["E"], p["D"]

    def back(x: Term) -> Term:
        return z3.And(E_(x), z3.Not(D_(x)))

    return Update(
        guard=[g.forall((TASK,), lambda x: z3.Implies(E_(x), s.leased(x))),
               g.forall((TASK,), lambda x: z3.Implies(D_(x), E_(x)))],
        defs={"leased": lambda x: z3.And(s.leased(x), z3.Not(E_(x))),
              "holder": lambda x, y: z3.And(s.holder(x, y), z3.Not(E_(x))),
              "ready": lambda x: z3.Or(s.ready(x), back(x)),
              "dead": lambda x: z3.Or(s.dead(x), D_(x)),
              "queue": lambda x, y: z3.Or(s.queue(x, y), z3.And(back(x), s.holder(x, y)))})


def _expire(g: Sig, s: RState, s2: RState, p: Params) -> Update:
    """Any set E of leases ends at once (time is abstracted away): those in D are
    dead-lettered, the rest return READY to their holder's queue, keeping their seq."""
    return _expire_update(g, s, p)


def _expire_dead(g: Sig, s: RState, s2: RState, p: Params) -> Update:
    """No redelivery: every lease that ends dead-letters its task."""
    u = _expire_update(g, s, p)
    u.guard.append(g.forall((TASK,), lambda x: z3.Implies(p["E"](x), p["D"](x))))
    return u


def _reassign(g: Sig, s: RState, s2: RState, p: Params) -> Update:
    """READY tasks move between queues (or to none) arbitrarily: the round-robin cursor and
    worker liveness are abstracted away, so every reassignment of orphans is included."""
    return Update(post=[
        g.forall((TASK, WORKER), lambda x, y: z3.Implies(s2.queue(x, y), s.ready(x))),
        g.forall((TASK, WORKER, WORKER), lambda x, y, z: z3.Implies(
            z3.And(s2.queue(x, y), s2.queue(x, z)), y == z))], havoc=("queue",))


TASK_SET = (Symbol("E", (TASK,), doc="the leases that end"),
            Symbol("D", (TASK,), doc="those dead-lettered"))
REQUEUE = Symbol("requeue", (), BOOL, "the task goes back to READY")
QUIET = ("advance", "heartbeat", "extend", "crash", "restart",
         "rejected ack/nack/extend", "fetch finding nothing")


def _broker_transitions(policy: str, mutant: str | None, redelivery: bool
                        ) -> tuple[Transition, ...]:
    """One relational transition per broker action (the prelude's two parts separately)."""
    publish = Transition("publish", _b(T_, Symbol("p", (), PRIO), W_,
                                       Symbol("assign", (), BOOL, "queued at all")),
                         "a fresh task becomes READY with seq = nxt (nxt moves up), "
                         "in the queue of any worker or of none", _publish, ("publish",))
    out = [publish, *_fetches(policy, mutant),
           Transition("ack", _b(W_, T_), "the lease holder acks: LEASED -> ACKED", _ack,
                      ("ack",))]
    if redelivery:
        nack = _nack_tail if mutant == "tail-nack" else _nack
        out.append(Transition("nack", _b(W_, T_, REQUEUE),
                              "the lease holder nacks: back to READY in its queue keeping "
                              "its seq, or DEAD", nack, ("nack",)))
        out.append(Transition("expire", TASK_SET, "any set of leases ends: READY in the "
                              "holder's queue keeping the seq, or DEAD", _expire,
                              ("prelude: lease expiry",)))
    else:
        out.append(Transition("nack", _b(W_, T_, REQUEUE), "the lease holder nacks: DEAD",
                              _nack_dead, ("nack",)))
        out.append(Transition("expire", TASK_SET, "any set of leases ends: DEAD",
                              _expire_dead, ("prelude: lease expiry",)))
    if policy != "shared":
        out.append(Transition("reassign", (), "READY tasks move to any queue or none",
                              _reassign, ("prelude: reassignment of orphans",)))
    out.append(_stutter(QUIET))
    return tuple(out)


def _fetches(policy: str, mutant: str | None) -> list[Transition]:
    if policy == "shared":
        fn = _fetch_worst if mutant == "fetch-worst" else _fetch_shared
        return [Transition("fetch", _b(W_, T_), "the best READY task of the broker goes to w",
                           fn, ("fetch",))]
    own = Transition("fetch", _b(W_, T_), "the best READY task of w's own queue goes to w",
                     _fetch_own, ("fetch",))
    if policy == "round_robin":
        return [own]
    steal = _steal_leased if mutant == "steal-leased" else _steal
    return [own, Transition("steal", _b(W_, V_, T_, Symbol("busy", (), BOOL)),
                            "w's queue has no READY task: the best READY task of a peer v "
                            "goes to w", steal, ("fetch (steal)",))]


def _status_exclusive(g: Sig, s: RState) -> Term:
    pairs = list(itertools.combinations(STATUSES, 2))
    return g.forall((TASK,), lambda x: z3.And(
        [z3.Not(z3.And(s[a](x), s[b](x))) for a, b in pairs]))


BROKER_BASE = (
    Lemma("status-of-published", "a task is published iff it is READY, LEASED, ACKED or DEAD",
          lambda g, s: g.forall((TASK,), lambda x: s.pub(x) == z3.Or(
              [s[n](x) for n in STATUSES]))),
    Lemma("status-exclusive", "no task has two of the statuses", _status_exclusive),
    Lemma("queued-is-ready", "queue(t, w) => READY(t)",
          lambda g, s: g.forall((TASK, WORKER), lambda x, y: z3.Implies(
              s.queue(x, y), s.ready(x)))),
    Lemma("one-queue", "a task waits in at most one queue",
          lambda g, s: g.forall((TASK, WORKER, WORKER), lambda x, y, z: z3.Implies(
              z3.And(s.queue(x, y), s.queue(x, z)), y == z))),
    Lemma("held-is-leased", "holder(t, w) => LEASED(t)",
          lambda g, s: g.forall((TASK, WORKER), lambda x, y: z3.Implies(
              s.holder(x, y), s.leased(x)))),
    Lemma("one-holder", "a lease has at most one holder",
          lambda g, s: g.forall((TASK, WORKER, WORKER), lambda x, y, z: z3.Implies(
              z3.And(s.holder(x, y), s.holder(x, z)), y == z))),
    Lemma("publish-order-published", "porder(a, b) => a and b are published",
          lambda g, s: g.forall((TASK, TASK), lambda x, y: z3.Implies(
              s.porder(x, y), z3.And(s.pub(x), s.pub(y))))),
    Lemma("publish-order-total", "of two distinct published tasks one was published first",
          lambda g, s: g.forall((TASK, TASK), lambda x, y: z3.Implies(
              z3.And(s.pub(x), s.pub(y), x != y), z3.Or(s.porder(x, y), s.porder(y, x))))),
    Lemma("seq-below-next", "every published seq is below nxt",
          lambda g, s: g.forall((TASK,), lambda x: z3.Implies(
              s.pub(x), g.lt(SEQ, s.seq(x), s.nxt)))),
    Lemma("seq-unique", "distinct published tasks have distinct seqs",
          lambda g, s: g.forall((TASK, TASK), lambda x, y: z3.Implies(
              z3.And(s.pub(x), s.pub(y), x != y), s.seq(x) != s.seq(y)))),
    Lemma("seq-is-publish-order", "for published a, b: a was published before b iff "
          "seq(a) < seq(b) (nack and expiry keep the seq)",
          lambda g, s: g.forall((TASK, TASK), lambda x, y: z3.Implies(
              z3.And(s.pub(x), s.pub(y)), s.porder(x, y) == g.lt(SEQ, s.seq(x), s.seq(y))))),
)
"""The strengthening of every broker claim."""

I2_SAFETY = (
    Lemma("no-skip", "no delivery passed over a READY task of the queue it drew from that is "
          "ahead of it by priority, then publish order (skipped is empty)",
          lambda g, s: g.forall((TASK, TASK), lambda x, y: z3.Not(s.skipped(x, y)))),
    Lemma("only-ready-delivered", "every delivery took a READY task of the queue it drew "
          "from, and a steal only when the thief's own queue had none (misdelivered is empty)",
          lambda g, s: g.forall((TASK,), lambda x: z3.Not(s.misdelivered(x)))),
)

BROKER_INIT = (
    Lemma("nothing-published", "no task is published or has a status",
          lambda g, s: g.forall((TASK,), lambda x: z3.And(
              z3.Not(s.pub(x)), *[z3.Not(s[n](x)) for n in STATUSES]))),
    Lemma("no-queue-no-lease", "queues and leases are empty",
          lambda g, s: g.forall((TASK, WORKER), lambda x, y: z3.And(
              z3.Not(s.queue(x, y)), z3.Not(s.holder(x, y))))),
    Lemma("no-history", "the ghosts are empty",
          lambda g, s: z3.And(
              g.forall((TASK, TASK), lambda x, y: z3.And(
                  z3.Not(s.porder(x, y)), z3.Not(s.skipped(x, y)))),
              g.forall((TASK,), lambda x: z3.And(
                  z3.Not(s.delivered(x)), z3.Not(s.misdelivered(x)))))),
)

BROKER_OVERAPPROX = (
    "Time, max_deliveries, liveness and the round-robin cursor are abstracted away: any "
    "lease may end at any moment (expire), a requeue may dead-letter, a published or "
    "orphaned READY task may sit in any queue or none (publish, reassign), a thief may rob "
    "any peer with a READY task; advance, heartbeat, extend, crash and restart change "
    "nothing I2 reads (stutter), and a crashed worker may still fetch. Each only adds "
    "behaviours, so an invariant of this model is one of the executable broker.")


def broker_model(policy: str = "shared", mutant: str | None = None) -> RelModel:
    """I2 for one dispatch policy, with any number of tasks, workers and priorities."""
    if policy not in B.POLICIES:
        raise ValueError(f"unknown policy {policy!r}")
    return RelModel(f"broker[{policy}]", "I2", f"I2 OrderedDelivery ({policy})", broker_sig(),
                    BROKER_INIT, _broker_transitions(policy, mutant, redelivery=True),
                    I2_SAFETY, BROKER_BASE, overapprox=BROKER_OVERAPPROX, mutant=mutant)


FIFO_SAFETY = (
    Lemma("fifo-prefix", "the delivered tasks are a prefix of the publish order: "
          "delivered(b) and porder(a, b) => delivered(a)",
          lambda g, s: g.forall((TASK, TASK), lambda x, y: z3.Implies(
              z3.And(s.delivered(y), s.porder(x, y)), s.delivered(x)))),
)
FIFO_LEMMAS = (
    Lemma("delivered-left-ready", "a task was delivered iff it is LEASED, ACKED or DEAD "
          "(nothing returns to READY)",
          lambda g, s: g.forall((TASK,), lambda x: s.delivered(x) == z3.Or(
              s.leased(x), s.acked(x), s.dead(x)))),
)
ONE_PRIORITY = Lemma("one-priority", "every task has the same priority (|Prio| = 1)",
                     lambda g, s: g.forall((PRIO, PRIO), lambda p, q: p == q))


def fifo_model(mutant: str | None = None) -> RelModel:
    """The seed's FIFO corollary: one shared queue, one priority, no redelivery."""
    return RelModel("broker[fifo]", "I2", "I2 corollary: FIFO (one queue, one priority, "
                    "no redelivery)", broker_sig(), BROKER_INIT,
                    _broker_transitions("shared", mutant, redelivery=False),
                    FIFO_SAFETY + I2_SAFETY, BROKER_BASE + FIFO_LEMMAS,
                    assumptions=(ONE_PRIORITY,),
                    overapprox=BROKER_OVERAPPROX + " No redelivery: nack and lease expiry "
                    "always dead-letter (max_deliveries = 1).", mutant=mutant)


# ============================================================== election (I3a)


def election_sig() -> Sig:
    """The election's relational vocabulary: any number of nodes and epochs."""
    return Sig("election", (NODE, EPOCH), {EPOCH: "epoch_lt"}, (
        Symbol("cur", (), EPOCH, "the store's current epoch (the last one granted)"),
        Symbol("leader", (NODE,), doc="the store's lease names the node"),
        Symbol("live", (), BOOL, "the store's lease has time left"),
        Symbol("nep", (NODE, EPOCH), doc="the epoch the node holds (the last one granted to it)"),
        Symbol("granted", (EPOCH, NODE), doc="the epoch was granted to the node", ghost=True),
        Symbol("issued", (EPOCH,), doc="the epoch was granted to some node", ghost=True),
        Symbol("gbefore", (EPOCH, EPOCH), doc="gbefore(e, f): e was granted before f",
               ghost=True),
        Symbol("written", (EPOCH,), doc="a write with the epoch was accepted", ghost=True),
        Symbol("wrote", (NODE, EPOCH), doc="a write by the node with the epoch was accepted",
               ghost=True),
        Symbol("wbefore", (EPOCH, EPOCH), ghost=True,
               doc="wbefore(e, f): a write with f was accepted after one with e"),
        Symbol("stale_write", (), BOOL, ghost=True,
               doc="a write was accepted whose epoch was not the current one"),
    ))


N_, EP_ = Symbol("n", (), NODE), Symbol("e", (), EPOCH)


def _grant_update(g: Sig, s: RState, p: Params, fresh: Term) -> Update:
    n, e = p["n"], p["e"]
    free = z3.Or(g.forall((NODE,), lambda m: z3.Not(s.leader(m))), z3.Not(s.live))
    return Update(guard=[free, fresh], defs={
        "cur": e, "live": z3.BoolVal(True),
        "leader": lambda m: m == n,
        "nep": lambda m, x: z3.If(m == n, x == e, s.nep(m, x)),
        "granted": lambda x, m: z3.Or(s.granted(x, m), z3.And(x == e, m == n)),
        "issued": lambda x: z3.Or(s.issued(x), x == e),
        "gbefore": lambda x, y: z3.Or(s.gbefore(x, y), z3.And(s.issued(x), y == e))})


def _grant(g: Sig, s: RState, s2: RState, p: Params) -> Update:
    """A free or expired lease goes to n with a new epoch above the current one."""
    return _grant_update(g, s, p, g.lt(EPOCH, s.cur, p["e"]))


def _grant_reuse(g: Sig, s: RState, s2: RState, p: Params) -> Update:
    """Mutant: the store does not move the epoch on at a grant (it may keep the current one)."""
    return _grant_update(g, s, p, g.le(EPOCH, s.cur, p["e"]))


def _resign(g: Sig, s: RState, s2: RState, p: Params) -> Update:
    return Update(guard=[s.leader(p["n"]), s.live],
                  defs={"leader": lambda m: z3.BoolVal(False), "live": z3.BoolVal(False)})


def _lease_expires(g: Sig, s: RState, s2: RState, p: Params) -> Update:
    return Update(defs={"live": z3.BoolVal(False)})


Fence = Callable[[Sig, RState, Term, Term], Term]


def fence_current(g: Sig, s: RState, n: Term, e: Term) -> Term:
    """The store's check: the write's epoch is the current one, from the live lease holder."""
    return z3.And(e == s.cur, s.leader(n), s.live)


def fence_none(g: Sig, s: RState, n: Term, e: Term) -> Term:
    """Mutant: no fencing, the store takes any write from a node that believes it leads."""
    return z3.BoolVal(True)


def fence_max_seen(g: Sig, s: RState, n: Term, e: Term) -> Term:
    """Mutant: the store only refuses epochs below one it has already accepted a write with."""
    return g.forall((EPOCH,), lambda x: z3.Implies(s.written(x), g.le(EPOCH, x, e)))


def _writer(fence: Fence) -> Build:
    def build(g: Sig, s: RState, s2: RState, p: Params) -> Update:
        """Node n writes with its own epoch e; the transition is the *accepted* write."""
        n, e = p["n"], p["e"]
        return Update(guard=[s.nep(n, e), fence(g, s, n, e)], defs={
            "written": lambda x: z3.Or(s.written(x), x == e),
            "wrote": lambda m, x: z3.Or(s.wrote(m, x), z3.And(m == n, x == e)),
            "wbefore": lambda x, y: z3.Or(s.wbefore(x, y), z3.And(s.written(x), y == e)),
            "stale_write": z3.Or(s.stale_write, e != s.cur)})
    return build


FENCES: dict[str | None, Fence] = {None: fence_current, "no-fencing": fence_none,
                                   "max-seen-fencing": fence_max_seen}


def _election_transitions(mutant: str | None) -> tuple[Transition, ...]:
    grant = _grant_reuse if mutant == "reuse-epoch" else _grant
    fence = FENCES.get(mutant, fence_current)
    return (
        Transition("grant", _b(N_, EP_), "tick(n) wins a free or expired lease: a new epoch "
                   "e above cur goes to n", grant, ("tick (grant)",)),
        Transition("resign", _b(N_), "the holder gives the lease up", _resign,
                   ("tick (resign)",)),
        Transition("lease_expires", (), "the store's lease runs out", _lease_expires,
                   ("advance",)),
        Transition("write", _b(N_, EP_), "the store accepts n's write with n's epoch e "
                   "(fencing)", _writer(fence), ("leader_write (accepted)",)),
        _stutter(("tick (heartbeat, renewal)", "rejected leader_write", "advance", "pause",
                  "drift", "crash", "isolate", "heal")),
    )


def _ep_le_cur(g: Sig, s: RState, rel: str) -> Term:
    return g.forall((EPOCH,), lambda x: z3.Implies(s[rel](x), g.le(EPOCH, x, s.cur)))


I3A_SAFETY = (
    Lemma("one-node-per-epoch", "each epoch is granted to at most one node",
          lambda g, s: g.forall((EPOCH, NODE, NODE), lambda e, n, m: z3.Implies(
              z3.And(s.granted(e, n), s.granted(e, m)), n == m))),
    Lemma("epochs-increase", "an epoch granted after another is greater",
          lambda g, s: g.forall((EPOCH, EPOCH), lambda e, f: z3.Implies(
              s.gbefore(e, f), g.lt(EPOCH, e, f)))),
    Lemma("writes-current", "the store accepted no write whose epoch was not the current one",
          lambda g, s: z3.Not(s.stale_write)),
    Lemma("writes-by-grantee", "an accepted write carries an epoch granted to its writer",
          lambda g, s: g.forall((NODE, EPOCH), lambda n, e: z3.Implies(
              s.wrote(n, e), s.granted(e, n)))),
    Lemma("writes-monotone", "once a write with epoch e is accepted, no later accepted write "
          "has an epoch below e",
          lambda g, s: g.forall((EPOCH, EPOCH), lambda e, f: z3.Implies(
              s.wbefore(e, f), z3.Not(g.lt(EPOCH, f, e))))),
)
I3A_CONSEQUENCES = (
    Lemma("no-interleaving", "accepted writes by two different nodes are ordered by their "
          "epochs: after a write of one leader, no write of an earlier leader is accepted",
          lambda g, s: g.forall((EPOCH, EPOCH, NODE, NODE), lambda e, f, n, m: z3.Implies(
              z3.And(s.wbefore(e, f), s.wrote(n, e), s.wrote(m, f), n != m),
              g.lt(EPOCH, e, f)))),
)
I3A_LEMMAS = (
    Lemma("node-epoch-granted", "a node holds only an epoch granted to it",
          lambda g, s: g.forall((NODE, EPOCH), lambda n, e: z3.Implies(
              s.nep(n, e), s.granted(e, n)))),
    Lemma("node-epoch-unique", "a node holds at most one epoch",
          lambda g, s: g.forall((NODE, EPOCH, EPOCH), lambda n, e, f: z3.Implies(
              z3.And(s.nep(n, e), s.nep(n, f)), e == f))),
    Lemma("granted-issued", "a granted epoch is issued",
          lambda g, s: g.forall((EPOCH, NODE), lambda e, n: z3.Implies(
              s.granted(e, n), s.issued(e)))),
    Lemma("issued-not-future", "every issued epoch is at most cur",
          lambda g, s: _ep_le_cur(g, s, "issued")),
    Lemma("written-not-future", "every written epoch is at most cur",
          lambda g, s: _ep_le_cur(g, s, "written")),
)
ELECTION_INIT = (
    Lemma("no-lease", "no node holds the store's lease, and it is not live",
          lambda g, s: z3.And(g.forall((NODE,), lambda n: z3.Not(s.leader(n))),
                              z3.Not(s.live))),
    Lemma("no-epochs", "no node holds an epoch; cur was granted to nobody",
          lambda g, s: g.forall((NODE, EPOCH), lambda n, e: z3.And(
              z3.Not(s.nep(n, e)), z3.Not(s.granted(e, n)), z3.Not(s.wrote(n, e))))),
    Lemma("no-history", "the ghosts are empty",
          lambda g, s: z3.And(
              z3.Not(s.stale_write),
              g.forall((EPOCH,), lambda e: z3.And(z3.Not(s.issued(e)), z3.Not(s.written(e)))),
              g.forall((EPOCH, EPOCH), lambda e, f: z3.And(
                  z3.Not(s.gbefore(e, f)), z3.Not(s.wbefore(e, f)))))),
)


def election_model(mutant: str | None = None) -> RelModel:
    """I3a with any number of nodes and elections."""
    return RelModel(
        "election", "I3a", "I3a SingleLeader (fenced)", election_sig(), ELECTION_INIT,
        _election_transitions(mutant), I3A_SAFETY, I3A_LEMMAS, I3A_CONSEQUENCES,
        overapprox="Time, membership and beliefs are abstracted away: a grant needs only a "
        "free or expired lease (no minimum-id rule), the new epoch is any epoch above the "
        "current one, the lease may run out at any moment, and any node holding an epoch may "
        "attempt a write at any time (crashed, paused, drifting or isolated nodes included): "
        "only the store's fencing check stands between it and an accepted write. Pause, "
        "drift, crash, isolate, heal, heartbeats and renewals change nothing the store or "
        "the claim reads (stutter).", mutant=mutant)


# ================================================================== registry


@dataclass(frozen=True, slots=True)
class ParamMutant:
    """A broken relational transition, the models it is planted in, the step a proof must
    fail on (consecution breaks with a counterexample to induction)."""

    name: str
    claim: str
    text: str
    models: tuple[str, ...]
    breaks: str


MUTANTS: dict[str, ParamMutant] = {mu.name: mu for mu in (
    ParamMutant("fetch-worst", "I2", "the shared queue hands out the task at the back of "
                "its order", ("broker[shared]", "broker[fifo]"), "fetch"),
    ParamMutant("tail-nack", "I2", "a requeued task gets a fresh seq at the back (the "
                "seed's 'dequeues mirror enqueues' with tail redelivery)",
                ("broker[shared]", "broker[round_robin]", "broker[work_stealing]"), "nack"),
    ParamMutant("steal-leased", "I2", "a thief may take a task its victim holds under a "
                "lease", ("broker[work_stealing]",), "steal"),
    ParamMutant("no-fencing", "I3a", "the store accepts any write from a node holding an "
                "epoch, whatever the current epoch", ("election",), "write"),
    ParamMutant("max-seen-fencing", "I3a", "the store refuses only epochs below the highest "
                "it has accepted a write with (a deposed leader may still write before its "
                "successor does)", ("election",), "write"),
    ParamMutant("reuse-epoch", "I3a", "a grant may keep the current epoch instead of a new "
                "one", ("election",), "grant"),
)}
PARAM_MUTANTS: tuple[str, ...] = tuple(MUTANTS)


def _build(name: str, mutant: str | None) -> RelModel:
    if name == "broker[fifo]":
        return fifo_model(mutant)
    if name == "election":
        return election_model(mutant)
    return broker_model(name[len("broker["):-1], mutant)


MODEL_NAMES = ("broker[shared]", "broker[round_robin]", "broker[work_stealing]",
               "broker[fifo]", "election")


def models(mutant: str | None = None) -> list[RelModel]:
    """The correct relational models, or the ones a mutant is planted in."""
    if mutant is None:
        return [_build(n, None) for n in MODEL_NAMES]
    if mutant not in MUTANTS:
        raise KeyError(f"unknown parametric mutant {mutant!r}; use one of {PARAM_MUTANTS}")
    return [_build(n, mutant) for n in MUTANTS[mutant].models]


# ============================================================ abstraction


@dataclass(frozen=True)
class Structure:
    """A finite structure of a signature: universe sizes and every symbol's graph.

    Elements of a sort are ``0..n-1`` (for an ordered sort, in order). A
    relation's graph is its set of true tuples; a function's, the tuples of
    arguments followed by the value; a constant's, ``{(value,)}`` (a Boolean
    constant: ``{()}`` when true)."""

    sizes: tuple[tuple[str, int], ...]
    graphs: tuple[tuple[str, frozenset[tuple[int, ...]]], ...]

    @staticmethod
    def of(sizes: Mapping[str, int], graphs: Mapping[str, set[tuple[int, ...]]]) -> Structure:
        return Structure(tuple(sorted(sizes.items())),
                         tuple(sorted((k, frozenset(v)) for k, v in graphs.items())))

    def size(self) -> dict[str, int]:
        return dict(self.sizes)

    def graph(self) -> dict[str, frozenset[tuple[int, ...]]]:
        return dict(self.graphs)

    def with_size(self, sort: str, n: int) -> Structure:
        return Structure(tuple(sorted({**self.size(), sort: n}.items())), self.graphs)


def _one(cond: bool) -> set[tuple[int, ...]]:
    return {()} if cond else set()


def broker_sizes(c: B.BrokerConfig) -> dict[str, int]:
    """Universe sizes for a broker bound: seqs up to the layout's range plus one for nxt'."""
    return {TASK: c.tasks, WORKER: c.workers, PRIO: c.priorities,
            SEQ: c.tasks * (c.max_deliveries + 2) + 2}


def abstract_broker(m: Model, s: State) -> Structure:
    """The executable broker's state as a structure of :func:`broker_sig`.

    Task ``t`` is the ``t``-th publish, so publish order is index order; a task
    was delivered iff its delivery count is positive. The monitors are empty:
    a step that breaks I2 is then simply not admitted by the correct fetch."""
    L, c = m.layout, m.config
    T = range(c.tasks)
    st, own, npub = L.arr(s, "st"), L.arr(s, "own"), L.get(s, "npub")
    codes = dict(zip(STATUSES, (B.READY, B.LEASED, B.ACKED, B.DEAD), strict=True))
    g: dict[str, set[tuple[int, ...]]] = {n: {(t,) for t in T if st[t] == codes[n]}
                                          for n in STATUSES}
    g["pub"] = {(t,) for t in T if t < npub}
    g["queue"] = {(t, own[t]) for t in T if st[t] == B.READY and own[t] != B.NONE}
    g["holder"] = {(t, own[t]) for t in T if st[t] == B.LEASED}
    g["prio"] = {(t, L.get(s, "pr", t)) for t in T}
    g["seq"] = {(t, L.get(s, "sq", t)) for t in T}
    g["nxt"] = {(L.get(s, "nseq"),)}
    g["porder"] = {(a, b) for a in T for b in T if a < b < npub}
    g["delivered"] = {(t,) for t in T if L.get(s, "dl", t) > 0}
    g["skipped"], g["misdelivered"] = set(), set()
    return Structure.of(broker_sizes(c), g)


@dataclass(frozen=True)
class EpochHistory:
    """Absolute epochs and the write history along one path of the executable election.

    The model keeps epochs relative (``stale``, ``wage``), which no single state
    can turn back into absolute ones, so they are carried along the path:
    epoch ``k`` is the ``k``-th grant (0: the initial epoch, granted to nobody)."""

    cur: int
    ep: tuple[int | None, ...]
    grants: tuple[int, ...] = ()
    wrote: frozenset[tuple[int, int]] = frozenset()
    wbefore: frozenset[tuple[int, int]] = frozenset()
    last: tuple[int, int] | None = None
    stale_write: bool = False

    @staticmethod
    def start(nodes: int) -> EpochHistory:
        return EpochHistory(0, (None,) * nodes)

    def after(self, name: str, args: tuple[int, ...], result: int) -> EpochHistory:
        """The history after one step (a tick answering 1 is a grant; a write 1, accepted)."""
        if name == "tick" and result == 1:
            n, e = args[0], self.cur + 1
            ep = tuple(e if k == n else x for k, x in enumerate(self.ep))
            return EpochHistory(e, ep, (*self.grants, n), self.wrote, self.wbefore, self.last,
                                self.stale_write)
        if name == "leader_write" and result == 1:
            writer, held = args[0], self.ep[args[0]]
            if held is None:
                raise AssertionError("an accepted write from a node that holds no epoch")
            written = {x for _, x in self.wrote}
            return EpochHistory(self.cur, self.ep, self.grants, self.wrote | {(writer, held)},
                                self.wbefore | {(x, held) for x in written}, (writer, held),
                                self.stale_write or held != self.cur)
        return self


def history_mismatches(m: Model, s: State, h: EpochHistory) -> list[str]:
    """Where the absolute history disagrees with the state's relative epochs (should be none)."""
    L, c = m.layout, m.config
    cap = c.stale_cap
    out = []
    for n in range(c.nodes):
        e = h.ep[n]
        want = cap if e is None else min(cap, h.cur - e)
        if L.get(s, "stale", n) != want:
            out.append(f"stale[{n}] is {L.get(s, 'stale', n)}, history says {want}")
    want_age = cap + 1 if h.last is None else min(cap + 1, h.cur - h.last[1])
    if L.get(s, "wage") != want_age:
        out.append(f"wage is {L.get(s, 'wage')}, history says {want_age}")
    want_node = E.NONE if h.last is None else h.last[0]
    if L.get(s, "wnode") != want_node:
        out.append(f"wnode is {L.get(s, 'wnode')}, history says {want_node}")
    return out


def abstract_election(m: Model, s: State, h: EpochHistory, epochs: int) -> Structure:
    """The executable election's state with its path's history, over ``epochs`` epochs."""
    L, c = m.layout, m.config
    N, issued = range(c.nodes), range(1, h.cur + 1)
    holder = L.get(s, "holder")
    g: dict[str, set[tuple[int, ...]]] = {
        "cur": {(h.cur,)},
        "leader": {(holder,)} if holder != E.NONE else set(),
        "live": _one(L.get(s, "lrem") > 0),
        "nep": {(n, e) for n in N if (e := h.ep[n]) is not None},
        "granted": {(e, n) for e, n in enumerate(h.grants, start=1)},
        "issued": {(e,) for e in issued},
        "gbefore": {(a, b) for a in issued for b in issued if a < b},
        "written": {(e,) for _, e in h.wrote},
        "wrote": set(h.wrote),
        "wbefore": set(h.wbefore),
        "stale_write": _one(h.stale_write),
    }
    return Structure.of({NODE: c.nodes, EPOCH: epochs}, g)
