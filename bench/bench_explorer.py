"""Distinct states per second of the exhaustive explorer: interpreted vs compiled models.

Three ways to run the same breadth-first search (``explore(..., liveness=False)``,
so the rate is that of the state-space search itself, invariants included):

* ``interpreted``: the model as written, run with the concrete ops;
* ``compiled``: ``compile_model(m)``, through the explorer unchanged;
* ``fused``: the explorer with its hot loop switched to
  ``successors_fn``/``state_check_fn`` (one generated function per model, step
  and state checks inline). Until that change lands in ``explorer.py`` this
  applies it to the explorer's own source at run time (``FUSED_PATCH``), so
  what is measured is exactly the proposed change.

Interpreted runs are cut at ``--budget`` seconds; the compiled and fused runs
are then timed on the same first states of the search (``timed on``), and the
fused one once more on the whole space (the rate the target is judged on),
and again with the garbage collector paused (a further change to consider).
Rates are distinct states per CPU second of this process, so that other work
on the machine's two cores does not count against the explorer. Run::

    python bench/bench_explorer.py [--budget 40] [--json results.json]
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from taskward.models import broker as B
from taskward.models import election as E
from taskward.models.compiled import compile_model, state_check_fn, successors_fn
from taskward.models.core import Model

from taskward.check import explorer

TARGET = 50_000
"""Distinct states per second the issue asks of the explorer on the broker model."""

FUSED_PATCH: list[tuple[str, str]] = [
    ("    instances = m.instances()\n",
     "    succ = successors_fn(m, step_checks)\n"
     "    state_ok = state_check_fn(m, [(inv, inv.state) for inv in safety])\n"),
    ("""        for a, args in instances:
            if not m.enabled(s, a, args, prune=True):
                continue
            post, result = a.effect(CONCRETE, s, *args)
            res.fired[a.name] += 1
            res.transitions += 1
            checks = step_checks[a.name]
            if checks:
                _check_step(m, g, i, s, a.name, args, post, result, checks, res)
            post = canon(post)
            j = g.index.get(post)
            if j is None:
                j = g.add(post, i, (a.name, args, result), g.depth[i] + 1)
                _check_state(m, g, j, safety, res)
            g.edges[i].append((j, a.name, args, result))
""", """        for name, args, result, post, ok in succ(s):
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
            g.edges[i].append((j, name, args, result))
"""),
]

Explore = Callable[..., explorer.Exploration]


def fused_explore() -> Explore:
    """``explorer.explore`` with the fused hot loop (the change itself, once it has landed)."""
    src = inspect.getsource(explorer.explore)
    if "successors_fn" in src:
        return explorer.explore
    for old, new in FUSED_PATCH:
        if old not in src:
            raise SystemExit("explorer.explore changed: update FUSED_PATCH")
        src = src.replace(old, new)
    ns: dict[str, Any] = dict(vars(explorer))
    ns.update(successors_fn=successors_fn, state_check_fn=state_check_fn)
    exec(compile(src, "<explorer.explore with successors_fn>", "exec"), ns)
    fn: Explore = ns["explore"]
    return fn


def without_gc(explore: Explore) -> Explore:
    """The same search with the cyclic garbage collector paused.

    The search allocates millions of tuples and lists that are never freed
    before it ends and form no cycles; the collector only rescans them."""
    def run(*args: Any, **kw: Any) -> explorer.Exploration:
        gc.disable()
        try:
            return explore(*args, **kw)
        finally:
            gc.enable()
    return run


@dataclass
class Row:
    """One model's three runs."""

    system: str
    bound: dict[str, Any]
    runs: dict[str, dict[str, Any]]


def run(explore: Explore, m: Model, budget: float, max_states: int = 2_000_000
        ) -> dict[str, Any]:
    """One exploration; the rate is per CPU second (the 2 cores are shared with others)."""
    w0, c0 = time.perf_counter(), time.process_time()
    r = explore(m, liveness=False, max_seconds=budget, max_states=max_states)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return {"states": r.states, "transitions": r.transitions, "cpu_seconds": round(cpu, 3),
            "wall_seconds": round(wall, 3), "rate": round(r.states / cpu),
            "complete": r.complete, "violations": sorted(r.violations)}


def models() -> list[tuple[str, Callable[[], Model]]]:
    broker: dict[str, Any] = {"workers": 2, "tasks": 2, "priorities": 2, "lease": 1,
                              "max_deliveries": 2, "worker_timeout": 2}
    election = E.ElectionConfig(nodes=2, lease=3, member_timeout=3, margin=1, max_pause=1,
                                max_drift=1, stale_cap=3)
    out: list[tuple[str, Callable[[], Model]]] = [
        (f"broker[{p}]", partial(B.build, B.BrokerConfig(policy=p, **broker)))
        for p in B.POLICIES]
    out.append(("election", partial(E.build, election)))
    return out


def measure(budget: float) -> list[Row]:
    """Per model: the three ways over the same states, then the fused one over all of them.

    An interpreted run cut by the budget fixes the prefix of the search (BFS
    order is the same for all three) that the compiled runs are timed on too."""
    fused = fused_explore()
    rows = []
    for name, make in models():
        runs = {"interpreted": run(explorer.explore, make(), budget)}
        n = 2_000_000 if runs["interpreted"]["complete"] else runs["interpreted"]["states"]
        t0 = time.perf_counter()
        cm = compile_model(make())
        compile_seconds = round(time.perf_counter() - t0, 3)
        runs["compiled"] = run(explorer.explore, cm, 600.0, n)
        runs["compiled"]["compile_seconds"] = compile_seconds
        runs["fused"] = run(fused, make(), 600.0, n)
        runs["fused_full"] = run(fused, make(), 600.0)
        runs["fused_full_gc_off"] = run(without_gc(fused), make(), 600.0)
        rows.append(Row(name, dict(make().config.bound()), runs))
        print(f"  {name}: done", file=sys.stderr)
    return rows


def table(rows: list[Row]) -> str:
    head = ("| model | states | timed on | interpreted st/s | compiled st/s | fused st/s | "
            "compiled / interp. | fused / interp. | fused st/s, all states | "
            f"{TARGET // 1000}k target | fused, gc paused, all states |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        i, c, f, full, nogc = (r.runs[k] for k in (
            "interpreted", "compiled", "fused", "fused_full", "fused_full_gc_off"))
        met = "met" if full["rate"] >= TARGET else "not met"
        if not r.system.startswith("broker"):
            met += " (not a broker)"
        lines.append(
            f"| {r.system} | {full['states']:,} | {i['states']:,} | {i['rate']:,} | "
            f"{c['rate']:,} | {f['rate']:,} | {c['rate'] / i['rate']:.1f}x | "
            f"{f['rate'] / i['rate']:.1f}x | {full['rate']:,} | {met} | {nogc['rate']:,} |")
    return "\n".join(lines)


def check(rows: list[Row]) -> None:
    """The runs of a model must explore the same space (else the rates mean nothing)."""
    for r in rows:
        runs = r.runs
        # a run cut by the state limit stops in the middle of a state's successors,
        # one cut by time between two states: only complete runs agree on transitions
        full = runs["interpreted"]["complete"]
        same = {(runs[k]["states"], runs[k]["transitions"] if full else 0,
                 tuple(runs[k]["violations"])) for k in ("interpreted", "compiled", "fused")}
        if len(same) != 1:
            raise SystemExit(f"{r.system}: the explorations differ: {runs}")
        if runs["interpreted"]["complete"] and runs["fused_full"]["states"] != runs[
                "interpreted"]["states"]:
            raise SystemExit(f"{r.system}: the full fused exploration differs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=40.0,
                    help="seconds allowed to each interpreted run (default 40)")
    ap.add_argument("--json", metavar="PATH", help="write the measurements as JSON")
    a = ap.parse_args()
    rows = measure(a.budget)
    check(rows)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{when}; Python {platform.python_version()}; {platform.machine()}")
    print(table(rows))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"date": when, "python": platform.python_version(), "target": TARGET,
                       "rows": [r.__dict__ for r in rows]}, fh, indent=2)


if __name__ == "__main__":
    main()
