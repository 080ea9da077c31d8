"""Code that runs inside the crash tests' OS processes (never imported by the tests' own process).

- ``record`` and ``hang`` are pool handlers (``sqlite_crash_procs:record``): each
  appends one JSON line per delivery to ``<payload.out>/<pid>.jsonl`` with one
  ``os.write`` on an ``O_APPEND`` file, so a SIGKILL loses no recorded line.
- ``python sqlite_crash_procs.py publish URL PREFIX BATCH`` publishes batches of
  ``BATCH`` tasks until it is killed, printing ``begin K`` before each
  ``publish_many`` call and ``committed K`` after it returns.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import taskward
from taskward.pool import current_delivery


def note(payload: dict[str, Any]) -> None:
    """One line per delivery, with the lease the broker granted."""
    delivery = current_delivery()
    line = json.dumps({
        "task": delivery.task_id, "deliveries": delivery.deliveries,
        "expiry": delivery.lease_expiry_ms, "pid": os.getpid(),
    }) + "\n"
    fd = os.open(Path(payload["out"]) / f"{os.getpid()}.jsonl",
                 os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def record(payload: dict[str, Any]) -> None:
    note(payload)


def hang(payload: dict[str, Any]) -> None:
    """Block (until killed) on the first ``payload["hang"]`` deliveries, then succeed."""
    note(payload)
    if current_delivery().deliveries <= payload["hang"]:
        time.sleep(3600)


def publish_forever(url: str, prefix: str, size: int) -> None:
    broker = taskward.connect(url)
    print("ready", flush=True)
    for k in range(100_000):
        batch = f"{prefix}-{k}"
        payloads = [{"batch": batch, "i": i} for i in range(size)]
        ids = [f"{batch}-{i}" for i in range(size)]
        print(f"begin {k}", flush=True)
        broker.publish_many(payloads, task_ids=ids)
        print(f"committed {k}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "publish":
        publish_forever(sys.argv[2], sys.argv[3], int(sys.argv[4]))
