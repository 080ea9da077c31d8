"""The one small protocol every backend implements, and the rules they all share.

A backend (memory, SQLite, Redis) implements a handful of *primitives* that
each run atomically against its store: ``_publish``, ``_fetch``, ``_settle``,
``_heartbeat``, ``_dead_letters``, ``_stats``, ``_tick``, ``_leader_write``,
``fenced_writes`` and ``close``. Everything a caller sees (``publish``,
``fetch``, ``ack``, ``is_leader``...) is derived here, once, so that argument
checking, JSON encoding, id generation and the node's own leadership belief
cannot drift apart between backends.

The deterministic scheduling and election rules of ``CONFORMANCE.md`` that do
not depend on how state is stored are also written here as small pure
functions (``assign``, ``pick_victim``, ``decide_tick``...), so a backend only
decides *where* state lives, never *what* the rule is.
"""

from __future__ import annotations

import json
import json.encoder
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from taskward.api import (
    BrokerConfig,
    ConfigError,
    Delivery,
    DuplicateTaskError,
    JSONValue,
    PayloadError,
    Stats,
)

__all__ = [
    "ACKED", "DEAD", "LEASED", "READY", "BrokerBackend", "ElectionState", "NewTask",
    "Settle", "TickResult", "assign", "decide_tick", "pick_victim", "write_accepted",
]

READY, LEASED, ACKED, DEAD = 0, 1, 2, 3
"""Task states as small integers: they are stored in every SQLite row."""

_STATE_NAMES = {READY: "READY", LEASED: "LEASED", ACKED: "ACKED", DEAD: "DEAD"}

Settle = Literal["ack", "requeue", "dead", "extend"]
"""What ``_settle`` does to a task the caller must hold: the four lease-ending verbs."""

TickOutcome = Literal["granted", "renewed", "resigned", "none"]

_INT64 = 2**63
_MASK80 = 2**80 - 1


class NewTask(NamedTuple):
    """A validated task on its way into a store: the payload is already JSON text.

    A tuple, so a batch of them can go straight to ``executemany``.
    """

    task_id: str
    payload_json: str
    priority: int


@dataclass(frozen=True, slots=True)
class TickResult:
    """What a ``tick`` did in the store, so the node can update its own belief."""

    outcome: TickOutcome
    epoch: int
    at: int
    """The store's ``now`` for this tick: the grant or renewal time ``g``."""


@dataclass(frozen=True, slots=True)
class ElectionState:
    """The store's election record: who holds the lease, until when, and the epoch."""

    holder: str | None
    expiry: int | None
    epoch: int


@dataclass(frozen=True, slots=True)
class _Belief:
    granted_at: int
    epoch: int


# ------------------------------------------------------------------ pure rules


def _make_encoder() -> Callable[[JSONValue], str]:
    """Build the strict compact encoder once; ``json.dumps`` rebuilds one per call.

    The C encoder is called directly when present (what ``JSONEncoder.encode``
    does after a Python-level detour that costs as much as the encoding of a
    small payload). Without a markers dict a cycle ends in RecursionError,
    which ``encode_json`` turns into a PayloadError like any other refusal.
    """
    strict = json.JSONEncoder(allow_nan=False, separators=(",", ":"))
    make: Callable[..., Any] | None = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return strict.encode
    chunks = make(None, strict.default, json.encoder.encode_basestring_ascii, None, ":", ",",
                  False, False, False)

    def encode(value: JSONValue) -> str:
        return "".join(chunks(value, 0))

    return encode


_ENCODE = _make_encoder()


def encode_json(value: JSONValue, what: str = "payload") -> str:
    """JSON text of ``value``; never pickle, and NaN/Infinity are not JSON, so refused."""
    try:
        return _ENCODE(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise PayloadError(
            f"{what} is not JSON-serialisable ({exc}); pass dicts, lists, str, int, "
            "finite float, bool or None"
        ) from None


def is_live(last_seen: int, now: int, timeout_ms: int) -> bool:
    """A worker (or member) is live while its last call is less than the timeout ago."""
    return now - last_seen < timeout_ms


def assign(
    rotation: Sequence[str], live: Callable[[str], bool], cursor: int
) -> tuple[str | None, int]:
    """The round-robin rule: first live worker at or after the cursor, wrapping.

    The cursor is kept *unwrapped* (just past the chosen index, possibly equal
    to ``len(rotation)``) so that a worker appended later is the next in turn.
    With no live worker the task stays unassigned and the cursor does not move.
    """
    size = len(rotation)
    for step in range(size):
        index = (cursor + step) % size
        if live(rotation[index]):
            return rotation[index], index + 1
    return None, cursor


def pick_victim(ready_counts: Mapping[str, int], thief: str) -> str | None:
    """Work stealing: the other worker with the most READY tasks, ties to the smallest id."""
    best: str | None = None
    for worker, count in ready_counts.items():
        if worker == thief or count <= 0:
            continue
        if best is None or (-count, worker) < (-ready_counts[best], best):
            best = worker
    return best


def expiry_reason(deliveries: int) -> str:
    """Why a task whose lease ran out was dead-lettered (kept with the task)."""
    return f"lease expired after {deliveries} deliveries (max_deliveries reached)"


def not_leased(worker: str, task_id: str, state: int | None, holder: str | None) -> str:
    """The NotLeasedError message: say what the task is doing and what to do instead."""
    if state is None:
        where = "no such task"
    elif state == LEASED:
        where = f"it is leased by {holder!r}"
    else:
        where = f"it is {_STATE_NAMES[state]}"
    return (
        f"{worker!r} does not hold a lease on {task_id!r} ({where}); fetch it first, "
        "and extend long tasks before lease_ms runs out"
    )


def nack_reason(requeue: bool, deliveries: int) -> str:
    """Why a nacked task was dead-lettered."""
    if not requeue:
        return "nacked without requeue"
    return f"nacked after {deliveries} deliveries (max_deliveries reached)"


def decide_tick(
    node: str, now: int, state: ElectionState, members: Mapping[str, int], config: BrokerConfig
) -> tuple[ElectionState, TickOutcome]:
    """The election rule for one ``tick``; ``members`` already holds this node's tick.

    Renew or campaign only when no live member has a smaller id; a holder that
    sees a smaller live member resigns, freeing the lease at once. Every grant,
    re-grants to the same node included, bumps the epoch: it is the fencing token.
    """
    smaller_live = any(
        other < node and is_live(seen, now, config.member_timeout_ms)
        for other, seen in members.items()
    )
    lease_end = now + config.election_lease_ms
    held = state.holder is not None and state.expiry is not None and now < state.expiry
    if held and state.holder == node:
        if smaller_live:
            return ElectionState(None, None, state.epoch), "resigned"
        return ElectionState(node, lease_end, state.epoch), "renewed"
    if held or smaller_live:
        return state, "none"
    return ElectionState(node, lease_end, state.epoch + 1), "granted"


def write_accepted(node: str, epoch: int, now: int, state: ElectionState) -> bool:
    """Fencing: the store takes a leader write only with the current epoch from the holder."""
    return (
        epoch == state.epoch
        and state.holder == node
        and state.expiry is not None
        and now < state.expiry
    )


# --------------------------------------------------------------- argument checks


def check_name(value: object, what: str) -> str:
    """Worker, node and task ids are non-empty strings (they are compared as strings)."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{what} must be a non-empty string, got {value!r}")
    return value


def check_priority(value: object) -> int:
    """Priorities are 64-bit integers so every store can keep them exactly."""
    if isinstance(value, bool) or not isinstance(value, int) or not -_INT64 <= value < _INT64:
        raise ConfigError(f"priority must be an int in [-2**63, 2**63), got {value!r}")
    return value


def check_epoch(value: object) -> int:
    """An epoch is the integer a previous ``is_leader`` returned."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"epoch must be the int is_leader returned, got {value!r}")
    return value


def new_ids(n: int) -> list[str]:
    """``n`` fresh ids: 12 hex digits of wall-clock ms, then 80 random bits counting up.

    As unique as a uuid4 (80 random bits per batch) but ordered by time, so a
    store's unique index on task_id grows at its end instead of scattering
    writes over random pages (that nearly doubles SQLite's batch publish rate).
    """
    prefix = f"{time.time_ns() // 1_000_000 & 0xFFFFFFFFFFFF:012x}"
    base = int.from_bytes(os.urandom(10), "big")
    return [f"{prefix}{(base + i) & _MASK80:020x}" for i in range(n)]


def _refuse_repeated(ids: Sequence[str]) -> None:
    seen: set[str] = set()
    for task_id in ids:
        if task_id in seen:
            raise DuplicateTaskError(f"task_id {task_id!r} appears twice in the batch")
        seen.add(task_id)


def build_batch(
    payloads: Sequence[JSONValue], task_ids: Sequence[str] | None, priority: int
) -> list[NewTask]:
    """Validate a whole batch before the store sees any of it: a batch is all or nothing."""
    check_priority(priority)
    if isinstance(payloads, str | bytes) or isinstance(task_ids, str | bytes):
        raise ConfigError("publish_many takes a list of payloads (and a list of task_ids)")
    if task_ids is None:
        ids = new_ids(len(payloads))
    else:
        ids = [check_name(task_id, "task_id") for task_id in task_ids]
        if len(ids) != len(payloads):
            raise ConfigError(
                f"task_ids has {len(ids)} ids for {len(payloads)} payloads; pass one id each"
            )
        if len(set(ids)) != len(ids):
            _refuse_repeated(ids)
    try:
        texts = [_ENCODE(payload) for payload in payloads]
    except (TypeError, ValueError, RecursionError):
        texts = [encode_json(payload) for payload in payloads]  # names the first bad one
    return [NewTask(i, text, priority) for i, text in zip(ids, texts, strict=True)]


def decode_delivery(
    task_id: str, payload_json: str, priority: int, deliveries: int, expiry: int, seq: int
) -> Delivery:
    """A Delivery whose payload is a fresh copy: callers cannot mutate stored state."""
    return Delivery(task_id, json.loads(payload_json), priority, deliveries, expiry, seq)


DeliveryRow = tuple[str, str, int, int, int]
"""(task_id, payload JSON, priority, deliveries, seq) as a store returns a leased task."""


def decode_deliveries(rows: Sequence[DeliveryRow], expiry: int) -> list[Delivery]:
    """Deliveries for a batch, decoding every payload in one ``json.loads`` call.

    The payloads are JSON texts this package wrote, so joining them into one
    array is safe, and one parse is several times faster than one per task.
    """
    if not rows:
        return []
    payloads = json.loads("[" + ",".join(row[1] for row in rows) + "]")
    return [
        Delivery(task_id, payload, priority, deliveries, expiry, seq)
        for (task_id, _, priority, deliveries, seq), payload in zip(rows, payloads, strict=True)
    ]


# ------------------------------------------------------------------ the protocol


class BrokerBackend(ABC):
    """Base of every backend: implement the primitives, inherit the public broker.

    Every primitive runs the ``CONFORMANCE.md`` prelude (mark the caller seen,
    expire leases, reassign) itself, inside the same atomic step as the
    operation, because a prelude in a separate step could interleave with
    another process. Input that is malformed (bad payload, wrong types, a
    batch with the same id twice) is refused here, before the store is
    touched, so it changes nothing at all.
    """

    config: BrokerConfig

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self._beliefs: dict[str, _Belief] = {}
        self._belief_lock = threading.Lock()
        self._tick_lock = threading.Lock()

    # -- primitives ---------------------------------------------------------

    @abstractmethod
    def _publish(self, tasks: Sequence[NewTask]) -> None:
        """Insert all tasks or none; an id already stored raises DuplicateTaskError."""

    @abstractmethod
    def _fetch(self, worker: str, n: int) -> list[Delivery]:
        """Lease up to ``n`` best tasks to ``worker``, one after another."""

    @abstractmethod
    def _settle(self, worker: str, task_ids: Sequence[str], action: Settle) -> list[int]:
        """Ack, requeue, dead-letter or extend tasks ``worker`` holds, all or none.

        If any task is not held by ``worker`` under an unexpired lease, raise
        NotLeasedError and change nothing (beyond the prelude). ``requeue``
        dead-letters instead once the delivery count reached ``max_deliveries``.
        Returns the new expiries for ``extend``, an empty list otherwise.
        """

    @abstractmethod
    def _heartbeat(self, worker: str) -> None:
        """Run the prelude for ``worker`` and nothing else."""

    @abstractmethod
    def _dead_letters(self) -> list[tuple[str, str]]:
        """Run the prelude, then list (task id, reason) in the order tasks died."""

    @abstractmethod
    def _stats(self) -> Stats:
        """Counts as the prelude would leave them, without changing anything."""

    @abstractmethod
    def _tick(self, node: str) -> TickResult:
        """Record the node's tick and apply ``decide_tick`` atomically in the store."""

    @abstractmethod
    def _leader_write(self, node: str, epoch: int, value_json: str) -> bool:
        """Store ``value_json`` with its epoch if ``write_accepted``; say whether it did."""

    @abstractmethod
    def fenced_writes(self) -> list[tuple[int, str, JSONValue]]:
        """Accepted leader writes as (epoch, node, value), oldest first, for auditing."""

    @abstractmethod
    def close(self) -> None:
        """Release the store; the broker is unusable afterwards."""

    # -- derived broker operations -----------------------------------------

    def capabilities(self) -> list[str]:
        """What this backend implements, in the vocabulary of CONFORMANCE.md."""
        return ["broker", "leases", "priority", "shared", "round_robin", "work_stealing",
                "election"]

    def publish(
        self, payload: JSONValue, *, task_id: str | None = None, priority: int = 0
    ) -> str:
        """Enqueue one task; a given ``task_id`` is an idempotency key."""
        ids = None if task_id is None else [task_id]
        return self.publish_many([payload], task_ids=ids, priority=priority)[0]

    def publish_many(
        self, payloads: Sequence[JSONValue], *, task_ids: Sequence[str] | None = None,
        priority: int = 0,
    ) -> list[str]:
        """Enqueue a batch atomically: one duplicate rejects the whole batch."""
        batch = build_batch(payloads, task_ids, priority)
        if batch:
            self._publish(batch)
        return [task.task_id for task in batch]

    def fetch(self, worker: str) -> Delivery | None:
        """Lease the next task for ``worker``, or None when it may draw nothing."""
        found = self.fetch_many(worker, 1)
        return found[0] if found else None

    def fetch_many(self, worker: str, n: int) -> list[Delivery]:
        """Lease up to ``n`` tasks, exactly as ``n`` fetches at the same instant would."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"n must be an int >= 1, got {n!r}")
        return self._fetch(check_name(worker, "worker"), n)

    def ack(self, worker: str, task_id: str) -> None:
        """Mark a held task done; only the holder of an unexpired lease may."""
        self._settle(check_name(worker, "worker"), [check_name(task_id, "task_id")], "ack")

    def ack_many(self, worker: str, task_ids: Sequence[str]) -> None:
        """Ack a batch in one atomic step: if one task is not held, none is acked."""
        worker = check_name(worker, "worker")
        if isinstance(task_ids, str | bytes):
            raise ConfigError("ack_many takes a list of task ids")
        ids = [check_name(task_id, "task_id") for task_id in task_ids]
        if len(set(ids)) != len(ids):
            raise ConfigError("task_ids repeats an id; ack each task once")
        if ids:
            self._settle(worker, ids, "ack")

    def ack_and_fetch(self, worker: str, task_id: str) -> Delivery | None:
        """Ack a held task, then fetch the next one: a worker's steady-state step.

        Equivalent to ``ack`` followed by ``fetch`` at the same instant (if the
        ack is refused, nothing is fetched). Backends that can do both in one
        atomic step override this, saving a round trip and, for SQLite, a commit.
        """
        self.ack(worker, task_id)
        return self.fetch(worker)

    def nack(self, worker: str, task_id: str, requeue: bool = True) -> None:
        """Give a held task back (same seq, same queue) or dead-letter it."""
        action: Settle = "requeue" if requeue else "dead"
        self._settle(check_name(worker, "worker"), [check_name(task_id, "task_id")], action)

    def extend(self, worker: str, task_id: str) -> int:
        """Renew a held lease to ``now + lease_ms``; returns the new expiry."""
        ids = [check_name(task_id, "task_id")]
        return self._settle(check_name(worker, "worker"), ids, "extend")[0]

    def heartbeat(self, worker: str) -> None:
        """Keep ``worker`` live without fetching."""
        self._heartbeat(check_name(worker, "worker"))

    def dead_letters(self) -> list[str]:
        """Dead task ids, in the order they died."""
        return [task_id for task_id, _ in self._dead_letters()]

    def dead_letter_reasons(self) -> list[tuple[str, str]]:
        """Dead tasks with the reason each died, in the order they died."""
        return self._dead_letters()

    def stats(self) -> Stats:
        """Counts by state; a read that changes nothing."""
        return self._stats()

    # -- derived election operations ---------------------------------------

    def tick(self, node: str) -> None:
        """The node's periodic step; its belief follows what the store granted.

        The store step and the belief update happen under one lock, so two
        threads ticking the same node cannot apply their outcomes out of order
        (a grant applied after a later resignation would revive a stale belief).
        ``is_leader`` takes only the belief lock, so it never waits on the store.
        """
        node = check_name(node, "node")
        with self._tick_lock:
            result = self._tick(node)
            with self._belief_lock:
                if result.outcome in ("granted", "renewed"):
                    self._beliefs[node] = _Belief(result.at, result.epoch)
                elif result.outcome == "resigned":
                    self._beliefs.pop(node, None)

    def is_leader(self, node: str) -> tuple[bool, int | None]:
        """The node's own belief, from its clock, ending ``election_margin_ms`` early."""
        node = check_name(node, "node")
        now = self.config.clock.now_ms()
        cfg = self.config
        with self._belief_lock:
            belief = self._beliefs.get(node)
        if belief is not None and now < (
            belief.granted_at + cfg.election_lease_ms - cfg.election_margin_ms
        ):
            return True, belief.epoch
        return False, None

    def leader_write(self, node: str, epoch: int, value: JSONValue) -> bool:
        """A fenced write: the store keeps it only with the current epoch from the holder."""
        node = check_name(node, "node")
        return self._leader_write(node, check_epoch(epoch), encode_json(value, "value"))

    # -- context manager ----------------------------------------------------

    def __enter__(self) -> BrokerBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
