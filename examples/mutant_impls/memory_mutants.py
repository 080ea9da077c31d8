"""Mutants built on taskward's own memory backend: one overridden method each.

They show that the checker finds bugs in code it did not write the oracle
for: the production backend with one rule changed.
"""

from __future__ import annotations

import contextlib
from typing import Any

from taskward.api import DuplicateTaskError
from taskward.backends.memory import MemoryBroker
from taskward.check.adapters import BuiltinImpl


class _NoExpiry(MemoryBroker):
    def _expire(self, now: int) -> None:
        """Leases never end: a task held by a worker that went away is stuck for good."""


def memory_leases_never_expire(config: dict[str, Any]) -> BuiltinImpl:
    """The memory backend whose leases never run out."""
    impl = BuiltinImpl("memory://", config, lambda: None)
    impl.broker = _NoExpiry(impl.broker.config)
    return impl


class _AcceptDuplicates(BuiltinImpl):
    def publish(self, task_id: str, priority: int) -> None:
        """A reused id is silently accepted instead of rejected."""
        with contextlib.suppress(DuplicateTaskError):
            super().publish(task_id, priority)


def memory_duplicate_ids(config: dict[str, Any]) -> BuiltinImpl:
    """The memory backend behind a publish that swallows duplicate-id errors."""
    return _AcceptDuplicates("memory://", config, lambda: None)
