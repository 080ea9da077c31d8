"""Exhaustive breadth-first exploration of a model, with shortest counterexamples.

Safety: every state invariant on every reachable state, every transition
invariant on every edge of the actions it names. BFS order makes the first
violation found for an invariant a shortest one.

Liveness: the reachable graph goes into networkx; a *fair cycle that avoids
progress* is a strongly connected component of the non-progress edges in which
every weakly fair action is either taken or disabled somewhere (for weak
fairness checking maximal components is exact: a cycle through all of a
component takes every action the component takes and visits every state where
one is disabled).
"""

from __future__ import annotations

import gc
import itertools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from taskward.models import broker as B
from taskward.models.compiled import state_check_fn, successors_fn
from taskward.models.core import CONCRETE, Model, State, Step
from taskward.specs.invariants import Invariant, applicable

Progress = Callable[[int, int, int], None]


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One step of a counterexample: what was done, what it answered, what changed."""

    action: str
    args: tuple[int, ...]
    label: str
    result: int
    changes: dict[str, tuple[Any, Any]]


@dataclass
class Counterexample:
    """A replayable path from the initial state, and for liveness the cycle it ends in."""

    invariant: str
    steps: list[TraceStep]
    loop_from: int | None = None
    """For liveness: the index in ``steps`` where the repeating cycle starts."""
    note: str = ""

    def to_json(self) -> list[dict[str, Any]]:
        return [{"i": i + 1, "action": s.action, "args": list(s.args), "label": s.label,
                 "result": s.result, "loop": self.loop_from is not None and i >= self.loop_from,
                 "changes": {k: [a, b] for k, (a, b) in s.changes.items()}}
                for i, s in enumerate(self.steps)]


@dataclass
class Exploration:
    """Everything one run found, with the statistics every verdict prints."""

    model: str
    bound: dict[str, Any]
    states: int = 0
    transitions: int = 0
    depth: int = 0
    seconds: float = 0.0
    complete: bool = False
    fired: Counter[str] = field(default_factory=Counter)
    violations: dict[str, Counterexample] = field(default_factory=dict)
    checked: list[str] = field(default_factory=list)
    liveness_checked: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.states / self.seconds if self.seconds > 0 else 0.0

    def never_fired(self, m: Model) -> list[str]:
        """Actions the model defines that no reachable state enabled: a vacuity warning."""
        return [a.name for a in m.actions if self.fired[a.name] == 0]


class _Graph:
    """Compact BFS bookkeeping: state ids, parents for shortest paths, labelled edges."""

    def __init__(self) -> None:
        self.index: dict[State, int] = {}
        self.states: list[State] = []
        self.parent: list[int] = []
        self.via: list[tuple[str, tuple[int, ...], int]] = []
        self.depth: list[int] = []
        self.edges: list[list[tuple[int, str, tuple[int, ...], int]]] = []

    def add(self, s: State, parent: int, via: tuple[str, tuple[int, ...], int], d: int) -> int:
        i = len(self.states)
        self.index[s] = i
        self.states.append(s)
        self.parent.append(parent)
        self.via.append(via)
        self.depth.append(d)
        self.edges.append([])
        return i

    def path(self, i: int) -> list[int]:
        out = []
        while i >= 0:
            out.append(i)
            i = self.parent[i]
        return out[::-1]


def explore(m: Model, *, max_states: int = 2_000_000, max_seconds: float = 120.0,
            invariants: list[Invariant] | None = None, liveness: bool = True,
            progress: Progress | None = None, stop_on_violation: bool = False) -> Exploration:
    """Breadth-first search of every reachable state of ``m`` within the budget."""
    invs = invariants if invariants is not None else applicable(m)
    safety = [i for i in invs if i.kind == "safety"]
    res = Exploration(m.name, dict(m.config.bound()), checked=[i.id for i in safety])
    g = _Graph()
    canon = m.canon or (lambda s: s)
    start = time.perf_counter()
    g.add(canon(m.init), -1, ("init", (), 0), 0)
    _check_state(m, g, 0, safety, res)
    step_checks = {a.name: [(i, p) for i in safety for p in i.step_preds(a.name)]
                   for a in m.actions}
    succ = successors_fn(m, step_checks)
    state_ok = state_check_fn(m, [(inv, inv.state) for inv in safety if inv.state is not None])
    frontier = 0
    gc_was_on = gc.isenabled()
    gc.disable()  # the search builds no reference cycles; the collector would only rescan it
    try:
        while frontier < len(g.states):
            if len(g.states) >= max_states or time.perf_counter() - start > max_seconds:
                break
            if stop_on_violation and res.violations:
                break
            i = frontier
            frontier += 1
            _expand(m, g, i, succ, state_ok, canon, step_checks, safety, res)
            if progress is not None and i % 5000 == 0:
                progress(len(g.states), res.transitions, g.depth[i])
    finally:
        if gc_was_on:
            gc.enable()
    res.complete = frontier >= len(g.states)
    res.states = len(g.states)
    res.depth = max(g.depth)
    if liveness and res.complete:
        for inv in invs:
            if inv.kind == "liveness":
                cex = _fair_cycle(m, g, inv)
                res.liveness_checked.append(inv.id)
                if cex is not None:
                    res.violations[inv.id] = cex
    res.seconds = time.perf_counter() - start
    m.extra["_graph"] = g
    return res


def _expand(m: Model, g: _Graph, i: int, succ: Any, state_ok: Any, canon: Any,
            step_checks: dict[str, Any], safety: list[Invariant], res: Exploration) -> None:
    """Add every successor of state ``i``; the generated checks are a fast filter, and
    only an edge or state they reject is re-checked one predicate at a time to report it."""
    s = g.states[i]
    edges = g.edges[i]
    for name, args, result, post, ok in succ(s):
        res.fired[name] += 1
        res.transitions += 1
        if not ok:
            _check_step(m, g, i, s, name, args, post, result, step_checks[name], res)
        post = canon(post)
        j = g.index.get(post)
        if j is None:
            j = g.add(post, i, (name, args, result), g.depth[i] + 1)
            if not state_ok(post):
                _check_state(m, g, j, safety, res)
        edges.append((j, name, args, result))


def _check_state(m: Model, g: _Graph, j: int, safety: list[Invariant],
                 res: Exploration) -> None:
    for inv in safety:
        if inv.id in res.violations or inv.state is None:
            continue
        if not inv.state(CONCRETE, m, g.states[j]):
            res.violations[inv.id] = trace(m, g.path(j), g, inv.id)


def _check_step(m: Model, g: _Graph, i: int, s: State, name: str, args: tuple[int, ...],
                post: tuple[Any, ...], result: Any,
                checks: list[tuple[Invariant, Any]], res: Exploration) -> None:
    mid = None
    for inv, pred in checks:
        if inv.id in res.violations:
            continue
        if mid is None:
            mid = m.mid(s, name, args)
        if not pred(CONCRETE, m, s, mid, post, args, result):
            cex = trace(m, g.path(i), g, inv.id)
            end = cex_end(m, g.path(i), g)
            cex.steps += _concrete_steps(m, end, [_violating_instance(m, end, name, pred)])
            res.violations[inv.id] = cex


def _violating_instance(m: Model, s: State, name: str, pred: Any
                        ) -> tuple[str, tuple[int, ...], int]:
    """The instance of ``name`` that breaks ``pred`` from the concrete state ``s``.

    Symmetry reduction may have relabelled workers on the way, so the
    arguments seen on the canonical state need not be the concrete ones."""
    a = m.action(name)
    for args in a.instances():
        if a.guard(CONCRETE, s, *args):
            post, r = a.effect(CONCRETE, s, *args)
            if not pred(CONCRETE, m, s, m.mid(s, name, args), post, args, r):
                return name, args, int(r)
    raise AssertionError(f"no instance of {name} breaks the invariant on replay")


def cex_end(m: Model, path: list[int], g: _Graph) -> State:
    """The concrete (uncanonicalised) state a replay of ``path`` reaches."""
    s = m.init
    for j in path[1:]:
        s = _follow(m, s, g.via[j], g.states[j])
    return s


def _follow(m: Model, s: State, via: tuple[str, tuple[int, ...], int], target: State) -> State:
    """Replay one canonical edge on a concrete state: find the instance that lands in the orbit."""
    name, args, result = via
    canon = m.canon or (lambda x: x)
    a = m.action(name)
    for cand in [args, *[x for x in a.instances() if x != args]]:
        if a.guard(CONCRETE, s, *cand):
            post, r = a.effect(CONCRETE, s, *cand)
            if int(r) == result or m.canon is not None:
                post_t = tuple(int(v) for v in post)
                if canon(post_t) == target:
                    return post_t
    raise AssertionError(f"cannot replay {name}{args}: the model is not deterministic?")


def trace(m: Model, path: list[int], g: _Graph, inv: str) -> Counterexample:
    """A concrete, replayable trace along a path of canonical state ids."""
    s = m.init
    steps: list[tuple[str, tuple[int, ...], int]] = []
    for j in path[1:]:
        nxt = _follow(m, s, g.via[j], g.states[j])
        steps.append(_recover(m, s, nxt, g.via[j][0]))
        s = nxt
    return Counterexample(inv, _concrete_steps(m, m.init, steps))


def _recover(m: Model, s: State, nxt: State, name: str) -> tuple[str, tuple[int, ...], int]:
    """Which instance of ``name`` takes concrete ``s`` to concrete ``nxt``."""
    a = m.action(name)
    for args in a.instances():
        if a.guard(CONCRETE, s, *args):
            post, r = a.effect(CONCRETE, s, *args)
            if tuple(int(v) for v in post) == nxt:
                return name, args, int(r)
    raise AssertionError("no instance reproduces the step")


def _concrete_steps(m: Model, s: State, steps: list[tuple[str, tuple[int, ...], int]]
                    ) -> list[TraceStep]:
    out = []
    for name, args, _ in steps:
        st = m.apply(s, name, args)
        out.append(TraceStep(name, args, m.label(name, args), st.result, diff(m, s, st.post)))
        s = st.post
    return out


def diff(m: Model, a: State, b: State) -> dict[str, tuple[Any, Any]]:
    """The slots that changed, by name."""
    names = m.layout.slot_names()
    return {names[k]: (a[k], b[k]) for k in range(len(a)) if a[k] != b[k]}


def replay(m: Model, steps: list[tuple[str, tuple[int, ...]]]) -> list[Step]:
    """Run a trace through the model from the initial state (raises if a guard fails)."""
    s = m.init
    out = []
    for name, args in steps:
        st = m.apply(s, name, args)
        out.append(st)
        s = st.post
    return out


# ------------------------------------------------------------------ liveness


def _fair_cycle(m: Model, g: _Graph, inv: Invariant) -> Counterexample | None:
    if inv.id == "I5":
        return _progress_cycle(m, g)
    if inv.id == "I8":
        return _convergence_cycle(m, g)
    raise ValueError(f"no liveness check for {inv.id}")


def unfinished(m: Model, s: State) -> bool:
    """Some task is READY or LEASED: what I5 says must eventually end."""
    c: B.BrokerConfig = m.config
    return any(m.layout.get(s, "st", t) in (B.READY, B.LEASED) for t in range(c.tasks))


def _progress_cycle(m: Model, g: _Graph) -> Counterexample | None:
    """I5: a fair cycle of unfinished states in which nothing is ever delivered or finished.

    Deliveries and finishing only ever increase, so no cycle contains one; the
    cycle is fair when time passes in it and every up worker that could be
    handed a task is, in some state of the cycle, unable to get one (else weak
    fairness would make it fetch)."""
    c: B.BrokerConfig = m.config
    L = m.layout
    G = nx.DiGraph()
    for i, s in enumerate(g.states):
        if not unfinished(m, s) or not _active(L, s, c):
            continue
        for j, name, _args, _r in g.edges[i]:
            if name != "publish" and unfinished(m, g.states[j]) and _active(L, g.states[j], c):
                G.add_edge(i, j, name=name)
    for comp in nx.strongly_connected_components(G):
        if not _is_cycle(G, comp):
            continue
        if not any(G.edges[u, v]["name"] == "advance" for u, v in G.subgraph(comp).edges):
            continue
        s0 = g.states[next(iter(comp))]
        ups = [w for w in range(c.workers) if L.get(s0, "up", w)]
        if all(any(not _delivers(g, k, w) for k in comp) for w in ups):
            return _lasso(m, g, G, comp, "I5", "a fair cycle in which no task is ever finished")
    return None


def _active(L: Any, s: State, c: B.BrokerConfig) -> bool:
    """Some worker is up, and every up worker is live (calls within the worker timeout).

    "Active workers" must mean live ones: with weak fairness alone, a task can
    bounce between two round-robin queues forever, each worker lapsing just
    as the task is moved into its queue. The explorer finds that run when this
    assumption is dropped."""
    ups = [w for w in range(c.workers) if L.get(s, "up", w)]
    return bool(ups) and all(L.get(s, "age", w) < c.worker_timeout for w in ups)


def _delivers(g: _Graph, i: int, w: int) -> bool:
    return any(name == "fetch" and args == (w,) and r != B.NONE
               for _j, name, args, r in g.edges[i])


def _convergence_cycle(m: Model, g: _Graph) -> Counterexample | None:
    """I8: a fault-free fair cycle in which the lease never rests with the minimum up node."""
    L = m.layout
    n_nodes = m.config.nodes
    G = nx.DiGraph()
    for i, s in enumerate(g.states):
        if _converged(L, s, n_nodes) or not _stable(L, s, m.config):
            continue
        for j, name, args, _r in g.edges[i]:
            if name in ("tick", "advance", "leader_write") and not _converged(
                    L, g.states[j], n_nodes) and _stable(L, g.states[j], m.config):
                G.add_edge(i, j, name=name, args=args)
    for comp in nx.strongly_connected_components(G):
        if not _is_cycle(G, comp):
            continue
        s0 = g.states[next(iter(comp))]
        ready = [n for n in range(n_nodes) if L.get(s0, "up", n) and not L.get(s0, "iso", n)]
        if not ready:
            continue
        taken = {(d["name"], d["args"]) for _u, _v, d in G.subgraph(comp).edges(data=True)}
        if ("advance", ()) in taken and all(("tick", (n,)) in taken for n in ready):
            return _lasso(m, g, G, comp, "I8", "a fair fault-free cycle that never converges")
    return None


def _stable(L: Any, s: State, cfg: Any) -> bool:
    """Stable membership: every up, reachable node is a live member (heartbeats in time).

    Weak fairness of tick alone is not enough for I8: a node that ticks only
    while another holds the lease, and lets its membership lapse in between,
    never gets it. The explorer finds that run when this assumption is dropped."""
    return all(L.get(s, "mem", n) and L.get(s, "mage", n) < cfg.member_timeout
               for n in range(cfg.nodes) if L.get(s, "up", n) and not L.get(s, "iso", n))


def _converged(L: Any, s: State, n_nodes: int) -> bool:
    ready = [n for n in range(n_nodes) if L.get(s, "up", n) and not L.get(s, "iso", n)]
    return not ready or (L.get(s, "holder") == min(ready) and L.get(s, "lrem") > 0)


def _is_cycle(G: Any, comp: set[int]) -> bool:
    return len(comp) > 1 or any(G.has_edge(u, u) for u in comp)


def _lasso(m: Model, g: _Graph, G: Any, comp: set[int], inv: str, note: str) -> Counterexample:
    """Shortest path to the component, then a cycle through every edge label it needs."""
    entry = min(comp, key=lambda k: g.depth[k])
    cex = trace(m, g.path(entry), g, inv)
    sub = G.subgraph(comp)
    walk = _covering_walk(sub, entry)
    s = cex_end(m, g.path(entry), g)
    loop_steps = []
    for u, v in itertools.pairwise(walk):
        name = sub.edges[u, v]["name"]
        nxt = _follow_any(m, s, name, g.states[v])
        loop_steps.append(_recover(m, s, nxt, name))
        s = nxt
    cex.loop_from = len(cex.steps)
    cex.steps += _concrete_steps(m, cex_end(m, g.path(entry), g), loop_steps)
    cex.note = note
    return cex


def _follow_any(m: Model, s: State, name: str, target: State) -> State:
    a = m.action(name)
    canon = m.canon or (lambda x: x)
    for args in a.instances():
        if a.guard(CONCRETE, s, *args):
            post, _r = a.effect(CONCRETE, s, *args)
            post_t = tuple(int(v) for v in post)
            if canon(post_t) == target:
                return post_t
    raise AssertionError(f"cannot follow {name} inside the cycle")


def _covering_walk(sub: Any, entry: int) -> list[int]:
    """A closed walk from ``entry`` that uses every distinct edge label of the component."""
    walk = [entry]
    seen: set[tuple[str, Any]] = set()
    labels = {(d["name"], d.get("args")) for _u, _v, d in sub.edges(data=True)}
    cur = entry
    for u, v, d in sub.edges(data=True):
        key = (d["name"], d.get("args"))
        if key in seen:
            continue
        seen.add(key)
        walk += [*nx.shortest_path(sub, cur, u)[1:], v]
        cur = v
        if seen == labels:
            break
    walk += nx.shortest_path(sub, cur, entry)[1:]
    if len(walk) == 1:
        walk.append(entry)
    return walk
