"""The two ways an implementation plugs in, plus the built-in backends, behind one interface.

``--impl`` names the implementation:

* ``memory``, ``sqlite`` (a temporary file), ``redis://host:port/db``: taskward's
  own backends, opened with a :class:`~taskward.api.ManualClock` so time moves
  only by ``advance``;
* ``package.module:factory``: in-process Python; ``factory(config)`` returns an
  object with the CONFORMANCE operations as methods, positional arguments in
  the order of the contract; any raised exception is a rejection, definite
  unless the exception has ``definite = False``;
* anything else is a command line speaking the JSON-lines protocol.

Every adapter answers :meth:`Adapter.call` with a :class:`Reply`. Protocol
breakage (a crash, garbage, a wrong id) raises :class:`ProtocolFailure` and a
call that takes longer than its timeout raises :class:`CallTimeout`; the
subprocess is always killed and reaped, so a broken implementation can never
hang the checker.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import queue
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Protocol

ARGS: dict[str, tuple[str, ...]] = {
    "capabilities": (),
    "publish": ("task_id", "priority"),
    "fetch": ("worker",),
    "ack": ("worker", "task_id"),
    "nack": ("worker", "task_id", "requeue"),
    "extend": ("worker", "task_id"),
    "heartbeat": ("worker",),
    "dead_letters": (),
    "advance": ("ms",),
    "restart": (),
    "tick": ("node",),
    "is_leader": ("node",),
    "leader_write": ("node", "epoch", "value"),
    "close": (),
}
"""Every operation of the contract with its arguments, in positional order."""

KNOWN_CAPABILITIES = frozenset({"broker", "leases", "priority", "shared", "round_robin",
                                "work_stealing", "restart", "election"})


@dataclass(frozen=True)
class Reply:
    """One answer: ``ok`` with a result, or a rejection (definite or not) with its text."""

    ok: bool
    value: Any = None
    error: str = ""
    definite: bool = True


class ProtocolFailure(Exception):
    """The implementation broke the protocol (crash, garbage, wrong id): a ``fail``."""


class CallTimeout(Exception):
    """A call got no answer in time: the verdict is ``unknown``, never a pass."""


class Adapter(Protocol):
    """What the lockstep driver talks to, whatever the implementation is."""

    capabilities: list[str]

    def call(self, op: str, args: dict[str, Any]) -> Reply: ...

    def close(self) -> None: ...


def normalise(op: str, value: Any) -> Any:
    """Results in JSON shape: tuples become lists, so every adapter compares alike."""
    if isinstance(value, tuple):
        value = list(value)
    if op == "dead_letters" and isinstance(value, list):
        return list(value)
    return value


# ------------------------------------------------------------------ in-process


class InProcess:
    """An object with the contract's methods; exceptions are rejections."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        caps = obj.capabilities()
        if not isinstance(caps, list | tuple) or not all(isinstance(c, str) for c in caps):
            raise ProtocolFailure(f"capabilities() must return a list of strings, got {caps!r}")
        self.capabilities = list(caps)

    def call(self, op: str, args: dict[str, Any]) -> Reply:
        positional = [args[name] for name in ARGS[op] if name in args]
        try:
            value = getattr(self.obj, op)(*positional)
        except Exception as exc:
            return Reply(False, None, f"{type(exc).__name__}: {exc}",
                         bool(getattr(exc, "definite", True)))
        return Reply(True, normalise(op, value))

    def close(self) -> None:
        with contextlib.suppress(Exception):  # best effort: the verdict is already decided
            self.obj.close()


def load_factory(spec: str) -> Callable[[dict[str, Any]], Any]:
    """``package.module:factory`` -> the factory; the error says what was wrong."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ProtocolFailure(f"cannot import {module_name!r} for --impl {spec}: {exc}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ProtocolFailure(f"{module_name!r} has no callable {attr!r} for --impl {spec}")
    return factory  # type: ignore[no-any-return]


# ------------------------------------------------------------------ built-in backends


class BuiltinImpl:
    """taskward's own broker behind the contract's method names, on a manual clock.

    The production API accepts workers it has not seen (they join the rotation);
    the contract rejects names not in the configuration, so they are refused
    here before the broker sees them.
    """

    def __init__(self, url: str, config: dict[str, Any], cleanup: Callable[[], None],
                 namespace: str | None = None) -> None:
        import taskward
        from taskward.api import ManualClock

        self.clock = ManualClock()
        self.workers = set(config["workers"])
        self.nodes = set(config["nodes"])
        self._cleanup = cleanup
        options: dict[str, Any] = {} if namespace is None else {"namespace": namespace}
        self.broker: Any = taskward.connect(
            url, policy=config["policy"], lease_ms=config["lease_ms"],
            max_deliveries=config["max_deliveries"],
            worker_timeout_ms=config["worker_timeout_ms"], workers=tuple(config["workers"]),
            election_lease_ms=config["election_lease_ms"],
            member_timeout_ms=config["member_timeout_ms"], election_margin_ms=0,
            clock=self.clock, **options)

    def _worker(self, name: str) -> str:
        if name not in self.workers:
            raise ValueError(f"worker {name!r} is not in the configuration")
        return name

    def _node(self, name: str) -> str:
        if name not in self.nodes:
            raise ValueError(f"node {name!r} is not in the configuration")
        return name

    def capabilities(self) -> list[str]:
        return list(self.broker.capabilities())

    def publish(self, task_id: str, priority: int) -> None:
        self.broker.publish(None, task_id=task_id, priority=priority)

    def fetch(self, worker: str) -> str | None:
        found = self.broker.fetch(self._worker(worker))
        return None if found is None else str(found.task_id)

    def ack(self, worker: str, task_id: str) -> None:
        self.broker.ack(self._worker(worker), task_id)

    def nack(self, worker: str, task_id: str, requeue: bool) -> None:
        self.broker.nack(self._worker(worker), task_id, requeue)

    def extend(self, worker: str, task_id: str) -> None:
        self.broker.extend(self._worker(worker), task_id)

    def heartbeat(self, worker: str) -> None:
        self.broker.heartbeat(self._worker(worker))

    def dead_letters(self) -> list[str]:
        return list(self.broker.dead_letters())

    def advance(self, ms: int) -> None:
        self.clock.advance(ms)

    def restart(self) -> None:
        self.broker.restart()

    def tick(self, node: str) -> None:
        self.broker.tick(self._node(node))

    def is_leader(self, node: str) -> list[Any]:
        return list(self.broker.is_leader(self._node(node)))

    def leader_write(self, node: str, epoch: int, value: Any) -> bool:
        return bool(self.broker.leader_write(self._node(node), epoch, value))

    def close(self) -> None:
        try:
            self.broker.close()
        finally:
            self._cleanup()


def builtin_factory(spec: str) -> Callable[[dict[str, Any]], Any]:
    """A factory for ``memory``, ``sqlite`` (a fresh temporary file each time) or a Redis URL."""
    def make(config: dict[str, Any]) -> BuiltinImpl:
        if spec == "memory":
            return BuiltinImpl("memory://", config, lambda: None)
        if spec == "sqlite":
            folder = tempfile.mkdtemp(prefix="taskward-check-")
            return BuiltinImpl(f"sqlite:///{folder}/broker.db", config,
                               lambda: shutil.rmtree(folder, ignore_errors=True))
        namespace = f"check-{uuid.uuid4().hex[:12]}"
        return BuiltinImpl(spec, config, lambda: drop_namespace(spec, namespace), namespace)
    return make


def drop_namespace(url: str, namespace: str) -> None:
    """Delete the keys one check run left in a Redis server (the run's own namespace only)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match="{" + namespace + "}:*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass  # cleanup is best effort; the server may be gone after a failed run
    finally:
        client.close()


# ------------------------------------------------------------------ JSON lines


class JsonLines:
    """A child process speaking one JSON request and one JSON reply per line.

    A reader thread turns stdout into a queue of lines so every call can wait
    with a timeout; stderr goes to a temporary file whose tail explains a crash.
    """

    def __init__(self, command: str, config: dict[str, Any], timeout: float = 5.0) -> None:
        self.command = command
        self.timeout = timeout
        self.next_id = 0
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        try:
            self.proc = subprocess.Popen(
                shlex.split(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self.stderr)
        except OSError as exc:
            self.stderr.close()
            raise ProtocolFailure(f"cannot start {command!r}: {exc}") from None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        try:
            reply = self._exchange("init", config)
            self.capabilities = self._capabilities(reply)
        except BaseException:
            self.close()
            raise

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8", errors="replace"))
        self.lines.put(None)

    def _capabilities(self, reply: dict[str, Any]) -> list[str]:
        caps = reply.get("capabilities")
        if caps is None and isinstance(reply.get("result"), dict):
            caps = reply["result"].get("capabilities")
        if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
            raise ProtocolFailure(f"the init reply carries no capabilities list: {reply!r}")
        return caps

    def _stderr_tail(self) -> str:
        try:
            self.stderr.seek(0)
            text = self.stderr.read().decode("utf-8", errors="replace").strip()
        except (OSError, ValueError):
            return ""
        return f"; stderr: {text[-400:]}" if text else ""

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise ProtocolFailure(f"{self.command!r} exited (code {self.proc.poll()}) before "
                                  f"request {message['id']} ({message['op']})"
                                  + self._stderr_tail()) from None

    def _receive(self, ident: int, op: str) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=self.timeout)
        except queue.Empty:
            raise CallTimeout(f"no reply to request {ident} ({op}) within "
                              f"{self.timeout:g} s") from None
        if line is None:
            self.proc.wait(timeout=self.timeout)
            raise ProtocolFailure(f"{self.command!r} exited (code {self.proc.returncode}) "
                                  f"without answering request {ident} ({op})"
                                  + self._stderr_tail())
        try:
            reply = json.loads(line)
        except ValueError:
            raise ProtocolFailure(f"reply to request {ident} ({op}) is not JSON: "
                                  f"{line.strip()[:200]!r}") from None
        if not isinstance(reply, dict):
            raise ProtocolFailure(f"reply to request {ident} ({op}) is not an object: {reply!r}")
        if reply.get("id") != ident:
            raise ProtocolFailure(f"reply carries id {reply.get('id')!r}, expected {ident} "
                                  f"({op})")
        return reply

    def _exchange(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        ident, self.next_id = self.next_id, self.next_id + 1
        self._send({"id": ident, "op": op, "args": args})
        return self._receive(ident, op)

    def call(self, op: str, args: dict[str, Any]) -> Reply:
        reply = self._exchange(op, args)
        ok = reply.get("ok")
        if ok is True:
            return Reply(True, normalise(op, reply.get("result")))
        if ok is False:
            definite = reply.get("definite", True)
            if not isinstance(definite, bool):
                raise ProtocolFailure(f"'definite' must be a boolean in {reply!r}")
            return Reply(False, None, str(reply.get("error", "")), definite)
        raise ProtocolFailure(f"reply to {op} has no boolean 'ok': {reply!r}")

    def close(self) -> None:
        """Ask politely, then kill: the child is always reaped and every pipe closed."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProtocolFailure):
                self._send({"id": self.next_id, "op": "close", "args": {}})
        for stream in (self.proc.stdin,):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=min(self.timeout, 1.0))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=2.0)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.stderr.close()


# ------------------------------------------------------------------ choosing one

_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def describe(spec: str) -> str:
    """Which adapter form an ``--impl`` string selects."""
    if spec in ("memory", "sqlite") or spec.startswith(("redis://", "rediss://")):
        return "built-in"
    return "in-process" if _FACTORY.match(spec) else "json-lines"


def opener(spec: str, timeout: float = 5.0) -> Callable[[dict[str, Any]], Adapter]:
    """A function that opens a fresh implementation for one configuration."""
    form = describe(spec)
    if form == "json-lines":
        if not shlex.split(spec):
            raise ProtocolFailure("--impl is empty")
        return lambda config: JsonLines(spec, config, timeout)
    factory = builtin_factory(spec) if form == "built-in" else load_factory(spec)

    def make(config: dict[str, Any]) -> Adapter:
        try:
            obj = factory(dict(config))
        except ProtocolFailure:
            raise
        except Exception as exc:
            raise ProtocolFailure(f"the factory for {spec} failed: "
                                  f"{type(exc).__name__}: {exc}") from None
        return InProcess(obj)
    return make

