"""Distinct states per second of the exhaustive explorer, on the broker models and the election.

The explorer runs one generated successor function per model (``successors_fn``)
with the step and state invariants traced inline, and pauses the garbage
collector during the search. This measures that explorer as shipped, on the
whole reachable space (``explore(..., liveness=False)``, so the rate is that of
the search itself, invariants included). Rates are distinct states per CPU
second of this process, so other work on the machine's two cores does not
count against it. The interpreted-vs-generated comparison that motivated the
design is recorded in ``bench/README_explorer.md``. Run::

    python bench/bench_explorer.py [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from taskward.models import broker as B
from taskward.models import election as E
from taskward.models.core import Model

from taskward.check.explorer import explore

TARGET = 50_000
"""Distinct states per second the issue asks of the explorer on the broker model."""


def models() -> list[tuple[str, Callable[[], Model]]]:
    broker: dict[str, Any] = {"workers": 2, "tasks": 2, "priorities": 2, "lease": 1,
                              "max_deliveries": 2, "worker_timeout": 2}
    election = E.ElectionConfig(nodes=2, lease=3, member_timeout=3, margin=2, max_pause=1,
                                max_drift=1, stale_cap=3)
    out: list[tuple[str, Callable[[], Model]]] = [
        (f"broker[{p}]", partial(B.build, B.BrokerConfig(policy=p, **broker)))
        for p in B.POLICIES]
    out.append(("election", partial(E.build, election)))
    return out


def run(m: Model) -> dict[str, Any]:
    """One complete exploration, timed in CPU seconds."""
    w0, c0 = time.perf_counter(), time.process_time()
    r = explore(m, liveness=False, max_seconds=600.0)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return {"states": r.states, "transitions": r.transitions, "cpu_seconds": round(cpu, 3),
            "wall_seconds": round(wall, 3), "rate": round(r.states / cpu),
            "complete": r.complete, "violations": sorted(r.violations)}


def table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    lines = ["| model | states | transitions | CPU s | states/s | "
             f"{TARGET // 1000}k target |", "|---|---|---|---|---|---|"]
    for name, r in rows:
        met = "met" if r["rate"] >= TARGET else "not met"
        if not name.startswith("broker"):
            met += " (not a broker)"
        lines.append(f"| {name} | {r['states']:,} | {r['transitions']:,} | "
                     f"{r['cpu_seconds']} | {r['rate']:,} | {met} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--json", metavar="PATH", help="write the measurements as JSON")
    a = ap.parse_args()
    rows = [(name, run(make())) for name, make in models()]
    bad = [name for name, r in rows if not r["complete"] or r["violations"]]
    if bad:
        raise SystemExit(f"incomplete or failing exploration: {bad}")
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{when}; Python {platform.python_version()}; {platform.machine()}")
    print(table(rows))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"date": when, "python": platform.python_version(), "target": TARGET,
                       "rows": dict(rows)}, fh, indent=2)


if __name__ == "__main__":
    main()
