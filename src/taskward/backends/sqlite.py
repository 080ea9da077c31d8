"""The embedded durable backend: one SQLite file, safe across threads and processes.

Every state change, the per-operation prelude included, runs in one
``BEGIN IMMEDIATE`` transaction, so the prelude of one process can never
interleave with another's operation. WAL with ``synchronous=FULL`` by
default: a returned call is on disk. ``seq`` is ``INTEGER PRIMARY KEY
AUTOINCREMENT`` because SQLite otherwise reuses the largest rowid after a
delete, which would break FIFO. Two partial indexes keep the prelude to a
couple of index probes when nothing has expired: one over READY tasks by
(queue, priority, seq), which is also the fetch order, and one over LEASED
tasks by expiry.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

from taskward.api import (
    BrokerConfig,
    ConfigError,
    Delivery,
    DuplicateTaskError,
    IndefiniteError,
    JSONValue,
    NotLeasedError,
    Stats,
    StoreError,
    TaskwardError,
)
from taskward.backends.base import (
    BrokerBackend,
    DeliveryRow,
    ElectionState,
    NewTask,
    Settle,
    TickResult,
    assign,
    check_name,
    decide_tick,
    decode_deliveries,
    expiry_reason,
    is_live,
    nack_reason,
    not_leased,
    pick_victim,
    write_accepted,
)

SCHEMA_VERSION = 1
_HEADER = b"SQLite format 3\x00"
_SYNCHRONOUS = ("off", "normal", "full", "extra")

_DDL = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state INTEGER NOT NULL,
    owner TEXT,
    expiry INTEGER,
    deliveries INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tasks_ready ON tasks (owner, priority DESC, seq) WHERE state = 0;
CREATE INDEX IF NOT EXISTS tasks_leased ON tasks (expiry) WHERE state = 1;
CREATE TABLE IF NOT EXISTS dead (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    died_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS workers (
    pos INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    last_seen INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS members (node TEXT PRIMARY KEY, last_tick INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS broker_state (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    cursor INTEGER NOT NULL,
    holder TEXT,
    expiry INTEGER,
    epoch INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS fenced_writes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    epoch INTEGER NOT NULL,
    node TEXT NOT NULL,
    value TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', 'taskward');
INSERT OR IGNORE INTO meta (key, value) VALUES ('version', '{SCHEMA_VERSION}');
INSERT OR IGNORE INTO broker_state VALUES (0, 0, NULL, NULL, 0);
"""

_EXPIRED = "SELECT seq, task_id, owner, deliveries FROM tasks INDEXED BY tasks_leased " \
    "WHERE state = 1 AND expiry <= ?"
_TO_READY = "UPDATE tasks SET state = 0, owner = ?, expiry = NULL WHERE seq = ?"
_TO_DEAD = "UPDATE tasks SET state = 3, owner = NULL, expiry = NULL WHERE seq = ?"
_DEAD_ROW = "INSERT INTO dead (task_id, reason, died_ms) VALUES (?, ?, ?)"
_PICK = (
    "SELECT task_id, payload, priority, deliveries + 1, seq FROM tasks "
    "WHERE state = 0 AND owner IS ? ORDER BY priority DESC, seq LIMIT ?"
)
_LEASE_ONE = "UPDATE tasks SET state = 1, owner = ?, expiry = ?, deliveries = deliveries + 1 " \
    "WHERE seq = ?"
_LEASE_FIRST = (
    "UPDATE tasks SET state = 1, owner = ?, expiry = ?, deliveries = deliveries + 1 "
    "WHERE seq IN (SELECT seq FROM tasks WHERE state = 0 AND owner IS ? "
    "ORDER BY priority DESC, seq LIMIT ?)"
)
_ACK = "UPDATE tasks SET state = 2, owner = NULL, expiry = NULL " \
    "WHERE task_id = ? AND state = 1 AND owner = ?"
_HELD = "SELECT seq, deliveries FROM tasks WHERE task_id = ? AND state = 1 AND owner = ?"

_CHUNK = 128
"""Most rows one batch statement names: 128 x 4 bound values stay under 999 (SQLite's
default variable limit before 3.32), so no batch size can meet the limit."""


def _chunks(count: int) -> list[tuple[int, int]]:
    """(start, size) pieces of a batch: full chunks, then powers of two.

    Sizes are powers of two up to ``_CHUNK``, so only a handful of statement
    texts ever exist and each is compiled once (sqlite3 caches them).
    """
    pieces, start = [], 0
    while start < count:
        size = _CHUNK
        while size > count - start:
            size //= 2
        pieces.append((start, size))
        start += size
    return pieces


@functools.cache
def _insert_sql(size: int, assigned: bool) -> str:
    """One INSERT of ``size`` rows; ``assigned`` rows also carry their owner's queue."""
    if assigned:
        return "INSERT INTO tasks (task_id, payload, priority, state, owner) VALUES " \
            + ", ".join(["(?, ?, ?, 0, ?)"] * size)
    return "INSERT INTO tasks (task_id, payload, priority, state) VALUES " \
        + ", ".join(["(?, ?, ?, 0)"] * size)


@functools.cache
def _ack_sql(size: int) -> str:
    """Ack ``size`` tasks named by id, each only if ``owner`` (the last value) holds it."""
    return "UPDATE tasks SET state = 2, owner = NULL, expiry = NULL WHERE task_id IN (" \
        + ", ".join(["?"] * size) + ") AND state = 1 AND owner = ?"


@dataclass(slots=True)
class _Rota:
    """The round-robin rotation as read at the start of one operation."""

    names: list[str]
    seen: dict[str, int]
    cursor: int
    moved: bool = False


def _synchronous(durability: str | None, synchronous: str | None) -> str:
    """``durability`` and ``synchronous`` are two names for one pragma; they must agree."""
    chosen = {str(v).lower() for v in (durability, synchronous) if v is not None}
    if len(chosen) > 1:
        raise ConfigError("durability and synchronous disagree; pass only one of them")
    value = chosen.pop() if chosen else "full"
    if value not in _SYNCHRONOUS:
        raise ConfigError(f"synchronous={value!r}; use one of {', '.join(_SYNCHRONOUS)}")
    return value


def _is_busy(exc: sqlite3.Error) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED: another connection held the lock past busy_timeout."""
    return "locked" in str(exc) or "busy" in str(exc)


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open (SQLite ends some on its own after errors)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


class SQLiteBroker(BrokerBackend):
    """A broker whose whole state is one SQLite file; ``restart()`` reopens it."""

    def __init__(
        self, path: str | os.PathLike[str], config: BrokerConfig, *,
        durability: str | None = None, synchronous: str | None = None,
        busy_timeout_ms: int = 10_000,
    ) -> None:
        super().__init__(config)
        if isinstance(busy_timeout_ms, bool) or not isinstance(busy_timeout_ms, int) \
                or busy_timeout_ms < 0:
            raise ConfigError("busy_timeout_ms must be an int >= 0")
        self.path = Path(path)
        self._sync = _synchronous(durability, synchronous)
        self._busy_ms = busy_timeout_ms
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = self._open()

    # -- opening ------------------------------------------------------------

    def capabilities(self) -> list[str]:
        return [*super().capabilities(), "restart"]

    def _open(self) -> sqlite3.Connection:
        """Open and validate the file before anything is written to it."""
        self._check_header()
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False,
                timeout=self._busy_ms / 1000,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}; check the path") from None
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_header(self) -> None:
        """A non-empty file without the SQLite header is refused before SQLite touches it."""
        try:
            with open(self.path, "rb") as handle:
                head = handle.read(len(_HEADER))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(f"cannot read {self.path}: {exc}; check the path") from None
        if head and head != _HEADER:
            raise StoreError(
                f"{self.path} is not an SQLite database; point sqlite:/// at a new file "
                "or at a taskward database"
            )

    def _prepare(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            self._check_schema(conn)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self._sync}")
            conn.execute("PRAGMA cache_size = -16384")
            conn.execute("PRAGMA temp_store = MEMORY")
            self._initialise(conn)
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise self._corrupt(exc) from None
            raise StoreError(
                f"{self.path} stayed locked for busy_timeout_ms={self._busy_ms} while "
                "opening; retry, or raise busy_timeout_ms"
            ) from None
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from None

    def _corrupt(self, exc: sqlite3.Error) -> StoreError:
        return StoreError(
            f"{self.path} is corrupt or unreadable ({exc}); restore it from a backup "
            "or point sqlite:/// at a new file"
        )

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        """Refuse a foreign or newer database with read-only queries (nothing modified)."""
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if not tables:
            return
        found = dict(conn.execute("SELECT key, value FROM meta")) if "meta" in tables else {}
        if found.get("schema") != "taskward":
            raise StoreError(
                f"{self.path} is an SQLite database but not a taskward one; "
                "point sqlite:/// at a new file"
            )
        version = int(found.get("version", "0"))
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has taskward schema v{version}, newer than this taskward "
                f"(v{SCHEMA_VERSION}); upgrade taskward to open it"
            )

    def _initialise(self, conn: sqlite3.Connection) -> None:
        """Create the schema if missing and register configured workers, atomically."""
        now = self.config.clock.now_ms()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _DDL.split(";"):
                if statement.strip():
                    conn.execute(statement)
            known = {row[0] for row in conn.execute("SELECT name FROM workers")}
            fresh = [(w, now) for w in self.config.workers if w not in known]
            conn.executemany("INSERT INTO workers (name, last_seen) VALUES (?, ?)", fresh)
            if self.config.policy == "shared":
                conn.execute("UPDATE tasks SET owner = NULL WHERE state = 0 AND owner IS NOT NULL")
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    def restart(self) -> None:
        """Close and reopen the file: everything the broker knows comes from disk."""
        with self._lock:
            self._close_connection()
            self._conn = self._open()

    def close(self) -> None:
        with self._lock:
            self._close_connection()

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- transactions -------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One BEGIN IMMEDIATE transaction; a rejection still commits its prelude."""
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._not_started(exc) from None
            try:
                yield conn
            except TaskwardError:
                self._commit(conn)
                raise
            except sqlite3.Error as exc:
                _rollback(conn)
                raise StoreError(f"{self.path}: {exc}; nothing was done") from None
            except BaseException:
                _rollback(conn)
                raise
            self._commit(conn)

    def _not_started(self, exc: sqlite3.Error) -> StoreError:
        """BEGIN failed, so the operation certainly did not happen: a definite error."""
        if _is_busy(exc):
            return StoreError(
                f"{self.path} stayed locked for busy_timeout_ms={self._busy_ms}; "
                "nothing was done: retry, or raise busy_timeout_ms"
            )
        return StoreError(f"{self.path}: {exc}; nothing was done")

    def _commit(self, conn: sqlite3.Connection) -> None:
        """COMMIT; a failure we can roll back is definite, any other is indefinite."""
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
                raise StoreError(f"{self.path}: commit failed ({exc}); nothing was done") \
                    from None
            raise IndefiniteError(
                f"{self.path}: commit failed ({exc}); the operation may or may not have "
                "happened, check the task's state before retrying"
            ) from None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("this broker is closed; connect again (or restart())")
        return self._conn

    # -- the prelude --------------------------------------------------------

    def _prelude(self, conn: sqlite3.Connection, worker: str | None) -> tuple[int, _Rota | None]:
        """CONFORMANCE's three steps, inside the operation's own transaction."""
        now = self.config.clock.now_ms()
        if worker is not None:
            self._mark_seen(conn, worker, now)
        self._expire(conn, now)
        if self.config.policy == "shared":
            return now, None
        rota = self._load_rota(conn)
        self._reassign(conn, rota, now)
        return now, rota

    def _mark_seen(self, conn: sqlite3.Connection, worker: str, now: int) -> None:
        updated = conn.execute("UPDATE workers SET last_seen = ? WHERE name = ?", (now, worker))
        if updated.rowcount == 0:
            conn.execute("INSERT INTO workers (name, last_seen) VALUES (?, ?)", (worker, now))

    def _expire(self, conn: sqlite3.Connection, now: int) -> None:
        """Every lease with expiry <= now ends, in seq order.

        Sorted here rather than by an ORDER BY, which would set up a sorter on
        every call although almost every call finds nothing expired.
        """
        ended = conn.execute(_EXPIRED, (now,)).fetchall()
        if not ended:
            return
        ended.sort()  # seq is first and unique
        limit, shared = self.config.max_deliveries, self.config.policy == "shared"
        dead = [row for row in ended if row[3] >= limit]
        conn.executemany(_TO_READY, [(None if shared else holder, seq)
                                     for seq, _, holder, d in ended if d < limit])
        conn.executemany(_TO_DEAD, [(seq,) for seq, _, _, _ in dead])
        conn.executemany(_DEAD_ROW, [(task_id, expiry_reason(d), now)
                                     for _, task_id, _, d in dead])

    def _load_rota(self, conn: sqlite3.Connection) -> _Rota:
        rows = conn.execute("SELECT name, last_seen FROM workers ORDER BY pos").fetchall()
        cursor = conn.execute("SELECT cursor FROM broker_state").fetchone()[0]
        return _Rota([name for name, _ in rows], dict(rows), cursor)

    def _live(self, rota: _Rota, now: int) -> list[bool]:
        timeout = self.config.worker_timeout_ms
        return [is_live(rota.seen[name], now, timeout) for name in rota.names]

    def _assign(self, rota: _Rota, now: int) -> str | None:
        timeout = self.config.worker_timeout_ms
        owner, cursor = assign(rota.names, lambda w: is_live(rota.seen[w], now, timeout),
                               rota.cursor)
        if cursor != rota.cursor:
            rota.cursor, rota.moved = cursor, True
        return owner

    def _reassign(self, conn: sqlite3.Connection, rota: _Rota, now: int) -> None:
        """READY tasks unassigned or in a non-live worker's queue move, in seq order."""
        live = self._live(rota, now)
        gone = [name for name, ok in zip(rota.names, live, strict=True) if not ok]
        if not any(live):
            conn.executemany(
                "UPDATE tasks SET owner = NULL WHERE state = 0 AND owner = ?",
                [(name,) for name in gone],
            )
            return
        seqs = [row[0] for row in conn.execute(
            "SELECT seq FROM tasks WHERE state = 0 AND owner IS NULL")]
        for name in gone:
            seqs += [row[0] for row in conn.execute(
                "SELECT seq FROM tasks WHERE state = 0 AND owner = ?", (name,))]
        if seqs:
            moves = [(self._assign(rota, now), seq) for seq in sorted(seqs)]
            conn.executemany("UPDATE tasks SET owner = ? WHERE seq = ?", moves)
            self._save_cursor(conn, rota)

    def _save_cursor(self, conn: sqlite3.Connection, rota: _Rota) -> None:
        if rota.moved:
            conn.execute("UPDATE broker_state SET cursor = ?", (rota.cursor,))
            rota.moved = False

    # -- broker primitives --------------------------------------------------

    def _publish(self, tasks: Sequence[NewTask]) -> None:
        with self._write() as conn:
            now, rota = self._prelude(conn, None)
            if rota is None:
                self._insert(conn, tasks, tasks, assigned=False)
            else:
                rows = [(*task, self._assign(rota, now)) for task in tasks]
                self._insert(conn, rows, tasks, assigned=True)
            if rota is not None:
                self._save_cursor(conn, rota)

    def _insert(
        self, conn: sqlite3.Connection, rows: Sequence[tuple[object, ...]],
        tasks: Sequence[NewTask], *, assigned: bool,
    ) -> None:
        """Insert every row or none, in order; a stored id raises DuplicateTaskError.

        Rows go in multi-row INSERTs of up to ``_CHUNK`` rows, every value bound
        as itself: a few statements per batch instead of one per row. One
        statement is atomic on its own; several share a savepoint.
        """
        try:
            if len(rows) == 1:
                conn.execute(_insert_sql(1, assigned), rows[0])
                return
            pieces = _chunks(len(rows))
            if len(pieces) == 1:
                conn.execute(_insert_sql(len(rows), assigned), list(chain.from_iterable(rows)))
                return
            conn.execute("SAVEPOINT publish")
            try:
                for start, size in pieces:
                    conn.execute(_insert_sql(size, assigned),
                                 list(chain.from_iterable(rows[start:start + size])))
            except sqlite3.IntegrityError:
                conn.execute("ROLLBACK TO publish")
                conn.execute("RELEASE publish")
                raise
            conn.execute("RELEASE publish")
        except sqlite3.IntegrityError:
            raise DuplicateTaskError(self._duplicate_message(conn, tasks)) from None

    def _duplicate_message(self, conn: sqlite3.Connection, tasks: Sequence[NewTask]) -> str:
        for task in tasks:
            if conn.execute("SELECT 1 FROM tasks WHERE task_id = ?", (task.task_id,)).fetchone():
                return (f"task_id {task.task_id!r} was already published; "
                        "task ids are idempotency keys, use a new one")
        return "a task_id in the batch was already published; use new ids"

    def _fetch(self, worker: str, n: int) -> list[Delivery]:
        with self._write() as conn:
            now, _ = self._prelude(conn, worker)
            rows = self._take(conn, worker, n, now)
        return decode_deliveries(rows, now + self.config.lease_ms)

    def _take(self, conn: sqlite3.Connection, worker: str, n: int, now: int) -> list[DeliveryRow]:
        """Lease up to ``n`` tasks: the worker's own queue, then (stealing) its peers'."""
        expiry = now + self.config.lease_ms
        queue = None if self.config.policy == "shared" else worker
        rows = self._claim(conn, worker, expiry, queue, n)
        if len(rows) < n and self.config.policy == "work_stealing":
            rows += self._steal(conn, worker, expiry, n - len(rows))
        return rows

    def ack_and_fetch(self, worker: str, task_id: str) -> Delivery | None:
        """Ack then fetch in one transaction: one commit (one fsync) instead of two."""
        worker, task_id = check_name(worker, "worker"), check_name(task_id, "task_id")
        with self._write() as conn:
            now, _ = self._prelude(conn, worker)
            self._ack(conn, worker, [task_id])
            rows = self._take(conn, worker, 1, now)
        found = decode_deliveries(rows, now + self.config.lease_ms)
        return found[0] if found else None

    def _claim(
        self, conn: sqlite3.Connection, worker: str, expiry: int, queue: str | None, n: int
    ) -> list[DeliveryRow]:
        """Lease the ``n`` best READY tasks of one queue, best first.

        The rows are read in the index's order (deliveries already counting this
        one), then the same rows are leased: within the transaction nothing can
        change between the two. Cheaper than ``UPDATE ... RETURNING``, which
        gathers its rows in a temporary table and returns them in no set order.
        """
        rows: list[DeliveryRow] = conn.execute(_PICK, (queue, n)).fetchall()
        if len(rows) == 1:
            conn.execute(_LEASE_ONE, (worker, expiry, rows[0][4]))
        elif rows:
            conn.execute(_LEASE_FIRST, (worker, expiry, queue, len(rows)))
        return rows

    def _steal(
        self, conn: sqlite3.Connection, worker: str, expiry: int, n: int
    ) -> list[DeliveryRow]:
        """One task at a time from the fullest peer, as ``n`` separate fetches would."""
        counts: dict[str, int] = dict(conn.execute(
            "SELECT owner, COUNT(*) FROM tasks WHERE state = 0 AND owner IS NOT NULL "
            "GROUP BY owner"))
        stolen: list[DeliveryRow] = []
        while len(stolen) < n:
            victim = pick_victim(counts, worker)
            if victim is None:
                break
            stolen += self._claim(conn, worker, expiry, victim, 1)
            counts[victim] -= 1
        return stolen

    def _settle(self, worker: str, task_ids: Sequence[str], action: Settle) -> list[int]:
        with self._write() as conn:
            now, _ = self._prelude(conn, worker)
            if action == "ack":
                self._ack(conn, worker, task_ids)
                return []
            held = [self._held(conn, worker, task_id) for task_id in task_ids]
            if action == "extend":
                return self._extend(conn, held, now)
            self._give_back(conn, worker, held, action == "requeue", now)
            return []

    def _ack(self, conn: sqlite3.Connection, worker: str, task_ids: Sequence[str]) -> None:
        """Set-based UPDATEs of up to ``_CHUNK`` ids; if one task was not held, undo and say which.

        The ids are distinct (``ack_many`` refuses repeats), so the batch is
        acked exactly when the UPDATEs change one row per id.
        """
        if len(task_ids) == 1:
            if conn.execute(_ACK, (task_ids[0], worker)).rowcount != 1:
                self._held(conn, worker, task_ids[0])
            return
        conn.execute("SAVEPOINT ack")
        acked = sum(conn.execute(_ack_sql(size), (*task_ids[start:start + size], worker)).rowcount
                    for start, size in _chunks(len(task_ids)))
        if acked != len(task_ids):
            conn.execute("ROLLBACK TO ack")
            for task_id in task_ids:
                self._held(conn, worker, task_id)
            raise StoreError(f"{self.path}: ack_many matched {acked} of {len(task_ids)} held "
                             "tasks; nothing was acked")
        conn.execute("RELEASE ack")

    def _held(self, conn: sqlite3.Connection, worker: str, task_id: str) -> tuple[int, int, str]:
        """(seq, deliveries, task_id) of a task ``worker`` holds, else NotLeasedError."""
        row = conn.execute(_HELD, (task_id, worker)).fetchone()
        if row is not None:
            return row[0], row[1], task_id
        found = conn.execute(
            "SELECT state, owner FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        state, holder = (None, None) if found is None else found
        raise NotLeasedError(not_leased(worker, task_id, state, holder))

    def _extend(
        self, conn: sqlite3.Connection, held: list[tuple[int, int, str]], now: int
    ) -> list[int]:
        expiry = now + self.config.lease_ms
        conn.executemany("UPDATE tasks SET expiry = ? WHERE seq = ?",
                         [(expiry, seq) for seq, _, _ in held])
        return [expiry for _ in held]

    def _give_back(
        self, conn: sqlite3.Connection, worker: str, held: list[tuple[int, int, str]],
        requeue: bool, now: int,
    ) -> None:
        """nack: READY again in the worker's queue keeping its seq, or dead-lettered."""
        queue = None if self.config.policy == "shared" else worker
        for seq, deliveries, task_id in held:
            if requeue and deliveries < self.config.max_deliveries:
                conn.execute(_TO_READY, (queue, seq))
            else:
                conn.execute(_TO_DEAD, (seq,))
                conn.execute(_DEAD_ROW, (task_id, nack_reason(requeue, deliveries), now))

    def _heartbeat(self, worker: str) -> None:
        with self._write() as conn:
            self._prelude(conn, worker)

    def _dead_letters(self) -> list[tuple[str, str]]:
        with self._write() as conn:
            self._prelude(conn, None)
            rows = conn.execute("SELECT task_id, reason FROM dead ORDER BY id").fetchall()
        return [(task_id, reason) for task_id, reason in rows]

    def _stats(self) -> Stats:
        with self._lock:
            conn = self._connection()
            now, limit = self.config.clock.now_ms(), self.config.max_deliveries
            conn.execute("BEGIN")
            try:
                ready, leased, acked, dead = conn.execute(
                    "SELECT TOTAL(state = 0 OR (state = 1 AND expiry <= ?1 AND deliveries < ?2)),"
                    " TOTAL(state = 1 AND expiry > ?1), TOTAL(state = 2),"
                    " TOTAL(state = 3 OR (state = 1 AND expiry <= ?1 AND deliveries >= ?2))"
                    " FROM tasks", (now, limit)).fetchone()
                seen = [row[0] for row in conn.execute("SELECT last_seen FROM workers")]
                election = self._election(conn)
            finally:
                conn.execute("COMMIT")
        live = sum(1 for last in seen if is_live(last, now, self.config.worker_timeout_ms))
        holds = election.expiry is not None and now < election.expiry
        return Stats(int(ready), int(leased), int(acked), int(dead), live,
                     election.holder if holds else None, election.epoch)

    # -- election primitives --------------------------------------------------

    def _election(self, conn: sqlite3.Connection) -> ElectionState:
        holder, expiry, epoch = conn.execute(
            "SELECT holder, expiry, epoch FROM broker_state").fetchone()
        return ElectionState(holder, expiry, epoch)

    def _tick(self, node: str) -> TickResult:
        with self._write() as conn:
            now = self.config.clock.now_ms()
            conn.execute(
                "INSERT INTO members (node, last_tick) VALUES (?, ?) "
                "ON CONFLICT (node) DO UPDATE SET last_tick = excluded.last_tick", (node, now))
            members = dict(conn.execute("SELECT node, last_tick FROM members"))
            state, outcome = decide_tick(node, now, self._election(conn), members, self.config)
            if outcome != "none":
                conn.execute("UPDATE broker_state SET holder = ?, expiry = ?, epoch = ?",
                             (state.holder, state.expiry, state.epoch))
        return TickResult(outcome, state.epoch, now)

    def _leader_write(self, node: str, epoch: int, value_json: str) -> bool:
        with self._write() as conn:
            now = self.config.clock.now_ms()
            if not write_accepted(node, epoch, now, self._election(conn)):
                return False
            conn.execute("INSERT INTO fenced_writes (epoch, node, value, at_ms) "
                         "VALUES (?, ?, ?, ?)", (epoch, node, value_json, now))
            return True

    def fenced_writes(self) -> list[tuple[int, str, JSONValue]]:
        with self._lock:
            rows = self._connection().execute(
                "SELECT epoch, node, value FROM fenced_writes ORDER BY id").fetchall()
        return [(epoch, node, json.loads(value)) for epoch, node, value in rows]


__all__ = ["SCHEMA_VERSION", "SQLiteBroker"]
