"""Verdicts: pass, fail or unknown, always with the bound they were reached at.

Every checker (explorer, Hypothesis, Z3, lockstep) reports :class:`Result`
rows, so ``taskward verify``, the JSON/JUnit outputs and the generated docs
read one shape. ``unknown`` (budget or timeout) is never folded into pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Verdict = Literal["pass", "fail", "unknown"]
EXIT = {"pass": 0, "fail": 1, "unknown": 2}


@dataclass
class Result:
    """One invariant checked by one checker on one model."""

    invariant: str
    checker: str
    verdict: Verdict
    bound: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)
    counterexample: list[dict[str, Any]] | None = None
    model: str = ""
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"invariant": self.invariant, "checker": self.checker, "model": self.model,
                "verdict": self.verdict, "bound": self.bound, "stats": self.stats,
                "counterexample": self.counterexample, "note": self.note}


def overall(results: Iterable[Result]) -> Verdict:
    """fail if anything failed, else unknown if anything is unknown, else pass."""
    verdicts = {r.verdict for r in results}
    if "fail" in verdicts:
        return "fail"
    if "unknown" in verdicts or not verdicts:
        return "unknown"
    return "pass"
