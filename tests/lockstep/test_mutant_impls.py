"""Every faulty implementation in the catalogue is killed by ``taskward check``.

Each kill records its time and the length of the minimal trace in a printed
summary, and into ``tests/lockstep/mutant_kills.json`` when
``TASKWARD_RECORD_KILLS=1`` (the committed copy is the last recorded run;
timings are recorded, never asserted). The trace must replay: it fails again against the
mutant and passes against the correct reference implementation.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mutant_impls.catalogue import MUTANTS, Mutant

from taskward.check.lockstep import check, replay, replay_document

KILLS: dict[str, dict[str, Any]] = {}
OUT = Path(__file__).with_name("mutant_kills.json")


@pytest.fixture(scope="module", autouse=True)
def summary() -> Iterator[None]:
    yield
    if not KILLS:
        return
    times = [k["seconds"] for k in KILLS.values()]
    doc = {"median_seconds": round(statistics.median(times), 2), "mutants": KILLS}
    if os.environ.get("TASKWARD_RECORD_KILLS") == "1":
        OUT.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(f"\n{'mutant':28s} {'form':11s} {'policy':14s} {'time':>6s} trace breaks")
    for name, k in sorted(KILLS.items()):
        print(f"{name:28s} {k['form']:11s} {k['policy']:14s} {k['seconds']:6.1f} "
              f"{k['trace_length']:5d} {','.join(k['invariants']) or 'contract'}")
    print(f"median time to kill: {doc['median_seconds']} s")


def test_the_catalogue_covers_both_forms_and_every_safety_invariant() -> None:
    assert len(MUTANTS) >= 15
    assert {m.form for m in MUTANTS} == {"in-process", "json-lines"}
    assert {"I1", "I2", "I3a", "I3b", "I4", "I5", "I7", "I9"} <= {m.breaks for m in MUTANTS}


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_mutant_is_killed_with_a_replayable_minimal_trace(mutant: Mutant) -> None:
    start = time.perf_counter()
    report = check(mutant.impl())
    seconds = time.perf_counter() - start
    assert report.verdict() == "fail", f"{mutant.name} survived"
    assert report.form == mutant.form
    failing = report.failing
    assert failing is not None and failing.failure is not None
    assert failing.rows and not failing.rows[-1].ok
    doc = replay_document(report)
    assert doc is not None
    again = replay(json.loads(json.dumps(doc)), mutant.impl())
    assert again.verdict == "fail"
    assert len(again.rows) == len(failing.rows)
    assert replay(doc, "mutant_impls.reference:factory").verdict == "pass"
    KILLS[mutant.name] = {
        "form": mutant.form, "policy": failing.policy, "seconds": round(seconds, 2),
        "trace_length": len(failing.rows), "invariants": failing.failure.invariants,
        "expected": mutant.breaks, "reason": report.reason}
