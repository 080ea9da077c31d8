"""Interval interpretation of the Ops vocabulary: how big can any computed value get?

The solver encodings use fixed-width bit-vectors, which agree with integer
arithmetic only while no value overflows. Rather than guess a width, run every
action, invariant, lemma and the progress rank of a model over *intervals*
(each slot ranging over its declared bounds, each branch joined) and record
the extremes of every intermediate value. Intervals over-approximate every
concrete run from every state inside the slot ranges, so a width that holds
those extremes holds every value the solver can ever build for that model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from taskward.models.core import Model, V


class Extremes:
    """The smallest and largest value seen by one interval analysis."""

    __slots__ = ("hi", "lo")

    def __init__(self) -> None:
        self.lo = 0
        self.hi = 0

    def see(self, lo: int, hi: int) -> None:
        self.lo = min(self.lo, lo)
        self.hi = max(self.hi, hi)


class Maybe:
    """A boolean that may be either (a comparison the intervals cannot decide)."""

    __slots__ = ()

    def __bool__(self) -> bool:
        raise TypeError("model code branched with Python 'if' on a state value; use o.ite")


MAYBE = Maybe()


class Iv:
    """An integer known to lie in ``[lo, hi]``; arithmetic widens, comparisons may decide."""

    __slots__ = ("ext", "hi", "lo")

    def __init__(self, lo: int, hi: int, ext: Extremes) -> None:
        self.lo, self.hi, self.ext = lo, hi, ext
        ext.see(lo, hi)

    def _mk(self, lo: int, hi: int) -> Iv:
        return Iv(lo, hi, self.ext)

    def _of(self, x: Any) -> Iv:
        if isinstance(x, Iv):
            return x
        if isinstance(x, bool) or not isinstance(x, int):
            raise TypeError(f"interval arithmetic with {x!r}")
        return self._mk(x, x)

    def __add__(self, x: Any) -> Iv:
        o = self._of(x)
        return self._mk(self.lo + o.lo, self.hi + o.hi)

    __radd__ = __add__

    def __sub__(self, x: Any) -> Iv:
        o = self._of(x)
        return self._mk(self.lo - o.hi, self.hi - o.lo)

    def __rsub__(self, x: Any) -> Iv:
        return self._of(x) - self

    def __neg__(self) -> Iv:
        return self._mk(-self.hi, -self.lo)

    def __mul__(self, x: Any) -> Iv:
        o = self._of(x)
        ends = [self.lo * o.lo, self.lo * o.hi, self.hi * o.lo, self.hi * o.hi]
        return self._mk(min(ends), max(ends))

    __rmul__ = __mul__

    def __lt__(self, x: Any) -> bool | Maybe:
        o = self._of(x)
        return True if self.hi < o.lo else False if self.lo >= o.hi else MAYBE

    def __le__(self, x: Any) -> bool | Maybe:
        o = self._of(x)
        return True if self.hi <= o.lo else False if self.lo > o.hi else MAYBE

    def __gt__(self, x: Any) -> bool | Maybe:
        return self._of(x) < self

    def __ge__(self, x: Any) -> bool | Maybe:
        return self._of(x) <= self

    def __eq__(self, x: Any) -> bool | Maybe:  # type: ignore[override]
        o = self._of(x)
        if self.hi < o.lo or o.hi < self.lo:
            return False
        return True if self.lo == self.hi == o.lo == o.hi else MAYBE

    def __ne__(self, x: Any) -> bool | Maybe:  # type: ignore[override]
        r = self == x
        return MAYBE if r is MAYBE else not r

    __hash__ = None  # type: ignore[assignment]


def _join(a: V, b: V, ext: Extremes) -> V:
    if isinstance(a, (bool, Maybe)) or isinstance(b, (bool, Maybe)):
        return a if a is b else MAYBE
    ia = a if isinstance(a, Iv) else Iv(a, a, ext)
    ib = b if isinstance(b, Iv) else Iv(b, b, ext)
    return Iv(min(ia.lo, ib.lo), max(ia.hi, ib.hi), ext)


class IntervalOps:
    """The Ops vocabulary over :class:`Iv`: undecided conditions join both branches."""

    __slots__ = ("ext",)

    def __init__(self, ext: Extremes) -> None:
        self.ext = ext

    def ite(self, c: V, a: V, b: V) -> V:
        if c is MAYBE:
            return _join(a, b, self.ext)
        return a if c else b

    def and_(self, *xs: V) -> V:
        if any(x is not MAYBE and not x for x in xs):
            return False
        return MAYBE if any(x is MAYBE for x in xs) else True

    def or_(self, *xs: V) -> V:
        if any(x is not MAYBE and x for x in xs):
            return True
        return MAYBE if any(x is MAYBE for x in xs) else False

    def not_(self, x: V) -> V:
        return MAYBE if x is MAYBE else not x

    def b2i(self, x: V) -> V:
        return Iv(0, 1, self.ext) if x is MAYBE else (1 if x else 0)

    def clamp(self, y: V, lo: int, hi: int) -> V:
        """``y`` inside ``[lo, hi]``: the exact range, which a join of branches would lose."""
        if not isinstance(y, Iv):
            return min(max(y, lo), hi)
        return Iv(min(max(y.lo, lo), hi), max(min(y.hi, hi), lo), self.ext)


StateFn = Callable[[IntervalOps, Model, list[Iv]], object]


def extremes(m: Model, state_fns: Iterable[StateFn] = (),
             step_fns: Iterable[Callable[..., object]] = ()) -> Extremes:
    """The value range of everything ``m``'s actions (and the given predicates) compute.

    ``state_fns`` are ``(ops, model, state)`` functions (invariants, lemmas,
    the rank); ``step_fns`` take ``(ops, model, pre, mid, post, args, result, name)``
    and the action's name, and run on every instance's own step."""
    ext = Extremes()
    o = IntervalOps(ext)
    s = [Iv(lo, hi, ext) for lo, hi in m.layout.bounds()]
    state_fns, step_fns = list(state_fns), list(step_fns)
    for f in state_fns:
        f(o, m, s)
    for a, args in m.instances():
        a.guard(o, s, *args)
        eff, res = a.effect(o, s, *args)
        mid = a.prelude(o, s, *args) if a.prelude else s
        for g in step_fns:
            g(o, m, s, list(mid), list(eff), args, res, a.name)
    return ext


def signed_width(ext: Extremes) -> int:
    """Bits of the smallest signed bit-vector holding every value in ``ext``."""
    need = max(ext.hi, -ext.lo - 1, 1)
    return need.bit_length() + 1
