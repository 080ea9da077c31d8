"""The proof-sketch document, generated from the registries and the recorded evidence.

Everything the document says comes from one of three places: the invariant
registry (``taskward.specs.invariants``: the seed's words, claims, sketches,
strengthenings), the model (actions, their docstrings, state fields, and the
task life cycle, which is *computed* by walking a small instance of the
broker) and the evidence file (``docs/evidence.json``: the verdict rows of
every checker with their bounds, dates and tool versions). Rendering is a
pure function of those, so ``taskward docs --check`` can regenerate the
document and compare it byte for byte with the committed one.
"""

from __future__ import annotations

import datetime as dt
import difflib
import importlib
import importlib.metadata
import json
import platform
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from taskward.check.verdict import Result, overall
from taskward.models import broker as B
from taskward.models import election as E
from taskward.models.core import Model
from taskward.models.mutants import MUTANTS, Mutant
from taskward.specs.invariants import INVARIANTS, Invariant

Progress = Callable[[str], None]
EVIDENCE_FORMAT = 1
CHECKER_ORDER = ("explorer", "hypothesis", "z3-bmc", "z3-induction", "z3-ranking", "z3-progress",
                 "z3-parametric", "lockstep")
DOC_DIR = "docs"
"""Links in the document are relative to this folder of the repository."""

# ------------------------------------------------------------------ evidence


def versions() -> dict[str, str]:
    """The versions a verdict depends on, recorded beside it."""
    out = {"taskward": _dist_version("taskward"), "python": platform.python_version()}
    for mod, name in (("hypothesis", "hypothesis"), ("z3", "z3")):
        try:
            m = importlib.import_module(mod)
            out[name] = str(m.get_version_string() if name == "z3" else m.__version__)
        except ImportError:
            out[name] = "not installed"
    return out


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def solver_rows(progress: Progress | None, depth: int, timeout_s: float) -> list[Result]:
    """Z3 induction and BMC rows, when the solver checks are part of this installation."""
    try:
        z3check = importlib.import_module("taskward.check.z3check")
    except ImportError:
        return []
    rows: list[Result] = z3check.prove_all(depth=depth, timeout_s=timeout_s, progress=progress)
    return rows


LOCKSTEP_BACKENDS = ("memory", "sqlite")
"""Backends the evidence run checks in lockstep (Redis needs a server, so CI covers it)."""


def lockstep_rows(progress: Progress | None, examples: int = 30) -> list[Result]:
    """Lockstep rows per built-in backend, when the lockstep harness is installed."""
    try:
        lockstep = importlib.import_module("taskward.check.lockstep")
    except ImportError:
        return []
    rows: list[Result] = []
    for spec in LOCKSTEP_BACKENDS:
        if progress is not None:
            progress(f"lockstep: {spec}")
        rows += lockstep.check(spec, examples=examples).results
    return rows


def collect(progress: Progress | None = None, *, bounds: Any = None,
            mutants: Sequence[str] | None = None, solver: bool = True, solver_depth: int = 4,
            solver_timeout_s: float = 20.0, lockstep: bool = True,
            mutant_checkers: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Run the verification the document reports on and return it as the evidence record.

    The correct model gets every checker (at ``bounds``, default those of
    ``taskward verify``); each mutant gets ``mutant_checkers``: by default the
    exhaustive explorer, whose breadth-first search yields the shortest
    counterexample (the one worth reading), and the solver's BMC or fair-cycle
    search. ``solver=False`` leaves every Z3 check out. Smaller bounds and fewer
    mutants make a quick record for tests."""
    from taskward.check import verify as V

    started = _now()
    checkers = V.ALL_CHECKERS if solver else tuple(c for c in V.ALL_CHECKERS if c != "z3")
    mutant_checkers = mutant_checkers or (("explorer", "z3") if solver else ("explorer",))
    rows = V.verify_correct(bounds or V.DEFAULT, progress, checkers)
    if not {r.checker for r in rows} & {"z3-bmc", "z3-induction"} and solver:
        rows += solver_rows(progress, solver_depth, solver_timeout_s)
    if lockstep and "lockstep" not in {r.checker for r in rows}:
        rows += lockstep_rows(progress)
    killed = {name: V.verify_mutant(name, progress, mutant_checkers)
              for name in (MUTANTS if mutants is None else mutants)}
    return {
        "format": EVIDENCE_FORMAT, "started": started, "finished": _now(),
        "versions": versions(),
        "verify": {"verdict": overall(rows), "results": [r.to_json() for r in rows]},
        "mutants": {n: {"verdict": overall(rs), "results": [r.to_json() for r in rs]}
                    for n, rs in killed.items()},
    }


def write_evidence(path: str | Path, evidence: Mapping[str, Any]) -> None:
    Path(path).write_text(json.dumps(evidence, indent=1, sort_keys=True) + "\n")


def read_evidence(path: str | Path) -> dict[str, Any]:
    """The evidence record; a missing file names the command that makes it."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist; `taskward docs --run` creates it")
    ev: dict[str, Any] = json.loads(p.read_text())
    return ev


def row_of(d: Mapping[str, Any]) -> Result:
    """A stored row back as a :class:`Result`."""
    return Result(d["invariant"], d["checker"], d["verdict"], dict(d["bound"]),
                  dict(d.get("stats") or {}), d.get("counterexample"), d.get("model", ""),
                  d.get("note", ""))


def correct_rows(ev: Mapping[str, Any]) -> list[Result]:
    return [row_of(d) for d in ev["verify"]["results"]]


def mutant_rows(ev: Mapping[str, Any], name: str) -> list[Result]:
    entry = ev.get("mutants", {}).get(name)
    return [row_of(d) for d in entry["results"]] if entry else []


# ------------------------------------------------------------------ small renderers


def cell(text: object) -> str:
    """Table-cell safe text: no pipes or newlines."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return out


def bound_text(b: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={b[k]}" for k in sorted(b))


def size_text(r: Result) -> str:
    """What the row measured: states, examples, solver depth, runs."""
    s = r.stats
    if r.checker == "explorer":
        return f"{s.get('states', 0):,} states, depth {s.get('depth', 0)}"
    if r.checker == "hypothesis":
        return f"{s.get('examples_run', 0):,} examples, {s.get('steps_run', 0):,} steps"
    if r.checker == "z3-bmc":
        return f"depth {s.get('depth_reached', '?')} of {r.bound.get('depth', '?')}"
    if r.checker == "z3-induction":
        lemmas = ", ".join(s.get("lemmas") or []) or "no lemma"
        return f"unbounded depth; lemmas: {lemmas}"
    if r.checker == "z3-ranking":
        return f"unbounded depth; goals: {', '.join(s.get('goals') or [])}"
    if r.checker == "z3-progress" and "steps" in s:
        return f"unbounded depth; rank falls within {s['steps']} steps (window {s['window']})"
    if r.checker == "z3-progress":
        return f"lasso search to {s.get('lasso_searched_to', '?')} steps"
    if r.checker == "z3-parametric":
        return f"any size, unbounded depth; lemmas: {', '.join(s.get('lemmas') or [])}"
    if r.checker == "lockstep" and "runs" in r.bound:
        return f"{r.bound['runs']:,} runs, {r.bound.get('steps', 0):,} steps"
    return ", ".join(f"{k}={v}" for k, v in sorted(s.items()) if not isinstance(v, dict | list))


def seconds_text(r: Result) -> str:
    sec = r.stats.get("seconds", r.stats.get("solver_s"))
    return f"{float(sec):.1f}s" if sec is not None else ""


def verdict_text(r: Result) -> str:
    return {"pass": "**pass**", "fail": "**FAIL**", "unknown": "*unknown*"}[r.verdict]


def checker_key(r: Result) -> tuple[int, str, str]:
    order = CHECKER_ORDER.index(r.checker) if r.checker in CHECKER_ORDER else len(CHECKER_ORDER)
    return (order, r.checker, r.model)


def anchor(inv: Invariant) -> str:
    """The GitHub-style heading anchor of an invariant's section."""
    text = f"{inv.id} {inv.name}".lower()
    keep = "".join(ch for ch in text if ch.isalnum() or ch in " -")
    return keep.replace(" ", "-")


# ------------------------------------------------------------------ the task life cycle


def lifecycle_edges() -> dict[tuple[str, str], set[str]]:
    """Every status change of a task in a small broker, with what caused it.

    Found by walking every reachable state of one worker and one task, so the
    diagram is the model's behaviour rather than a drawing of it. A change
    made by the prelude of an operation is attributed to lease expiry."""
    m = B.build(B.BrokerConfig(workers=1, tasks=1, priorities=1, lease=1, max_deliveries=2,
                               worker_timeout=2), symmetry=False)
    edges: dict[tuple[str, str], set[str]] = {}
    seen = {m.init}
    todo = [m.init]
    while todo:
        s = todo.pop()
        for step in m.successors(s, prune=False):
            _edge(m, s, step.action, step.args, step.post, edges)
            if step.post not in seen:
                seen.add(step.post)
                todo.append(step.post)
    return edges


def _edge(m: Model, pre: tuple[int, ...], name: str, args: tuple[int, ...],
          post: tuple[int, ...], edges: dict[tuple[str, str], set[str]]) -> None:
    a, b = B.status(m, pre, 0), B.status(m, post, 0)
    if a == b:
        return
    by_prelude = B.status(m, m.mid(pre, name, args), 0) != a
    why = "lease expiry" if by_prelude else name
    if name == "nack" and not by_prelude:
        why = "nack requeue" if args[2] else "nack dead-letter"
    if why == "lease expiry" and b == B.DEAD:
        why = "lease expiry at max_deliveries"
    if name == "nack" and b == B.DEAD and args[2]:
        why = "nack at max_deliveries"
    key = (B.STATUS_NAMES[a], B.STATUS_NAMES[b])
    edges.setdefault(key, set()).add(why)


def lifecycle_mermaid() -> list[str]:
    out = ["```mermaid", "stateDiagram-v2"]
    order = {name: k for k, name in enumerate(B.STATUS_NAMES)}
    edges = lifecycle_edges()
    for a, b in sorted(edges, key=lambda e: (order[e[0]], order[e[1]])):
        whys = edges[(a, b)]
        src = "[*]" if a == "UNPUBLISHED" else a
        out.append(f"    {src} --> {b}: {', '.join(sorted(whys))}")
    out += ["    ACKED --> [*]", "    DEAD --> [*]", "```"]
    return out


# ------------------------------------------------------------------ traces


def trace_table(m: Model | None, trace: Sequence[Mapping[str, Any]]) -> list[str]:
    """A counterexample as a numbered table: step, answer, what changed."""
    rows = []
    for st in trace:
        loop = " (loop)" if st.get("loop") else ""
        ans = answer_text(st["action"], st.get("result"), m)
        rows.append((f"{st['i']}{loop}", f"`{st['label']}`", ans, changes_text(st)))
    return table(("#", "step", "answer", "what changed"), rows)


def changes_text(st: Mapping[str, Any]) -> str:
    parts = []
    changes = st.get("changes") or {}
    for k in sorted(changes, key=_slot_key):
        a, b = changes[k]
        if k.startswith("st[") and isinstance(a, int) and isinstance(b, int):
            a, b = B.STATUS_NAMES[a], B.STATUS_NAMES[b]
        parts.append(f"{k}: {a}→{b}")
    return ", ".join(parts)


def _slot_key(name: str) -> tuple[str, int]:
    """``st[10]`` after ``st[2]``: slots sort by field, then index."""
    field, _, rest = name.partition("[")
    return (field, int(rest.rstrip("]")) if rest else -1)


def answer_text(action: str, result: Any, m: Model | None) -> str:
    """The operation's answer in words (task names, accepted/refused)."""
    if result is None:
        return ""
    r = int(result)
    if action in ("publish", "fetch"):
        return B.task_name(r) if r != B.NONE else "nothing"
    if action in ("ack", "nack", "extend", "leader_write"):
        return "accepted" if r else "refused"
    if action == "tick":
        return "granted" if r else "not granted"
    return ""


def _actor(m: Model | None, action: str, args: Sequence[int]) -> str | None:
    if m is None or not args:
        return None
    params = [p for p, _ in m.action(action).params]
    if params and params[0] == "worker":
        return B.worker_name(args[0])
    if params and params[0] == "node":
        return E.node_name(args[0])
    return None


def sequence_mermaid(m: Model | None, inv: str, trace: Sequence[Mapping[str, Any]]) -> list[str]:
    """A counterexample as a Mermaid sequence diagram; a liveness lasso as a loop block."""
    hub = "Store" if m is not None and m.name.startswith("election") else "Broker"
    actors = sorted({a for st in trace
                     if (a := _actor(m, st["action"], st["args"])) is not None})
    out = ["```mermaid", "sequenceDiagram"]
    if hub == "Broker":
        out.append("    participant Client")
    out += [f"    participant {a}" for a in actors] + [f"    participant {hub}"]
    in_loop = False
    for st in trace:
        if st.get("loop") and not in_loop:
            out.append("    loop repeats forever")
            in_loop = True
        out += ["    " + line for line in _seq_step(m, hub, st)]
    if in_loop:
        out.append("    end")
    out += [f"    Note over {hub}: {inv} violated", "```"]
    return out


def _seq_step(m: Model | None, hub: str, st: Mapping[str, Any]) -> list[str]:
    action, args = st["action"], st["args"]
    who = _actor(m, action, args) or ("Client" if action == "publish" else None)
    label = str(st["label"]).replace(";", ",").replace("#", "")
    ans = answer_text(action, st.get("result"), m)
    kind = m.action(action).kind if m is not None else "op"
    if kind != "op" or who is None:
        return [f"Note over {who or hub}: {label}"]
    lines = [f"{who}->>{hub}: {st['i']}. {label}"]
    if ans:
        lines.append(f"{hub}-->>{who}: {ans}")
    return lines


# ------------------------------------------------------------------ links


REPO_LINKS: dict[str, str] = {
    "broker model": "models/broker.py",
    "election model": "models/election.py",
    "model core (Ops, Layout, Action)": "models/core.py",
    "model mutants": "models/mutants.py",
    "invariant registry": "specs/invariants.py",
    "Z3 encodings": "specs/z3enc.py",
    "explorer": "src/taskward/check/explorer.py",
    "Hypothesis machines": "src/taskward/check/stateful.py",
    "Z3 checks": "src/taskward/check/z3check.py",
    "verify": "src/taskward/check/verify.py",
    "lockstep checker": "src/taskward/check/lockstep.py",
    "lockstep oracle": "src/taskward/check/oracle.py",
    "implementation adapters": "src/taskward/check/adapters.py",
    "CI reports (JUnit, ITF)": "src/taskward/reporting.py",
    "explorer tests": "tests/model/test_explorer.py",
    "mutant tests": "tests/model/test_mutants.py",
    "Hypothesis tests": "tests/model/test_stateful.py",
    "backend rule tests": "tests/backends/test_broker_rules.py",
    "backend differential tests": "tests/backends/test_differential.py",
    "election backend tests": "tests/backends/test_election.py",
    "documentation generator": "src/taskward/docsgen.py",
    "documentation tests": "tests/test_docs.py",
    "report tests": "tests/test_reporting.py",
}


def link(label: str) -> str:
    return f"[{label}](../{REPO_LINKS[label]})"


def invariant_links(inv: Invariant) -> list[str]:
    model = "broker model" if inv.system == "broker" else "election model"
    tests = (["backend rule tests", "backend differential tests"] if inv.system == "broker"
             else ["election backend tests"])
    code = [model, "invariant registry", "Z3 encodings", "explorer", "Hypothesis machines",
            "Z3 checks", "lockstep oracle"]
    return ["- Code: " + ", ".join(link(x) for x in code),
            "- Tests: " + ", ".join(link(x) for x in
                                    ["explorer tests", "mutant tests", "Hypothesis tests", *tests])]


# ------------------------------------------------------------------ sections


class Doc:
    """The document for one evidence record; each method renders one section."""

    def __init__(self, ev: Mapping[str, Any]) -> None:
        self.ev = ev
        self.rows = correct_rows(ev)
        self.mutants: dict[str, list[Result]] = {n: mutant_rows(ev, n) for n in MUTANTS}

    def render(self) -> str:
        parts = [self.header(), self.overview(), self.algorithms(), self.invariants(),
                 self.proof_sketch(), self.simulation(), self.traceability()]
        return "\n\n".join("\n".join(p).rstrip() for p in parts) + "\n"

    def recorded(self) -> str:
        """When and with what the evidence was produced (stored, never the render time)."""
        v = self.ev.get("versions", {})
        return (f"Recorded {self.ev.get('finished', '?')} with "
                + ", ".join(f"{k} {v[k]}" for k in sorted(v)) + ".")

    # ---- header, overview
    def header(self) -> list[str]:
        v = self.ev.get("versions", {})
        vs = ", ".join(f"{k} {v[k]}" for k in sorted(v))
        return ["# Distributed: proof sketch", "",
                "> Generated by `taskward docs` from the model, the invariant registry and "
                "the verification evidence in [evidence.json](evidence.json) "
                f"(run {self.ev.get('started', '?')} to {self.ev.get('finished', '?')}; {vs}). "
                "Do not edit by hand: `taskward docs --check` fails when this file differs "
                "from what the registries and the evidence produce."]

    def overview(self) -> list[str]:
        checkers = sorted({r.checker for r in self.rows}, key=lambda c: checker_key(
            Result("", c, "pass", {}))[0:2])
        out = ["## Overview", "",
               "Distributed execution utilities: a durable broker with leases, acks, "
               "dead-letter and priority; round-robin and work-stealing dispatch; lease-based "
               "minimum-id leader election with fencing tokens. Every guarantee below is "
               "stated precisely, checked by several independent checkers over one "
               "executable model, and shown false, with a counterexample, in the naive "
               "form the seed document states it.", "",
               f"Overall verdict of the correct model: **{self.ev['verify']['verdict']}** "
               f"({len(self.rows)} checks). Each cell: verdicts over the models the "
               "invariant applies to.", ""]
        rows = []
        for inv in INVARIANTS:
            cells = [self._summary(inv.id, c) for c in checkers]
            killers = [n for n, mu in MUTANTS.items() if inv.id in mu.breaks]
            rows.append([f"[{inv.id} {inv.name}](#{anchor(inv)})", inv.kind, *cells,
                         str(len(killers))])
        return out + table(["invariant", "kind", *checkers, "refuted naive claims"], rows)

    def _summary(self, inv: str, checker: str) -> str:
        rs = [r for r in self.rows if r.invariant == inv and r.checker == checker]
        if not rs:
            return "–"
        counts = {v: sum(r.verdict == v for r in rs) for v in ("pass", "fail", "unknown")}
        return " ".join(f"{n} {v}" for v, n in counts.items() if n)

    # ---- algorithms
    def algorithms(self) -> list[str]:
        b = B.Broker
        out = ["## Algorithms", "",
               "The rules below are the model's own (docstrings of "
               f"{link('broker model')} and {link('election model')}); every implementation "
               "is checked against them.", "",
               f"- **Priority** (every policy): {_doc(b.better)}",
               "- **Shared queue**: `fetch` takes the best READY task of the whole broker.",
               f"- **Round-robin**: {_doc(b.rr_pick)} {_doc(b.cursor_after)} "
               f"{_doc(b.reassign_orphans)}",
               f"- **Work stealing**: {_doc(b.steal)} {_doc(b.victim)} {_doc(b.stealable)}",
               f"- **Leases**: {_doc(b.expire_leases)} {_doc(b.holds)}",
               f"- **Leader election**: {_doc(E.Election.tick)} {_doc(E.Election.accepts)}",
               "", "### Task life cycle", "",
               "Computed from the broker model by walking every reachable state of one "
               "worker and one task; a change made by an operation's prelude is lease expiry.",
               ""]
        out += lifecycle_mermaid()
        for title, m in (("Broker actions", B.build(B.BrokerConfig())),
                         ("Election actions", E.build(E.ElectionConfig()))):
            out += ["", f"### {title}", "", *self.actions_table(m)]
            out += ["", f"State of the {m.name.split('[')[0]} model:", "", *fields_table(m)]
        return out

    @staticmethod
    def actions_table(m: Model) -> list[str]:
        rows = [(f"`{a.name}`", a.kind, ", ".join(p for p, _ in a.params) or "–",
                 " ".join(a.doc.split())) for a in m.actions]
        return table(("action", "kind", "parameters", "what it does"), rows)

    # ---- invariants
    def invariants(self) -> list[str]:
        out = ["## Invariants", "",
               "The seed's words, and the precise claim that is checked instead.", ""]
        rows = [(f"[{i.id}](#{anchor(i)})", i.name, i.seed, i.claim, i.kind)
                for i in INVARIANTS]
        return out + table(("id", "name", "seed's words", "precise claim", "kind"), rows)

    # ---- proof sketch
    def proof_sketch(self) -> list[str]:
        out = ["## Proof Sketch"]
        for inv in INVARIANTS:
            out += ["", *self.invariant_section(inv)]
        return out

    def invariant_section(self, inv: Invariant) -> list[str]:
        out = [f"### {inv.id} {inv.name}", "",
               f"- **Seed's words:** {inv.seed}",
               f"- **Precise claim:** {inv.claim}",
               f"- **Proof sketch:** {inv.sketch}",
               f"- **Strengthening invariant:** {strengthening_text(inv)}",
               *parametric_text(inv),
               f"- **Applies to:** {inv.system}"
               + (f" ({', '.join(inv.policies)})" if inv.system == "broker" else ""), "",
               "#### Evidence", "", self.recorded(), ""]
        rs = sorted((r for r in self.rows if r.invariant.split("/")[0] == inv.id),
                    key=checker_key)
        if rs:
            out += table(("checker", "model", "verdict", "bound", "explored", "time", "note"),
                         [(r.checker, r.model, verdict_text(r), bound_text(r.bound),
                           size_text(r), seconds_text(r), r.note) for r in rs])
        else:
            out.append("No checker reported on this invariant in the recorded evidence.")
        if not any(r.checker == "lockstep" for r in rs):
            out += ["", "Lockstep runs against the backends are not in the recorded evidence."]
        out += ["", "#### Refuted naive claims", ""]
        killers = [mu for mu in MUTANTS.values() if inv.id in mu.breaks]
        for mu in killers:
            out += self.mutant_block(mu, inv)
        if not killers:
            out.append("None: no mutant targets this invariant.")
        return [*out, "", "#### Links", "", *invariant_links(inv)]

    def mutant_block(self, mu: Mutant, inv: Invariant) -> list[str]:
        rs = [r for r in self.mutants.get(mu.name, []) if r.invariant == inv.id]
        out = [f"**{mu.claim}** (mutant `{mu.name}`, SEMANTICS §{mu.section})"
               if mu.section != "extra" else f"**{mu.claim}** (mutant `{mu.name}`)", ""]
        if not rs:
            return [*out, "Not in the recorded evidence: run `taskward docs --run`.", ""]
        out.append("; ".join(f"{r.checker}: {verdict_text(r)} ({bound_text(r.bound)})"
                             for r in sorted(rs, key=checker_key)) + ".")
        fails = [r for r in rs if r.verdict == "fail" and r.counterexample]
        if not fails:
            return [*out, "", "**The mutant survived: this check is vacuous.**", ""]
        best = min(fails, key=lambda r: (len(r.counterexample or []), checker_key(r)))
        m = mu.build()
        trace = best.counterexample or []
        out += ["", f"Counterexample ({best.checker}, {len(trace)} steps"
                + (f"; {best.note}" if best.note else "") + "):", ""]
        out += [*trace_table(m, trace), "", *sequence_mermaid(m, inv.id, trace), ""]
        return out

    # ---- simulation expectations
    def simulation(self) -> list[str]:
        out = ["## Simulation Expectations", "",
               "What each checker is expected to show, and what it showed.", "",
               "- **explorer** (exhaustive breadth-first search of the reachable states at a "
               "small bound; liveness as fair-cycle search): every applicable invariant "
               "passes on the correct model, and every action fires at least once.",
               "- **hypothesis** (stateful random walks at larger bounds, shrunk on failure, "
               "with bounded fair drains for liveness): no violation.",
               "- **z3-bmc / z3-induction / z3-ranking / z3-progress** (bounded model "
               "checking to a stated depth; inductive proofs with the strengthening above; "
               "the ranking function of I5 and the number of fair steps within which it "
               "falls, or a replayed fair cycle that never finishes a task): pass or an "
               "honest unknown.",
               "- **z3-parametric** (inductive proofs of I2 and I3a on relational models "
               "whose universes the solver picks, so no bound on tasks, workers or nodes): "
               "pass or an honest unknown with the counterexample to induction.",
               "- **lockstep** (an implementation driven step by step beside the model): "
               "every answer in the model's allowed set.",
               "- **mutants**: every naive claim is refuted with a short counterexample; a "
               "surviving mutant means a check is vacuous.", ""]
        out += table(("checker", "model", "bound", "checks", "verdicts", "explored"),
                     self.checker_runs())
        out += ["", "### Mutants", ""]
        rows = []
        for name, mu in MUTANTS.items():
            rs = self.mutants.get(name, [])
            killed = sorted({r.checker for r in rs if r.verdict == "fail"})
            lengths = [len(r.counterexample or []) for r in rs if r.verdict == "fail"]
            rows.append((f"`{name}`", mu.section, mu.claim, ", ".join(mu.breaks),
                         ", ".join(killed) or "**survived**",
                         str(min(lengths)) if lengths else "–"))
        return out + table(("mutant", "§", "naive claim", "breaks", "killed by",
                            "shortest trace"), rows)

    def checker_runs(self) -> list[tuple[str, ...]]:
        groups: dict[tuple[str, str], list[Result]] = {}
        for r in sorted(self.rows, key=checker_key):
            groups.setdefault((r.checker, r.model), []).append(r)
        out: list[tuple[str, ...]] = []
        for (checker, model), rs in groups.items():
            verdicts = {v: sum(r.verdict == v for r in rs) for v in ("pass", "fail", "unknown")}
            out.append((checker, model, bound_text(rs[0].bound), str(len(rs)),
                        " ".join(f"{n} {v}" for v, n in verdicts.items() if n),
                        size_text(rs[0])))
        return out

    # ---- traceability
    def traceability(self) -> list[str]:
        out = ["## Traceability", ""]
        rows = [(i.id, i.name, f"`{i.system}`", _predicate_names(i)) for i in INVARIANTS]
        out += table(("invariant", "name", "model", "predicates in specs/invariants.py"), rows)
        out += ["", "- Modules"]
        out += [f"  - [{path}][{_ref(label)}] ({label})" for label, path in REPO_LINKS.items()
                if not path.startswith("tests/")]
        out += ["- Tests"]
        out += [f"  - [{path}][{_ref(label)}] ({label})" for label, path in REPO_LINKS.items()
                if path.startswith("tests/")]
        out += ["- Evidence: [evidence.json](evidence.json)", ""]
        out += [f"[{_ref(label)}]: ../{path}" for label, path in REPO_LINKS.items()]
        return out


def strengthening_text(inv: Invariant) -> str:
    """The lemma the induction proof adds, or why there is none."""
    if inv.id == "I5":
        return ("not applicable: liveness rests on the ranking function (z3-ranking), the "
                "solver's bound on the fair steps within which it falls (z3-progress), "
                "fair-cycle freedom (explorer) and bounded fair drains (hypothesis)")
    if inv.kind == "liveness":
        return ("not applicable: liveness rests on the ranking argument above, checked as "
                "fair-cycle freedom and bounded fair drains")
    return inv.strengthening or "none: the claim is inductive as stated"


def parametric_text(inv: Invariant) -> list[str]:
    """The relational models proving ``inv`` for any size, with their lemmas, from specs."""
    try:
        P = importlib.import_module("taskward.specs.parametric")
    except ImportError:
        return []
    out = []
    for rm in P.models():
        if rm.claim != inv.id:
            continue
        lemmas = "; ".join(f"{lm.name}: {lm.text}" for lm in rm.lemmas)
        extra = f" Over-approximations: {rm.overapprox}" if rm.overapprox else ""
        out.append(f"- **Parametric strengthening, {rm.name} (any number of elements of "
                   f"every sort):** {lemmas}.{extra}")
    return out


def _ref(label: str) -> str:
    return "".join(ch for ch in label.lower() if ch.isalnum())


def _doc(fn: Callable[..., Any]) -> str:
    """The first sentence-block of a rule's docstring, on one line."""
    text = (fn.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(text.split())


def _predicate_names(inv: Invariant) -> str:
    names = [inv.state.__name__] if inv.state is not None else []
    names += [f"{p.__name__} ({', '.join(sorted(acts))})" for acts, p in inv.steps]
    return ", ".join(f"`{n}`" for n in names) or "liveness (explorer fair-cycle search)"


def fields_table(m: Model) -> list[str]:
    rows = [(f"`{f.name}`", str(f.size), f"{f.lo}..{f.hi}", f.doc, "yes" if f.ghost else "")
            for f in m.layout.fields]
    return table(("field", "slots", "range", "meaning", "ghost"), rows)


# ------------------------------------------------------------------ entry points


def render(ev: Mapping[str, Any]) -> str:
    """The Markdown document for an evidence record (deterministic)."""
    return Doc(ev).render()


def stale_diff(current: str, fresh: str, path: str = "docs/proof-sketch.md",
               limit: int = 40) -> list[str]:
    """A short unified diff of the committed document against the regenerated one."""
    diff = list(difflib.unified_diff(current.splitlines(), fresh.splitlines(),
                                     f"{path} (committed)", f"{path} (generated)", lineterm=""))
    more = len(diff) - limit
    return diff[:limit] + ([f"... {more} more diff lines"] if more > 0 else [])
