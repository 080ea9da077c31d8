"""The real-queue adapters run, and the differences docs/real-queues.md shows are found."""

from __future__ import annotations

import pytest

from taskward.check.lockstep import check

pytest.importorskip("persistqueue")
pytest.importorskip("litequeue")


@pytest.mark.parametrize("impl", ["real_queues.persistqueue_impl:factory",
                                  "real_queues.litequeue_impl:factory"])
def test_an_ack_from_a_worker_that_never_fetched_is_accepted(impl: str) -> None:
    report = check(impl, examples=50)
    assert report.verdict() == "fail"
    assert report.failing is not None
    labels = [r.label() for r in report.failing.rows]
    assert labels[-1].startswith("ack(") and "fetch" not in " ".join(labels)
    assert report.failing.failure is not None and "I1" in report.failing.failure.invariants
    unchecked = {r.invariant for r in report.results if r.note.startswith("not checked")}
    assert {"I3a", "I4", "I5", "I7", "I2/priority"} <= unchecked


def test_persistqueue_redelivers_work_in_progress_after_a_restart() -> None:
    report = check("real_queues.strict:persistqueue", examples=100)
    assert report.verdict() == "fail" and report.failing is not None
    ops = [r.op for r in report.failing.rows]
    assert "restart" in ops and ops[-1] == "fetch"
