"""The Redis backend: taskward's broker and election on a real Redis server (>= 6.2).

Many processes on many hosts share one server. Every state change is ONE Lua
script (``redis_<op>.lua`` beside this file, prefixed with
``redis_common.lua``), so the ``CONFORMANCE.md`` prelude and the operation
are atomic together and the deterministic rules give the same answers as the
memory and SQLite backends. Time is the injected clock's, passed to every
script as an argument (never Redis ``TIME``), so a ``ManualClock`` drives a
Redis broker in lockstep with the model.

All keys of a broker live under one hash tag ``{namespace}:``, so several
brokers share a server and a cluster keeps each broker in one slot. The key
layout is documented at the top of ``redis_common.lua``.

redis-py is imported here, not by ``taskward``: it is the ``redis`` extra.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any, NoReturn
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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
)
from taskward.backends.base import (
    ACKED,
    DEAD,
    LEASED,
    READY,
    BrokerBackend,
    NewTask,
    Settle,
    TickResult,
    check_name,
    expiry_reason,
    nack_reason,
    not_leased,
)

try:
    import redis as _redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "the Redis backend needs redis-py: pip install 'taskward[redis]'"
    ) from exc

__all__ = ["RedisBroker"]

_BROKER_SCRIPTS: dict[str, tuple[str, ...]] = {
    # script -> the sections of redis_common.lua it runs (besides the head)
    "init": (), "publish": ("core",), "settle": ("core", "fetch"), "dead": ("core",),
    "stats": (),
}
_ELECTION_SCRIPTS = ("tick", "leader_write")
_STATES = {"R": READY, "L": LEASED, "A": ACKED, "D": DEAD}
_SCHEMES = ("redis", "rediss", "unix")
_PRIORITY_TOP = (1 << 63) - 1


def _priority_key(priority: int) -> str:
    """16 hex digits that sort ascending as priority descends (any 64-bit priority)."""
    return format(_PRIORITY_TOP - priority, "016x")


def _library_sections() -> dict[str, str]:
    """redis_common.lua cut at its ``--@section NAME`` lines; the part before is "head"."""
    text = (resources.files("taskward.backends") / "redis_common.lua").read_text("utf-8")
    sections: dict[str, list[str]] = {"head": []}
    current = sections["head"]
    for line in text.splitlines(keepends=True):
        if line.startswith("--@section "):
            current = sections.setdefault(line.split()[1], [])
        current.append(line)
    return {name: "".join(lines) for name, lines in sections.items()}


def _script_text(name: str, config: BrokerConfig) -> str:
    """A script's source: broker scripts get the configuration as constants + the library."""
    text = (resources.files("taskward.backends") / f"redis_{name}.lua").read_text("utf-8")
    if name not in _BROKER_SCRIPTS:
        return text
    library = _library_sections()
    parts = [
        f"local POLICY, LEASE, MAXD, WTO = '{config.policy}', {int(config.lease_ms)}, "
        f"{int(config.max_deliveries)}, {int(config.worker_timeout_ms)}\n",
        library["head"],
    ]
    needs = _BROKER_SCRIPTS[name]
    if config.policy != "shared" and needs:
        parts.append(library["perworker"])
    parts += [library[section] for section in needs]
    return "".join([*parts, text])


def split_url(url: str, namespace: str) -> tuple[str, str]:
    """The URL redis-py should see, and the namespace (``?namespace=`` wins)."""
    if not isinstance(url, str):
        raise ConfigError(f"url must be a string such as redis://host:6379/0, got {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ConfigError(
            f"unsupported URL scheme {parts.scheme!r}; use redis://, rediss:// (TLS) or unix://"
        )
    rest: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "namespace":
            namespace = value
        else:
            rest.append((key, value))
    if not isinstance(namespace, str) or not namespace or "{" in namespace or "}" in namespace:
        raise ConfigError(
            f"namespace must be a non-empty string without braces, got {namespace!r}"
        )
    return urlunsplit(parts._replace(query=urlencode(rest))), namespace


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _dead_reason(code: str) -> str:
    """Turn a script's reason code into base.py's sentence (one wording everywhere)."""
    kind, deliveries = code[0], int(code[1:])
    if kind == "x":
        return expiry_reason(deliveries)
    return nack_reason(kind == "n", deliveries)


def _deliveries(rows_json: str) -> list[Delivery]:
    """Decode the script's JSON rows [member, expiry, payload] in one pass.

    The member is priority key (16 hex) + seq (16 digits) + deliveries (8 digits)
    + task id; every payload is a fresh object, so callers cannot mutate stored state.
    """
    return [
        Delivery(m[40:], payload, _PRIORITY_TOP - int(m[:16], 16), int(m[32:40]), expiry,
                 int(m[16:32]))
        for m, expiry, payload in json.loads(rows_json)
    ]


class RedisBroker(BrokerBackend):
    """A broker whose state lives in Redis; ``taskward.connect("redis://...")`` builds one.

    ``url`` is ``redis://[user:password@]host:port/db``, ``rediss://`` for TLS
    (redis-py's ``ssl_*`` query options apply) or ``unix:///path``; an optional
    ``?namespace=`` overrides ``namespace``. redis-py never retries a command
    on its own here: a retried script could act twice, so a lost connection is
    reported as :class:`IndefiniteError` and the caller decides.
    """

    def __init__(self, url: str, config: BrokerConfig, namespace: str = "taskward") -> None:
        super().__init__(config)
        self._url, self.namespace = split_url(url, namespace)
        self._keys = ["{" + self.namespace + "}:"]
        self._election = [str(config.election_lease_ms), str(config.member_timeout_ms)]
        self._texts = {name: _script_text(name, config)
                       for name in (*_BROKER_SCRIPTS, *_ELECTION_SCRIPTS)}
        self._client: Any = None
        self._scripts: dict[str, Callable[..., Any]] = {}
        self._local = threading.local()
        self._open()

    # -- connection -----------------------------------------------------------

    def _open(self) -> None:
        self._local = threading.local()  # connections of a previous client are gone
        try:
            self._client = _redis.Redis.from_url(
                self._url, decode_responses=True, retry=Retry(NoBackoff(), 0),
                socket_timeout=10, socket_connect_timeout=5,
            )
        except ValueError as exc:
            raise ConfigError(f"bad Redis URL {_redacted(self._url)!r}: {exc}") from None
        self._scripts = {name: self._client.register_script(text)
                         for name, text in self._texts.items()}
        try:
            self._broker("init", "", *self.config.workers)
        except TypeError as exc:  # redis-py builds connections lazily from the URL options
            self.close()
            raise ConfigError(
                f"bad option in Redis URL {_redacted(self._url)!r}: {exc}; see redis-py's "
                "from_url for the accepted query options (ssl_* only with rediss://)"
            ) from None
        except BaseException:
            self.close()  # unreachable server, wrong password...: release the sockets
            raise

    def restart(self) -> None:
        """Drop the connection and reconnect: all broker state lives in Redis.

        The nodes' leadership beliefs are in-process by design and are kept.
        """
        self.close()
        self._open()

    def close(self) -> None:
        """Close the client and its connection pool (idempotent)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()
            client.connection_pool.disconnect()

    def capabilities(self) -> list[str]:
        """Everything, including durable restart (state is in the server)."""
        return [*super().capabilities(), "restart"]

    # -- running scripts ------------------------------------------------------

    def _connection(self) -> Any:
        """This thread's own connection (a forked child never reuses its parent's socket).

        Script calls go straight through it, skipping the pool checkout and the
        retry and instrumentation wrappers of ``execute_command``: on a busy
        machine they cost as much as the round trip itself. The connection stays
        checked out for the broker's lifetime; ``close()`` closes it with the pool.
        """
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.conn, local.pid = self._client.connection_pool.get_connection(), os.getpid()
        return local.conn

    def _evalsha(self, sha: str, args: Sequence[str | int]) -> Any:
        conn = self._connection()
        try:
            conn.send_command("EVALSHA", sha, 1, *self._keys, *args)
            return conn.read_response()
        except _redis.ResponseError:
            raise  # the server answered: the connection is fine
        except BaseException:
            conn.disconnect()  # a reply may be pending: never reuse this stream
            raise

    def _call(self, name: str, args: Sequence[str | int]) -> Any:
        if self._client is None:
            raise StoreError("this broker is closed; connect again (or restart())")
        script: Any = self._scripts[name]
        try:
            try:
                return self._evalsha(script.sha, args)
            except _redis.exceptions.NoScriptError:  # a restarted server forgot it: it did not run
                self._client.script_load(script.script)
                return self._evalsha(script.sha, args)
        except (_redis.AuthenticationError, _redis.exceptions.AuthorizationError) as exc:
            self._fail_config(exc)
        except (_redis.ConnectionError, _redis.TimeoutError) as exc:
            raise IndefiniteError(
                f"{name} on {_redacted(self._url)}: {exc}; it may or may not have happened"
            ) from exc
        except _redis.exceptions.NoPermissionError as exc:
            self._fail_config(exc)
        except _redis.ResponseError as exc:
            raise StoreError(
                f"{name} failed on {_redacted(self._url)}: {exc} (taskward needs Redis >= 6.2 "
                f"and keys {self._keys[0]}* for itself alone)"
            ) from exc

    def _fail_config(self, exc: Exception) -> NoReturn:
        raise ConfigError(
            f"Redis refused {_redacted(self._url)}: {exc}; check the user and password in the "
            f"URL and that the ACL user may run EVALSHA/SCRIPT LOAD and use keys "
            f"{self._keys[0]}*"
        ) from exc

    def _broker(self, name: str, worker: str, *args: str) -> Any:
        now = self.config.clock.now_ms()
        return self._call(name, [now, worker, *args])

    # -- primitives -----------------------------------------------------------

    def _publish(self, tasks: Sequence[NewTask]) -> None:
        args: list[str] = []
        for task in tasks:
            args += (task.task_id, _priority_key(task.priority), task.payload_json)
        found = self._broker("publish", "", *args)
        if found[0] == "dup":
            raise DuplicateTaskError(
                f"task_id {found[1]!r} was published before (ids are idempotency keys); "
                "nothing in this batch was published"
            )

    def _settle_many(
        self, worker: str, task_ids: Sequence[str], action: Settle | None, n: int
    ) -> tuple[int, list[Delivery]]:
        found = self._broker("settle", worker, action or "", str(n), *task_ids)
        if found[0] == "notleased":
            _, task_id, state, holder = found
            raise NotLeasedError(
                not_leased(worker, task_id, _STATES.get(state) if state else None, holder)
            )
        return int(found[1]), _deliveries(found[2])

    def _fetch(self, worker: str, n: int) -> list[Delivery]:
        return self._settle_many(worker, (), None, n)[1]

    def _settle(self, worker: str, task_ids: Sequence[str], action: Settle) -> list[int]:
        expiry, _ = self._settle_many(worker, task_ids, action, 0)
        return [expiry] * len(task_ids) if action == "extend" else []

    def _heartbeat(self, worker: str) -> None:
        self._settle_many(worker, (), None, 0)

    def _dead_letters(self) -> list[tuple[str, str]]:
        ids, codes = self._broker("dead", "")
        return [(task_id, _dead_reason(code)) for task_id, code in zip(ids, codes, strict=True)]

    def _stats(self) -> Stats:
        ready, leased, acked, dead, live, leader, epoch = self._broker("stats", "")
        return Stats(ready, leased, acked, dead, live, leader or None, epoch)

    def _tick(self, node: str) -> TickResult:
        now = self.config.clock.now_ms()
        outcome, epoch = self._call("tick", [str(now), node, *self._election])
        return TickResult(outcome, int(epoch), now)

    def _leader_write(self, node: str, epoch: int, value_json: str) -> bool:
        now = self.config.clock.now_ms()
        return bool(self._call("leader_write", [str(now), node, str(epoch), value_json]))

    def fenced_writes(self) -> list[tuple[int, str, JSONValue]]:
        """Accepted leader writes as (epoch, node, value), oldest first."""
        if self._client is None:
            raise StoreError("this broker is closed; connect again (or restart())")
        try:
            raw = self._client.lrange(self._keys[0] + "fenced", 0, -1)
        except (_redis.ConnectionError, _redis.TimeoutError) as exc:
            raise IndefiniteError(f"fenced_writes: {exc}") from exc
        out: list[tuple[int, str, JSONValue]] = []
        for item in raw:
            epoch, node, value = json.loads(item)
            out.append((int(epoch), node, json.loads(value)))
        return out

    # -- fewer round trips ----------------------------------------------------

    def ack_and_fetch(self, worker: str, task_id: str) -> Delivery | None:
        """Ack ``task_id`` and lease the next task in ONE round trip (one script).

        If the ack is refused (NotLeasedError) nothing is fetched either.
        """
        worker = check_name(worker, "worker")
        _, got = self._settle_many(worker, (check_name(task_id, "task_id"),), "ack", 1)
        return got[0] if got else None

    def ack_and_fetch_many(self, worker: str, task_ids: Sequence[str], n: int) -> list[Delivery]:
        """Ack every task in ``task_ids`` (all or none), then lease up to ``n`` more.

        One script, one round trip: the batch form of :meth:`ack_and_fetch`.
        """
        worker = check_name(worker, "worker")
        ids = [check_name(task_id, "task_id") for task_id in task_ids]
        if len(set(ids)) != len(ids):
            raise ConfigError("task_ids repeats an id; ack each task once")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(f"n must be an int >= 0, got {n!r}")
        return self._settle_many(worker, ids, "ack" if ids else None, n)[1]
