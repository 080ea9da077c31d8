"""A JSON-lines implementation that breaks the protocol gets a clear verdict, never a hang."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskward.check.adapters import CallTimeout, JsonLines, ProtocolFailure, describe
from taskward.check.conformance_cli import check_command, replay_command
from taskward.check.lockstep import check
from taskward.check.oracle import CheckConfig

SERVER = Path(__file__).resolve().parents[2] / "examples" / "mutant_impls" / "jsonlines_server.py"


def server(*flags: str) -> str:
    return f"{sys.executable} {SERVER} {' '.join(flags)}"


@pytest.mark.parametrize(("kind", "words"), [
    ("crash", "exited (code 3)"),
    ("silent-exit", "exited"),
    ("garbage", "is not JSON"),
    ("wrong-id", "carries id"),
])
def test_broken_protocol_is_a_fail_with_the_reason(kind: str, words: str) -> None:
    report = check(server("--misbehave", kind), examples=5)
    assert report.verdict() == "fail"
    assert words in report.reason
    rows = [r for r in report.results if r.invariant == "protocol"]
    assert rows and rows[0].verdict == "fail"


def test_a_hanging_implementation_is_unknown_after_the_timeout_and_is_killed() -> None:
    start = time.perf_counter()
    report = check(server("--misbehave", "hang"), examples=5, timeout=0.5)
    assert report.verdict() == "unknown"
    assert "no reply" in report.reason
    assert time.perf_counter() - start < 30


def test_child_is_reaped_when_it_hangs() -> None:
    impl = JsonLines(server("--misbehave", "hang"), CheckConfig().to_json(), timeout=0.3)
    with pytest.raises(CallTimeout):
        for i in range(5):
            impl.call("publish", {"task_id": f"t{i}", "priority": 0})
    impl.close()
    assert impl.proc.returncode is not None


def test_a_command_that_does_not_exist_fails_clearly() -> None:
    report = check("/nonexistent/taskward-impl --flag")
    assert report.verdict() == "fail"
    assert "cannot start" in report.reason


def test_an_init_reply_without_capabilities_is_refused() -> None:
    with pytest.raises(ProtocolFailure, match="capabilities"):
        JsonLines(f"{sys.executable} -c \"import sys; sys.stdin.readline(); "
                  "print('{\\\"id\\\": 0, \\\"ok\\\": true}', flush=True)\"",
                  CheckConfig().to_json(), timeout=2)


def test_impl_strings_select_the_adapter_form() -> None:
    assert describe("memory") == "built-in"
    assert describe("redis://127.0.0.1:6379/0") == "built-in"
    assert describe("mypkg.impl:factory") == "in-process"
    assert describe("node impl.js") == "json-lines"


def test_cli_exit_codes_and_replay(tmp_path: Path) -> None:
    runner = CliRunner()
    replay_file = tmp_path / "trace.json"
    report_file = tmp_path / "report.json"
    failed = runner.invoke(check_command, [
        "--impl", "mutant_impls.catalogue:lifo", "--examples", "30",
        "--replay-file", str(replay_file), "--json", str(report_file)])
    assert failed.exit_code == 1, failed.output
    assert "minimal failing trace" in failed.output
    doc = json.loads(report_file.read_text())
    assert doc["verdict"] == "fail" and doc["replay"]["steps"]
    again = runner.invoke(replay_command, [str(replay_file), "--impl",
                                           "mutant_impls.catalogue:lifo"])
    assert again.exit_code == 1, again.output
    fixed = runner.invoke(replay_command, [str(replay_file), "--impl",
                                           "mutant_impls.reference:factory"])
    assert fixed.exit_code == 0, fixed.output
    unknown = runner.invoke(check_command, ["--impl", "memory", "--examples", "5",
                                            "--policy", "shared"])
    assert unknown.exit_code == 2, unknown.output
    assert "not checked: no 'restart' capability" in unknown.output
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert runner.invoke(replay_command, [str(bad), "--impl", "memory"]).exit_code == 2
