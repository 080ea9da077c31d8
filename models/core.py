"""The one vocabulary every transition system in taskward is written in.

A model is a finite transition system over a *flat tuple of small integers*
(named fields laid out by a :class:`Layout`). Each action is written once, as a
guard and an effect, against an :class:`Ops` object instead of Python's own
``if``/``and``/``or``. Run with :data:`CONCRETE` the same code computes on
ints (the explorer, the Hypothesis machines, the lockstep oracle); run with
the Z3 ops of ``taskward.specs.z3enc`` it builds solver terms. That is how
the explorer, the solver and the docs all consume one definition.

Rules for action code, so that both interpretations agree:

* never branch with Python ``if``/``and``/``or``/``not`` on a state value: use
  ``o.ite``, ``o.and_``, ``o.or_``, ``o.not_`` (loops over ``range(n)`` of a
  configured size are fine: sizes are concrete);
* never index a tuple with a state value: loop and compare (``one-hot``);
* return a new tuple, never mutate the input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

V = Any
"""A value: an ``int``/``bool`` under concrete ops, a solver term under Z3 ops."""
State = tuple[int, ...]
SymState = Sequence[V]


class Ops(Protocol):
    """Boolean and conditional vocabulary; arithmetic and comparisons are Python's."""

    def ite(self, c: V, a: V, b: V) -> V: ...

    def and_(self, *xs: V) -> V: ...

    def or_(self, *xs: V) -> V: ...

    def not_(self, x: V) -> V: ...

    def b2i(self, x: V) -> V:
        """A boolean as 0/1, for counting."""
        ...


class _Concrete:
    """Ops over plain ints and bools: the fast path of every concrete checker."""

    __slots__ = ()

    def ite(self, c: V, a: V, b: V) -> V:
        return a if c else b

    def and_(self, *xs: V) -> V:
        return all(xs)

    def or_(self, *xs: V) -> V:
        return any(xs)

    def not_(self, x: V) -> V:
        return not x

    def b2i(self, x: V) -> V:
        return 1 if x else 0


CONCRETE: Ops = _Concrete()


# ------------------------------------------------------------------ state layout


@dataclass(frozen=True, slots=True)
class Field:
    """A named slot (or array of slots) of the flat state, with its value range."""

    name: str
    size: int
    lo: int
    hi: int
    doc: str
    ghost: bool = False
    """History kept only so an invariant can be stated; an implementation has no such field."""


class Layout:
    """Names and offsets of the fields of a flat state tuple."""

    def __init__(self, fields: Sequence[Field]) -> None:
        self.fields = tuple(fields)
        self.offset: dict[str, int] = {}
        pos = 0
        for f in self.fields:
            self.offset[f.name] = pos
            pos += f.size
        self.size = pos
        self.by_name = {f.name: f for f in self.fields}

    def get(self, s: SymState, name: str, i: int = 0) -> V:
        """Slot ``i`` of field ``name``."""
        return s[self.offset[name] + i]

    def arr(self, s: SymState, name: str) -> list[V]:
        """All slots of field ``name``."""
        off = self.offset[name]
        return list(s[off : off + self.by_name[name].size])

    def slot_names(self) -> list[str]:
        """Human names of every slot, e.g. ``st[2]``; used by traces and solver variables."""
        out = []
        for f in self.fields:
            out += [f.name] if f.size == 1 else [f"{f.name}[{i}]" for i in range(f.size)]
        return out

    def bounds(self) -> list[tuple[int, int]]:
        """The value range of every slot (type invariant of the solver encodings)."""
        out: list[tuple[int, int]] = []
        for f in self.fields:
            out += [(f.lo, f.hi)] * f.size
        return out

    def decode(self, s: State) -> dict[str, int | list[int]]:
        """A readable dict of a concrete state."""
        out: dict[str, int | list[int]] = {}
        for f in self.fields:
            vals = list(s[self.offset[f.name] : self.offset[f.name] + f.size])
            out[f.name] = vals[0] if f.size == 1 else vals
        return out


class Writer:
    """Builds the successor of a state field by field without mutating the original."""

    __slots__ = ("_L", "_s")

    def __init__(self, layout: Layout, s: SymState) -> None:
        self._L = layout
        self._s = list(s)

    def get(self, name: str, i: int = 0) -> V:
        return self._s[self._L.offset[name] + i]

    def set(self, name: str, value: V, i: int = 0) -> None:
        self._s[self._L.offset[name] + i] = value

    def arr(self, name: str) -> list[V]:
        off = self._L.offset[name]
        return self._s[off : off + self._L.by_name[name].size]

    def state(self) -> tuple[V, ...]:
        return tuple(self._s)


# ---------------------------------------------------------------------- actions

Guard = Callable[..., V]
Effect = Callable[..., tuple[tuple[V, ...], V]]
Prelude = Callable[..., tuple[V, ...]]


@dataclass(frozen=True, slots=True)
class Action:
    """One kind of step: ``guard(o, s, *args)`` and ``effect(o, s, *args) -> (s', result)``.

    ``params`` names each argument with its finite domain, so the explorer and
    the solver can enumerate every instance. ``result`` is what the operation
    answers (a task index, 1/0 for accepted/rejected, ...), used by lockstep.
    """

    name: str
    params: tuple[tuple[str, tuple[int, ...]], ...]
    guard: Guard
    effect: Effect
    kind: str
    """``op`` (a call an implementation serves), ``fault``, ``time`` or ``env``."""
    doc: str
    prelude: Prelude | None = None
    """The deterministic bookkeeping run before the operation (lease expiry, ...)."""
    prune: Guard | None = None
    """Explorer-only filter: skips instances whose effect equals another instance's.
    Sound only where the skipped effect is reachable by an unpruned action too."""

    def instances(self) -> Iterator[tuple[int, ...]]:
        """Every argument tuple of the action's parameter domains."""
        yield from _product([d for _, d in self.params])


def _product(domains: Sequence[tuple[int, ...]]) -> Iterator[tuple[int, ...]]:
    if not domains:
        yield ()
        return
    for head in domains[0]:
        for rest in _product(domains[1:]):
            yield (head, *rest)


@dataclass(frozen=True, slots=True)
class Step:
    """One labelled transition: the action instance taken, its answer, and the successor."""

    action: str
    args: tuple[int, ...]
    result: int
    post: State


@dataclass
class Model:
    """A finite transition system: a layout, initial state, and actions written once."""

    name: str
    layout: Layout
    init: State
    actions: tuple[Action, ...]
    config: Any
    canon: Callable[[State], State] | None = None
    """A symmetry reduction: maps a state to a representative of its orbit."""
    describe_args: Callable[[str, tuple[int, ...]], str] | None = None
    mutant: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def action(self, name: str) -> Action:
        for a in self.actions:
            if a.name == name:
                return a
        raise KeyError(f"model {self.name} has no action {name!r}")

    def instances(self) -> list[tuple[Action, tuple[int, ...]]]:
        """Every (action, arguments) pair the explorer enumerates."""
        return [(a, args) for a in self.actions for args in a.instances()]

    def enabled(self, s: State, a: Action, args: tuple[int, ...], *, prune: bool) -> bool:
        """The guard, plus (for exploration) the pruning filter."""
        if not a.guard(CONCRETE, s, *args):
            return False
        return not (prune and a.prune is not None and not a.prune(CONCRETE, s, *args))

    def apply(self, s: State, name: str, args: tuple[int, ...]) -> Step:
        """Take one step from a concrete state; raises if the guard is false."""
        a = self.action(name)
        if not a.guard(CONCRETE, s, *args):
            raise ValueError(f"{name}{args} is not enabled in this state")
        post, result = a.effect(CONCRETE, s, *args)
        return Step(name, args, int(result), tuple(int(v) for v in post))

    def mid(self, s: State, name: str, args: tuple[int, ...]) -> State:
        """The state after the action's prelude: what the operation itself sees."""
        a = self.action(name)
        if a.prelude is None:
            return s
        return tuple(int(v) for v in a.prelude(CONCRETE, s, *args))

    def successors(self, s: State, *, prune: bool = True) -> Iterator[Step]:
        """Every enabled step from ``s``."""
        for a in self.actions:
            for args in a.instances():
                if self.enabled(s, a, args, prune=prune):
                    post, result = a.effect(CONCRETE, s, *args)
                    yield Step(a.name, args, int(result), tuple(int(v) for v in post))

    def label(self, name: str, args: tuple[int, ...]) -> str:
        """A readable name of an action instance, e.g. ``fetch(w1)``."""
        if self.describe_args is not None:
            return self.describe_args(name, args)
        return f"{name}({', '.join(map(str, args))})"


def unpruned(m: Model) -> Model:
    """The same model with no explorer filter: every instance a client could call.

    A filter is sound only where a skipped step's effect equals another, kept
    step's (a rejected ack is a heartbeat). A mutant breaks exactly such
    equalities, so mutants are always explored unpruned."""
    acts = tuple(Action(a.name, a.params, a.guard, a.effect, a.kind, a.doc, a.prelude, None)
                 for a in m.actions)
    return Model(m.name, m.layout, m.init, acts, m.config, m.canon, m.describe_args, m.mutant,
                 dict(m.extra))


def memoised(o: Ops, tag: object, s: SymState,
             fn: Callable[[], tuple[V, ...]]) -> tuple[V, ...]:
    """``fn()``, shared among all callers with the same ``tag`` and input under a
    memoising interpretation (the solver's: one step's instances then share one
    prelude term); every other interpretation just computes it."""
    memo = getattr(o, "memo", None)
    return fn() if memo is None else memo(tag, s, fn)


def shared(o: Ops, tag: object, s: SymState, arg: V,
           fn: Callable[[V], tuple[V, ...]]) -> tuple[V, ...]:
    """``fn(arg)``; under an interpretation that can ``pick`` (the solver's), one
    ``fn(x)`` serves every instance of a step, ``x`` being the ``arg`` of the
    instance that fires. Every other interpretation just computes ``fn(arg)``."""
    pick = getattr(o, "pick", None)
    x = pick(tag, arg) if pick is not None else None
    if x is None:
        return memoised(o, (tag, arg), s, lambda: fn(arg))
    return memoised(o, tag, s, lambda: fn(x))


def count(o: Ops, xs: Sequence[V]) -> V:
    """How many of the booleans ``xs`` hold."""
    total: V = 0
    for x in xs:
        total = total + o.b2i(x)
    return total


def clamp(o: Ops, y: V, lo: int, hi: int) -> V:
    """``y`` kept inside ``[lo, hi]``.

    An interpretation may supply its own ``clamp`` (the interval analysis of
    the solver's bit widths does: a join of the ``ite`` branches cannot see
    that the result is bounded); every other one uses the ``ite`` chain."""
    own = getattr(o, "clamp", None)
    if own is not None:
        return own(y, lo, hi)
    return o.ite(y > hi, hi, o.ite(y < lo, lo, y))


def clamp_add(o: Ops, x: V, d: int, lo: int, hi: int) -> V:
    """``x + d`` kept inside ``[lo, hi]``: relative time saturates instead of growing."""
    return clamp(o, x + d, lo, hi)


# ------------------------------------------------------------------ composition


def _lift(a: Action, prefix: str, lo: int, hi: int, name: str | None = None) -> Action:
    """An action of a part, acting on its slice ``[lo:hi]`` of the composite state."""

    def guard(o: Ops, s: SymState, *args: int) -> V:
        return a.guard(o, s[lo:hi], *args)

    def effect(o: Ops, s: SymState, *args: int) -> tuple[tuple[V, ...], V]:
        post, r = a.effect(o, s[lo:hi], *args)
        return (*s[:lo], *post, *s[hi:]), r

    def lift_pre(p: Prelude) -> Prelude:
        def pre(o: Ops, s: SymState, *args: int) -> tuple[V, ...]:
            return (*s[:lo], *p(o, s[lo:hi], *args), *s[hi:])
        return pre

    def lift_guard(g: Guard) -> Guard:
        def lifted(o: Ops, s: SymState, *args: int) -> V:
            return g(o, s[lo:hi], *args)
        return lifted

    return Action(name or f"{prefix}.{a.name}", a.params, guard, effect, a.kind, a.doc,
                  lift_pre(a.prelude) if a.prelude else None,
                  lift_guard(a.prune) if a.prune else None)


def _tick_both(left: Action, right: Action, n: int) -> Action:
    """Time is shared: one ``advance`` moves both parts' clocks together."""

    def effect(o: Ops, s: SymState) -> tuple[tuple[V, ...], V]:
        a, _ = left.effect(o, s[:n])
        b, _ = right.effect(o, s[n:])
        return (*a, *b), 1

    return Action("advance", (), left.guard, effect, "time",
                  "One tick passes for every part at once.")


def compose(left: Model, right: Model) -> Model:
    """The interleaving product of two models that share only time.

    Every action of a part acts on its own slice of the state (named
    ``part.action``); ``advance`` moves both. Invariants of each part are checked
    on its projection (``taskward.specs.invariants.applicable``)."""
    n, size = left.layout.size, left.layout.size + right.layout.size
    fields = [replace_field(f, f"{left.name.split('[')[0]}.{f.name}") for f in left.layout.fields]
    fields += [replace_field(f, f"{right.name.split('[')[0]}.{f.name}")
               for f in right.layout.fields]
    lp, rp = left.name.split("[")[0], right.name.split("[")[0]
    acts = [_lift(a, lp, 0, n) for a in left.actions if a.name != "advance"]
    acts += [_lift(a, rp, n, size) for a in right.actions if a.name != "advance"]
    acts.append(_tick_both(left.action("advance"), right.action("advance"), n))

    def describe(name: str, args: tuple[int, ...]) -> str:
        if name == "advance":
            return "advance()"
        part, _, base = name.partition(".")
        return f"{part}.{(left if part == lp else right).label(base, args)}"

    return Model(f"composed[{left.name}+{right.name}]", Layout(fields),
                 (*left.init, *right.init), tuple(acts), _ComposedConfig(left, right),
                 describe_args=describe, extra={"parts": ((lp, left, 0, n), (rp, right, n, size))})


def replace_field(f: Field, name: str) -> Field:
    return Field(name, f.size, f.lo, f.hi, f.doc, f.ghost)


class _ComposedConfig:
    """The bound of a composite: both parts' bounds side by side."""

    def __init__(self, left: Model, right: Model) -> None:
        self.parts = (left, right)

    def bound(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for m in self.parts:
            out |= {f"{m.name.split('[')[0]}.{k}": v for k, v in m.config.bound().items()}
        return out
