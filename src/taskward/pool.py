"""A worker pool: run a handler over a broker's tasks in several processes or threads.

Each worker owns its own broker connection (an SQLite connection must never
cross a process, and is not shared between threads either), fetches one task
at a time, runs ``handler(payload)`` and settles it: ack on success, nack with
requeue on an exception (the broker dead-letters it once ``max_deliveries`` is
reached). While a handler runs, the worker keeps its lease alive by extending
it every ``lease_ms / 3``.

The handler runs on a short-lived daemon thread and the worker's own thread
waits for it and does the extending. That way every broker call of a worker
happens on the thread that opened its connection, and that thread stays free
to react to a stop request.

Processes are started with the ``spawn`` context and receive only JSON text
and shared integer counters: the handler and the broker factory travel as
``module:function`` strings and are imported again in the child, never
pickled.

Stopping: the first SIGINT/SIGTERM lets every worker finish (and ack) its
current task, then exit 0; a second one nacks the current task so it is
requeued at once, then exits 0.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import multiprocessing.sharedctypes
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Protocol

from taskward.api import (
    Broker,
    ConfigError,
    Delivery,
    IndefiniteError,
    JSONValue,
    NotLeasedError,
)

__all__ = [
    "Handler",
    "PoolReport",
    "Worker",
    "WorkerPool",
    "current_delivery",
    "import_ref",
    "ref_of",
]

log = logging.getLogger(__name__)

Handler = Callable[[JSONValue], object]
"""``handler(payload)``: return to ack the task, raise to nack it."""

BrokerFactory = Callable[[], Broker]

PROCESSED, FAILED, EXPIRED = 0, 1, 2
"""Counter slots per worker: acked, nacked after an exception, lease lost before settling."""
_COUNTERS = 3


# ------------------------------------------------------------------ references


def import_ref(ref: str) -> Any:
    """Import ``module:attr`` (attr may be dotted); the error says how to fix the string."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{ref!r} is not of the form module:function, e.g. myapp.tasks:handle")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"cannot import module {module_name!r} for {ref!r} ({exc}); run from the directory "
            "that contains it or add it to PYTHONPATH"
        ) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def ref_of(obj: Callable[..., object]) -> str:
    """The ``module:qualname`` of a module-level callable, checked to import back to it.

    Worker processes re-import what they run, so lambdas and nested functions
    cannot be sent to them; the error says what to do instead.
    """
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise ConfigError(
            f"{obj!r} cannot be imported by a worker process; define it at module level "
            "or pass threads=True"
        )
    ref = f"{module}:{qualname}"
    if module == "__main__" or import_ref(ref) is not obj:
        raise ConfigError(
            f"{ref} does not import back to {obj!r}; move it into an importable module"
        )
    return ref


# ------------------------------------------------------------------ current delivery

_local = threading.local()


def current_delivery() -> Delivery:
    """The delivery the calling handler is processing (task id, delivery count, lease).

    Lets a handler use the task id as an idempotency key or act on the last
    delivery, without changing the one-argument handler signature.
    """
    delivery: Delivery | None = getattr(_local, "delivery", None)
    if delivery is None:
        raise RuntimeError("current_delivery() is only available inside a handler run by a pool")
    return delivery


# ------------------------------------------------------------------ small parts


class Flag(Protocol):
    """A settable event: threading.Event in one process, shared in several."""

    def is_set(self) -> bool: ...

    def set(self) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass
class StopRequest:
    """Two-level stop: ``graceful`` finishes the current task, ``hard`` requeues it."""

    graceful: Flag = field(default_factory=threading.Event)
    hard: Flag = field(default_factory=threading.Event)

    def escalate(self) -> None:
        """First call asks for a graceful stop, any later one for a hard stop."""
        if self.graceful.is_set():
            self.hard.set()
        self.graceful.set()


class Counters(Protocol):
    """Shared integer slots (a ctypes array): only their owner worker writes them."""

    def __getitem__(self, index: int) -> int: ...

    def __setitem__(self, index: int, value: int) -> None: ...

    def __len__(self) -> int: ...


class Budget:
    """``max_tasks`` shared by all workers of a pool; unlimited when ``limit`` is None."""

    def __init__(self, limit: int | None, value: Any) -> None:
        self.limit = limit
        self._value = value

    def take(self) -> bool:
        """Reserve one task before fetching, so the pool never exceeds the limit."""
        if self.limit is None:
            return True
        with self._value.get_lock():
            if self._value.value >= self.limit:
                return False
            self._value.value += 1
            return True

    def give_back(self) -> None:
        """Return a reservation that found no task."""
        if self.limit is not None:
            with self._value.get_lock():
                self._value.value -= 1


class Backoff:
    """Empty-queue polling: start fast, double up to a ceiling, reset on work."""

    def __init__(self, min_s: float, max_s: float) -> None:
        self.min_s, self.max_s = min_s, max_s
        self.delay = min_s

    def next(self) -> float:
        delay = self.delay
        self.delay = min(self.max_s, self.delay * 2)
        return delay

    def reset(self) -> None:
        self.delay = self.min_s


class _Done(Exception):
    """This worker has no more work: the pool's budget is spent or (burst) nothing is left."""


class _Call:
    """One handler call on a daemon thread, so the worker thread can extend meanwhile."""

    def __init__(self, handler: Handler, delivery: Delivery) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(handler, delivery), daemon=True,
            name=f"taskward-handler-{delivery.task_id}",
        )
        self._thread.start()

    def _run(self, handler: Handler, delivery: Delivery) -> None:
        _local.delivery = delivery
        try:
            handler(delivery.payload)
        except BaseException as exc:  # a handler failure of any kind nacks the task
            self.error = exc
        finally:
            _local.delivery = None
            self.done.set()

    def join(self) -> None:
        self._thread.join()


# ------------------------------------------------------------------ one worker


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How one worker polls and when it stops on its own."""

    burst: bool = False
    """Exit once the broker holds no READY or LEASED task (a lease that may still run
    out and come back keeps the worker waiting)."""
    poll_min_s: float = 0.01
    poll_max_s: float = 0.5


class Worker:
    """Fetch, run, settle, repeat; every broker call on the thread that called ``run``."""

    def __init__(
        self, broker: Broker, handler: Handler, worker_id: str, *,
        stop: StopRequest | None = None, settings: WorkerSettings | None = None,
        counters: Counters | None = None, slot: int = 0, budget: Budget | None = None,
    ) -> None:
        self.broker, self.handler, self.worker_id = broker, handler, worker_id
        self.stop = stop or StopRequest()
        self.settings = settings or WorkerSettings()
        self.counters: Counters = counters if counters is not None else [0] * _COUNTERS
        self.base = slot * _COUNTERS
        self.budget = budget or Budget(None, None)
        self.backoff = Backoff(self.settings.poll_min_s, self.settings.poll_max_s)
        self.extend_every_s = broker.config.lease_ms / 3000

    def run(self) -> None:
        """Work until stopped, out of budget, or (burst) out of tasks."""
        self.broker.heartbeat(self.worker_id)
        delivery: Delivery | None = None
        with contextlib.suppress(_Done):
            while not self.stop.graceful.is_set():
                try:
                    delivery = delivery or self._fetch()
                    if delivery is not None:
                        delivery = self._process(delivery)
                except IndefiniteError as exc:
                    delivery = None  # whatever happened, an unsettled lease runs out on its own
                    log.warning("%s: store unreachable (%s); retrying", self.worker_id, exc)
                    self.stop.graceful.wait(self.backoff.next())
        if delivery is not None:  # taken together with the last ack, never run
            self._requeue(delivery, None)

    def _fetch(self) -> Delivery | None:
        """The next task, or None after one backoff wait; ``_Done`` when no work is left."""
        if not self.budget.take():
            raise _Done
        delivery = self.broker.fetch(self.worker_id)
        if delivery is not None:
            self.backoff.reset()
            return delivery
        self.budget.give_back()
        if self.settings.burst and self._drained():
            raise _Done
        self.stop.graceful.wait(self.backoff.next())
        return None

    def _drained(self) -> bool:
        stats = self.broker.stats()
        return stats.ready == 0 and stats.leased == 0

    def _process(self, delivery: Delivery) -> Delivery | None:
        """Run one task and settle it; returns the next task when the ack brought one."""
        call = _Call(self.handler, delivery)
        if not self._wait(call, delivery):
            self._requeue(delivery, FAILED)
            return None
        call.join()
        if call.error is None:
            return self._ack(delivery)
        log.warning(
            "%s: task %s failed on delivery %d: %r", self.worker_id, delivery.task_id,
            delivery.deliveries, call.error, exc_info=call.error,
        )
        self._requeue(delivery, FAILED)
        return None

    def _wait(self, call: _Call, delivery: Delivery) -> bool:
        """Wait for the handler, extending the lease; False on a hard stop.

        Waits in short slices so that a hard stop is noticed at once, not at the
        next extension (which can be ten seconds away with the default lease).
        """
        holding, next_extend = True, time.monotonic() + self.extend_every_s
        while not call.done.wait(min(0.05, self.extend_every_s)):
            if self.stop.hard.is_set():
                return False
            if holding and time.monotonic() >= next_extend:
                holding = self._extend(delivery)
                next_extend = time.monotonic() + self.extend_every_s
        return True

    def _extend(self, delivery: Delivery) -> bool:
        """Renew the lease; once it is lost (we were too slow) stop trying."""
        try:
            self.broker.extend(self.worker_id, delivery.task_id)
            return True
        except NotLeasedError:
            log.warning("%s: lost the lease on %s while running it", self.worker_id,
                        delivery.task_id)
            return False

    def _ack(self, delivery: Delivery) -> Delivery | None:
        """Ack; a backend with ``ack_and_fetch`` also hands over the next task in the same
        transaction (one SQLite commit instead of two). A lost lease is counted, not raised."""
        chain = getattr(self.broker, "ack_and_fetch", None)
        prefetch = chain is not None and not self.stop.graceful.is_set() and self.budget.take()
        following: Delivery | None = None
        try:
            if prefetch and chain is not None:
                following = chain(self.worker_id, delivery.task_id)
            else:
                self.broker.ack(self.worker_id, delivery.task_id)
        except Exception as exc:
            if prefetch:
                self.budget.give_back()
            if not isinstance(exc, NotLeasedError):
                raise
            self._count(EXPIRED)
            return None
        self._count(PROCESSED)
        if prefetch and following is None:
            self.budget.give_back()
        return following

    def _requeue(self, delivery: Delivery, counter: int | None) -> None:
        """Nack with requeue (the broker dead-letters at max_deliveries)."""
        try:
            self.broker.nack(self.worker_id, delivery.task_id, requeue=True)
        except NotLeasedError:
            counter = EXPIRED
        if counter is not None:
            self._count(counter)

    def _count(self, counter: int) -> None:
        self.counters[self.base + counter] += 1


# ------------------------------------------------------------------ opening brokers


def open_broker(target: str, options: Mapping[str, Any]) -> Broker:
    """A URL goes to ``taskward.connect``; ``module:function`` is a factory called bare."""
    if "://" in target:
        from taskward.connect import connect  # late: the backends import nothing from here

        return connect(target, **options)
    factory = import_ref(target)
    if options:
        raise ConfigError("connect options apply to URLs only; put them in your factory")
    made: Broker = factory()
    return made


def default_worker_id(index: int) -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{index}"


# ------------------------------------------------------------------ child processes


@dataclass(frozen=True, slots=True)
class _ChildSpec:
    """What a worker process needs, sent as JSON text (never pickled objects)."""

    target: str
    handler: str
    options: dict[str, Any]
    burst: bool
    poll_min_s: float
    poll_max_s: float
    worker_name: str | None

    def to_json(self) -> str:
        return json.dumps({name: getattr(self, name) for name in self.__slots__})

    @classmethod
    def from_json(cls, text: str) -> _ChildSpec:
        return cls(**json.loads(text))


def _child_main(spec_json: str, slot: int, counters: Counters, budget_value: Any,
                limit: int | None) -> None:
    """Entry point of a worker process: own process group, own signals, own connection."""
    os.setpgrp()  # a Ctrl-C reaches the parent only, which forwards exactly one signal
    spec = _ChildSpec.from_json(spec_json)
    stop = StopRequest()
    _install_signals(stop)
    _watch_parent(stop, os.getppid())
    handler = import_ref(spec.handler)
    broker = open_broker(spec.target, spec.options)
    try:
        worker_id = f"{spec.worker_name}-{slot}" if spec.worker_name else default_worker_id(slot)
        Worker(
            broker, handler, worker_id, stop=stop,
            settings=WorkerSettings(spec.burst, spec.poll_min_s, spec.poll_max_s),
            counters=counters, slot=slot, budget=Budget(limit, budget_value),
        ).run()
    finally:
        broker.close()


def _install_signals(stop: StopRequest) -> Callable[[], None]:
    """SIGINT/SIGTERM escalate the stop; returns a function restoring the old handlers."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.escalate()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def _watch_parent(stop: StopRequest, parent: int) -> None:
    """A worker whose pool died (even by SIGKILL) stops gracefully instead of running on."""

    def watch() -> None:
        while not stop.graceful.wait(1.0):
            if os.getppid() != parent:
                stop.graceful.set()

    threading.Thread(target=watch, daemon=True, name="taskward-parent-watch").start()


# ------------------------------------------------------------------ progress


class Progress:
    """Processed/failed counts and rate: a live line on a TTY, periodic plain lines otherwise."""

    def __init__(self, counters: Counters, enabled: bool, every_s: float = 5.0) -> None:
        self.counters = counters
        self.enabled = enabled
        self.started = time.monotonic()
        self.tty = enabled and sys.stderr.isatty()
        self.every_s = 0.5 if self.tty else every_s
        self._last = self.started
        self._live: Any = None

    def totals(self) -> tuple[int, int, int]:
        sums = [0] * _COUNTERS
        for index in range(len(self.counters)):
            sums[index % _COUNTERS] += self.counters[index]
        return sums[PROCESSED], sums[FAILED], sums[EXPIRED]

    def line(self) -> str:
        processed, failed, expired = self.totals()
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return (f"processed {processed}  failed {failed}  lease lost {expired}  "
                f"{(processed + failed) / elapsed:,.1f} tasks/s")

    def __enter__(self) -> Progress:
        if self.tty:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self.line(), console=Console(stderr=True), transient=False)
            self._live.__enter__()
        return self

    def tick(self) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < self.every_s:
            return
        self._last = now
        if self._live is not None:
            self._live.update(self.line())
        else:
            print(self.line(), file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self.line())
            self._live.__exit__(None, None, None)
        elif self.enabled:
            print(self.line(), file=sys.stderr, flush=True)


# ------------------------------------------------------------------ the pool


@dataclass(frozen=True, slots=True)
class PoolReport:
    """What a pool run did; ``exit_code`` is 0 when every worker stopped cleanly."""

    processed: int
    failed: int
    lease_lost: int
    replaced: int
    """Worker processes killed by a signal and started again."""
    exit_code: int
    seconds: float


class WorkerPool:
    """Run ``handler`` over a broker's tasks in ``processes`` processes (or threads).

    ``target`` is a URL for ``taskward.connect`` (``options`` are its keyword
    arguments), a zero-argument broker factory (the pool closes what it makes),
    or, with ``threads=True``, a broker instance all threads share (the caller
    keeps and closes it; it must be thread-safe, as the memory backend is).
    ``handler`` is a callable or a ``module:function`` string; worker processes
    import both by name.
    A worker process killed by a signal is replaced; one that exits with an
    error is not (the same error would repeat), and the pool reports it.
    """

    def __init__(
        self, target: str | BrokerFactory | Broker, handler: str | Handler, *,
        processes: int = 1,
        threads: bool = False, options: Mapping[str, Any] | None = None,
        burst: bool = False, max_tasks: int | None = None, worker_name: str | None = None,
        poll_min_s: float = 0.01, poll_max_s: float = 0.5, progress: bool = True,
    ) -> None:
        if processes < 1:
            raise ConfigError("processes must be at least 1")
        if max_tasks is not None and max_tasks < 0:
            raise ConfigError("max_tasks must be >= 0 (or None for no limit)")
        if not 0 < poll_min_s <= poll_max_s:
            raise ConfigError("poll intervals must satisfy 0 < poll_min_s <= poll_max_s")
        self.target, self.handler = target, handler
        self.processes, self.threads = processes, threads
        self.options = dict(options or {})
        self.settings = WorkerSettings(burst, poll_min_s, poll_max_s)
        self.max_tasks, self.worker_name, self.progress = max_tasks, worker_name, progress
        self.stop = StopRequest()
        self._ctx = multiprocessing.get_context("spawn")
        self.counters: Counters = self._ctx.RawArray("q", processes * _COUNTERS)
        self._budget_value = self._ctx.Value("q", 0)
        self._check()

    def _check(self) -> None:
        """Fail in the caller, with a fix, before any worker starts."""
        if isinstance(self.handler, str):
            import_ref(self.handler)
        if isinstance(self.target, str) and self.target.startswith("memory://"):
            raise ConfigError("each memory:// connection is a separate, private broker; pass "
                              "the broker object itself with threads=True, or use a "
                              "sqlite:///path.db URL")
        if not self.threads:
            self._spec()  # the target and handler must be importable by name
        with self._broker():
            pass  # a bad URL or a foreign database is refused here, in the caller

    @contextlib.contextmanager
    def _broker(self) -> Iterator[Broker]:
        """A broker for one worker; closed afterwards only if the pool opened it."""
        if not isinstance(self.target, str) and not callable(self.target):
            yield self.target
            return
        broker = (open_broker(self.target, self.options) if isinstance(self.target, str)
                  else self.target())
        try:
            yield broker
        finally:
            broker.close()

    def _spec(self) -> _ChildSpec:
        if not isinstance(self.target, str) and not callable(self.target):
            raise ConfigError("a broker instance cannot be shared with worker processes; "
                              "pass its URL, or threads=True")
        target = self.target if isinstance(self.target, str) else ref_of(self.target)
        handler = self.handler if isinstance(self.handler, str) else ref_of(self.handler)
        return _ChildSpec(target, handler, self.options, self.settings.burst,
                          self.settings.poll_min_s, self.settings.poll_max_s, self.worker_name)

    def run(self) -> PoolReport:
        """Run until every worker stops; SIGINT/SIGTERM stop the pool (see module doc)."""
        started = time.monotonic()
        restore = _install_signals(self.stop) if _main_thread() else (lambda: None)
        try:
            with Progress(self.counters, self.progress) as progress:
                replaced, code = (self._run_threads(progress) if self.threads
                                  else self._run_processes(progress))
        finally:
            restore()
        processed, failed, lost = progress.totals()
        return PoolReport(processed, failed, lost, replaced, code, time.monotonic() - started)

    # ---------------------------------------------------------------- threads

    def _run_threads(self, progress: Progress) -> tuple[int, int]:
        errors: list[BaseException] = []
        threads = [threading.Thread(target=self._thread_main, args=(i, errors),
                                    name=f"taskward-worker-{i}") for i in range(self.processes)]
        for thread in threads:
            thread.start()
        while alive := [t for t in threads if t.is_alive()]:
            alive[0].join(0.2)
            progress.tick()
        for thread in threads:
            thread.join()
        for error in errors:
            log.error("worker thread failed: %r", error, exc_info=error)
        return 0, 1 if errors else 0

    def _thread_main(self, index: int, errors: list[BaseException]) -> None:
        handler = import_ref(self.handler) if isinstance(self.handler, str) else self.handler
        worker_id = (f"{self.worker_name}-{index}" if self.worker_name
                     else default_worker_id(index))
        try:
            with self._broker() as broker:
                Worker(broker, handler, worker_id, stop=self.stop, settings=self.settings,
                       counters=self.counters, slot=index, budget=self._budget()).run()
        except BaseException as exc:  # reported by the pool's thread, which owns the exit code
            errors.append(exc)

    def _budget(self) -> Budget:
        return Budget(self.max_tasks, self._budget_value)

    # ---------------------------------------------------------------- processes

    def _run_processes(self, progress: Progress) -> tuple[int, int]:
        spec = self._spec().to_json()
        children = {i: self._spawn(spec, i) for i in range(self.processes)}
        replaced, code, forwarded = 0, 0, 0
        while children:
            forwarded = self._forward_stop(list(children.values()), forwarded)
            multiprocessing.connection.wait([c.sentinel for c in children.values()], 0.2)
            progress.tick()
            for slot, child in list(children.items()):
                exitcode = _reap(child)
                if exitcode is None:
                    continue
                del children[slot]
                code, again = self._after_exit(slot, exitcode, code)
                if again:
                    children[slot] = self._spawn(spec, slot)
                    replaced += 1
        return replaced, code

    def _spawn(self, spec: str, slot: int) -> multiprocessing.context.SpawnProcess:
        child = self._ctx.Process(
            target=_child_main,
            args=(spec, slot, self.counters, self._budget_value, self.max_tasks),
            name=f"taskward-worker-{slot}",
        )
        child.start()
        return child

    def _after_exit(self, slot: int, exitcode: int, code: int) -> tuple[int, bool]:
        """Decide what a finished child means: done, replace it (killed), or an error."""
        if exitcode == 0:
            return code, False
        if exitcode < 0 and not self.stop.graceful.is_set():
            log.warning("worker %d was killed by signal %d; starting a replacement",
                        slot, -exitcode)
            return code, True
        if exitcode > 0:
            log.error("worker %d exited with code %d", slot, exitcode)
        return 1, False

    def _forward_stop(
        self, children: list[multiprocessing.context.SpawnProcess], forwarded: int
    ) -> int:
        """Send each stop level to the children once: SIGTERM for graceful, SIGINT for hard.

        Two different signals, because two pending SIGTERMs can merge into one.
        """
        wanted = 2 if self.stop.hard.is_set() else 1 if self.stop.graceful.is_set() else 0
        for level in range(forwarded, wanted):
            for child in children:
                if child.pid is not None and child.exitcode is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child.pid, (signal.SIGTERM, signal.SIGINT)[level])
        return max(forwarded, wanted)


def _reap(child: multiprocessing.context.SpawnProcess) -> int | None:
    """The exit code of a finished child (its resources released), None while it runs."""
    exitcode = child.exitcode
    if exitcode is None:
        return None
    child.join()
    child.close()
    return exitcode


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
