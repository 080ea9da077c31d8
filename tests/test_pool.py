"""The worker pool and the runtime commands, against real brokers and real processes.

Handlers here are module-level so that spawned worker processes can import
them by name; they record every delivery in a side directory named by the
payload, one append-only file per process and thread.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import taskward
from taskward.api import Broker, ConfigError
from taskward.pool import WorkerPool, current_delivery
from taskward.runtime_cli import main as runtime_main

HERE = Path(__file__).resolve().parent
IMPORT_ROOT = HERE.parents[len(__name__.split(".")) - 2] if "." in __name__ else HERE
"""The sys.path entry this module was imported from: worker processes start there."""


# ------------------------------------------------------------------ handlers


def record(payload: dict[str, Any]) -> None:
    """Note the delivery, then sleep or fail as the payload asks."""
    delivery = current_delivery()
    line = json.dumps({"task": delivery.task_id, "deliveries": delivery.deliveries,
                       "pid": os.getpid()}) + "\n"
    out = Path(payload["out"])
    fd = os.open(out / f"{os.getpid()}-{threading.get_ident()}.jsonl",
                 os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    time.sleep(payload.get("sleep", 0))
    if payload.get("fail"):
        raise ValueError("this task always fails")
    (out / f"finished-{delivery.task_id}").touch()


def records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for f in sorted(out.glob("*.jsonl"))
            for line in f.read_text().splitlines()]


def deliveries_per_task(out: Path) -> Counter[str]:
    return Counter(r["task"] for r in records(out))


HANDLER = f"{__name__}:record"


def broker_from_env() -> Broker:
    """A module-level factory: worker processes import it by name and call it."""
    return taskward.connect(os.environ["TASKWARD_TEST_URL"], lease_ms=2000)


# ------------------------------------------------------------------ fixtures


@pytest.fixture
def out(tmp_path: Path) -> Path:
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tasks.db'}"


@pytest.fixture
def memory() -> Iterator[Broker]:
    broker = taskward.connect("memory://", lease_ms=300, max_deliveries=3)
    yield broker
    broker.close()


def publish(broker: Broker, out: Path, n: int, **extra: Any) -> list[str]:
    return broker.publish_many([{"out": str(out), "i": i, **extra} for i in range(n)])


def wait_for(condition: Callable[[], bool], what: str, deadline_s: float = 60.0) -> None:
    """Poll an outcome; the deadline only keeps a broken run from hanging."""
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


# ------------------------------------------------------------------ processes and threads


@pytest.mark.parametrize("policy", ["shared", "round_robin", "work_stealing"])
def test_worker_processes_ack_every_task_exactly_once(
    url: str, out: Path, connect: Callable[..., Broker], policy: str
) -> None:
    broker = connect(url, policy=policy)
    ids = publish(broker, out, 60)
    report = WorkerPool(url, HANDLER, processes=2, options={"policy": policy}, burst=True,
                        progress=False).run()
    stats = broker.stats()
    assert report.exit_code == 0
    assert report.processed == 60 and report.failed == 0
    assert (stats.acked, stats.ready, stats.leased) == (60, 0, 0)
    assert deliveries_per_task(out) == Counter({task_id: 1 for task_id in ids})


def test_a_module_level_broker_factory_is_called_in_each_worker_process(
    url: str, out: Path, connect: Callable[..., Broker], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKWARD_TEST_URL", url)
    broker = connect(url)
    ids = publish(broker, out, 20)
    report = WorkerPool(broker_from_env, record, processes=2, burst=True, progress=False).run()
    assert report.exit_code == 0 and broker.stats().acked == 20
    assert deliveries_per_task(out) == Counter({task_id: 1 for task_id in ids})


def test_worker_threads_share_one_memory_broker(memory: Broker, out: Path) -> None:
    ids = publish(memory, out, 40)
    report = WorkerPool(memory, record, processes=3, threads=True, burst=True,
                        progress=False).run()
    assert report.exit_code == 0 and report.processed == 40
    assert memory.stats().acked == 40
    assert deliveries_per_task(out) == Counter({task_id: 1 for task_id in ids})


def test_a_failing_task_is_requeued_until_max_deliveries_then_dead_lettered(
    memory: Broker, out: Path
) -> None:
    [task_id] = publish(memory, out, 1, fail=True)
    report = WorkerPool(memory, record, processes=2, threads=True, burst=True,
                        progress=False).run()
    assert memory.dead_letters() == [task_id]
    assert report.failed == 3 and report.processed == 0
    assert sorted(r["deliveries"] for r in records(out)) == [1, 2, 3]


def test_a_task_longer_than_its_lease_is_extended_and_delivered_once(
    url: str, out: Path, connect: Callable[..., Broker]
) -> None:
    broker = connect(url, lease_ms=900)
    [task_id] = publish(broker, out, 1, sleep=2.5)  # almost three leases long
    report = WorkerPool(url, HANDLER, processes=2, options={"lease_ms": 900}, burst=True,
                        progress=False).run()
    stats = broker.stats()
    assert deliveries_per_task(out) == Counter({task_id: 1})
    assert report.lease_lost == 0 and stats.acked == 1


def test_max_tasks_bounds_the_whole_pool(memory: Broker, out: Path) -> None:
    publish(memory, out, 20)
    report = WorkerPool(memory, record, processes=3, threads=True, max_tasks=5,
                        progress=False).run()
    stats = memory.stats()
    assert report.processed == 5
    assert (stats.acked, stats.ready) == (5, 15)


def test_current_delivery_outside_a_handler_says_where_it_works() -> None:
    with pytest.raises(RuntimeError, match="inside a handler"):
        current_delivery()


# ------------------------------------------------------------------ refusals


def test_an_unimportable_handler_is_refused_with_the_fix(url: str) -> None:
    with pytest.raises(ConfigError, match="PYTHONPATH"):
        WorkerPool(url, "no_such_module_here:handle", progress=False)


def test_a_handler_name_without_a_colon_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="module:function"):
        WorkerPool(url, "just_a_name", progress=False)


def test_a_lambda_cannot_be_sent_to_worker_processes(url: str) -> None:
    with pytest.raises(ConfigError, match="module level"):
        WorkerPool(url, lambda payload: None, progress=False)


@pytest.mark.parametrize("threads", [False, True])
def test_a_memory_url_is_refused_since_each_connection_is_a_private_broker(
    threads: bool,
) -> None:
    with pytest.raises(ConfigError, match="pass the broker object itself with threads=True"):
        WorkerPool("memory://", HANDLER, threads=threads, progress=False)


def test_a_broker_instance_cannot_be_shared_with_processes(memory: Broker) -> None:
    with pytest.raises(ConfigError, match="threads=True"):
        WorkerPool(memory, HANDLER, progress=False)


# ------------------------------------------------------------------ signals


def start_worker_command(
    url: str, *args: str, new_session: bool = False
) -> subprocess.Popen[bytes]:
    """``taskward worker`` as its own OS process, run from where the handler imports."""
    return subprocess.Popen(
        [sys.executable, "-m", "taskward.runtime_cli", "worker", url, HANDLER, "-q", *args],
        cwd=IMPORT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=new_session,
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; any still running at the end is killed and reaped."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def finish(proc: subprocess.Popen[bytes]) -> int:
    """The exit code; the timeout only keeps a broken run from hanging."""
    proc.communicate(timeout=60)
    return proc.returncode


def test_sigterm_lets_the_current_task_finish_and_exits_0(
    url: str, out: Path, connect: Callable[..., Broker], processes: list[subprocess.Popen[bytes]]
) -> None:
    broker = connect(url)
    [task_id] = publish(broker, out, 1, sleep=1.0)
    proc = start_worker_command(url, "--processes", "1")
    processes.append(proc)
    wait_for(lambda: bool(records(out)), "the handler to start")
    proc.send_signal(signal.SIGTERM)
    assert finish(proc) == 0
    assert (out / f"finished-{task_id}").exists()
    assert broker.stats().acked == 1


def test_ctrl_c_at_the_terminal_finishes_the_current_task_once(
    url: str, out: Path, connect: Callable[..., Broker], processes: list[subprocess.Popen[bytes]]
) -> None:
    """Ctrl-C signals the whole foreground process group; it must count as one stop, not two."""
    broker = connect(url)
    [task_id] = publish(broker, out, 1, sleep=1.0)
    proc = start_worker_command(url, "--processes", "2", new_session=True)
    processes.append(proc)
    wait_for(lambda: bool(records(out)), "the handler to start")
    os.killpg(proc.pid, signal.SIGINT)
    assert finish(proc) == 0
    assert (out / f"finished-{task_id}").exists()
    assert broker.stats().acked == 1


def test_a_second_signal_requeues_the_current_task_and_exits_0(
    url: str, out: Path, connect: Callable[..., Broker], processes: list[subprocess.Popen[bytes]]
) -> None:
    broker = connect(url)
    [task_id] = publish(broker, out, 1, sleep=600)
    proc = start_worker_command(url, "--processes", "1")
    processes.append(proc)
    wait_for(lambda: bool(records(out)), "the handler to start")
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGINT)  # a different signal: two pending SIGTERMs could merge
    assert finish(proc) == 0
    stats = broker.stats()
    assert (stats.ready, stats.leased, stats.acked) == (1, 0, 0)
    assert not (out / f"finished-{task_id}").exists()


# ------------------------------------------------------------------ commands


def invoke(*args: str) -> Any:
    return CliRunner().invoke(runtime_main, list(args))


def test_publish_then_stats_json_counts_the_ready_task(url: str) -> None:
    published = invoke("publish", url, '{"n": 1}', "--task-id", "job-1", "--priority", "3")
    assert published.exit_code == 0 and published.stdout.strip() == "job-1"
    stats = invoke("stats", url, "--json")
    assert stats.exit_code == 0
    assert json.loads(stats.stdout)["ready"] == 1


def test_stats_prints_counts_leader_and_live_workers(url: str) -> None:
    invoke("publish", url, "[1, 2]")
    result = invoke("stats", url)
    assert result.exit_code == 0
    assert "ready    1" in result.stdout and "leader   none" in result.stdout


def test_worker_command_drains_the_queue_in_burst_mode(
    url: str, out: Path, connect: Callable[..., Broker], monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = connect(url)
    publish(broker, out, 10)
    monkeypatch.chdir(IMPORT_ROOT)
    result = invoke("worker", url, HANDLER, "--processes", "1", "--burst", "-q")
    stats = broker.stats()
    assert result.exit_code == 0, result.output
    assert stats.acked == 10
    assert "processed 10" in result.stderr


def test_worker_command_with_an_unimportable_handler_exits_2_without_traceback(
    url: str,
) -> None:
    result = invoke("worker", url, "nowhere_to_be_found:run", "--burst")
    assert result.exit_code == 2
    assert "error:" in result.stderr and "PYTHONPATH" in result.stderr
    assert "Traceback" not in result.output


def test_worker_command_with_a_bad_url_exits_2_naming_the_schemes() -> None:
    result = invoke("worker", "postgres://db/tasks", HANDLER, "--burst")
    assert result.exit_code == 2
    assert "sqlite:///" in result.stderr and "Traceback" not in result.output


def test_stats_on_a_missing_file_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    result = invoke("stats", f"sqlite:///{missing}")
    assert result.exit_code == 2 and "no database" in result.stderr
    assert not missing.exists()


def test_publish_of_text_that_is_not_json_exits_2(url: str) -> None:
    result = invoke("publish", url, "{not json")
    assert result.exit_code == 2 and "not JSON" in result.stderr


def test_publishing_a_task_id_twice_exits_2_and_keeps_one_task(url: str) -> None:
    assert invoke("publish", url, "1", "--task-id", "once").exit_code == 0
    again = invoke("publish", url, "2", "--task-id", "once")
    assert again.exit_code == 2 and "error:" in again.stderr
    assert json.loads(invoke("stats", url, "--json").stdout)["ready"] == 1
