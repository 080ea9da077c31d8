"""A worker process for the crash tests: ``redis_worker_proc.py MODE URL POLICY WORKER [TOTAL]``.

Modes:
- ``hold``: fetch one task, print ``got <id> <lease_expiry_ms>``, then sleep until killed.
- ``drain``: print ``ready``, then ack_and_fetch until TOTAL tasks are acked (by anyone) and
  none is ready or leased; print ``done <id> <deliveries>`` per confirmed ack.
  Survives a server outage: an IndefiniteError is retried, and a task whose ack
  was lost comes back after its lease (``lease_ms``), so nothing is lost.
"""

from __future__ import annotations

import sys
import time

from taskward.api import BrokerConfig, Delivery, IndefiniteError, NotLeasedError
from taskward.backends.redis import RedisBroker

LEASE_MS = 1000


def connect(url: str, policy: str) -> RedisBroker:
    config = BrokerConfig(
        policy=policy,  # type: ignore[arg-type]
        lease_ms=LEASE_MS, max_deliveries=50, workers=("w1", "w2", "w3", "w4"),
        worker_timeout_ms=60_000,
    )
    while True:
        try:
            return RedisBroker(url, config)
        except IndefiniteError:
            time.sleep(0.05)


def hold(broker: RedisBroker, worker: str) -> None:
    got = None
    while got is None:
        got = broker.fetch(worker)
    print("got", got.task_id, got.lease_expiry_ms, flush=True)
    time.sleep(3600)


def settle(broker: RedisBroker, worker: str, current: Delivery | None) -> Delivery | None:
    """Ack ``current`` and fetch the next, retrying through outages."""
    while True:
        try:
            if current is None:
                return broker.fetch(worker)
            nxt = broker.ack_and_fetch(worker, current.task_id)
            print("done", current.task_id, current.deliveries, flush=True)
            return nxt
        except IndefiniteError:
            time.sleep(0.05)
        except NotLeasedError:
            current = None  # the lost ack may have happened; otherwise the lease returns it


def drain(broker: RedisBroker, worker: str, total: int) -> None:
    print("ready", flush=True)
    current: Delivery | None = None
    while True:
        current = settle(broker, worker, current)
        if current is not None:
            continue
        try:
            stats = broker.stats()
        except IndefiniteError:
            time.sleep(0.05)
            continue
        if stats.acked >= total and stats.ready == 0 and stats.leased == 0:
            return
        time.sleep(0.02)  # tasks are leased by others, or waiting for a lost lease


def main() -> None:
    mode, url, policy, worker = sys.argv[1:5]
    broker = connect(url, policy)
    try:
        if mode == "hold":
            hold(broker, worker)
        else:
            drain(broker, worker, int(sys.argv[5]))
    finally:
        broker.close()


if __name__ == "__main__":
    main()
