"""``taskward check`` and ``taskward replay``: lockstep conformance of any implementation.

Exit codes as everywhere in taskward: 0 pass, 1 fail, 2 unknown (a timeout,
an indefinite error, or an invariant a missing capability kept unchecked).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from taskward.check.lockstep import POLICIES_RUN, Report, Row, check, replay, replay_document
from taskward.check.verdict import EXIT, Verdict

STYLE = {"pass": "green", "fail": "bold red", "unknown": "yellow"}


def _console() -> Console:
    con = Console(highlight=False)
    return con if con.is_terminal else Console(highlight=False, width=160)


def invariant_table(report: Report) -> Table:
    """One row per invariant and policy: verdict, bound, note."""
    t = Table(title=f"taskward check --impl {report.impl} ({report.form})")
    for col in ("invariant", "policy", "verdict", "runs", "steps", "note"):
        t.add_column(col)
    for r in report.results:
        policy = r.bound.get("policy", "-")
        t.add_row(r.invariant, str(policy), f"[{STYLE[r.verdict]}]{r.verdict}[/]",
                  str(r.bound.get("runs", "")), str(r.bound.get("steps", "")),
                  escape(r.note[:110]))
    return t


def operation_table(report: Report) -> Table:
    """One row per operation: how often it was called, rejected, answered wrongly."""
    t = Table(title="operations")
    for col in ("operation", "calls", "rejected (as allowed)", "wrong answers"):
        t.add_column(col)
    for op, row in sorted(report.operations.items()):
        t.add_row(op, str(row["calls"]), str(row["rejected"]),
                  f"[{'bold red' if row['failed'] else 'green'}]{row['failed']}[/]")
    return t


def trace_table(rows: list[Row], title: str) -> Table:
    """The minimal failing trace as a numbered table; the last row is the wrong answer."""
    t = Table(title=title)
    for col in ("#", "call", "implementation", "contract allows", "tasks after"):
        t.add_column(col)
    for i, r in enumerate(rows, 1):
        style = "bold red" if not r.ok else ""
        tasks = " ".join(f"{k}:{v}" for k, v in r.tasks.items())
        answer = escape(r.answer)
        t.add_row(str(i), escape(r.label()), f"[{style}]{answer}[/]" if style else answer,
                  escape(r.allowed), escape(tasks))
    return t


def report_json(report: Report, seconds: float) -> dict[str, Any]:
    return {"verdict": report.verdict(), "impl": report.impl, "form": report.form,
            "capabilities": report.caps, "seconds": round(seconds, 2),
            "results": [r.to_json() for r in report.results],
            "operations": report.operations, "failure": report.reason,
            "replay": replay_document(report)}


@click.command("check")
@click.option("--impl", "impl", required=True,
              help="memory | sqlite | redis://host:port/db | package.module:factory | "
                   "'command args' (JSON lines).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Write the report (with the replay document) here.")
@click.option("--examples", default=100, show_default=True,
              help="Random runs per policy.")
@click.option("--steps", default=30, show_default=True, help="Calls per random run.")
@click.option("--policy", "policies", multiple=True, type=click.Choice(POLICIES_RUN),
              help="Check only these policies (repeatable). Default: every declared one.")
@click.option("--timeout", default=5.0, show_default=True,
              help="Seconds a JSON-lines implementation may take per call.")
@click.option("--replay-file", type=click.Path(dir_okay=False), default="taskward-replay.json",
              show_default=True, help="Where the minimal failing trace is written.")
def check_command(impl: str, json_path: str | None, examples: int, steps: int,
                  policies: tuple[str, ...], timeout: float, replay_file: str) -> None:
    """Run an implementation in lockstep with the reference model (CONFORMANCE.md)."""
    con = _console()
    start = time.perf_counter()
    report = check(impl, policies=policies, examples=examples, steps=steps, timeout=timeout)
    seconds = time.perf_counter() - start
    con.print(f"capabilities: {', '.join(report.caps) or '(none)'}")
    con.print(invariant_table(report))
    if report.operations:
        con.print(operation_table(report))
    doc = replay_document(report)
    if report.failing is not None and report.failing.rows:
        con.print(trace_table(report.failing.rows, "minimal failing trace"))
    if report.reason:
        con.print(f"[bold]why:[/] {escape(report.reason)}")
    if doc is not None:
        Path(replay_file).write_text(json.dumps(doc, indent=2) + "\n")
        con.print(f"replay: taskward replay {replay_file} --impl '{impl}'")
    verdict: Verdict = report.verdict()
    con.print(f"\nverdict: [{STYLE[verdict]}]{verdict}[/] ({seconds:.1f}s)")
    if json_path:
        Path(json_path).write_text(json.dumps(report_json(report, seconds), indent=2) + "\n")
    sys.exit(EXIT[verdict])


@click.command("replay")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--impl", "impl", required=True, help="The implementation to re-run it against.")
@click.option("--timeout", default=5.0, show_default=True, help="Seconds per call (JSON lines).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the outcome.")
def replay_command(file: str, impl: str, timeout: float, json_path: str | None) -> None:
    """Re-run a replay file written by ``taskward check``: fail if the trace still fails."""
    con = _console()
    try:
        doc = json.loads(Path(file).read_text())
        outcome = replay(doc, impl, timeout)
    except (ValueError, KeyError, TypeError) as exc:
        con.print(f"[red]error:[/] {file} is not a usable replay file: {exc}")
        sys.exit(2)
    con.print(trace_table(outcome.rows, f"replay of {file} against {impl}"))
    con.print(escape(outcome.reason))
    if outcome.invariants:
        con.print(f"breaks: {', '.join(outcome.invariants)}")
    con.print(f"\nverdict: [{STYLE[outcome.verdict]}]{outcome.verdict}[/]")
    if json_path:
        Path(json_path).write_text(json.dumps(
            {"verdict": outcome.verdict, "reason": outcome.reason,
             "invariants": outcome.invariants, "steps": len(outcome.rows)}, indent=2) + "\n")
    sys.exit(EXIT[outcome.verdict])
