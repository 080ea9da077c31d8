"""taskward's SQLite broker side by side with the SQLite queues people pick today.

One run measures every system on the same machine, with the same durability:
WAL journal and ``synchronous=FULL`` (every commit is fsynced before it
returns), a fresh database file per system, the same JSON payloads.

Single mode: one task per call, N tasks; the clock covers publishing all N and
then fetching and acknowledging each one:

- taskward sqlite: ``publish`` / ``fetch`` / ``ack``
- taskward sqlite, pool loop: ``publish`` / ``ack_and_fetch`` (what the worker pool does:
  the ack and the next lease share one transaction); informational, the targets
  use the row above
- persist-queue ``SQLiteAckQueue``: ``put`` / ``get`` / ``ack``. Its shipped defaults
  are read at the start of the run; when they are not WAL + FULL on this machine,
  one more row runs it exactly as shipped, labelled so (the target is judged on
  the equal-durability row)
- litequeue ``LiteQueue``: ``put`` / ``pop`` / ``done``
- huey ``SqliteStorage``: ``enqueue`` / ``dequeue`` (no ack: a dequeue deletes the
  row, so a crash after it loses the task; one commit fewer per task)
- plain sqlite3: INSERT; ``UPDATE ... RETURNING`` claim; UPDATE ack, one transaction
  each. This is the ceiling for one-task-per-call designs.
- durable commit alone: one single-row INSERT per transaction, to show what the
  disk allows (a task needs 3 such commits one call at a time).

Batch mode: taskward ``publish_many`` / ``fetch_many`` and acks (``ack_many`` when
the backend has it, otherwise one ``ack`` per task).

Usage: ``python bench/bench_sqlite.py [-n 5000] [--repeat 3] [--json out.json]
[--profile]``. Peers are imported lazily; a missing one is skipped with a reason.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import os
import platform
import pstats
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DURABILITY = "WAL journal + synchronous=FULL for every system"
COMMITS = "durable commit alone"
PERSIST_QUEUE = "persist-queue SQLiteAckQueue"
PERSIST_QUEUE_SHIPPED = "persist-queue SQLiteAckQueue, shipped defaults"
SYNCHRONOUS_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
COMMITS_PER_TASK = 3
"""publish, claim, ack: the durable commits one task needs one call at a time."""

Runner = Callable[[Path, int], None]
"""Runs N tasks through one system in a fresh directory; raises when a task goes missing."""


class Skip(Exception):
    """The peer is not installed or cannot run here; the message says why."""


@dataclass(frozen=True, slots=True)
class Result:
    system: str
    mode: str
    tasks: int
    seconds: float
    tasks_per_s: float
    note: str = ""


def payload(i: int) -> dict[str, Any]:
    """The same small JSON document for every system."""
    return {"n": i, "kind": "bench", "body": "x" * 32}


def make_full(conn: sqlite3.Connection) -> None:
    """Force the shared durability level on a peer's connection."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")


# ----------------------------------------------------------------- taskward


def taskward_connect(path: Path) -> Any:
    """Connect through the public API, so the benchmark measures what users get."""
    try:
        import taskward
    except ImportError as exc:  # pragma: no cover - only without an install
        raise Skip(f"taskward not importable: {exc}") from exc
    connect = getattr(taskward, "connect", None)
    if connect is None:
        raise Skip("taskward.connect is not available yet")
    return connect(f"sqlite:///{path / 'taskward.db'}", lease_ms=60_000)


def run_taskward_single(path: Path, n: int) -> None:
    broker = taskward_connect(path)
    try:
        for i in range(n):
            broker.publish(payload(i))
        for _ in range(n):
            delivery = broker.fetch("bench")
            if delivery is None:
                raise RuntimeError("taskward: a published task was not delivered")
            broker.ack("bench", delivery.task_id)
    finally:
        broker.close()


def run_taskward_chained(path: Path, n: int) -> None:
    """The worker pool's loop: ``ack_and_fetch`` acks and leases the next task in one commit."""
    broker = taskward_connect(path)
    try:
        for i in range(n):
            broker.publish(payload(i))
        delivery = broker.fetch("bench")
        for _ in range(n):
            if delivery is None:
                raise RuntimeError("taskward: a published task was not delivered")
            delivery = broker.ack_and_fetch("bench", delivery.task_id)
    finally:
        broker.close()


def batch_runner(batch: int) -> Runner:
    """Batch calls of ``batch`` tasks: publish_many, fetch_many, then the acks."""

    def run(path: Path, n: int) -> None:
        broker = taskward_connect(path)
        ack_many = getattr(broker, "ack_many", None)
        try:
            for start in range(0, n, batch):
                broker.publish_many([payload(i) for i in range(start, min(n, start + batch))])
            done = 0
            while done < n:
                got = broker.fetch_many("bench", batch)
                if not got:
                    raise RuntimeError("taskward: fetch_many returned nothing before the end")
                ids = [d.task_id for d in got]
                if ack_many is not None:
                    ack_many("bench", ids)
                else:
                    for task_id in ids:
                        broker.ack("bench", task_id)
                done += len(got)
        finally:
            broker.close()

    return run


def batch_note(path: Path) -> str:
    """Say which ack call the batch run used, since it decides the result."""
    broker = taskward_connect(path)
    try:
        has = getattr(broker, "ack_many", None) is not None
    finally:
        broker.close()
    return "publish_many/fetch_many/ack_many" if has else "publish_many/fetch_many + ack per task"


# ----------------------------------------------------------------- peers


def persist_queue(path: Path) -> Any:
    """An SQLiteAckQueue with the JSON serializer and otherwise persist-queue's own settings."""
    try:
        from persistqueue import SQLiteAckQueue
        from persistqueue.serializers import json as pq_json
    except ImportError as exc:
        raise Skip(f"persist-queue not installed ({exc}); pip install persist-queue") from exc
    return SQLiteAckQueue(str(path / "pq"), serializer=pq_json, auto_resume=False)


def persist_queue_defaults() -> tuple[str, int] | None:
    """(journal_mode, synchronous) persist-queue runs with when left as shipped, None if absent.

    It sets ``journal_mode=WAL`` itself and leaves ``synchronous`` to SQLite's
    compiled-in default, which depends on how this machine's SQLite was built.
    """
    with tempfile.TemporaryDirectory() as tmp:
        try:
            queue = persist_queue(Path(tmp))
        except Skip:
            return None
        try:
            mode = str(queue._putter.execute("PRAGMA journal_mode").fetchone()[0]).lower()
            sync = int(queue._putter.execute("PRAGMA synchronous").fetchone()[0])
        finally:
            queue.close()
    return mode, sync


def run_persist_queue(path: Path, n: int) -> None:
    queue = persist_queue(path)
    make_full(queue._putter)
    make_full(queue._getter)
    drain_persist_queue(queue, n)


def run_persist_queue_shipped(path: Path, n: int) -> None:
    """persist-queue exactly as shipped (journal and synchronous untouched)."""
    drain_persist_queue(persist_queue(path), n)


def drain_persist_queue(queue: Any, n: int) -> None:
    """N puts, then N get+ack pairs; the queue is closed either way."""
    try:
        for i in range(n):
            queue.put(payload(i))
        for _ in range(n):
            item = queue.get(block=False, raw=True)
            queue.ack(id=item["pqid"])
    finally:
        queue.close()


def run_litequeue(path: Path, n: int) -> None:
    try:
        from litequeue import LiteQueue
    except ImportError as exc:
        raise Skip(f"litequeue not installed ({exc}); pip install litequeue") from exc
    queue = LiteQueue(str(path / "lq.db"))
    make_full(queue.conn)  # litequeue sets synchronous=NORMAL itself
    try:
        for i in range(n):
            queue.put(json.dumps(payload(i)))
        for _ in range(n):
            message = queue.pop()
            if message is None:
                raise RuntimeError("litequeue: a published task was not delivered")
            json.loads(message.data)
            queue.done(message.message_id)
    finally:
        queue.conn.close()


def run_huey(path: Path, n: int) -> None:
    try:
        from huey.storage import SqliteStorage
    except ImportError as exc:
        raise Skip(f"huey not installed ({exc}); pip install huey") from exc
    storage = SqliteStorage(name="bench", filename=str(path / "huey.db"), fsync=True)
    try:
        for i in range(n):
            storage.enqueue(json.dumps(payload(i)).encode())
        for _ in range(n):
            data = storage.dequeue()
            if data is None:
                raise RuntimeError("huey: a published task was not delivered")
            json.loads(bytes(data))
    finally:
        storage.close()


PLAIN_SCHEMA = """
CREATE TABLE tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    state INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    expiry INTEGER,
    deliveries INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tasks_ready ON tasks (state, priority DESC, seq);
"""

PLAIN_CLAIM = """
UPDATE tasks SET state = 1, worker = ?, expiry = ?, deliveries = deliveries + 1
WHERE seq = (SELECT seq FROM tasks WHERE state = 0 ORDER BY priority DESC, seq LIMIT 1)
RETURNING task_id, payload
"""

PLAIN_ACK = (
    "UPDATE tasks SET state = 2 WHERE task_id = ? AND worker = ? AND state = 1 AND expiry > ?"
)


def run_plain(path: Path, n: int) -> None:
    """The three statements a leased queue needs, one autocommit transaction each."""
    conn = sqlite3.connect(path / "plain.db", isolation_level=None)
    make_full(conn)
    conn.executescript(PLAIN_SCHEMA)
    try:
        for i in range(n):
            conn.execute(
                "INSERT INTO tasks (task_id, payload) VALUES (?, ?)",
                (f"t{i}", json.dumps(payload(i))),
            )
        for _ in range(n):
            now = time.time_ns() // 1_000_000
            rows = conn.execute(PLAIN_CLAIM, ("bench", now + 60_000)).fetchall()
            if not rows:
                raise RuntimeError("plain: a published task was not delivered")
            task_id, data = rows[0]
            json.loads(data)
            if conn.execute(PLAIN_ACK, (task_id, "bench", now)).rowcount != 1:
                raise RuntimeError("plain: ack refused")
    finally:
        conn.close()


def run_commits(path: Path, n: int) -> None:
    """One single-row INSERT per transaction: what one durable commit costs on this disk."""
    conn = sqlite3.connect(path / "commits.db", isolation_level=None)
    try:
        make_full(conn)
        conn.execute("CREATE TABLE t (x INTEGER)")
        for i in range(n):
            conn.execute("INSERT INTO t VALUES (?)", (i,))
    finally:
        conn.close()


SINGLE: list[tuple[str, Runner, str]] = [
    ("taskward sqlite", run_taskward_single, "publish/fetch/ack"),
    ("taskward sqlite, pool loop", run_taskward_chained,
     "publish/ack_and_fetch: ack + next fetch in 1 txn (2 commits per task, not 3)"),
    (PERSIST_QUEUE, run_persist_queue, "put/get/ack"),
    ("litequeue", run_litequeue, "put/pop/done"),
    ("huey SqliteStorage", run_huey, "enqueue/dequeue, no ack (2 commits per task, not 3)"),
    ("plain sqlite3 loop", run_plain, "INSERT; UPDATE..RETURNING; UPDATE, 1 txn each"),
    (COMMITS, run_commits, "one INSERT per txn: the disk's durable commits per second"),
]


# ----------------------------------------------------------------- measuring


def time_once(runner: Runner, n: int) -> float:
    """One run in a fresh directory, so no system benefits from a warm file."""
    directory = Path(tempfile.mkdtemp(prefix="taskward-bench-"))
    try:
        start = time.perf_counter()
        runner(directory, n)
        return time.perf_counter() - start
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def shipped_row(defaults: tuple[str, int] | None) -> tuple[str, Runner, str] | None:
    """The extra persist-queue row, only when its shipped settings are not WAL + FULL here."""
    if defaults is None or defaults == ("wal", 2):
        return None
    mode, sync = defaults
    return (PERSIST_QUEUE_SHIPPED, run_persist_queue_shipped,
            f"put/get/ack as shipped: journal_mode={mode}, "
            f"synchronous={SYNCHRONOUS_NAMES.get(sync, sync)}; NOT the same durability")


def run_all(
    n: int, batch_n: int, batch: int, repeat: int, pq_defaults: tuple[str, int] | None = None
) -> list[Result]:
    """Every system once per round, ``repeat`` rounds, then the median per system.

    Interleaving the rounds spreads any load from other processes over all
    systems alike instead of penalising whichever ran during a busy spell.
    """
    single = list(SINGLE)
    extra = shipped_row(pq_defaults)
    if extra is not None:
        single.insert(3, extra)
    runs: list[tuple[str, str, Runner, int, str]] = [
        (name, "single", runner, n, note) for name, runner, note in single
    ]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            note = batch_note(Path(tmp))
        runs.append(("taskward sqlite", "batch", batch_runner(batch), batch_n,
                     f"{note}, {batch} per call"))
    except Skip as why:
        print(f"skipped taskward batch: {why}", file=sys.stderr)
    times: dict[int, list[float]] = {i: [] for i in range(len(runs))}
    for _ in range(repeat):
        for i, (name, _mode, runner, tasks, _note) in enumerate(runs):
            if i not in times:
                continue
            try:
                times[i].append(time_once(runner, tasks))
            except Skip as why:
                print(f"skipped {name}: {why}", file=sys.stderr)
                del times[i]
    return [
        Result(runs[i][0], runs[i][1], runs[i][3], statistics.median(t),
               runs[i][3] / statistics.median(t), runs[i][4])
        for i, t in times.items()
    ]


def rate(results: list[Result], system: str, mode: str = "single") -> float | None:
    for r in results:
        if r.system == system and r.mode == mode:
            return r.tasks_per_s
    return None


def ceiling_ratio(results: list[Result]) -> float | None:
    """The best taskward/persist-queue ratio any queue could reach one task per call.

    A queue that makes each call durable needs COMMITS_PER_TASK commits per
    task, so it cannot beat (durable commits/s / COMMITS_PER_TASK) tasks/s on
    this disk; divided by persist-queue's measured rate, that bounds the ratio.
    """
    commits = rate(results, COMMITS)
    pq = rate(results, PERSIST_QUEUE)
    if not commits or not pq:
        return None
    return commits / COMMITS_PER_TASK / pq


def targets(results: list[Result]) -> list[dict[str, Any]]:
    """The targets of issue 4, each with its measured value and verdict.

    The "best possible" row is a bound, not a target: its verdict says whether
    the 3x target is reachable at all at this durability on this disk.
    """
    tw = rate(results, "taskward sqlite")
    pq = rate(results, PERSIST_QUEUE)
    plain = rate(results, "plain sqlite3 loop")
    batch = rate(results, "taskward sqlite", "batch")
    loop = rate(results, "taskward sqlite, pool loop")
    rows = [
        ("single: >= 3x persist-queue", tw / pq if tw and pq else None, 3.0, "x", "target"),
        (f"single, best possible at {COMMITS_PER_TASK} commits per task: "
         f"(durable commits/s / {COMMITS_PER_TASK}) / persist-queue rate",
         ceiling_ratio(results), 3.0, "x", "bound"),
        ("single: >= 0.8x plain sqlite3 loop", tw / plain if tw and plain else None, 0.8, "x",
         "target"),
        ("batch: >= 50,000 tasks/s", batch, 50_000.0, " tasks/s", "target"),
        ("(pool loop) >= 3x persist-queue", loop / pq if loop and pq else None, 3.0, "x",
         "target"),
    ]
    return [
        {"target": t, "measured": v, "threshold": th, "unit": unit, "kind": kind,
         "met": None if v is None else v >= th}
        for t, v, th, unit, kind in rows
    ]


def verdict(target: dict[str, Any]) -> str:
    """met / NOT met for a target; for the bound, whether 3x is reachable at all."""
    if target["met"] is None:
        return "not measured"
    if target["kind"] == "bound":
        return ("3x is within reach" if target["met"]
                else "below 3x: the 3x target is out of reach at this durability")
    return "met" if target["met"] else "NOT met"


def table(results: list[Result], n: int) -> str:
    """A Markdown table, so the same text goes to the terminal and to bench/README.md."""
    tw = rate(results, "taskward sqlite")
    lines = [
        "| system | mode | tasks | seconds | tasks/s | taskward / system | calls |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        ratio = (f"{tw / r.tasks_per_s:.2f}x" if tw and r.mode == "single" and r.system != COMMITS
                 else "-")
        lines.append(
            f"| {r.system} | {r.mode} | {r.tasks} | {r.seconds:.2f} | {r.tasks_per_s:,.0f} "
            f"| {ratio} | {r.note} |"
        )
    lines += ["", "| target | measured | verdict |", "|---|---:|---|"]
    for t in targets(results):
        v = t["measured"]
        shown = "n/a" if v is None else (f"{v:.2f}x" if t["unit"] == "x" else f"{v:,.0f}/s")
        lines.append(f"| {t['target']} | {shown} | {verdict(t)} |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


def profile_taskward(runner: Runner, n: int, top: int = 25) -> str:
    """Where taskward's time goes in one run (cumulative, then own time)."""
    directory = Path(tempfile.mkdtemp(prefix="taskward-prof-"))
    profiler = cProfile.Profile()
    try:
        profiler.runcall(runner, directory, n)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("-n", type=int, default=5000, help="tasks per single-call run")
    parser.add_argument("--batch-tasks", type=int, default=50_000, help="tasks per batch run")
    parser.add_argument("--batch", type=int, default=500, help="tasks per batch call")
    parser.add_argument("--repeat", type=int, default=3, help="runs per system (median)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--profile", action="store_true", help="cProfile the taskward run")
    args = parser.parse_args(argv)

    started = dt.datetime.now(dt.UTC)
    pq_defaults = persist_queue_defaults()
    results = run_all(args.n, args.batch_tasks, args.batch, args.repeat, pq_defaults)
    info = machine()
    print(f"# {started:%Y-%m-%d %H:%M} UTC, {info['cores']} cores, Python {info['python']}, "
          f"SQLite {info['sqlite']}; {DURABILITY}; median of {args.repeat}\n")
    if pq_defaults is not None:
        mode, sync = pq_defaults
        print(f"persist-queue as shipped runs here with journal_mode={mode}, "
              f"synchronous={SYNCHRONOUS_NAMES.get(sync, sync)}"
              + (" (the same as this benchmark's setting)\n" if pq_defaults == ("wal", 2)
                 else " (a row of its own below)\n"))
    print(table(results, args.n))
    commits = rate(results, COMMITS)
    if commits:
        print(f"\nDurable commits here: {commits:,.0f}/s (median). One task per call needs 3 "
              f"commits, so about {commits / 3:,.0f} tasks/s if commits were the only cost "
              f"({commits / 2:,.0f} with the 2 commits of ack_and_fetch), whatever the queue.")
    if args.json:
        args.json.write_text(json.dumps({
            "date": started.isoformat(), "machine": info, "durability": DURABILITY,
            "repeat": args.repeat, "results": [asdict(r) for r in results],
            "persist_queue_shipped": None if pq_defaults is None else
            {"journal_mode": pq_defaults[0], "synchronous": pq_defaults[1]},
            "targets": targets(results),
        }, indent=2))
    if args.profile:
        print("## profile: taskward single\n" + profile_taskward(run_taskward_single, args.n))
        print("## profile: taskward batch\n"
              + profile_taskward(batch_runner(args.batch), args.batch_tasks))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
