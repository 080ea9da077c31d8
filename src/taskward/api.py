"""The public vocabulary every backend shares: clocks, configuration, deliveries, errors.

Written once here so that the memory, SQLite and Redis backends, the worker
pool and the lockstep checker all speak the same types. The semantics are
those of ``SEMANTICS.md`` and the deterministic rules of ``CONFORMANCE.md``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Policy = Literal["shared", "round_robin", "work_stealing"]
POLICIES: tuple[Policy, ...] = ("shared", "round_robin", "work_stealing")

JSONValue = Any
"""A value ``json.dumps`` accepts without a ``default`` hook (checked at publish)."""


# --------------------------------------------------------------------- clocks


@runtime_checkable
class Clock(Protocol):
    """Where every component reads time, so the model and a backend can run in lockstep."""

    def now_ms(self) -> int:
        """Milliseconds on this clock; never decreases."""
        ...


class SystemClock:
    """Wall-clock milliseconds (monotonic within a process is not enough across processes)."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """A logical clock that moves only when told to: tests and lockstep runs use it."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now = start_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> None:
        """Move time forward; a negative step is a caller bug, so it is refused."""
        if ms < 0:
            raise ConfigError(f"advance({ms}): time only moves forward; pass ms >= 0")
        with self._lock:
            self._now += ms


# --------------------------------------------------------------------- errors


class TaskwardError(Exception):
    """Base of every error taskward raises on purpose."""

    definite = True
    """True when the operation certainly did nothing (a rejection)."""


class ConfigError(TaskwardError, ValueError):
    """A bad option, URL or policy; the message names the accepted values."""


class DuplicateTaskError(TaskwardError):
    """A ``task_id`` was published before; task ids are idempotency keys."""


class NotLeasedError(TaskwardError):
    """ack/nack/extend by a worker that does not hold an unexpired lease on the task."""


class PayloadError(TaskwardError, TypeError):
    """The payload is not JSON-serialisable; taskward never pickles."""


class StoreError(TaskwardError):
    """The store is not a taskward database, is corrupt, or has a newer schema."""


class IndefiniteError(TaskwardError):
    """The store could not be reached in time: the operation may or may not have happened."""

    definite = False


class NotLeaderError(TaskwardError):
    """A fenced write was refused: the epoch is stale or the node does not hold the lease."""


# ----------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Options of ``taskward.connect``; validated once so every backend trusts them."""

    policy: Policy = "shared"
    lease_ms: int = 30_000
    max_deliveries: int = 5
    worker_timeout_ms: int = 60_000
    workers: tuple[str, ...] = ()
    """Initial round-robin rotation; workers seen later are appended in first-seen order."""
    election_lease_ms: int = 10_000
    member_timeout_ms: int = 30_000
    election_margin_ms: int = 1_000
    """A node stops believing it leads this long before its lease runs out on its own
    clock, absorbing clock drift and short pauses (I3b). The conformance contract uses 0."""
    clock: Clock = field(default_factory=SystemClock)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ConfigError(f"unknown policy {self.policy!r}; use one of {', '.join(POLICIES)}")
        for name in ("lease_ms", "worker_timeout_ms", "election_lease_ms", "member_timeout_ms"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive number of milliseconds")
        if not 0 <= self.election_margin_ms < self.election_lease_ms:
            raise ConfigError("election_margin_ms must be >= 0 and below election_lease_ms")
        if self.max_deliveries < 1:
            raise ConfigError("max_deliveries must be at least 1")
        if len(set(self.workers)) != len(self.workers):
            raise ConfigError("workers must be distinct")


# ----------------------------------------------------------------- deliveries


@dataclass(frozen=True, slots=True)
class Delivery:
    """One task handed to one worker under a lease."""

    task_id: str
    payload: JSONValue
    priority: int
    deliveries: int
    """How many times this task has been delivered, this delivery included."""
    lease_expiry_ms: int
    seq: int


@dataclass(frozen=True, slots=True)
class Stats:
    """Counts by state, for ``taskward stats`` and monitoring."""

    ready: int
    leased: int
    acked: int
    dead: int
    workers_live: int
    leader: str | None
    epoch: int


# ----------------------------------------------------------------- the broker


class Broker(Protocol):
    """What ``taskward.connect`` returns, whatever the backend."""

    config: BrokerConfig

    def publish(
        self, payload: JSONValue, *, task_id: str | None = None, priority: int = 0
    ) -> str: ...

    def publish_many(
        self, payloads: Sequence[JSONValue], *, task_ids: Sequence[str] | None = None,
        priority: int = 0,
    ) -> list[str]: ...

    def fetch(self, worker: str) -> Delivery | None: ...

    def fetch_many(self, worker: str, n: int) -> list[Delivery]: ...

    def ack(self, worker: str, task_id: str) -> None: ...

    def ack_many(self, worker: str, task_ids: Sequence[str]) -> None:
        """All or nothing: if one task is not held by ``worker``, none is acked."""
        ...

    def ack_and_fetch(self, worker: str, task_id: str) -> Delivery | None:
        """Ack, then fetch the next task at the same instant, in one atomic step."""
        ...

    def nack(self, worker: str, task_id: str, requeue: bool = True) -> None: ...

    def extend(self, worker: str, task_id: str) -> int: ...

    def heartbeat(self, worker: str) -> None: ...

    def dead_letters(self) -> list[str]: ...

    def stats(self) -> Stats: ...

    def tick(self, node: str) -> None: ...

    def is_leader(self, node: str) -> tuple[bool, int | None]: ...

    def leader_write(self, node: str, epoch: int, value: JSONValue) -> bool: ...

    def close(self) -> None: ...
