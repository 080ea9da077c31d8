"""The generated proof sketch: deterministic, complete, and checked for staleness.

The evidence these tests render is produced by the real checkers at tiny
bounds (a few seconds), never written by hand, so a change in the row shape
the checkers emit shows up here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from taskward.models import broker as B
from taskward.models import election as E
from taskward.models.mutants import MUTANTS
from taskward.specs.invariants import INVARIANTS

from taskward import docsgen
from taskward.check.verify import Bounds
from taskward.docs_cli import docs_command

REPO = Path(__file__).resolve().parents[1]
TINY = Bounds(
    explorer=(B.BrokerConfig(workers=1, tasks=2, priorities=2, lease=1, max_deliveries=1,
                             worker_timeout=1),
              E.ElectionConfig(nodes=2, lease=2, member_timeout=2, margin=1, max_pause=0,
                               stale_cap=2, isolation=False)),
    composed=(),
    hypothesis=(B.BrokerConfig(workers=2, tasks=2, priorities=2, lease=1, max_deliveries=1,
                               worker_timeout=2),),
    examples=5, steps=10)
SOME_MUTANTS = ("lifo", "no-lease-expiry", "no-fencing")


@pytest.fixture(scope="module")
def evidence() -> dict[str, Any]:
    ev = docsgen.collect(bounds=TINY, mutants=SOME_MUTANTS, solver=False, lockstep=False)
    return json.loads(json.dumps(ev))  # exactly what a file round trip gives


@pytest.fixture(scope="module")
def doc(evidence: dict[str, Any]) -> str:
    return docsgen.render(evidence)


def test_rendering_depends_only_on_the_evidence(evidence: dict[str, Any], tmp_path: Path,
                                                doc: str) -> None:
    path = tmp_path / "evidence.json"
    docsgen.write_evidence(path, evidence)
    assert docsgen.render(docsgen.read_evidence(path)) == doc
    assert docsgen.render(evidence) == doc


def test_the_document_follows_the_seed_structure(doc: str) -> None:
    headings = re.findall(r"^## (.+)$", doc, flags=re.M)
    assert headings == ["Overview", "Algorithms", "Invariants", "Proof Sketch",
                        "Simulation Expectations", "Traceability"]


def test_every_invariant_appears_with_its_words_claim_and_sketch(doc: str) -> None:
    for inv in INVARIANTS:
        assert f"### {inv.id} {inv.name}" in doc
        for text in (inv.seed, inv.claim, inv.sketch):
            assert text in doc, f"{inv.id}: {text[:40]!r} missing"


def test_every_mutant_appears_and_missing_evidence_is_said_not_hidden(doc: str) -> None:
    for name in MUTANTS:
        assert f"`{name}`" in doc
    # a mutant the evidence does not cover is reported as such, never as killed
    assert "Not in the recorded evidence" in doc
    row = next(line for line in doc.splitlines() if line.startswith("| `lifo`"))
    assert "explorer" in row and "survived" not in row


def test_each_counterexample_is_a_numbered_table_and_a_sequence_diagram(
        evidence: dict[str, Any], doc: str) -> None:
    lifo = evidence["mutants"]["lifo"]["results"][0]["counterexample"]
    table, diagram = doc.split("mutant `lifo`", 1)[1].split("```mermaid\n", 1)
    rows = [line for line in table.splitlines() if re.match(r"^\| \d", line)]
    assert len(rows) == len(lifo)
    assert diagram.startswith("sequenceDiagram")
    assert diagram.split("```", 1)[0].count("->>Broker: ") == len(lifo)  # publish, publish, fetch
    lasso = doc.split("mutant `no-lease-expiry`", 1)[1].split("```mermaid\n", 1)[1]
    assert "loop repeats forever" in lasso.split("```", 1)[0] and "(loop)" in doc


def test_the_evidence_table_shows_bounds_states_and_versions(evidence: dict[str, Any],
                                                              doc: str) -> None:
    i1 = doc.split("### I1 NoLostTasks", 1)[1].split("### I2", 1)[0]
    assert f"Recorded {evidence['finished']}" in i1
    assert "python " + evidence["versions"]["python"] in i1
    explorer = [line for line in i1.splitlines() if line.startswith("| explorer")]
    states = evidence["verify"]["results"][0]["stats"]["states"]
    assert explorer and f"{states:,} states" in explorer[0]


def test_the_life_cycle_is_computed_from_the_model() -> None:
    edges = docsgen.lifecycle_edges()
    assert edges[("READY", "LEASED")] == {"fetch"}
    assert edges[("LEASED", "ACKED")] == {"ack"}
    assert "lease expiry" in edges[("LEASED", "READY")]
    assert not [e for e in edges if e[0] in ("ACKED", "DEAD")], "ACKED and DEAD are final"


def test_every_link_points_to_a_file_of_the_repository() -> None:
    missing = [p for p in docsgen.REPO_LINKS.values() if not (REPO / p).exists()]
    assert missing == []


def test_check_passes_on_a_fresh_document_and_fails_on_a_stale_one(
        evidence: dict[str, Any], tmp_path: Path) -> None:
    ev, out = tmp_path / "evidence.json", tmp_path / "proof-sketch.md"
    docsgen.write_evidence(ev, evidence)
    args = ["--out", str(out), "--evidence", str(ev)]
    runner = CliRunner()
    assert runner.invoke(docs_command, args).exit_code == 0
    assert runner.invoke(docs_command, [*args, "--check"]).exit_code == 0
    out.write_text(out.read_text().replace("NoLostTasks", "NoLostTask", 1))
    stale = runner.invoke(docs_command, [*args, "--check"])
    assert stale.exit_code == 1
    assert "stale" in stale.output and "NoLostTask" in stale.output


def test_a_missing_evidence_file_is_a_usage_error_naming_the_fix(tmp_path: Path) -> None:
    res = CliRunner().invoke(docs_command, ["--evidence", str(tmp_path / "none.json"),
                                            "--out", str(tmp_path / "x.md")])
    assert res.exit_code == 2 and "--run" in res.output


def test_the_committed_document_is_fresh() -> None:
    ev = REPO / "docs" / "evidence.json"
    if not ev.exists():
        pytest.skip("no committed evidence yet")
    committed = (REPO / "docs" / "proof-sketch.md").read_text()
    assert committed == docsgen.render(docsgen.read_evidence(ev)), \
        "docs/proof-sketch.md is stale: run `taskward docs` and commit it"
