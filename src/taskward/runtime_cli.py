"""The operational commands: ``taskward worker``, ``taskward stats``, ``taskward publish``.

Kept apart from the verification commands so that running a pool never
imports the checkers. The main group adds these with ``add_command``; this
module also runs on its own (``python -m taskward.runtime_cli worker ...``).

Every mistake a user can fix (bad URL, unimportable handler, foreign database,
invalid JSON) prints one line naming the fix and exits with code 2, never a
traceback.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

from taskward.api import POLICIES, Broker, Stats, TaskwardError
from taskward.pool import WorkerPool

__all__ = ["main", "publish_command", "stats_command", "worker_command"]

USAGE_ERROR = 2


def fail(message: str) -> NoReturn:
    """One line on stderr and exit 2: the user has something to fix, not a bug to report."""
    click.echo(f"error: {message}", err=True)
    sys.exit(USAGE_ERROR)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn taskward's typed errors (each names its fix) into ``fail``."""
    try:
        yield
    except TaskwardError as exc:
        fail(str(exc))


def connect_options(**given: Any) -> dict[str, Any]:
    """Only the options the user gave, so the broker's own defaults apply otherwise."""
    return {name: value for name, value in given.items() if value is not None}


def open_existing(url: str) -> Broker:
    """Connect for reading; a missing SQLite file is an error, not a new empty database."""
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if not path.exists():
            fail(f"no database at {path}; check the path (sqlite:////abs/path.db has 4 slashes)")
    from taskward.connect import connect

    return connect(url)


@click.command("worker")
@click.argument("url")
@click.argument("handler")
@click.option("--processes", "-p", type=click.IntRange(min=1), default=os.cpu_count() or 1,
              show_default=True, help="Number of workers (processes, or threads with --threads).")
@click.option("--threads", is_flag=True, help="Run the workers as threads of one process.")
@click.option("--lease-ms", type=click.IntRange(min=1), help="Lease length of each delivery.")
@click.option("--max-deliveries", type=click.IntRange(min=1),
              help="Deliveries before a failing task is dead-lettered.")
@click.option("--policy", type=click.Choice(POLICIES), help="Dispatch policy.")
@click.option("--max-tasks", type=click.IntRange(min=0), help="Stop after this many tasks.")
@click.option("--burst", is_flag=True,
              help="Exit once no task is ready or leased, instead of waiting for more.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def worker_command(
    url: str, handler: str, processes: int, threads: bool, lease_ms: int | None,
    max_deliveries: int | None, policy: str | None, max_tasks: int | None, burst: bool,
    quiet: bool,
) -> None:
    """Run HANDLER (module:function) over the tasks of the broker at URL.

    Each worker acks a task when the handler returns and nacks it (requeue)
    when it raises; the broker dead-letters it after --max-deliveries. Ctrl-C or
    SIGTERM finishes the current tasks and exits 0; a second one requeues them.
    """
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # handlers are named relative to where you run
    options = connect_options(lease_ms=lease_ms, max_deliveries=max_deliveries, policy=policy)
    with user_errors():
        pool = WorkerPool(url, handler, processes=processes, threads=threads, options=options,
                          burst=burst, max_tasks=max_tasks, progress=not quiet)
    report = pool.run()
    click.echo(
        f"processed {report.processed}, failed {report.failed}, lease lost {report.lease_lost}, "
        f"workers replaced {report.replaced} in {report.seconds:.1f} s", err=True,
    )
    sys.exit(report.exit_code)


def stats_lines(stats: Stats) -> list[str]:
    leader = f"{stats.leader} (epoch {stats.epoch})" if stats.leader else "none"
    return [
        f"ready    {stats.ready}",
        f"leased   {stats.leased}",
        f"acked    {stats.acked}",
        f"dead     {stats.dead}",
        f"workers  {stats.workers_live} live",
        f"leader   {leader}",
    ]


@click.command("stats")
@click.argument("url")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def stats_command(url: str, as_json: bool) -> None:
    """Print task counts by state, live workers, leader and epoch of the broker at URL."""
    with user_errors():
        broker = open_existing(url)
        try:
            stats = broker.stats()
        finally:
            broker.close()
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(stats)))
    else:
        click.echo("\n".join(stats_lines(stats)))


def parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"the payload is not JSON ({exc}); quote it for the shell, e.g. '{{\"n\": 1}}'")


@click.command("publish")
@click.argument("url")
@click.argument("payload")
@click.option("--task-id", help="Idempotency key; publishing the same id twice is refused.")
@click.option("--priority", type=int, default=0, show_default=True, help="Higher runs first.")
def publish_command(url: str, payload: str, task_id: str | None, priority: int) -> None:
    """Publish one task whose payload is the JSON text PAYLOAD; prints its task id."""
    value = parse_json(payload)
    with user_errors():
        from taskward.connect import connect

        broker = connect(url)
        try:
            click.echo(broker.publish(value, task_id=task_id, priority=priority))
        finally:
            broker.close()


@click.group()
def main() -> None:
    """taskward runtime commands (also available under the main ``taskward`` command)."""


for _command in (worker_command, stats_command, publish_command):
    main.add_command(_command)


if __name__ == "__main__":
    main()
