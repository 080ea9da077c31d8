"""Real processes against a real server: SIGKILLed workers, many workers, a server restart.

These use the system clock (several processes must agree on time), so they wait
for leases to run out; they never assert how long anything took.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from redis_server_fixture import BrokerFactory, RedisServer

from taskward.api import BrokerConfig, IndefiniteError, SystemClock
from taskward.backends.redis import RedisBroker

pytestmark = [pytest.mark.redis, pytest.mark.crash]

WORKER = str(Path(__file__).with_name("redis_worker_proc.py"))
LEASE_MS = 1000  # redis_worker_proc.LEASE_MS


def spawn(mode: str, url: str, policy: str, worker: str, total: int = 0) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, WORKER, mode, url, policy, worker, str(total)],
                            stdout=subprocess.PIPE, text=True)


def spawn_drainers(
    url: str, policy: str, names: list[str], total: int
) -> list[subprocess.Popen[str]]:
    """Start drain workers and return once every one is connected and polling."""
    procs = [spawn("drain", url, policy, name, total) for name in names]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return procs


def system_broker(url: str, policy: str = "shared") -> RedisBroker:
    config = BrokerConfig(policy=policy, lease_ms=LEASE_MS, max_deliveries=50,  # type: ignore[arg-type]
                          workers=("w1", "w2", "w3", "w4"), worker_timeout_ms=60_000,
                          clock=SystemClock())
    return RedisBroker(url, config)


def wait_for(condition: object, what: str, limit_s: float = 60.0) -> None:
    """Poll until ``condition()`` holds; a generous limit only turns a hang into a failure."""
    deadline = time.monotonic() + limit_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def test_redis_a_task_held_by_a_killed_worker_returns_after_its_lease(
    redis_server: RedisServer, namespace: str,
) -> None:
    url = redis_server.url(namespace)
    broker = system_broker(url)
    try:
        broker.publish({"work": 1}, task_id="t1")
        child = spawn("hold", url, "shared", "w1")
        assert child.stdout is not None
        line = child.stdout.readline().split()
        child.kill()  # SIGKILL mid-task: no ack, no nack, no goodbye
        child.wait()
        child.stdout.close()
        assert line[:2] == ["got", "t1"]
        first_expiry = int(line[2])
        found: list[object] = []
        wait_for(lambda: found.append(broker.fetch("w2")) or found[-1] is not None,
                 "the killed worker's task to come back")
        again = found[-1]
        assert again is not None and again.task_id == "t1"  # type: ignore[attr-defined]
        assert again.deliveries == 2  # type: ignore[attr-defined]
        # delivered again only once the first lease had run out
        assert again.lease_expiry_ms - LEASE_MS >= first_expiry  # type: ignore[attr-defined]
        broker.ack("w2", "t1")
    finally:
        broker.close()


@pytest.mark.parametrize("policy", ["shared", "work_stealing"])
def test_redis_four_worker_processes_drain_one_queue_each_task_once(
    redis_server: RedisServer, namespace: str, policy: str,
) -> None:
    url = redis_server.url(namespace)
    broker = system_broker(url, policy)
    try:
        workers = spawn_drainers(url, policy, ["w1", "w2", "w3", "w4"], 400)
        ids = broker.publish_many(list(range(400)), task_ids=[f"t{i}" for i in range(400)])
        outputs = [proc.communicate(timeout=120)[0] for proc in workers]
        assert [proc.returncode for proc in workers] == [0, 0, 0, 0]
        done = [line.split() for out in outputs for line in out.splitlines()]
        per_task = Counter(task_id for _, task_id, _ in done)
        assert set(per_task) == set(ids)
        assert max(per_task.values()) == 1  # nobody acked a task twice
        assert {deliveries for _, _, deliveries in done} == {"1"}  # never re-delivered
        stats = broker.stats()
        assert (stats.ready, stats.leased, stats.acked, stats.dead) == (0, 0, 400, 0)
    finally:
        broker.close()


def test_redis_server_killed_and_restarted_mid_run_loses_nothing(
    durable_server: RedisServer,
) -> None:
    url = durable_server.url("restart-" + uuid.uuid4().hex[:8])
    broker = system_broker(url)
    workers: list[subprocess.Popen[str]] = []
    try:
        workers = spawn_drainers(url, "shared", ["w1", "w2"], 1100)
        first = broker.publish_many(list(range(1000)), task_ids=[f"a{i}" for i in range(1000)])
        seen: list[int] = []
        wait_for(lambda: seen.append(broker.stats().acked) or seen[-1] >= 100,
                 "the workers to ack 100 tasks")
        durable_server.kill()  # SIGKILL: only what appendfsync always wrote survives
        with pytest.raises(IndefiniteError):
            broker.stats()
        durable_server.start()
        assert broker.stats().acked >= seen[-1]  # every ack the server confirmed survived
        second: list[str] = []
        while not second:  # publish is idempotent by task id: retry until it is known
            try:
                second = broker.publish_many(list(range(100)),
                                             task_ids=[f"b{i}" for i in range(100)])
            except IndefiniteError:
                time.sleep(0.05)
        outputs = [proc.communicate(timeout=120)[0] for proc in workers]
        assert [proc.returncode for proc in workers] == [0, 0]
        confirmed = {line.split()[1] for out in outputs for line in out.splitlines()}
        stats = broker.stats()
        assert (stats.ready, stats.leased, stats.dead) == (0, 0, 0)
        assert stats.acked == 1100
        assert confirmed <= set(first) | set(second)
        assert len(confirmed) >= 1095  # only acks cut off by the outage go unconfirmed
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        broker.close()


def test_redis_restarted_broker_object_sees_the_same_state(make_broker: BrokerFactory) -> None:
    broker = make_broker(policy="shared")
    broker.publish_many([1, 2], task_ids=["t1", "t2"])
    got = broker.fetch("w1")
    assert got is not None
    broker.restart()
    broker.ack("w1", got.task_id)
    assert broker.stats().acked == 1


def test_redis_threads_sharing_one_broker_drain_each_task_once(
    redis_server: RedisServer, namespace: str,
) -> None:
    broker = system_broker(redis_server.url(namespace))
    try:
        ids = broker.publish_many(list(range(600)), task_ids=[f"t{i}" for i in range(600)])
        done: list[list[tuple[str, int]]] = [[] for _ in range(4)]

        def drain(slot: int) -> None:
            got = broker.fetch(f"thread-{slot}")
            while got is not None:
                done[slot].append((got.task_id, got.deliveries))
                got = broker.ack_and_fetch(f"thread-{slot}", got.task_id)

        threads = [threading.Thread(target=drain, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        flat = [item for part in done for item in part]
        assert sorted(task_id for task_id, _ in flat) == sorted(ids)
        assert {deliveries for _, deliveries in flat} == {1}
        assert broker.stats().acked == 600
    finally:
        broker.close()
