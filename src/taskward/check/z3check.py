"""Bounded model checking and inductive proofs with Z3, over the model's own actions.

The explorer stops where enumeration stops; these checks give a verdict for
every depth (induction) or for a stated depth (BMC) at sizes the explorer
cannot reach. Both return the :class:`~taskward.check.verdict.Result` rows
every checker shares: ``pass`` only when every query was answered ``unsat``,
``unknown`` when any query timed out, ``fail`` only with a trace that has been
replayed through the executable model and re-checked with concrete ops.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import z3

from taskward.check.explorer import Counterexample, TraceStep, diff, replay, unfinished
from taskward.check.verdict import Result, Verdict
from taskward.check.z3param import prove_parametric
from taskward.models import broker as B
from taskward.models import election as E
from taskward.models.core import CONCRETE, Model, State
from taskward.specs import z3enc as Z
from taskward.specs.invariants import INVARIANTS as C_INVS
from taskward.specs.invariants import Invariant, applicable

Progress = Callable[[str], None]
SAFETY = ("I1", "I2", "I3a", "I3b", "I4", "I6", "I7", "I9")


def safety_of(m: Model, invariants: list[str] | None = None) -> list[Invariant]:
    """The safety invariants that speak about ``m`` (optionally only the named ones)."""
    return [i for i in applicable(m) if i.kind == "safety"
            and (invariants is None or i.id in invariants)]


class _Timer:
    """Runs solver queries with a per-query timeout and keeps the time they took."""

    def __init__(self, timeout_s: float, solver: Any = None) -> None:
        self.timeout_ms = max(1, int(timeout_s * 1000))
        self.solver = solver if solver is not None else z3.Solver()
        self.solver.set("timeout", self.timeout_ms)
        self.last_model: Any = None
        self.seconds = 0.0
        self.queries = 0
        self.slowest = 0.0

    def check(self, *goal: Any, scratch: bool = False) -> Any:
        """``sat``/``unsat``/``unknown`` of the current assertions plus ``goal``.

        The goal is kept aside (push/pop) unless ``scratch``: the solver is then
        used once and stays non-incremental, which lets it bit-blast up front."""
        if not scratch:
            self.solver.push()
        self.solver.add(*goal)
        t = time.perf_counter()
        r = self.solver.check()
        dt = time.perf_counter() - t
        self.seconds += dt
        self.queries += 1
        self.slowest = max(self.slowest, dt)
        self.last_model = self.solver.model() if r == z3.sat else None
        if not scratch:
            self.solver.pop()
        return r

    def stats(self) -> dict[str, Any]:
        return {"solver_s": round(self.seconds, 3), "queries": self.queries,
                "slowest_query_s": round(self.slowest, 3)}


# ------------------------------------------------------------------------ BMC


@dataclass
class _Track:
    """Where one invariant stands in the incremental BMC run."""

    inv: Invariant
    verdict: Verdict | None = None
    depth_ok: int = -1
    seconds: float = 0.0
    queries: int = 0
    cex: Counterexample | None = None
    note: str = ""


@dataclass
class _Unroll:
    """The growing unrolling: frames ``s0..sk``, the steps between them, what is proven."""

    m: Model
    timer: _Timer
    frames: list[Any] = field(default_factory=list)
    steps: list[Z.StepEnc] = field(default_factory=list)
    cons: list[Any] = field(default_factory=list)
    """Init, every step relation, and every invariant already proven at a shallower depth."""
    from_init: bool = True
    """False: frame 0 is any state (the caller constrains it)."""
    tag: str = ""

    def extend(self) -> None:
        k = len(self.frames)
        self.frames.append(Z.frame(self.m, f"{self.tag}{k}"))
        if k == 0:
            if self.from_init:
                self.cons.append(Z.init_eq(self.m, self.frames[0]))
            return
        st = Z.step(self.m, self.frames[k - 1], self.frames[k], f"{self.tag}{k}")
        self.cons.append(st.relation())
        self.steps.append(st)

    def holds_last(self, inv: Invariant) -> Any:
        """``inv`` at the newest frame, and on the newest step when it has step predicates."""
        ok = Z.state_holds(inv, self.m, self.frames[-1])
        if self.steps and inv.steps:
            ok = z3.And(ok, Z.step_holds(inv, self.steps[-1]))
        return ok

    def fresh(self) -> None:
        """A new bit-vector solver holding the unrolling so far (one query per depth)."""
        self.timer.solver = _bv_solver(self.timer.timeout_ms / 1000)
        self.timer.solver.add(*self.cons)


def bmc(model: Model, depth: int, timeout_s: float = 10.0, *,
        invariants: list[str] | None = None, budget_s: float | None = None,
        progress: Progress | None = None) -> list[Result]:
    """Every applicable safety invariant on every path of at most ``depth`` steps from init.

    Per depth, one query asks for a path that breaks any invariant not yet
    decided; a model names every invariant it breaks (each gets its replayed
    trace) and the query is repeated for the rest. Once an invariant holds at
    a depth it is kept as a fact for the deeper queries (sound: it holds on
    every path of that length). ``budget_s`` stops deepening; what is left is
    ``unknown`` with the depth it reached."""
    timer = _Timer(timeout_s)
    un = _Unroll(model, timer)
    tracks = [_Track(i) for i in safety_of(model, invariants)]
    start = time.perf_counter()
    for k in range(depth + 1):
        if budget_s is not None and time.perf_counter() - start > budget_s:
            break
        un.extend()
        _bmc_depth(un, [tr for tr in tracks if tr.verdict is None], k)
        if budget_s is not None and time.perf_counter() - start > budget_s:
            _over_budget(tracks, k)
            break
        if progress is not None:
            progress(f"z3-bmc {model.name}: depth {k} ({timer.seconds:.1f}s solver)")
        if all(tr.verdict is not None for tr in tracks):
            break
    return [_bmc_result(model, tr, depth, timer) for tr in tracks]


def _over_budget(tracks: list[_Track], k: int) -> None:
    """A depth finished after the budget does not count as reached within it."""
    for tr in tracks:
        if tr.verdict is None and tr.depth_ok == k:
            tr.depth_ok = k - 1


def _bmc_depth(un: _Unroll, open_: list[_Track], k: int) -> None:
    """Decide every open invariant at depth ``k``: holds, broken (with a trace) or unknown."""
    oks = {id(tr): un.holds_last(tr.inv) for tr in open_}
    while open_:
        un.fresh()
        before = un.timer.seconds
        r = un.timer.check(z3.Not(z3.And([oks[id(tr)] for tr in open_])), scratch=True)
        for tr in open_:
            tr.seconds += un.timer.seconds - before
            tr.queries += 1
        if r == z3.unsat:
            for tr in open_:
                tr.depth_ok = k
            un.cons += [oks[id(tr)] for tr in open_]
            return
        if r != z3.sat:
            for tr in open_:
                tr.verdict = "unknown"
                tr.note = f"solver gave up at depth {k} ({un.timer.solver.reason_unknown()})"
            return
        zm = un.timer.last_model
        broken = [tr for tr in open_ if z3.is_false(zm.eval(oks[id(tr)], model_completion=True))]
        for tr in broken:
            tr.verdict = "fail"
            tr.cex = decode_trace(un, zm, tr.inv)
        open_ = [tr for tr in open_ if tr.verdict is None]


def _bmc_result(m: Model, tr: _Track, depth: int, timer: _Timer) -> Result:
    verdict: Verdict = tr.verdict or ("pass" if tr.depth_ok >= depth else "unknown")
    if verdict == "unknown" and not tr.note:
        tr.note = f"time budget reached after depth {tr.depth_ok}"
    if verdict == "pass":
        tr.note = f"no violation on any path of at most {depth} steps"
    stats = {"solver_s": round(tr.seconds, 3), "queries": tr.queries,
             "depth_reached": tr.depth_ok, "total_solver_s": round(timer.seconds, 3)}
    if tr.cex is not None:
        stats["length"] = len(tr.cex.steps)
    return Result(tr.inv.id, "z3-bmc", verdict, {**m.config.bound(), "depth": depth}, stats,
                  tr.cex.to_json() if tr.cex is not None else None, m.name, tr.note)


def decode_trace(un: _Unroll, zm: Any, inv: Invariant) -> Counterexample:
    """The solver's path as a model trace, replayed and re-checked with concrete ops.

    Raises ``AssertionError`` when the replay disagrees with the solver's frames
    or does not violate ``inv``: either would mean the encoding is wrong."""
    m = un.m
    path = [Z.decode_step(st, zm) for st in un.steps]
    steps = replay(m, path)
    states = [m.init, *[st.post for st in steps]]
    for k, fr in enumerate(un.frames):
        if Z.decode_state(m, fr, zm) != states[k]:
            raise AssertionError(f"solver frame {k} differs from the replayed model state")
    if not violates(m, inv, states, path):
        raise AssertionError(f"replayed trace does not violate {inv.id}: encoding bug")
    out = []
    for k, (name, args) in enumerate(path):
        out.append(TraceStep(name, args, m.label(name, args), steps[k].result,
                             diff(m, states[k], states[k + 1])))
    return Counterexample(inv.id, out, note=f"found by z3-bmc at depth {len(path)}")


def violates(m: Model, inv: Invariant, states: list[State],
             path: list[tuple[str, tuple[int, ...]]]) -> bool:
    """Does the last state or the last step of a concrete run break ``inv``?"""
    if inv.state is not None and not inv.state(CONCRETE, m, states[-1]):
        return True
    if not path:
        return False
    name, args = path[-1]
    pre, post = states[-2], states[-1]
    result = m.apply(pre, name, args).result
    mid = m.mid(pre, name, args)
    return any(not p(CONCRETE, m, pre, mid, post, args, result) for p in inv.step_preds(name))


def max_depth_within(model: Model, seconds: float, timeout_s: float = 60.0) -> int:
    """The deepest ``k`` such that BMC proved every safety invariant up to ``k`` in time."""
    rows = bmc(model, 10_000, timeout_s=min(timeout_s, seconds), budget_s=seconds)
    return min((int(r.stats["depth_reached"]) for r in rows if r.verdict != "fail"),
               default=-1)


# ------------------------------------------------------------------ induction


def conjuncts(m: Model, inv: Invariant) -> list[tuple[str, Callable[[Any], Any]]]:
    """The inductive invariant for ``inv``: slot ranges, the claim's state part, its lemmas."""
    out: list[tuple[str, Callable[[Any], Any]]] = [("slot-ranges", lambda s: Z.type_inv(m, s))]
    if inv.state is not None:
        out.append((inv.id, lambda s: Z.state_holds(inv, m, s)))
    for lm in Z.strengthening(inv):
        out.append((lm.name, _lemma_term(m, lm)))
    return out


def _lemma_term(m: Model, lm: Z.Lemma) -> Callable[[Any], Any]:
    return lambda s: Z.as_bool(lm.pred(Z.ops_for(m), m, s))


def _concrete_holds(m: Model, inv: Invariant, name: str) -> bool:
    """A conjunct on the (concrete) initial state, evaluated by the solver for uniformity."""
    for n, f in conjuncts(m, inv):
        if n == name:
            return bool(z3.is_true(z3.simplify(f(Z.concrete_frame(m, m.init)))))
    raise KeyError(name)


def induction(model: Model, timeout_s: float = 30.0, *,
              invariants: list[str] | None = None,
              progress: Progress | None = None) -> list[Result]:
    """``Init => Inv``, ``Inv and Next => Inv'`` and ``Inv => Safety`` per safety invariant.

    ``Inv`` is the claim plus its strengthening (:func:`taskward.specs.z3enc.strengthening`)
    plus the slot ranges, so every lemma is proven along with the claim, never
    assumed. ``Inv => Safety`` is immediate for the state part (it is a
    conjunct) and is the transition predicate itself for the step part, proven
    in the consecution query. A failed consecution query is not a
    counterexample (the pre-state need not be reachable): the verdict is
    ``unknown`` with the decoded CTI."""
    pre, post = Z.frame(model, "pre"), Z.frame(model, "post")
    st = Z.step(model, pre, post, "next")
    rows = []
    for inv in safety_of(model, invariants):
        rows.append(_induct(model, inv, st, timeout_s))
        if progress is not None:
            progress(f"z3-induction {model.name} {inv.id}: {rows[-1].verdict}")
    return rows


def _bv_solver(timeout_s: float) -> Any:
    """A fresh bit-vector solver. Bit-blasted, the hardest consecution query (I6 under
    round-robin) takes seconds where integer arithmetic timed out after a minute, and
    a non-incremental solver per BMC depth beats an incremental one by an order of
    magnitude at every depth measured."""
    s = z3.SolverFor("QF_BV")
    s.set("timeout", max(1, int(timeout_s * 1000)))
    return s


def _induct(m: Model, inv: Invariant, st: Z.StepEnc, timeout_s: float) -> Result:
    parts = conjuncts(m, inv)
    bound = {**m.config.bound(), "depth": "unbounded"}
    lemmas = [lm.name for lm in Z.strengthening(inv)]
    stats: dict[str, Any] = {"solver_s": 0.0, "queries": 0, "lemmas": lemmas}
    bad_init = [n for n, _ in parts if not _concrete_holds(m, inv, n)]
    if bad_init:
        return Result(inv.id, "z3-induction", "unknown", bound, stats, None, m.name,
                      f"Init => Inv fails for {', '.join(bad_init)}")
    goals = [(n, f(st.post)) for n, f in parts]
    if inv.steps:
        goals.append((f"{inv.id} (transition)", Z.step_holds(inv, st)))
    timer = _Timer(timeout_s, _bv_solver(timeout_s))
    timer.solver.add(st.relation(), *[f(st.pre) for _, f in parts])
    r = timer.check(z3.Not(z3.And([g for _, g in goals])))
    stats.update(solver_s=round(timer.seconds, 3), queries=timer.queries)
    if r == z3.unsat:
        return Result(inv.id, "z3-induction", "pass", bound, stats, None, m.name,
                      f"inductive with {', '.join(lemmas) or 'no lemma'}")
    if r != z3.sat:
        return Result(inv.id, "z3-induction", "unknown", bound, stats, None, m.name,
                      f"solver gave up ({timer.solver.reason_unknown()})")
    zm = timer.last_model
    broken = [n for n, g in goals if z3.is_false(zm.eval(g, model_completion=True))]
    cti = decode_cti(m, st, zm, ", ".join(broken))
    stats["cti"] = {k: v for k, v in cti.items() if k != "text"}
    return Result(inv.id, "z3-induction", "unknown", bound, stats, None, m.name, cti["text"])


def decode_cti(m: Model, st: Z.StepEnc, zm: Any, broken: str) -> dict[str, Any]:
    """A counterexample to induction, readably: the pre-state, the step, what changed."""
    pre = Z.decode_state(m, st.pre, zm)
    post = Z.decode_state(m, st.post, zm)
    name, args = Z.decode_step(st, zm)
    label = m.label(name, args)
    changes = diff(m, pre, post)
    shown = ", ".join(f"{k}: {a}->{b}" for k, (a, b) in changes.items())
    text = (f"CTI: {broken} does not survive {label} from a state satisfying Inv: "
            f"{m.layout.decode(pre)}; changes {shown or 'nothing'}")
    return {"broken": broken, "action": name, "args": list(args), "label": label,
            "pre": m.layout.decode(pre), "changes": {k: [a, b] for k, (a, b) in changes.items()},
            "text": text}


# ------------------------------------------------------------------ progress


RAISES_RANK = frozenset({"publish", "extend"})


def ranking(model: Model, timeout_s: float = 30.0) -> list[Result]:
    """The ranking half of I5, proven for every state satisfying I9's inductive invariant.

    Proven: (a) no step other than publish or extend raises
    :func:`~taskward.specs.z3enc.progress_rank`; (b) it strictly falls on every
    fetch that delivers, every accepted ack or nack, and every advance while
    some lease has time left; (c) it is 0 exactly when no task is READY or
    LEASED. Not proven here: that a weakly fair run without publish/extend
    takes a falling step within a fixed number of steps (the explorer's
    fair-cycle search covers that at small bounds)."""
    if not model.name.startswith("broker"):
        return []
    inv = next(i for i in C_INVS if i.id == "I9")
    pre, post = Z.frame(model, "pre"), Z.frame(model, "post")
    st = Z.step(model, pre, post, "next")
    r0, r1 = (Z.num(model, Z.progress_rank(Z.ops_for(model), model, x)) for x in (pre, post))
    timer = _Timer(timeout_s, _bv_solver(timeout_s))
    timer.solver.add(st.relation(), *[f(pre) for _, f in conjuncts(model, inv)])
    goals = [("never-raised", z3.Or(_acts(st, RAISES_RANK), r1 <= r0)),
             ("falls-on-progress", z3.Or(z3.Not(_progress_step(model, st)), r1 < r0)),
             ("zero-iff-finished", (r0 == 0) == z3.Not(_unfinished(model, pre)))]
    failed = [n for n, g in goals if timer.check(z3.Not(g)) != z3.unsat]
    verdict: Verdict = "unknown" if failed else "pass"
    note = (f"not proven: {', '.join(failed)}" if failed else
            "rank never rises except by publish/extend, falls on every delivery, accepted "
            "ack/nack and running-lease tick; fair-window bound not proven")
    return [Result("I5", "z3-ranking", verdict, {**model.config.bound(), "depth": "unbounded"},
                   {**timer.stats(), "goals": [n for n, _ in goals]}, None, model.name, note)]


def _acts(st: Z.StepEnc, names: frozenset[str]) -> Any:
    return z3.Or([st.act == i for i, (a, _) in enumerate(st.insts) if a.name in names])


def _progress_step(m: Model, st: Z.StepEnc) -> Any:
    """The instance that fires is one the ranking must strictly fall on."""
    L, c = m.layout, m.config
    parts = []
    for i, (a, _) in enumerate(st.insts):
        if a.name == "fetch":
            parts.append(z3.And(st.act == i, Z.num(m, st.results[i]) != B.NONE))
        elif a.name in ("ack", "nack"):
            parts.append(z3.And(st.act == i, Z.num(m, st.results[i]) == 1))
        elif a.name == "advance":
            running = z3.Or([z3.And(L.get(st.pre, "st", t) == B.LEASED,
                                    L.get(st.pre, "exp", t) > 0) for t in range(c.tasks)])
            parts.append(z3.And(st.act == i, running))
    return z3.Or(parts)


def _unfinished(m: Model, s: Any) -> Any:
    L = m.layout
    return z3.Or([z3.Or(L.get(s, "st", t) == B.READY, L.get(s, "st", t) == B.LEASED)
                  for t in range(m.config.tasks)])


@dataclass(frozen=True)
class FairWindow:
    """The scheduling assumption of the bounded progress proof (I5).

    Within every ``k`` consecutive steps, ``advance`` fires (time passes) and
    every worker that is up throughout calls ``fetch``: *k-bounded weak
    fairness*, the bounded form of the weak fairness I5 assumes. Publishing
    and extending have stopped, at least one worker stays up, and every worker
    that is up stays live (is seen within ``worker_timeout``): the two
    assumptions without which the explorer shows I5 failing."""

    k: int

    def text(self) -> str:
        return (f"no publish or extend; at least one worker stays up and every up worker "
                f"stays live; within every {self.k} consecutive steps time advances and "
                f"every worker up throughout fetches")


def fair_window(m: Model) -> FairWindow:
    """The tightest window every worker's fetch and one advance fit in."""
    return FairWindow(m.config.workers + 1)


class _FairPath:
    """``n`` steps from an arbitrary state satisfying Inv, under the fairness window."""

    def __init__(self, m: Model, win: FairWindow) -> None:
        self.m, self.win = m, win
        self.un = _Unroll(m, _Timer(1.0), from_init=False, tag="f")
        self.frames, self.steps = self.un.frames, self.un.steps

    def grow(self, n: int) -> None:
        while len(self.frames) < n + 1:
            self.un.extend()

    def rank(self, j: int) -> Any:
        return Z.num(self.m, Z.progress_rank(Z.ops_for(self.m), self.m, self.frames[j]))

    def constraints(self, n: int, inv: list[Any]) -> list[Any]:
        """Inv at the start, the steps, and the environment assumptions of :class:`FairWindow`."""
        out = [*inv, *self.un.cons[:n]]
        out += [z3.Not(_acts(st, RAISES_RANK)) for st in self.steps[:n]]
        out += [_active(self.m, fr) for fr in self.frames[: n + 1]]
        out += self._windows(n)
        return out

    def _windows(self, n: int) -> list[Any]:
        L, k = self.m.layout, self.win.k
        out = []
        for j in range(0, n - k + 1):
            window = self.steps[j : j + k]
            out.append(z3.Or([_acts(st, frozenset({"advance"})) for st in window]))
            for w in range(self.m.config.workers):
                up = z3.And([L.get(self.frames[i], "up", w) == 1 for i in range(j, j + k + 1)])
                fetched = z3.Or([_fires(st, "fetch", (w,)) for st in window])
                out.append(z3.Implies(up, fetched))
        return out


def _fires(st: Z.StepEnc, name: str, args: tuple[int, ...]) -> Any:
    return z3.Or([st.act == i for i, (a, ar) in enumerate(st.insts)
                  if a.name == name and ar == args])


def progress_bound(model: Model, timeout_s: float = 30.0, *, max_steps: int = 24,
                   budget_s: float = 60.0, lasso_len: int = 12,
                   progress: Progress | None = None) -> list[Result]:
    """I5's bound: under :class:`FairWindow` the rank falls within ``N`` steps, least ``N``.

    For ``n = 1, 2, ...`` ask for an ``n``-step path from any state satisfying
    I9's inductive invariant (so from every reachable state) with unfinished
    tasks, obeying the window, on which the rank has not fallen. ``sat`` at
    ``n - 1`` and ``unsat`` at ``n`` make ``n`` the exact bound; a separate
    query shows the assumptions are satisfiable at that length (no vacuous
    pass). With the rank's bound ``r0`` this gives every task ACKED or DEAD
    within ``n * r0`` steps. When no bound is found, :func:`fair_lasso` looks
    for a reachable fair cycle that never finishes a task: ``fail`` with the
    replayed lasso if there is one of at most ``lasso_len`` steps, else
    ``unknown``."""
    if not model.name.startswith("broker"):
        return []
    win = fair_window(model)
    path = _FairPath(model, win)
    path.grow(0)
    inv = [f(path.frames[0]) for _, f in conjuncts(model, next(i for i in C_INVS if i.id == "I9"))]
    timer = _Timer(timeout_s)
    bound = {**model.config.bound(), "depth": "unbounded", "window": win.k}
    start, last_sat = time.perf_counter(), 0
    for n in range(1, max_steps + 1):
        if time.perf_counter() - start > budget_s:
            break
        path.grow(n)
        timer.solver = _bv_solver(timeout_s)
        timer.solver.add(*path.constraints(n, inv))
        r = timer.check(path.rank(0) > 0, path.rank(n) >= path.rank(0), scratch=True)
        if progress is not None:
            progress(f"z3-progress {model.name}: {n} steps: {r}")
        if r == z3.sat:
            last_sat = n
            continue
        if r != z3.unsat:
            break
        return [_progress_result(model, path, n, inv, timer, bound, win, last_sat)]
    cex = fair_lasso(model, lasso_len, timeout_s, timer, progress=progress)
    stats = {**timer.stats(), "no_fall_within": last_sat, "lasso_searched_to": lasso_len}
    if cex is not None:
        stats["length"] = len(cex.steps)
        return [Result("I5", "z3-progress", "fail", {**bound, "depth": lasso_len}, stats,
                       cex.to_json(), model.name, cex.note)]
    note = (f"the rank did not provably fall within {last_sat} steps, no bound was found "
            f"within the budget and no fair non-finishing cycle of at most {lasso_len} "
            f"steps exists ({win.text()})")
    return [Result("I5", "z3-progress", "unknown", bound, stats, None, model.name, note)]


@dataclass
class _Lasso:
    """A path ``s0..sT`` from init whose suffix from a chosen ``sj`` returns to ``sj``."""

    un: _Unroll
    loop: list[Any]
    """``loop[j]``: the cycle starts at frame ``j`` (exactly one holds)."""

    def in_loop(self, i: int) -> Any:
        """Step ``i`` (from frame ``i`` to ``i + 1``) lies on the cycle."""
        return z3.Or(self.loop[: i + 1])

    def constraints(self) -> list[Any]:
        """Init and steps; the cycle closes, never publishes or extends, keeps every up
        worker live, lets time pass and has every up worker fetch (and get nothing,
        since the rank cannot fall on a cycle it returns from)."""
        m, un = self.un.m, self.un
        L, c, T = m.layout, m.config, len(un.steps)
        out = [*un.cons, z3.PbEq([(x, 1) for x in self.loop], 1)]
        for j, lj in enumerate(self.loop):
            same = z3.And([a == b for a, b in zip(un.frames[j], un.frames[T], strict=True)])
            out.append(z3.Implies(lj, z3.And(same, _unfinished(m, un.frames[j]))))
        for i, st in enumerate(un.steps):
            on = self.in_loop(i)
            out.append(z3.Implies(on, z3.And(z3.Not(_acts(st, RAISES_RANK)),
                                             _active(m, un.frames[i + 1]))))
        out.append(z3.Or([z3.And(self.in_loop(i), _acts(st, frozenset({"advance"})))
                          for i, st in enumerate(un.steps)]))
        for w in range(c.workers):
            fetched = z3.Or([z3.And(self.in_loop(i), _fires(st, "fetch", (w,)))
                             for i, st in enumerate(un.steps)])
            out.append(z3.Implies(L.get(un.frames[T], "up", w) == 1, fetched))
        return out


def _active(m: Model, s: Any) -> Any:
    """Some worker is up and every up worker is live: the explorer's ``_active``."""
    L, c = m.layout, m.config
    ups = [L.get(s, "up", w) == 1 for w in range(c.workers)]
    return z3.And(z3.Or(ups), *[z3.Implies(u, L.get(s, "age", w) < c.worker_timeout)
                                for w, u in enumerate(ups)])


def fair_lasso(model: Model, max_len: int, timeout_s: float = 30.0, timer: _Timer | None = None,
               *, progress: Progress | None = None) -> Counterexample | None:
    """The shortest reachable fair cycle (of at most ``max_len`` steps in all) that
    never finishes a task: a counterexample to I5, replayed in the model.

    Repeating the cycle forever is a run in which publishing has stopped, some
    worker stays up and live, time passes and every up worker keeps fetching
    and getting nothing, so no task ever becomes ACKED or DEAD."""
    timer = timer or _Timer(timeout_s)
    un = _Unroll(model, timer)
    un.extend()
    for n in range(1, max_len + 1):
        un.extend()
        lasso = _Lasso(un, [z3.Bool(f"loop{n}_{j}") for j in range(n)])
        timer.solver = _bv_solver(timeout_s)
        timer.solver.add(*lasso.constraints())
        r = timer.check(scratch=True)
        if progress is not None:
            progress(f"z3-progress {model.name}: fair cycle within {n} steps: {r}")
        if r == z3.sat:
            return _decode_lasso(lasso, timer.last_model)
        if r != z3.unsat:
            return None
    return None


def _decode_lasso(lasso: _Lasso, zm: Any) -> Counterexample:
    """The solver's lasso as a model trace; raises if the replay does not close the cycle."""
    un, m = lasso.un, lasso.un.m
    j = next(i for i, x in enumerate(lasso.loop) if z3.is_true(zm.eval(x, model_completion=True)))
    path = [Z.decode_step(st, zm) for st in un.steps]
    steps = replay(m, path)
    states = [m.init, *[st.post for st in steps]]
    if states[j] != states[-1] or not unfinished(m, states[j]):
        raise AssertionError("replayed lasso does not return to an unfinished state: encoding bug")
    out = [TraceStep(name, args, m.label(name, args), steps[k].result,
                     diff(m, states[k], states[k + 1])) for k, (name, args) in enumerate(path)]
    return Counterexample("I5", out, loop_from=j,
                          note=f"found by z3-progress: a fair cycle of {len(path) - j} steps "
                               "in which no task is ever finished")


def _progress_result(m: Model, path: _FairPath, n: int, inv: list[Any], timer: _Timer,
                     bound: dict[str, Any], win: FairWindow, last_sat: int) -> Result:
    """``pass`` only if the assumptions admit an ``n``-step path with unfinished tasks,
    and I9's invariant (the start states) is inductive at this very size, so that
    it covers every reachable state."""
    timer.solver = _bv_solver(timer.timeout_ms / 1000)
    timer.solver.add(*path.constraints(n, inv))
    vac = timer.check(path.rank(0) > 0, scratch=True)
    (premise,) = induction(m, timer.timeout_ms / 1000, invariants=["I9"])
    stats = {**timer.stats(), "steps": n, "window": win.k, "tight": last_sat == n - 1}
    stats["solver_s"] = round(stats["solver_s"] + float(premise.stats["solver_s"]), 3)
    if vac != z3.sat:
        return Result("I5", "z3-progress", "unknown", bound, stats, None, m.name,
                      f"vacuous: no {n}-step path satisfies the assumptions ({win.text()})")
    if premise.verdict != "pass":
        return Result("I5", "z3-progress", "unknown", bound, stats, None, m.name,
                      f"the rank falls within {n} steps from every state satisfying Inv, but "
                      f"Inv is not proven inductive at this size ({premise.note})")
    return Result("I5", "z3-progress", "pass", bound, stats, None, m.name,
                  f"from every state satisfying Inv the rank falls within {n} steps "
                  f"(exact: some path keeps it for {n - 1}); assumptions: {win.text()}")


# ------------------------------------------------------------------ defaults


def default_models() -> list[Model]:
    """The sizes the proofs are run at: 4 tasks, 3 workers per policy; 3 nodes."""
    out = [B.build(B.BrokerConfig(policy=p, workers=3, tasks=4, priorities=2, lease=2,
                                  max_deliveries=2, worker_timeout=2), symmetry=False)
           for p in B.POLICIES]
    out.append(E.build(E.ElectionConfig(nodes=3, lease=3, member_timeout=3, margin=1,
                                        max_pause=1, max_drift=0, stale_cap=3)))
    return out


def solver_seconds(rows: list[Result]) -> float:
    """Solver time of the rows, with each model's shared BMC queries counted once
    (a BMC query decides every open invariant together; each row carries its total)."""
    bmc_total = {r.model: float(r.stats.get("total_solver_s", 0) or 0)
                 for r in rows if r.checker == "z3-bmc"}
    rest = sum(float(r.stats.get("solver_s", 0) or 0) for r in rows if r.checker != "z3-bmc")
    return round(rest + sum(bmc_total.values()), 3)


def progress_models() -> list[Model]:
    """The sizes the I5 bound is proven at: the default sizes, except round-robin at
    2 workers and 3 tasks. Under round-robin a task queued at a crashed worker waits
    out ``worker_timeout`` and may be handed to another crashed but still live worker,
    so the bound grows with workers x worker_timeout x window: at 3 workers paths
    keep the rank for 15 steps and the 16-step query does not finish within a
    minute; at 2 workers the bound is 8 steps."""
    out = [m for m in default_models() if m.name.startswith("broker")
           and m.config.policy != "round_robin"]
    out.insert(1, B.build(B.BrokerConfig(policy="round_robin", workers=2, tasks=3, priorities=2,
                                         lease=2, max_deliveries=2, worker_timeout=2),
                          symmetry=False))
    return out


def prove_all(depth: int = 6, timeout_s: float = 30.0, *,
              progress: Progress | None = None) -> list[Result]:
    """Induction and BMC to ``depth`` for every default model, the I5 ranking and its
    fair-step bound, and the parametric proofs: the ``taskward prove`` rows."""
    rows: list[Result] = []
    for m in default_models():
        rows += induction(m, timeout_s, progress=progress)
        rows += ranking(m, timeout_s)
        rows += bmc(m, depth, timeout_s, progress=progress)
    for m in progress_models():
        rows += progress_bound(m, timeout_s, progress=progress)
    if progress is not None:
        progress("z3-parametric: I2 and I3a for any number of tasks, workers and nodes")
    rows += prove_parametric(timeout_s)
    return rows
