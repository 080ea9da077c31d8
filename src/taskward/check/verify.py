"""``taskward verify``: every checker over the model at stated bounds, as verdict rows.

The default bounds are chosen so the whole run stays within about a minute
on a 2-core machine; each row prints the bound it holds at. A mutant run
checks a deliberately broken model and is expected to *fail* with a trace.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskward.check.explorer import Counterexample, Exploration, explore
from taskward.check.stateful import walk
from taskward.check.verdict import Result
from taskward.models import broker as B
from taskward.models import election as E
from taskward.models.core import Model, compose
from taskward.models.mutants import MUTANTS, Mutant
from taskward.specs.invariants import BY_ID, Invariant, applicable

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Bounds:
    """Sizes for the explorer (exhaustive) and for Hypothesis (larger, sampled)."""

    explorer: tuple[B.BrokerConfig | E.ElectionConfig, ...]
    composed: tuple[tuple[B.BrokerConfig, E.ElectionConfig], ...]
    """Broker and election run side by side with one clock (their safety invariants)."""
    hypothesis: tuple[B.BrokerConfig | E.ElectionConfig, ...]
    examples: int
    steps: int
    solver: tuple[tuple[B.BrokerConfig | E.ElectionConfig, int], ...] = ()
    """Sizes for Z3 induction, with the bounded-model-checking depth for each."""


DEFAULT = Bounds(
    explorer=(
        B.BrokerConfig(policy="shared", workers=2, tasks=2, priorities=2, lease=1,
                       max_deliveries=2, worker_timeout=2),
        B.BrokerConfig(policy="round_robin", workers=2, tasks=2, priorities=1, lease=1,
                       max_deliveries=2, worker_timeout=2),
        B.BrokerConfig(policy="work_stealing", workers=2, tasks=2, priorities=2, lease=1,
                       max_deliveries=1, worker_timeout=2),
        E.ElectionConfig(nodes=2, lease=2, member_timeout=2, margin=1, max_pause=1,
                         stale_cap=2),
    ),
    composed=((B.BrokerConfig(policy="shared", workers=1, tasks=1, priorities=1, lease=1,
                              max_deliveries=1, worker_timeout=2),
               E.ElectionConfig(nodes=2, lease=1, member_timeout=1, margin=0, max_pause=0,
                                stale_cap=1, crashes=False, isolation=False)),),
    hypothesis=tuple(
        [B.BrokerConfig(policy=p, workers=3, tasks=5, priorities=3, lease=2, max_deliveries=3,
                        worker_timeout=3) for p in B.POLICIES]
        + [E.ElectionConfig(nodes=4, lease=3, member_timeout=3, margin=1, max_pause=1,
                            max_drift=0)]),
    examples=60, steps=40,
    solver=tuple(
        [(B.BrokerConfig(policy=p, workers=2, tasks=3, priorities=2, lease=2, max_deliveries=2,
                         worker_timeout=2), 6 if p == "shared" else 4) for p in B.POLICIES]
        + [(E.ElectionConfig(nodes=3, lease=3, member_timeout=3, margin=1, max_pause=1), 6)]),
)
ALL_CHECKERS = ("explorer", "hypothesis", "z3")


def build(cfg: B.BrokerConfig | E.ElectionConfig) -> Model:
    """The correct model for a configuration, compiled for speed when possible."""
    m = B.build(cfg) if isinstance(cfg, B.BrokerConfig) else E.build(cfg)
    return fast(m)


def build_composed(bc: B.BrokerConfig, ec: E.ElectionConfig) -> Model:
    """The composition of a broker and an election sharing one clock."""
    return fast(compose(B.build(bc, symmetry=False), E.build(ec)))


def fast(m: Model) -> Model:
    """The compiled form of ``m`` (same actions, generated straight-line code)."""
    from taskward.models.compiled import compile_model

    return compile_model(m)


def explorer_rows(m: Model, res: Exploration, invs: list[Invariant]) -> list[Result]:
    """One row per invariant: fail with trace, pass when complete, otherwise unknown."""
    never = res.never_fired(m)
    stats: dict[str, Any] = {"states": res.states, "transitions": res.transitions,
             "depth": res.depth,
             "seconds": round(res.seconds, 3), "states_per_second": int(res.rate),
             "complete": res.complete, "never_fired": never, "fired": dict(res.fired)}
    rows = []
    for inv in invs:
        cex = res.violations.get(inv.id)
        checked = inv.id in res.checked or inv.id in res.liveness_checked
        verdict = "fail" if cex else ("pass" if res.complete and checked else "unknown")
        note = "" if verdict != "unknown" else "state budget reached before the space was exhausted"
        if never:
            note += f" actions never fired: {', '.join(never)}"
        rows.append(Result(inv.id, "explorer", verdict,  # type: ignore[arg-type]
                           dict(m.config.bound()), dict(stats),
                           cex.to_json() if cex else None, m.name, note.strip()))
    return rows


def hypothesis_rows(m: Model, invs: list[Invariant], examples: int, steps: int) -> list[Result]:
    """One row per invariant from one campaign; after a failure the rest are unknown."""
    res = walk(m, examples=examples, steps=steps, invariants=invs)
    bound = dict(m.config.bound()) | {"examples": examples, "steps_per_example": steps}
    stats = {"examples_run": res.examples, "steps_run": res.steps,
             "seconds": round(res.seconds, 3)}
    rows = []
    for inv in invs:
        if res.violated == inv.id:
            trace = [{"i": i + 1, "action": n, "args": list(a), "label": m.label(n, a)}
                     for i, (n, a) in enumerate(res.trace)]
            rows.append(Result(inv.id, "hypothesis", "fail", bound, stats, trace, m.name,
                               res.message))
        elif res.violated is None:
            rows.append(Result(inv.id, "hypothesis", "pass", bound, stats, None, m.name))
        else:
            rows.append(Result(inv.id, "hypothesis", "unknown", bound, stats, None, m.name,
                               f"campaign stopped at a failure of {res.violated}"))
    return rows


def explorer_progress(say: Progress, name: str) -> Callable[[int, int, int], None]:
    """A progress callback that reports states, transitions and depth as they grow."""
    def report(states: int, transitions: int, depth: int) -> None:
        say(f"explorer: {name}: {states:,} states, {transitions:,} transitions, depth {depth}")
    return report


def verify_correct(bounds: Bounds = DEFAULT, progress: Progress | None = None,
                   checkers: tuple[str, ...] = ALL_CHECKERS) -> list[Result]:
    """Run every checker on the correct model; every row is expected to pass."""
    say = progress or (lambda _m: None)
    rows: list[Result] = []
    if "explorer" in checkers:
        for cfg in bounds.explorer:
            m = build(cfg)
            say(f"explorer: {m.name} {cfg.bound()}")
            res = explore(m, progress=explorer_progress(say, m.name))
            rows += explorer_rows(m, res, applicable(m))
        for bc, ec in bounds.composed:
            m = build_composed(bc, ec)
            say(f"explorer: {m.name}")
            res = explore(m, progress=explorer_progress(say, m.name))
            rows += explorer_rows(m, res, applicable(m))
    if "hypothesis" in checkers:
        for cfg in bounds.hypothesis:
            m = build(cfg)
            say(f"hypothesis: {m.name} {cfg.bound()}")
            rows += hypothesis_rows(m, applicable(m), bounds.examples, bounds.steps)
    if "z3" in checkers:
        rows += solver_rows(bounds, say)
    return rows


def solver_rows(bounds: Bounds, say: Progress) -> list[Result]:
    """Inductive proofs (any depth) and bounded model checking at the solver sizes."""
    from taskward.check import z3check
    from taskward.check.z3param import prove_parametric

    rows: list[Result] = []
    for cfg, depth in bounds.solver:
        m = B.build(cfg) if isinstance(cfg, B.BrokerConfig) else E.build(cfg)
        say(f"z3: induction on {m.name} {cfg.bound()}")
        rows += z3check.induction(m, timeout_s=30.0)
        say(f"z3: bounded model checking of {m.name} to depth {depth}")
        rows += z3check.bmc(m, depth, timeout_s=20.0)
        if isinstance(cfg, B.BrokerConfig):
            say(f"z3: I5 ranking and its fair-step bound on {m.name}")
            rows += z3check.ranking(m, timeout_s=30.0)
            rows += z3check.progress_bound(m, timeout_s=30.0)
    say("z3: parametric proofs of I2 and I3a (any size)")
    rows += prove_parametric(timeout_s=30.0)
    return rows


def verify_mutant(name: str, progress: Progress | None = None,
                  checkers: tuple[str, ...] = ALL_CHECKERS) -> list[Result]:
    """Check a model mutant on the invariants it must break; a correct check fails it."""
    mu = get_mutant(name)
    say = progress or (lambda _m: None)
    m = fast(mu.build())
    invs = [BY_ID[i] for i in mu.breaks]
    rows: list[Result] = []
    if "explorer" in checkers:
        say(f"explorer: mutant {name}")
        liveness = any(i.kind == "liveness" for i in invs)
        res = explore(m, invariants=invs, stop_on_violation=not liveness)
        if not liveness and res.violations:
            res.complete = True
        rows += explorer_rows(m, res, invs)
    if "hypothesis" in checkers:
        say(f"hypothesis: mutant {name}")
        rows += hypothesis_rows(m, invs, 2000, 30)
    safety = [i.id for i in invs if i.kind == "safety"]
    if "z3" in checkers:
        rows += solver_mutant_rows(mu, safety, say)
    for r in rows:
        r.model = f"{m.name} mutant={name}"
    return rows


def solver_mutant_rows(mu: Mutant, safety: list[str], say: Progress) -> list[Result]:
    """Z3 on a mutant: BMC for the safety claims it breaks, a fair-cycle search for I5."""
    from taskward.check import z3check

    rows: list[Result] = []
    if safety:
        say(f"z3: bounded model checking of mutant {mu.name}")
        rows += z3check.bmc(mu.build(), 8, timeout_s=20.0, invariants=safety)
    if "I5" in mu.breaks:
        say(f"z3: I5 fair-step bound of mutant {mu.name}")
        rows += z3check.progress_bound(mu.build(), timeout_s=20.0, max_steps=6, lasso_len=14)
    return rows


def get_mutant(name: str) -> Mutant:
    """The mutant of that name, or an error listing the names that exist."""
    if name not in MUTANTS:
        raise KeyError(f"no mutant {name!r}; `taskward verify --list-mutants` lists: "
                       + ", ".join(MUTANTS))
    return MUTANTS[name]


def first_counterexample(rows: list[Result]) -> Result | None:
    """The shortest failing trace among the rows, for printing."""
    fails = [r for r in rows if r.verdict == "fail" and r.counterexample]
    return min(fails, key=lambda r: len(r.counterexample or [])) if fails else None


def trace_json(cex: Counterexample) -> list[dict[str, Any]]:
    return cex.to_json()
