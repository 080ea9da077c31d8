"""The catalogue of faulty implementations the lockstep checker must kill.

Each entry: the mutant's name, what it gets wrong, the invariant it breaks,
and the ``--impl`` string that reaches it (in-process or JSON lines). Put
``examples/`` on ``PYTHONPATH`` for the in-process forms.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from mutant_impls.reference import Reference

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Mutant:
    name: str
    claim: str
    breaks: str
    form: str
    """``in-process`` or ``json-lines``."""

    def impl(self) -> str:
        """The ``--impl`` argument that checks this mutant."""
        if self.name.startswith("memory_"):
            return f"mutant_impls.memory_mutants:{self.name}"
        if self.form == "in-process":
            return f"mutant_impls.catalogue:{self.name}"
        return f"{sys.executable} {HERE / 'jsonlines_server.py'} --mutant {self.name}"


MUTANTS = [
    Mutant("nack_loses_task", "a requeued nack drops the task", "I1", "in-process"),
    Mutant("lifo", "the newest ready task is delivered first", "I2", "in-process"),
    Mutant("tail_redelivery", "a redelivered task goes to the back of the queue", "I2",
           "json-lines"),
    Mutant("stale_ack", "an ack from a worker whose lease expired is accepted", "I1",
           "in-process"),
    Mutant("leases_never_expire", "leases never expire", "I5", "json-lines"),
    Mutant("expiry_one_tick_late", "a lease ends one tick after its expiry", "I2",
           "in-process"),
    Mutant("steal_leased", "work stealing takes a leased task", "I7", "in-process"),
    Mutant("rr_to_dead_worker", "round-robin keeps assigning to a dead worker", "I5",
           "json-lines"),
    Mutant("priority_inversion", "lower priority is delivered first", "I2", "in-process"),
    Mutant("duplicate_ids", "a reused task_id is accepted", "I1", "json-lines"),
    Mutant("restart_drops_leases", "a restart loses leased tasks", "I1", "in-process"),
    Mutant("no_fencing", "the store accepts writes from any node that ever led", "I3a",
           "json-lines"),
    Mutant("non_minimal_leader", "a node is granted while a smaller member is live", "I4",
           "in-process"),
    Mutant("epoch_reused_on_regrant", "a re-grant to the same node keeps its epoch", "I3a",
           "in-process"),
    Mutant("belief_after_resign", "a node keeps believing it leads after resigning", "I3b",
           "json-lines"),
    Mutant("max_deliveries_plus_one", "a task is delivered max_deliveries + 1 times", "I9",
           "in-process"),
    Mutant("heartbeat_ignored", "calls do not keep a worker live", "I6", "in-process"),
    Mutant("memory_leases_never_expire", "taskward's memory backend with expiry removed",
           "I5", "in-process"),
    Mutant("memory_duplicate_ids", "taskward's memory backend accepting reused ids", "I1",
           "in-process"),
]


def _make(name: str, config: dict[str, Any]) -> Reference:
    return Reference(config, name)


for _m in MUTANTS:
    if not _m.name.startswith("memory_"):
        globals()[_m.name] = partial(_make, _m.name)
