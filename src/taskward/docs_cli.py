"""``taskward docs``: write, refresh or check the generated proof-sketch document.

Exit codes: 0 written or fresh, 1 stale (``--check``), 2 no evidence to render.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from taskward import docsgen


@click.command("docs")
@click.option("--out", "out_path", default="docs/proof-sketch.md", show_default=True,
              type=click.Path(dir_okay=False), help="The Markdown document.")
@click.option("--evidence", "evidence_path", default="docs/evidence.json", show_default=True,
              type=click.Path(dir_okay=False), help="The recorded verification evidence.")
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 when the document differs from what would be generated.")
@click.option("--run", "run_", is_flag=True,
              help="Re-run verification first and refresh the evidence file (about a minute).")
@click.option("--no-solver", is_flag=True, help="With --run: skip the Z3 checks.")
def docs_command(out_path: str, evidence_path: str, check: bool, run_: bool,
                 no_solver: bool) -> None:
    """Generate docs/proof-sketch.md from the registries and the recorded evidence."""
    if check and run_:
        raise click.UsageError("--check compares against the committed evidence; drop --run")
    if run_:
        ev = docsgen.collect(_say, solver=not no_solver)
        docsgen.write_evidence(evidence_path, ev)
        click.echo(f"evidence: {evidence_path} (verdict {ev['verify']['verdict']})")
    try:
        ev = docsgen.read_evidence(evidence_path)
    except FileNotFoundError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    fresh = docsgen.render(ev)
    out = Path(out_path)
    if check:
        sys.exit(_check(out, fresh))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(fresh)
    click.echo(f"wrote {out} ({len(fresh.splitlines())} lines)")


def _check(out: Path, fresh: str) -> int:
    """0 when the committed document is what the evidence produces, else 1 with a diff."""
    current = out.read_text() if out.exists() else ""
    if current == fresh:
        click.echo(f"{out} is up to date")
        return 0
    click.echo(f"{out} is stale: regenerate it with `taskward docs` and commit it", err=True)
    for line in docsgen.stale_diff(current, fresh, str(out)):
        click.echo(line, err=True)
    return 1


def _say(msg: str) -> None:
    click.echo(msg, err=True)


if __name__ == "__main__":
    docs_command()
