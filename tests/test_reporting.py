"""CI outputs: JUnit counts and traces, ITF round trips that replay, the pytest fixture.

Rows come from real checker runs on model mutants (a few seconds), so the
reports are judged on the shapes the checkers really emit.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from taskward.models.mutants import MUTANTS
from taskward.specs.invariants import BY_ID

from taskward import reporting as R
from taskward.check.stateful import Violation, check_step
from taskward.check.verdict import Result
from taskward.check.verify import fast, hypothesis_rows, verify_mutant
from taskward.pytest_plugin import ConformanceError, assert_conformance, failure_text


@pytest.fixture(scope="module")
def lifo_rows() -> list[Result]:
    """Explorer fail on I2; Hypothesis fail on I2 and, stopped there, unknown on I9."""
    rows = verify_mutant("lifo", checkers=("explorer",))
    m = fast(MUTANTS["lifo"].build())
    hyp = hypothesis_rows(m, [BY_ID["I2"], BY_ID["I9"]], examples=300, steps=20)
    for r in hyp:
        r.model = f"{m.name} mutant=lifo"  # as verify_mutant names its rows
    return rows + hyp


@pytest.fixture(scope="module")
def lasso_row() -> Result:
    return verify_mutant("no-lease-expiry", checkers=("explorer",))[0]


def test_the_fixture_rows_have_every_verdict_worth_reporting(lifo_rows: list[Result]) -> None:
    assert sorted(r.verdict for r in lifo_rows) == ["fail", "fail", "unknown"]


def test_junit_has_one_case_per_row_failures_with_traces_and_unknown_skipped(
        lifo_rows: list[Result], tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    R.write_junit(path, lifo_rows)
    root = ET.parse(path).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "2", "1")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [R.testcase_name(r) for r in lifo_rows]
    explorer = cases[0].find("failure")
    assert explorer is not None and explorer.text is not None
    for st in lifo_rows[0].counterexample or []:
        assert st["label"] in explorer.text
    skipped = [c.find("skipped") for c in cases if c.find("skipped") is not None]
    assert len(skipped) == 1 and skipped[0] is not None
    assert skipped[0].get("message", "").startswith("unknown: ")
    assert not [c for c in cases if c.find("failure") is None and c.find("skipped") is None]


def test_an_itf_trace_round_trips_and_replays_to_the_violation(lifo_rows: list[Result],
                                                               tmp_path: Path) -> None:
    row = lifo_rows[0]
    path = tmp_path / "lifo.itf.json"
    R.write_itf(path, R.row_itf(row))
    doc = R.read_itf(path)
    m = MUTANTS["lifo"].build()
    assert R.from_itf(doc, m) == R.steps_of(row.counterexample or [])
    assert len(doc["states"]) == len(row.counterexample or []) + 1
    assert doc["states"][1]["npub"] == {"#bigint": "1"}
    steps = R.replay_itf(doc, m)
    assert [s.result for s in steps] == [st["result"] for st in row.counterexample or []]
    s = m.init
    with pytest.raises(Violation) as caught:
        for st in steps:
            check_step(m, [BY_ID["I2"]], s, st.action, st.args, st.post, st.result)
            s = st.post
    assert caught.value.invariant == "I2"


def test_every_model_counterexample_is_written_as_an_itf_file(lifo_rows: list[Result],
                                                             tmp_path: Path) -> None:
    written = R.write_itf_dir(tmp_path / "itf", lifo_rows)
    assert len(written) == 2  # explorer and hypothesis failures; the unknown has no trace
    m = MUTANTS["lifo"].build()
    for path in written:
        R.replay_itf(R.read_itf(path), m)


def test_a_liveness_lasso_records_its_loop_state(lasso_row: Result) -> None:
    doc = R.row_itf(lasso_row)
    first_loop = next(k for k, st in enumerate(lasso_row.counterexample or []) if st["loop"])
    assert doc["loop"] == first_loop
    states = R.replay_itf(doc, R.model_for(lasso_row))
    assert states[-1].post == ([R.model_for(lasso_row).init] + [s.post for s in states])[
        first_loop], "the lasso closes where ITF says"


def test_an_itf_trace_that_disagrees_with_the_model_is_refused(lifo_rows: list[Result]) -> None:
    doc = R.row_itf(lifo_rows[0])
    doc["states"][2]["npub"] = {"#bigint": "7"}
    with pytest.raises(ValueError, match="ITF state 2: npub"):
        R.replay_itf(doc, MUTANTS["lifo"].build())


def test_quint_style_traces_drive_the_model(lifo_rows: list[Result]) -> None:
    doc = R.row_itf(lifo_rows[0])
    for st in doc["states"]:
        st["mbt::actionTaken"] = st.pop("action_taken")
        picks = st.pop("nondet_picks")
        st["mbt::nondetPicks"] = {k: {"tag": "Some", "value": v} for k, v in picks.items()}
    m = MUTANTS["lifo"].build()
    assert R.from_itf(doc, m) == R.steps_of(lifo_rows[0].counterexample or [])


def test_the_itf_output_parses_with_itf_py(lifo_rows: list[Result]) -> None:
    itf_py = pytest.importorskip("itf_py")
    trace = itf_py.trace_from_json(json.loads(json.dumps(R.row_itf(lifo_rows[0]))))
    assert trace.states[-1].values["action_taken"] == "fetch"
    assert trace.states[-1].values["npub"] == 2


@pytest.fixture(scope="module")
def memory_rows() -> list[Result]:
    return assert_conformance("memory", examples=5, steps=10)


def test_conformance_of_a_builtin_backend_passes(memory_rows: list[Result]) -> None:
    assert any(r.verdict == "pass" for r in memory_rows)
    assert all(r.checker == "lockstep" for r in memory_rows)


def test_conformance_failures_carry_the_trace(lifo_rows: list[Result],
                                              memory_rows: list[Result]) -> None:
    text = failure_text("mypkg:factory", lifo_rows)
    assert text is not None and "I2 [explorer] fail" in text
    assert (lifo_rows[0].counterexample or [])[0]["label"] in text
    unknown = [r for r in lifo_rows if r.verdict == "unknown"]
    assert "nothing was established" in (failure_text("x", unknown) or "")
    passes = [r for r in memory_rows if r.verdict == "pass"]
    assert failure_text("x", passes + unknown) is None
    strict = failure_text("x", passes + unknown, strict=True)
    assert strict is not None and "I9 [hypothesis] unknown" in strict


def test_a_missing_implementation_is_a_conformance_error() -> None:
    with pytest.raises(ConformanceError, match=r"nothing was established|did not pass"):
        assert_conformance("no_such_module_xyz:factory", examples=2, steps=5)


class NewestFirst:
    """A toy broker that hands out the newest task first: the bug of the ``lifo`` mutant."""

    def __init__(self, config: dict[str, object]) -> None:
        self.ready: list[str] = []

    def capabilities(self) -> list[str]:
        return ["broker"]

    def publish(self, task_id: str, priority: int) -> None:
        self.ready.append(task_id)

    def fetch(self, worker: str) -> str | None:
        return self.ready.pop() if self.ready else None

    def advance(self, ms: int) -> None:
        return None

    def close(self) -> None:
        return None


@pytest.mark.parametrize("name", ["lifo", "stale-ack", "no-lease-expiry"])
def test_a_mutant_trace_drives_a_correct_backend_without_a_mismatch(name: str) -> None:
    row = verify_mutant(name, checkers=("explorer",))[0]
    outcome = R.drive_implementation(R.row_itf(row), MUTANTS[name].build(), "sqlite")
    assert outcome.verdict == "pass", outcome.reason
    calls = [st for st in row.counterexample or [] if st["action"] != "crash"]
    assert len(outcome.rows) == len(calls)  # a crashed worker makes no call


def test_an_itf_trace_catches_an_implementation_with_the_mutant_bug(
        lifo_rows: list[Result], monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("newest_first_impl")
    module.factory = NewestFirst  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "newest_first_impl", module)
    outcome = R.drive_implementation(R.row_itf(lifo_rows[0]), MUTANTS["lifo"].build(),
                                     "newest_first_impl:factory")
    assert outcome.verdict == "fail"
    assert "I2" in outcome.invariants and "step 3" in outcome.reason


def test_election_traces_are_refused_for_implementations() -> None:
    row = verify_mutant("no-fencing", checkers=("explorer",))[0]
    with pytest.raises(ValueError, match="only broker traces"):
        R.replay_document(R.row_itf(row), MUTANTS["no-fencing"].build())


def test_the_fixture_fails_a_test_with_the_reason_in_a_project_of_its_own(
        tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_theirs.py").write_text(
        "def test_memory(taskward_conformance):\n"
        "    assert taskward_conformance('memory', examples=3, steps=8)\n\n"
        "def test_missing(taskward_conformance):\n"
        "    taskward_conformance('nosuchpkg_abc:factory', examples=2, steps=5)\n")
    auto = any(ep.value == "taskward.pytest_plugin"
               for ep in importlib.metadata.entry_points(group="pytest11"))
    enable = [] if auto else ["-p", "taskward.pytest_plugin"]  # never register it twice
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          *enable, "test_theirs.py"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed, 1 passed" in run.stdout
    assert "cannot import 'nosuchpkg_abc'" in run.stdout
