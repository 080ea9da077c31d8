"""The ``taskward`` command: verification (verify) and the runtime (worker, stats, publish).

Exit codes everywhere: 0 pass, 1 fail, 2 unknown (or a usage error).
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

from taskward.check.conformance_cli import check_command, replay_command
from taskward.check.verdict import EXIT, Result, overall
from taskward.docs_cli import docs_command
from taskward.docsgen import size_text
from taskward.reporting import trace_text, write_itf_dir, write_junit
from taskward.runtime_cli import publish_command, stats_command, worker_command

STYLE = {"pass": "green", "fail": "bold red", "unknown": "yellow"}


def console() -> Console:
    """Tables on stdout; when it is not a terminal (CI logs) use a width that fits a row."""
    con = Console(highlight=False)
    return con if con.is_terminal else Console(highlight=False, width=180)


def fmt_bound(b: dict[str, Any]) -> str:
    """``W=2 T=2 lease=1 ...``; a composite's keys keep a one-letter part prefix."""
    short = {"workers": "W", "tasks": "T", "priorities": "P", "lease": "lease",
             "max_deliveries": "maxdel", "worker_timeout": "wto", "nodes": "N",
             "member_timeout": "mto", "margin": "margin", "max_pause": "pause",
             "max_drift": "drift", "examples": "examples", "steps_per_example": "steps"}
    out = []
    for key, value in b.items():
        part, _, name = key.rpartition(".")
        if name != "policy":
            out.append(f"{part[:1] + '.' if part else ''}{short.get(name, name)}={value}")
    return " ".join(out)


def results_table(rows: list[Result]) -> Table:
    t = Table(title="taskward verify", show_lines=False)
    for col in ("invariant", "checker", "model", "verdict", "bound", "states / examples", "time"):
        t.add_column(col)
    for r in rows:
        secs = float(r.stats.get("seconds", r.stats.get("solver_s", 0)) or 0)
        t.add_row(r.invariant, r.checker, escape(r.model), f"[{STYLE[r.verdict]}]{r.verdict}[/]",
                  escape(fmt_bound(r.bound)), escape(size_text(r)), f"{secs:.1f}s")
    return t


def print_trace(con: Console, r: Result) -> None:
    """A counterexample as a numbered list: action, answer, and the state change that matters."""
    con.print(f"\n[bold]Counterexample for {r.invariant}[/] ({r.checker}, {escape(r.model)})"
              + (f": {escape(r.note)}" if r.note else ""))
    con.print(escape(trace_text(r.counterexample)))


def write_json(path: str, rows: list[Result]) -> None:
    doc = {"verdict": overall(rows), "results": [r.to_json() for r in rows]}
    Path(path).write_text(json.dumps(doc, indent=2) + "\n")


def write_reports(rows: list[Result], json_path: str | None, junit_path: str | None,
                  suite: str) -> None:
    """The machine-readable outputs CI systems read."""
    if json_path:
        write_json(json_path, rows)
    if junit_path:
        write_junit(junit_path, rows, suite)


@click.group()
@click.version_option(package_name="taskward")
def main() -> None:
    """taskward: distributed task execution, and the model that proves it right."""


JUNIT = click.option("--junit", "junit_path", type=click.Path(dir_okay=False),
                     help="Write JUnit XML: one test case per invariant, checker and model.")


@main.command()
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write results here.")
@JUNIT
@click.option("--itf", "itf_dir", type=click.Path(file_okay=False),
              help="Write each counterexample as an ITF trace (Apalache/Quint) in this folder.")
@click.option("--mutant", help="Check a deliberately broken model (expected verdict: fail).")
@click.option("--list-mutants", is_flag=True, help="List the model mutants and exit.")
@click.option("--checker", "checkers", multiple=True,
              type=click.Choice(["explorer", "hypothesis", "z3"]),
              help="Run only these checkers (repeatable). Default: all.")
def verify(json_path: str | None, junit_path: str | None, itf_dir: str | None,
           mutant: str | None, list_mutants: bool, checkers: tuple[str, ...]) -> None:
    """Check invariants I1-I9 on the reference model at the default bounds."""
    from taskward.check import verify as V
    from taskward.models.mutants import MUTANTS

    con = console()
    if list_mutants:
        for name, mu in MUTANTS.items():
            con.print(f"{name:24s} breaks {','.join(mu.breaks):5s}  {mu.claim}")
        return
    chosen = checkers or V.ALL_CHECKERS
    start = time.perf_counter()
    with con.status("starting") as status:
        def progress(msg: str) -> None:
            status.update(escape(msg))
            if not con.is_terminal:
                con.print(f"[dim]{escape(msg)}[/]")
        try:
            rows = (V.verify_mutant(mutant, progress, chosen) if mutant
                    else V.verify_correct(V.DEFAULT, progress, chosen))
        except KeyError as e:
            con.print(f"[red]error:[/] {e.args[0]}")
            sys.exit(2)
    con.print(results_table(rows))
    cex = V.first_counterexample(rows)
    if cex is not None:
        print_trace(con, cex)
    verdict = overall(rows)
    con.print(f"\nverdict: [{STYLE[verdict]}]{verdict}[/] ({len(rows)} checks, "
              f"{time.perf_counter() - start:.1f}s)")
    write_reports(rows, json_path, junit_path, "taskward verify")
    if itf_dir:
        write_itf_dir(itf_dir, rows)
    sys.exit(EXIT[verdict])


@main.command()
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write results here.")
@JUNIT
@click.option("--depth", type=click.IntRange(min=1), default=6, show_default=True,
              help="Bounded model checking depth.")
@click.option("--timeout", "timeout_s", type=float, default=30.0, show_default=True,
              help="Seconds per solver query; a query that runs out is unknown.")
@click.option("--max-depth-seconds", type=float,
              help="Also report how deep bounded model checking gets within this budget.")
def prove(json_path: str | None, junit_path: str | None, depth: int, timeout_s: float,
          max_depth_seconds: float | None) -> None:
    """Z3: inductive proofs, bounded model checking, I5's ranking and fair-step bound,
    and parametric proofs of I2 and I3a for any size.

    Sizes: 4 tasks, 3 workers (each policy), 3 nodes; the I5 bound under
    round-robin at 3 tasks, 2 workers."""
    from taskward.check import z3check

    con = console()
    start = time.perf_counter()
    with con.status("starting") as status:
        rows = z3check.prove_all(depth, timeout_s,
                                 progress=lambda msg: status.update(escape(msg)))
        if max_depth_seconds:
            for m in z3check.default_models():
                status.update(f"depth within {max_depth_seconds:.0f}s: {m.name}")
                reached = z3check.max_depth_within(m, max_depth_seconds)
                con.print(f"{escape(m.name)}: bounded model checking reached depth {reached} "
                          f"within {max_depth_seconds:.0f}s")
    con.print(results_table(rows))
    solver = z3check.solver_seconds(rows)
    verdict = overall(rows)
    con.print(f"\nverdict: [{STYLE[verdict]}]{verdict}[/] ({len(rows)} checks, solver "
              f"{solver:.1f}s, wall {time.perf_counter() - start:.1f}s)")
    write_reports(rows, json_path, junit_path, "taskward prove")
    sys.exit(EXIT[verdict])


main.add_command(check_command)
main.add_command(replay_command)
main.add_command(docs_command)
main.add_command(worker_command)
main.add_command(stats_command)
main.add_command(publish_command)

if __name__ == "__main__":
    main()
