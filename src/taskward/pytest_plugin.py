"""A pytest plugin: check your own implementation against the taskward model in one test.

Enable it (``pytest_plugins = ["taskward.pytest_plugin"]`` in a conftest, or
through the ``pytest11`` entry point when taskward declares it), then::

    def test_my_broker_conforms(taskward_conformance):
        taskward_conformance("mypkg.impl:factory", examples=200)

The implementation spec is what ``taskward check --impl`` takes: a
``package.module:factory`` (in-process), a command line speaking the JSON-lines
protocol, or a built-in backend (``memory``, ``sqlite``, ``redis://...``).
The lockstep checker drives the implementation and the model with the same
calls; any answer the model does not allow fails the test with the trace.

Verdicts stay honest: a ``fail`` row fails the test; a run in which nothing
passed fails too (an implementation with no checkable capability is not a
conforming one); with ``strict=True`` every ``unknown`` row fails as well.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from taskward.check.verdict import Result
from taskward.reporting import trace_text

Conformance = Callable[..., list[Result]]


class ConformanceError(AssertionError):
    """The implementation answered outside what the model allows (or was not checkable)."""


def _lockstep() -> Any:
    try:
        return importlib.import_module("taskward.check.lockstep")
    except ImportError as exc:  # an older taskward without the lockstep harness
        raise ConformanceError(f"taskward.check.lockstep is not available: {exc}") from None


def run_conformance(impl: str, *, examples: int = 100, steps: int = 30,
                    policies: Sequence[str] = (), timeout: float = 5.0) -> list[Result]:
    """The lockstep rows for ``impl`` (what ``taskward check --impl IMPL`` reports)."""
    report = _lockstep().check(impl, policies=tuple(policies), examples=examples, steps=steps,
                               timeout=timeout)
    rows: list[Result] = list(report.results)
    return rows


def failure_text(impl: str, rows: Sequence[Result], *, strict: bool = False) -> str | None:
    """Why these rows do not show conformance, with the traces; ``None`` when they do."""
    bad = [r for r in rows if r.verdict == "fail" or (strict and r.verdict == "unknown")]
    if not bad and not any(r.verdict == "pass" for r in rows):
        bad = list(rows)
        head = f"{impl}: nothing was established (no row passed)"
    else:
        head = f"{impl}: {len(bad)} check(s) did not pass"
    if not bad:
        return None
    parts = [head]
    for r in bad:
        parts.append(f"\n{r.invariant} [{r.checker}] {r.verdict} on {r.model}: {r.note}".rstrip())
        if r.counterexample:
            parts.append(trace_text(r.counterexample))
    return "\n".join(parts)


def assert_conformance(impl: str, *, examples: int = 100, steps: int = 30,
                       policies: Sequence[str] = (), timeout: float = 5.0,
                       strict: bool = False) -> list[Result]:
    """Lockstep on ``impl``; :class:`ConformanceError` with the traces unless it conforms."""
    rows = run_conformance(impl, examples=examples, steps=steps, policies=policies,
                           timeout=timeout)
    text = failure_text(impl, rows, strict=strict)
    if text is not None:
        raise ConformanceError(text)
    return rows


@pytest.fixture
def taskward_conformance() -> Conformance:
    """A function ``(impl, examples=..., ...) -> rows`` that fails the test on non-conformance."""
    def check(impl: str, **kwargs: Any) -> list[Result]:
        try:
            return assert_conformance(impl, **kwargs)
        except ConformanceError as exc:
            message = str(exc)
        pytest.fail(message, pytrace=False)  # outside the handler: one clean report
    return check
