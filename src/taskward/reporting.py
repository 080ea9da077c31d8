"""CI outputs of verification rows: JUnit XML, and counterexamples as ITF traces.

JUnit lets any CI system show one test case per (invariant, checker, model)
without knowing taskward: a ``fail`` carries the counterexample as text, an
``unknown`` is *skipped* with its reason (a budget that ran out is not a
pass, and must not look like one).

ITF (the Informal Trace Format of Apalache and Quint) lets other tools read
taskward's counterexamples and lets taskward replay theirs: each state holds
the model's decoded fields plus ``action_taken``, ``nondet_picks`` (the
action's arguments by parameter name) and ``result``. The format is written
directly (it is small JSON), so reading and writing need no extra package.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from taskward.check.verdict import Result
from taskward.models import broker as B
from taskward.models import election as E
from taskward.models.core import Model, State, Step

TraceSteps = list[tuple[str, tuple[int, ...]]]
ITF_SOURCE = "taskward"
INIT_ACTION = "init"

# ---------------------------------------------------------------------- JUnit


def trace_text(trace: Sequence[Mapping[str, Any]] | None) -> str:
    """A counterexample as numbered lines, the same shape ``taskward verify`` prints."""
    lines = []
    loop_shown = False
    for st in trace or []:
        if st.get("loop") and not loop_shown:
            lines.append("     -- from here the run repeats forever --")
            loop_shown = True
        changes = st.get("changes") or {}
        delta = ", ".join(f"{k}: {a}->{b}" for k, (a, b) in changes.items())
        res = f" -> {st['result']}" if "result" in st else ""
        if "answer" in st:  # lockstep rows: the implementation's answer and the allowed set
            res = f" -> {st['answer']} (allowed: {st.get('allowed')})"
        lines.append(f"{st['i']:>4}. {st['label']}{res}   {delta}".rstrip())
    return "\n".join(lines)


def testcase_name(r: Result) -> str:
    """Stable test-case identity: the invariant and the checker that judged it."""
    return f"{r.invariant} [{r.checker}]"


def _bound_text(r: Result) -> str:
    return " ".join(f"{k}={v}" for k, v in r.bound.items())


def _testcase(r: Result) -> ET.Element:
    """One ``<testcase>``: failure with the trace, skipped for unknown, empty for pass."""
    case = ET.Element("testcase", {
        "classname": f"taskward.{r.checker}.{r.model or 'model'}",
        "name": testcase_name(r),
        "time": f"{float(r.stats.get('seconds', r.stats.get('solver_s', 0.0)) or 0.0):.3f}",
    })
    if r.verdict == "fail":
        failure = ET.SubElement(case, "failure", {
            "message": f"{r.invariant} violated: {r.note}".strip().rstrip(":"),
            "type": "CounterExample"})
        failure.text = trace_text(r.counterexample) or r.note
    elif r.verdict == "unknown":
        ET.SubElement(case, "skipped", {"message": f"unknown: {r.note or 'no verdict'}"})
    out = ET.SubElement(case, "system-out")
    out.text = f"bound: {_bound_text(r)}\nstats: {json.dumps(r.stats, sort_keys=True)}"
    return case


def junit_tree(rows: Iterable[Result], suite: str = "taskward verify") -> ET.ElementTree:
    """All rows as one ``<testsuite>`` inside ``<testsuites>`` (what CI parsers expect)."""
    rows = list(rows)
    counts = {"tests": len(rows),
              "failures": sum(r.verdict == "fail" for r in rows),
              "skipped": sum(r.verdict == "unknown" for r in rows), "errors": 0}
    root = ET.Element("testsuites", {k: str(v) for k, v in counts.items()})
    ts = ET.SubElement(root, "testsuite", {"name": suite, **{k: str(v) for k, v in counts.items()}})
    for r in rows:
        ts.append(_testcase(r))
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(path: str | Path, rows: Iterable[Result], suite: str = "taskward verify") -> None:
    """Write the JUnit XML report of ``rows`` to ``path``."""
    junit_tree(rows, suite).write(str(path), encoding="utf-8", xml_declaration=True)


# ---------------------------------------------------------------------- models of rows


def model_for(r: Result) -> Model:
    """The model a row was checked on, rebuilt so its counterexample can be replayed.

    A mutant row names its mutant (``... mutant=NAME``), whose bound is fixed;
    otherwise the configuration is rebuilt from the row's bound, and settings
    the bound does not print keep the defaults ``taskward verify`` uses."""
    from taskward.models.mutants import MUTANTS

    if " mutant=" in r.model:
        return MUTANTS[r.model.split(" mutant=", 1)[1]].build()
    if r.model.startswith("composed"):
        return _composed_for(r)
    if r.model.startswith("election"):
        return E.build(_config(E.ElectionConfig, r.bound))
    return B.build(_config(B.BrokerConfig, r.bound))


def _composed_for(r: Result) -> Model:
    """A composite's parts carry settings its bound does not print: match the verify bounds."""
    from taskward.check.verify import DEFAULT
    from taskward.models.core import compose

    for bc, ec in getattr(DEFAULT, "composed", ()):
        m = compose(B.build(bc, symmetry=False), E.build(ec))
        if m.name == r.model and m.config.bound() == r.bound:
            return m
    raise ValueError(f"cannot rebuild {r.model} at {r.bound}; pass the model explicitly")


def _config(cls: type[Any], bound: Mapping[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in bound.items() if k in known})


# ---------------------------------------------------------------------- ITF out


def itf_value(v: Any) -> Any:
    """ITF encoding: integers as ``{"#bigint": ...}``, lists as sequences, the rest as JSON."""
    if isinstance(v, bool | str):
        return v
    if isinstance(v, int):
        return {"#bigint": str(v)}
    if isinstance(v, list | tuple):
        return [itf_value(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): itf_value(x) for k, x in v.items()}
    raise TypeError(f"cannot encode {type(v).__name__} in ITF")


def plain_value(v: Any) -> Any:
    """The inverse of :func:`itf_value` for the shapes taskward and Quint traces use."""
    if isinstance(v, list):
        return [plain_value(x) for x in v]
    if isinstance(v, dict):
        if "#bigint" in v:
            return int(v["#bigint"])
        if "#tup" in v:
            return [plain_value(x) for x in v["#tup"]]
        if "#set" in v:
            return sorted(plain_value(x) for x in v["#set"])
        return {k: plain_value(x) for k, x in v.items()}
    return v


def steps_of(trace: Sequence[Mapping[str, Any]]) -> TraceSteps:
    """The (action, args) path of a counterexample in the JSON shape of a row."""
    return [(str(st["action"]), tuple(int(a) for a in st["args"])) for st in trace]


def _replay(m: Model, path: TraceSteps) -> list[Step]:
    out: list[Step] = []
    s = m.init
    for name, args in path:
        out.append(m.apply(s, name, args))
        s = out[-1].post
    return out


def _itf_state(m: Model, index: int, s: State, action: str,
               picks: Mapping[str, int], result: int | None) -> dict[str, Any]:
    st: dict[str, Any] = {"#meta": {"index": index}}
    st.update({k: itf_value(v) for k, v in m.layout.decode(s).items()})
    st["action_taken"] = action
    st["nondet_picks"] = itf_value(dict(picks))
    st["result"] = itf_value(result if result is not None else 0)
    return st


def to_itf(m: Model, path: TraceSteps, *, loop: int | None = None,
           meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An ITF trace of ``path`` run from the model's initial state: one state per step.

    State 0 is the initial state (``action_taken`` is ``"init"``); state ``i`` is
    the state after step ``i``. ``loop`` (liveness lassos) is the index of the
    state the last state returns to."""
    steps = _replay(m, path)
    states = [_itf_state(m, 0, m.init, INIT_ACTION, {}, None)]
    for i, ((name, args), step) in enumerate(zip(path, steps, strict=True), start=1):
        params = [p for p, _ in m.action(name).params]
        states.append(_itf_state(m, i, step.post, name, dict(zip(params, args, strict=True)),
                                 step.result))
    doc: dict[str, Any] = {
        "#meta": {"format": "ITF", "format-description": "https://apalache-mc.org/docs/adr/"
                  "015adr-trace.html", "source": ITF_SOURCE, "model": m.name,
                  "mutant": m.mutant or "", **dict(meta or {})},
        "vars": [f.name for f in m.layout.fields] + ["action_taken", "nondet_picks", "result"],
        "states": states,
    }
    if loop is not None:
        doc["loop"] = loop
    return doc


def row_itf(r: Result, m: Model | None = None) -> dict[str, Any]:
    """The ITF trace of a failing row's counterexample (its model rebuilt when not given)."""
    if not r.counterexample:
        raise ValueError(f"{r.invariant} [{r.checker}] has no counterexample to export")
    model = m or model_for(r)
    loops = [k for k, st in enumerate(r.counterexample) if st.get("loop")]
    return to_itf(model, steps_of(r.counterexample), loop=loops[0] if loops else None,
                  meta={"invariant": r.invariant, "checker": r.checker, "note": r.note})


def write_itf(path: str | Path, doc: Mapping[str, Any]) -> None:
    Path(path).write_text(json.dumps(doc, indent=1) + "\n")


def write_itf_dir(folder: str | Path, rows: Iterable[Result]) -> list[Path]:
    """Every model counterexample among ``rows`` as ``INV-CHECKER-MODEL.itf.json`` in ``folder``.

    Lockstep traces are calls to an implementation, not model steps, and have
    their own replay files; they are left out here."""
    out_dir = Path(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for r in rows:
        if not r.counterexample or "action" not in r.counterexample[0]:
            continue
        slug = "".join(ch if ch.isalnum() else "-" for ch in r.model).strip("-")
        path = out_dir / f"{r.invariant}-{r.checker}-{slug}.itf.json"
        write_itf(path, row_itf(r))
        written.append(path)
    return written


# ---------------------------------------------------------------------- ITF in


def _picks(st: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments by parameter name; Quint's ``mbt::nondetPicks`` wraps each in Some/None."""
    raw = st.get("nondet_picks", st.get("mbt::nondetPicks", {}))
    out = {}
    for k, v in plain_value(raw).items():
        if isinstance(v, dict) and "tag" in v:
            if v["tag"] == "None":
                continue
            v = v["value"]
        out[k] = v
    return out


def from_itf(doc: Mapping[str, Any], m: Model) -> TraceSteps:
    """The (action, args) path of an ITF trace, argument order taken from the model.

    Accepts taskward's own ``action_taken``/``nondet_picks`` and Quint's
    ``mbt::actionTaken``/``mbt::nondetPicks``; the first state is the initial
    one and takes no action."""
    path: TraceSteps = []
    for k, st in enumerate(doc["states"]):
        name = st.get("action_taken", st.get("mbt::actionTaken"))
        if k == 0 or name in (None, INIT_ACTION):
            continue
        picks = _picks(st)
        try:
            params = m.action(str(name)).params
            args = tuple(int(picks[p]) for p, _ in params)
        except KeyError as e:
            raise ValueError(f"ITF state {k}: {name!r} cannot be driven on {m.name}: "
                             f"missing {e.args[0]!r}") from e
        path.append((str(name), args))
    return path


def read_itf(path: str | Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(Path(path).read_text())
    return doc


def replay_itf(doc: Mapping[str, Any], m: Model) -> list[Step]:
    """Drive the model with an ITF trace, checking every state field the trace records.

    Raises ``ValueError`` at the first step whose guard is false or whose
    state or answer differs from the one in the trace: the trace and the
    model disagree there."""
    path = from_itf(doc, m)
    steps: list[Step] = []
    s = m.init
    _compare(m, doc["states"][0], s, None, 0)
    for k, (name, args) in enumerate(path, start=1):
        try:
            step = m.apply(s, name, args)
        except ValueError as e:
            raise ValueError(f"ITF state {k}: {e}") from e
        _compare(m, doc["states"][k], step.post, step.result, k)
        steps.append(step)
        s = step.post
    return steps


def _compare(m: Model, st: Mapping[str, Any], s: State, result: int | None, k: int) -> None:
    decoded = m.layout.decode(s)
    for name, want in decoded.items():
        if name in st and plain_value(st[name]) != want:
            raise ValueError(f"ITF state {k}: {name} is {plain_value(st[name])} in the trace, "
                             f"{want} in the model")
    if result is not None and "result" in st and plain_value(st["result"]) != result:
        raise ValueError(f"ITF state {k}: answer {plain_value(st['result'])} in the trace, "
                         f"{result} in the model")


# ---------------------------------------------------------------------- ITF -> implementation


def replay_document(doc: Mapping[str, Any], m: Model) -> dict[str, Any]:
    """A broker ITF trace as a lockstep replay file, so it can drive a real implementation.

    Model indices become the contract's names (worker ``k`` is ``w{k+1}``, the
    ``t``-th published task ``t{t+1}``, one model tick is one millisecond of the
    injected clock). A model ``crash`` has no call: a crashed worker simply
    never calls again, so it is dropped. Election traces carry faults (pauses,
    isolation) no call can reproduce, and are refused."""
    if not m.name.startswith("broker"):
        raise ValueError(f"only broker traces can drive an implementation, not {m.name}")
    c: B.BrokerConfig = m.config
    steps = _calls(from_itf(doc, m))
    workers = [B.worker_name(k) for k in range(c.workers)]
    return {"format": "taskward-replay/1", "impl": "", "policy": c.policy,
            "config": {"workers": workers, "nodes": ["n1"], "policy": c.policy,
                       "lease_ms": c.lease, "max_deliveries": c.max_deliveries,
                       "worker_timeout_ms": c.worker_timeout, "election_lease_ms": 3,
                       "member_timeout_ms": 6},
            "bound": {"max_tasks": c.tasks, "priorities": c.priorities},
            "failure": "", "invariants": [], "steps": steps}


def _calls(path: TraceSteps) -> list[dict[str, Any]]:
    """Model steps as the contract calls an implementation serves, in order."""
    calls: list[dict[str, Any]] = []
    published = 0
    for name, args in path:
        if name == "crash":
            continue
        if name == "publish":
            published += 1
            calls.append({"op": "publish", "args": {"task_id": B.task_name(published - 1),
                                                    "priority": args[0]}})
        elif name == "advance":
            calls.append({"op": "advance", "args": {"ms": 1}})
        elif name == "restart":
            calls.append({"op": "restart", "args": {}})
        else:
            calls.append({"op": name, "args": _worker_args(name, args)})
    return calls


def _worker_args(name: str, args: tuple[int, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"worker": B.worker_name(args[0])}
    if name in ("ack", "nack", "extend"):
        out["task_id"] = B.task_name(args[1])
    if name == "nack":
        out["requeue"] = bool(args[2])
    return out


def drive_implementation(doc: Mapping[str, Any], m: Model, impl: str,
                         timeout: float = 5.0) -> Any:
    """Replay an ITF trace against an implementation through the lockstep oracle.

    The implementation declares its own capabilities, as in ``taskward check``.
    Returns the lockstep ``ReplayOutcome``: ``pass`` when every answer of the
    implementation is one the correct model allows along the trace."""
    from taskward.check import lockstep

    replay = replay_document(doc, m)
    replay["impl"] = impl
    if "restart" not in lockstep.probe(impl, timeout):
        # the correct model's restart is the identity, so a broker that cannot
        # restart (in memory) is judged on the rest of the trace
        replay["steps"] = [s for s in replay["steps"] if s["op"] != "restart"]
    return lockstep.replay(replay, impl, timeout)
