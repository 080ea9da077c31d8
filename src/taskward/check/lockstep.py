"""Lockstep: the reference model and an implementation driven by the same random calls.

A Hypothesis rule-based machine draws CONFORMANCE operations (publish with a
priority when declared, fetch, ack/nack/extend mostly on tasks the worker
holds and sometimes not, heartbeat, dead_letters, advance, restart, tick,
is_leader, leader_write with the node's believed epoch and sometimes a stale
one, and a call naming a stranger now and then). Each call goes to the
:class:`~taskward.check.oracle.Oracle`, which answers with the set of allowed
outcomes, and to the implementation; an answer outside the set fails the run,
attributed to the invariants the forced step breaks. Otherwise the oracle
follows the implementation's choice and checks the invariants on the step.
Each run ends with a fair drain through the same comparison, which is what
lets lockstep speak for the liveness claims (I5, I8) at its bound. Hypothesis
then shrinks a failure to a minimal trace, written as a replay file.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from taskward.check.adapters import (
    Adapter,
    CallTimeout,
    ProtocolFailure,
    Reply,
    describe,
    opener,
)
from taskward.check.oracle import OK, REJECT, CheckConfig, Oracle, Outcome, attribute
from taskward.check.stateful import run
from taskward.check.verdict import Result, Verdict
from taskward.models import broker as B

REPLAY_FORMAT = "taskward-replay/1"
BROKER_INVARIANTS = ("I1", "I2", "I5", "I6", "I7", "I9")
ELECTION_INVARIANTS = ("I3a", "I3b", "I4", "I8")
STRANGER = "zz-not-configured"
POLICIES_RUN = ("shared", "round_robin", "work_stealing")


class Mismatch(AssertionError):
    """The implementation answered outside the allowed set."""

    def __init__(self, step: int, op: str, invariants: list[str], message: str) -> None:
        super().__init__(message)
        self.step, self.op, self.invariants = step, op, invariants


class Abort(BaseException):
    """Stop the whole campaign at once, without shrinking: a timeout or a broken protocol.

    A BaseException, so Hypothesis lets it through instead of shrinking a run
    whose every replay could cost a full timeout."""

    def __init__(self, verdict: Verdict, reason: str) -> None:
        super().__init__(reason)
        self.verdict, self.reason = verdict, reason


@dataclass
class Row:
    """One call of a trace, as printed and as stored in a replay file."""

    op: str
    args: dict[str, Any]
    answer: str = ""
    allowed: str = ""
    ok: bool = True
    tasks: dict[str, str] = field(default_factory=dict)

    def label(self) -> str:
        return f"{self.op}({', '.join(_arg(v) for v in self.args.values())})"


def _arg(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def show_reply(op: str, reply: Reply) -> str:
    if not reply.ok:
        return "rejected" if reply.definite else "indefinite error"
    if op in ("publish", "ack", "nack", "extend", "heartbeat", "advance", "restart", "tick"):
        return "ok"
    return Outcome(OK, reply.value, (), (), 0).describe()


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


UNIT_RESULT = frozenset({"publish", "ack", "nack", "extend", "heartbeat", "advance", "restart",
                         "tick"})


def matching(op: str, outcomes: list[Outcome], reply: Reply) -> Outcome | None:
    """The allowed outcome the reply is, if any (results of unit operations are ignored)."""
    for o in outcomes:
        if not reply.ok and o.kind == REJECT:
            return o
        if reply.ok and o.kind == OK and (op in UNIT_RESULT or _same(o.value, reply.value)):
            return o
    return None


@dataclass
class Stats:
    """Counts for the per-operation report, over every run of a campaign."""

    calls: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    runs: int = 0
    steps: int = 0


class Session:
    """One run: a fresh implementation and a fresh oracle answering the same calls."""

    def __init__(self, impl: Adapter, config: CheckConfig, caps: list[str],
                 stats: Stats | None = None) -> None:
        self.impl, self.config, self.caps = impl, config, caps
        self.oracle = Oracle(config, lease_expiry="leases" in caps)
        self.rows: list[Row] = []
        self.stats = stats or Stats()
        self.said_epoch: dict[str, int] = {}

    def do(self, op: str, args: dict[str, Any]) -> Reply:
        """One call to both sides; raises Mismatch, or Abort on timeout / broken protocol."""
        allowed = self.oracle.expect(op, args)
        row = Row(op, dict(args), allowed=" | ".join(
            ("ok" if o.kind == OK and op in UNIT_RESULT else o.describe()) for o in allowed))
        self.rows.append(row)
        self.stats.calls[op] = self.stats.calls.get(op, 0) + 1
        self.stats.steps += 1
        reply = self._call(op, args, row)
        row.answer = show_reply(op, reply)
        chosen = matching(op, allowed, reply)
        if chosen is None:
            return self._mismatch(op, args, allowed, reply, row)
        if chosen.kind == REJECT:
            self.stats.rejected[op] = self.stats.rejected.get(op, 0) + 1
        self.oracle.follow(chosen)
        if op == "publish":
            self.oracle.remember_publish(args["task_id"], chosen)
        if op == "is_leader" and reply.value and reply.value[0] is True:
            self.said_epoch[args["node"]] = reply.value[1]
        row.tasks = self.oracle.describe_broker()
        return reply

    def _call(self, op: str, args: dict[str, Any], row: Row) -> Reply:
        try:
            reply = self.impl.call(op, args)
        except CallTimeout as exc:
            row.answer = "timeout"
            raise Abort("unknown", f"step {len(self.rows)} {row.label()}: {exc}") from None
        except ProtocolFailure as exc:
            row.answer = "protocol failure"
            raise Abort("fail", f"step {len(self.rows)} {row.label()}: {exc}") from None
        if not reply.ok and not reply.definite:
            raise Abort("unknown", f"step {len(self.rows)} {row.label()}: indefinite error "
                        f"({reply.error}); the checker cannot tell whether it happened")
        return reply

    def _mismatch(self, op: str, args: dict[str, Any], allowed: list[Outcome], reply: Reply,
                  row: Row) -> Reply:
        row.ok = False
        row.tasks = self.oracle.describe_broker()
        kind = OK if reply.ok else REJECT
        invs = attribute(self.oracle, op, args, allowed, kind, reply.value)
        self.stats.failed[op] = self.stats.failed.get(op, 0) + 1
        why = f" ({reply.error})" if not reply.ok and reply.error else ""
        raise Mismatch(len(self.rows), op, invs,
                       f"step {len(self.rows)} {row.label()}: the implementation answered "
                       f"{row.answer}{why}, the contract allows {row.allowed}")

    # ------------------------------------------------------------ fair drains

    def drain_broker(self) -> None:
        """Publishing stopped, every worker fetches and acks each round: all must finish."""
        o = self.oracle
        limit = o.config.max_tasks * (o.config.max_deliveries + 1) * (o.config.lease_ms + 1) \
            + o.config.worker_timeout_ms
        for _ in range(limit):
            if not self.unfinished():
                break
            for w in o.config.workers:
                got = self.do("fetch", {"worker": w})
                if got.value is not None:
                    self.do("ack", {"worker": w, "task_id": got.value})
            self.do("advance", {"ms": 1})
        self.do("dead_letters", {})

    def unfinished(self) -> bool:
        L = self.oracle.broker_model.layout
        return any(L.get(self.oracle.b, "st", t) in (B.READY, B.LEASED)
                   for t in range(self.oracle.published))

    def drain_election(self) -> None:
        """Every node ticks each round with time passing: the minimum node must lead."""
        c = self.oracle.config
        for r in range(2 * c.election_lease_ms + c.member_timeout_ms + 1):
            # the first round runs largest id first, so a larger node is granted and
            # must resign to a smaller one in the next round: the resign path is
            # exercised by every drain, not only by lucky random runs
            for n in sorted(c.nodes, reverse=r == 0):
                self.do("tick", {"node": n})
                self.do("is_leader", {"node": n})
            self.do("advance", {"ms": 1})
        for n in sorted(c.nodes):
            self.do("tick", {"node": n})
            self.do("is_leader", {"node": n})


# ------------------------------------------------------------------ the machine


class ShrinkBudget(BaseException):
    """Shrinking has had its time: keep the shortest failing trace seen so far."""


@dataclass
class Campaign:
    """What one policy's Hypothesis campaign found."""

    policy: str
    caps: list[str]
    config: CheckConfig
    stats: Stats = field(default_factory=Stats)
    rows: list[Row] = field(default_factory=list)
    failure: Mismatch | None = None
    abort: Abort | None = None
    seconds: float = 0.0
    shrink_seconds: float = 3.0
    first_failure_at: float | None = None
    best: tuple[list[Row], Mismatch] | None = None

    def failed(self, rows: list[Row], mismatch: Mismatch) -> None:
        """Remember the shortest failing trace: shrinking may be cut short by its budget."""
        if self.first_failure_at is None:
            self.first_failure_at = time.perf_counter()
        if self.best is None or len(rows) <= len(self.best[0]):
            self.best = (list(rows), mismatch)

    def out_of_budget(self) -> bool:
        return (self.first_failure_at is not None
                and time.perf_counter() - self.first_failure_at > self.shrink_seconds)


CORE_OPS = frozenset({"advance", "publish", "fetch", "tick"})
"""Always in a run's swarm: without them nothing else has anything to act on."""


def op_menu(caps: list[str]) -> list[str]:
    """The operations a run may draw, by the declared capabilities (weights by repetition)."""
    ops = ["advance", "advance"]
    if "broker" in caps:
        ops += ["publish", "publish", "fetch", "fetch", "fetch", "ack", "ack", "nack", "nack",
                "extend", "heartbeat", "dead_letters"]
    if "restart" in caps and "broker" in caps:
        ops += ["restart"]
    if "election" in caps:
        ops += ["tick", "tick", "is_leader", "leader_write"]
    ops += ["stranger"]
    return ops


@functools.lru_cache(maxsize=4096)
def _choice(options: tuple[Any, ...]) -> Any:
    """One strategy object per option tuple: building strategies costs more than drawing."""
    return st.sampled_from(options)


@functools.lru_cache(maxsize=64)
def _upto(hi: int) -> Any:
    return st.integers(0, hi)


class Driver:
    """Draws the arguments of each operation from what the oracle knows."""

    def __init__(self, session: Session, data: Any) -> None:
        self.s, self.data = session, data

    def draw(self, strategy: Any, label: str) -> Any:
        return self.data.draw(strategy)

    def args(self, op: str) -> dict[str, Any] | None:
        c, o = self.s.config, self.s.oracle
        if op == "publish":
            return self.publish_args()
        if op in ("fetch", "heartbeat"):
            return {"worker": self.draw(_choice(tuple(c.workers)), "worker")}
        if op in ("ack", "nack", "extend"):
            return self.settle_args(op)
        if op == "dead_letters" or op == "restart":
            return {}
        if op == "advance":
            ms = (1, 1, 2, c.lease_ms, c.worker_timeout_ms)
            return {"ms": self.draw(_choice(ms), "ms")}
        node = self.draw(_choice(tuple(sorted(c.nodes))), "node")
        if op in ("tick", "is_leader"):
            return {"node": node}
        return {"node": node, "epoch": self.epoch(node, o.grants), "value": o.grants}

    def publish_args(self) -> dict[str, Any]:
        o = self.s.oracle
        reuse = o.published > 0 and (not o.can_publish()
                                     or self.draw(_upto(7), "reuse") == 0)
        fresh = f"t{o.published + 1}"
        task_id = self.draw(_choice(tuple(o.task_ids)), "task") if reuse else fresh
        priority = self.draw(_upto(o.config.priorities - 1), "priority")
        return {"task_id": task_id, "priority": priority}

    def settle_args(self, op: str) -> dict[str, Any] | None:
        """Mostly a task the worker holds (or held until its lease ran out); sometimes not."""
        o = self.s.oracle
        held = [(w, t) for w in o.config.workers for t in o.held_by(w)]
        if held and self.draw(_upto(4), "held") > 0:
            worker, task = self.draw(_choice(tuple(held)), "task")
        elif o.task_ids:
            worker = self.draw(_choice(tuple(o.config.workers)), "worker")
            task = self.draw(_choice(tuple([*o.task_ids, "t-unknown"])), "task")
        else:
            return None
        args: dict[str, Any] = {"worker": worker, "task_id": task}
        if op == "nack":
            args["requeue"] = self.draw(st.booleans(), "requeue")
        return args

    def epoch(self, node: str, current: int) -> int:
        """Mostly what the node was told it leads with; sometimes current, stale or ahead."""
        said = self.s.said_epoch.get(node, self.s.oracle.believed_epoch(node))
        choice = self.draw(_upto(5), "epoch")
        return int([said, said, said, current, current - 1, current + 1][choice])

    def stranger(self) -> tuple[str, dict[str, Any]]:
        """A call naming someone outside the configuration: it must be rejected."""
        ops = [op for op in ("fetch", "heartbeat", "tick", "is_leader") if self.allowed(op)]
        op = self.draw(_choice(tuple(ops)), "stranger")
        key = "node" if op in ("tick", "is_leader") else "worker"
        return op, {key: STRANGER}

    def allowed(self, op: str) -> bool:
        caps = self.s.caps
        return ("broker" in caps) if op in ("fetch", "heartbeat") else ("election" in caps)


def machine(campaign: Campaign, make: Callable[[dict[str, Any]], Adapter]
            ) -> type[RuleBasedStateMachine]:
    """The rule-based machine of one campaign; every run records its rows into it."""
    menu = op_menu(campaign.caps)
    kinds = sorted(set(menu))

    class Lockstep(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.session: Session | None = None
            self.allowed = set(kinds)
            self.failed = False
            campaign.stats.runs += 1

        def open(self) -> Session:
            if self.session is None:
                try:
                    impl = make(campaign.config.to_json())
                except ProtocolFailure as exc:
                    raise Abort("fail", str(exc)) from None
                except CallTimeout as exc:
                    raise Abort("unknown", f"init: {exc}") from None
                self.session = Session(impl, campaign.config, campaign.caps, campaign.stats)
                campaign.rows = self.session.rows
            return self.session

        @initialize(swarm=st.sets(st.sampled_from(kinds), min_size=1))
        def choose_swarm(self, swarm: set[str]) -> None:
            self.allowed = set(swarm) | (set(kinds) & CORE_OPS)
            self.open()

        @rule(data=st.data())
        def step(self, data: Any) -> None:
            if campaign.out_of_budget():
                raise ShrinkBudget
            s = self.open()
            d = Driver(s, data)
            ops = [op for op in menu if op in self.allowed]
            op = data.draw(_choice(tuple(ops)))
            try:
                if op == "stranger":
                    name, args = d.stranger()
                    s.do(name, args)
                    return
                drawn = d.args(op)
                if drawn is not None:
                    s.do(op, drawn)
            except Mismatch as m:
                self.failed = True
                campaign.failed(s.rows, m)
                raise
            except BaseException:
                self.failed = True
                raise

        def teardown(self) -> None:
            s = self.session
            try:
                if s is not None and not self.failed:
                    if "broker" in campaign.caps and s.unfinished():
                        s.drain_broker()
                    if "election" in campaign.caps and s.stats.calls.get("tick"):
                        s.drain_election()
            finally:
                if s is not None:
                    s.impl.close()

    Lockstep.__name__ = f"Lockstep_{campaign.policy}"
    return Lockstep


def run_campaign(spec: str, policy: str, caps: list[str], *, examples: int = 100,
                 steps: int = 30, timeout: float = 5.0, shrink: bool = True,
                 shrink_seconds: float = 3.0) -> Campaign:
    """Run one policy's campaign; a failure leaves the shrunk minimal trace in ``rows``.

    Shrinking stops after ``shrink_seconds`` (each candidate replays a whole
    run, which for a subprocess is slow); the shortest failing trace seen by
    then is the one reported, and it replays like any other."""
    config = CheckConfig(policy=policy, priorities=3 if "priority" in caps else 1)
    campaign = Campaign(policy, caps, config, shrink_seconds=shrink_seconds)
    make = opener(spec, timeout)
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if shrink else [])
    conf = settings(max_examples=examples, stateful_step_count=steps, deadline=None,
                    database=None, derandomize=True, verbosity=Verbosity.quiet,
                    suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
                    phases=phases)
    start = time.perf_counter()
    try:
        run(machine(campaign, make), settings=conf)
    except Mismatch as m:
        campaign.failure = m
    except Abort as a:
        campaign.abort = a
    except (ShrinkBudget, Exception):
        # Cutting shrinking short can make Hypothesis report its own error (the
        # cut run drew less data than the one it replays); the shortest failing
        # trace recorded so far is still a real, replayable failure.
        if campaign.best is None:
            raise
    if campaign.best is not None and campaign.abort is None:
        campaign.rows, campaign.failure = campaign.best
        minimise(campaign, make, shrink_seconds)
    campaign.seconds = time.perf_counter() - start
    if campaign.failure is None and campaign.abort is None:
        campaign.rows = []
    return campaign


def replay_calls(make: Callable[[dict[str, Any]], Adapter], config: CheckConfig,
                 caps: list[str], calls: list[tuple[str, dict[str, Any]]]
                 ) -> tuple[list[Row], Mismatch] | None:
    """Re-run calls on a fresh pair; the rows and mismatch if it still fails, else None."""
    impl = make(config.to_json())
    session = Session(impl, config, caps)
    try:
        for op, args in calls:
            session.do(op, args)
    except Mismatch as m:
        return session.rows, m
    except (ValueError, KeyError, AssertionError):
        return None  # the shortened trace is not a valid run (e.g. settles an unknown task)
    finally:
        impl.close()
    return None


def minimise(campaign: Campaign, make: Callable[[dict[str, Any]], Adapter],
             budget: float) -> None:
    """Delete chunks of calls while the trace still fails (within a time budget).

    Hypothesis shrinks the random part; this also shortens the fair drains that
    close a run and finishes any shrinking the budget cut short."""
    deadline = time.perf_counter() + budget
    calls = [(r.op, r.args) for r in campaign.rows]
    chunk = max(len(calls) // 2, 1)
    while chunk >= 1 and time.perf_counter() < deadline:
        i = 0
        while i < len(calls) and time.perf_counter() < deadline:
            shorter = calls[:i] + calls[i + chunk:]
            try:
                found = replay_calls(make, campaign.config, campaign.caps, shorter)
            except (Abort, ProtocolFailure, CallTimeout):
                found = None
            if found is not None:
                calls = [(r.op, r.args) for r in found[0]]
                campaign.rows, campaign.failure = found
            else:
                i += chunk
        chunk //= 2


# ------------------------------------------------------------------ the whole check


@dataclass
class Report:
    """Everything ``taskward check`` prints: rows per invariant and per operation, a trace."""

    impl: str
    form: str
    caps: list[str]
    results: list[Result]
    operations: dict[str, dict[str, int]]
    campaigns: list[Campaign]
    failing: Campaign | None
    reason: str = ""

    def verdict(self) -> Verdict:
        from taskward.check.verdict import overall
        return overall(self.results)


def probe(spec: str, timeout: float = 5.0) -> list[str]:
    """Open the implementation once to read its capabilities (with the default config)."""
    impl = opener(spec, timeout)(CheckConfig().to_json())
    try:
        return list(impl.capabilities)
    finally:
        impl.close()


def check(spec: str, *, policies: tuple[str, ...] = (), examples: int = 100, steps: int = 30,
          timeout: float = 5.0) -> Report:
    """Lockstep campaigns for every declared (and requested) policy, summarised."""
    form = describe(spec)
    try:
        caps = probe(spec, timeout)
    except (ProtocolFailure, CallTimeout) as exc:
        verdict: Verdict = "unknown" if isinstance(exc, CallTimeout) else "fail"
        row = Result("-", "lockstep", verdict, {}, note=f"could not start: {exc}", model=spec)
        return Report(spec, form, [], [row], {}, [], None, str(exc))
    # per-worker policies first: they exercise every rule shared does, and more
    order = ("round_robin", "work_stealing", "shared")
    declared = [p for p in order if p in caps] or (["shared"] if "broker" not in caps
                                                         else [])
    chosen = [p for p in declared if not policies or p in policies]
    campaigns: list[Campaign] = []
    for p in chosen:
        campaigns.append(run_campaign(spec, p, caps, examples=examples, steps=steps,
                                      timeout=timeout))
        if campaigns[-1].failure or campaigns[-1].abort:
            break  # the verdict is fail (or unknown) already: report the first trace
    return summarise(spec, form, caps, campaigns, policies)


def _bound(c: Campaign, examples: int | None = None) -> dict[str, Any]:
    cfg = c.config
    return {"policy": c.policy, "workers": len(cfg.workers), "tasks": cfg.max_tasks,
            "priorities": cfg.priorities, "lease": cfg.lease_ms,
            "max_deliveries": cfg.max_deliveries, "worker_timeout": cfg.worker_timeout_ms,
            "nodes": len(cfg.nodes), "runs": c.stats.runs, "steps": c.stats.steps}


def missing_caps_notes(caps: list[str], policies: list[str]) -> dict[str, str]:
    """Invariants (or parts) a missing capability keeps lockstep from checking."""
    notes: dict[str, str] = {}
    if "broker" not in caps:
        for i in BROKER_INVARIANTS:
            notes[i] = "not checked: no 'broker' capability"
    if "election" not in caps:
        for i in ELECTION_INVARIANTS:
            notes[i] = "not checked: no 'election' capability"
    if "broker" in caps and "leases" not in caps:
        notes["I5"] = "not checked: no 'leases' capability (progress needs expiring leases)"
        notes["I9/expiry"] = "not checked: no 'leases' capability"
    if "broker" in caps and "priority" not in caps:
        notes["I2/priority"] = "not checked: no 'priority' capability (priority 0 only)"
    if "broker" in caps and "restart" not in caps:
        notes["I1/restart"] = "not checked: no 'restart' capability"
    if "broker" in caps and not {"round_robin", "work_stealing"} & set(caps):
        notes.setdefault("I6", "not checked: no per-worker policy declared")
    if "broker" in caps and "work_stealing" not in caps:
        notes.setdefault("I7", "not checked: no 'work_stealing' policy declared")
    if "broker" in caps and not policies:
        for i in BROKER_INVARIANTS:
            notes.setdefault(i, "not checked: no policy declared")
    return notes


def _applies(inv: str, policy: str) -> bool:
    if inv == "I6":
        return policy in ("round_robin", "work_stealing")
    if inv == "I7":
        return policy == "work_stealing"
    return True


def summarise(spec: str, form: str, caps: list[str], campaigns: list[Campaign],
              requested: tuple[str, ...] = ()) -> Report:
    """Per-invariant rows (pass / fail / unknown with notes) and per-operation counts."""
    notes = missing_caps_notes(caps, [c.policy for c in campaigns])
    results: list[Result] = []
    failing = next((c for c in campaigns if c.failure or c.abort), None)
    for inv in (*BROKER_INVARIANTS, *ELECTION_INVARIANTS):
        if inv in notes:
            results.append(Result(inv, "lockstep", "unknown", {}, note=notes[inv], model=spec))
            continue
        for c in campaigns:
            if inv in BROKER_INVARIANTS and not _applies(inv, c.policy):
                continue
            results.append(_row(inv, c, spec))
    for part, note in notes.items():
        if "/" in part:
            results.append(Result(part, "lockstep", "unknown", {}, note=note, model=spec))
    for c in campaigns:
        if c.failure is not None and not c.failure.invariants:
            results.append(_fail_row("contract", c, spec, f"operation {c.failure.op}"))
        if c.abort is not None:
            results.append(Result("protocol", "lockstep", c.abort.verdict, _bound(c),
                                  {"seconds": c.seconds}, _trace_json(c.rows), spec,
                                  c.abort.reason))
    if not campaigns:
        results.append(Result("-", "lockstep", "unknown", {}, model=spec,
                              note="nothing checked: no declared capability to exercise"))
    ops: dict[str, dict[str, int]] = {}
    for c in campaigns:
        for op, n in c.stats.calls.items():
            row = ops.setdefault(op, {"calls": 0, "rejected": 0, "failed": 0})
            row["calls"] += n
            row["rejected"] += c.stats.rejected.get(op, 0)
            row["failed"] += c.stats.failed.get(op, 0)
    reason = ""
    if failing is not None:
        reason = str(failing.failure) if failing.failure else (failing.abort.reason
                                                               if failing.abort else "")
    return Report(spec, form, caps, results, ops, campaigns, failing, reason)


def _row(inv: str, c: Campaign, spec: str) -> Result:
    if c.failure is not None and inv in c.failure.invariants:
        return _fail_row(inv, c, spec, "")
    if c.failure is not None or c.abort is not None:
        return Result(inv, "lockstep", "unknown", _bound(c), {"seconds": c.seconds},
                      model=f"{spec} [{c.policy}]",
                      note="not established: the campaign stopped at the first failure")
    return Result(inv, "lockstep", "pass", _bound(c), {"seconds": round(c.seconds, 2)},
                  model=f"{spec} [{c.policy}]")


def _fail_row(inv: str, c: Campaign, spec: str, note: str) -> Result:
    msg = str(c.failure) if c.failure else ""
    return Result(inv, "lockstep", "fail", _bound(c), {"seconds": round(c.seconds, 2)},
                  _trace_json(c.rows), f"{spec} [{c.policy}]", (note + ": " if note else "")
                  + msg)


def _trace_json(rows: list[Row]) -> list[dict[str, Any]]:
    return [{"i": i, "label": r.label(), "op": r.op, "args": r.args, "answer": r.answer,
             "allowed": r.allowed, "ok": r.ok, "tasks": r.tasks}
            for i, r in enumerate(rows, 1)]


# ------------------------------------------------------------------ replay files


def replay_document(report: Report) -> dict[str, Any] | None:
    """The minimal failing trace as a file ``taskward replay`` re-runs."""
    c = report.failing
    if c is None:
        return None
    cfg = c.config
    return {"format": REPLAY_FORMAT, "impl": report.impl, "policy": c.policy,
            "capabilities": c.caps, "config": cfg.to_json(),
            "bound": {"max_tasks": cfg.max_tasks, "priorities": cfg.priorities},
            "failure": report.reason,
            "invariants": c.failure.invariants if c.failure else [],
            "steps": [{"op": r.op, "args": r.args, "answer": r.answer, "allowed": r.allowed}
                      for r in c.rows]}


@dataclass
class ReplayOutcome:
    """The result of re-running a replay file against an implementation."""

    verdict: Verdict
    rows: list[Row]
    reason: str
    invariants: list[str]


def replay(doc: dict[str, Any], spec: str, timeout: float = 5.0) -> ReplayOutcome:
    """Re-run the recorded calls in order; fail at the first answer outside the allowed set."""
    if doc.get("format") != REPLAY_FORMAT:
        raise ValueError(f"not a replay file (format {doc.get('format')!r}, "
                         f"expected {REPLAY_FORMAT!r})")
    cfg = doc["config"]
    config = CheckConfig(workers=tuple(cfg["workers"]), nodes=tuple(cfg["nodes"]),
                         policy=cfg["policy"], lease_ms=cfg["lease_ms"],
                         max_deliveries=cfg["max_deliveries"],
                         worker_timeout_ms=cfg["worker_timeout_ms"],
                         election_lease_ms=cfg["election_lease_ms"],
                         member_timeout_ms=cfg["member_timeout_ms"],
                         max_tasks=doc["bound"]["max_tasks"],
                         priorities=doc["bound"]["priorities"])
    try:
        impl = opener(spec, timeout)(config.to_json())
    except ProtocolFailure as exc:
        return ReplayOutcome("fail", [], str(exc), [])
    except CallTimeout as exc:
        return ReplayOutcome("unknown", [], str(exc), [])
    session = Session(impl, config, list(doc.get("capabilities", impl.capabilities)))
    try:
        for step in doc["steps"]:
            session.do(step["op"], step["args"])
    except Mismatch as m:
        return ReplayOutcome("fail", session.rows, str(m), m.invariants)
    except Abort as a:
        return ReplayOutcome(a.verdict, session.rows, a.reason, [])
    finally:
        impl.close()
    return ReplayOutcome("pass", session.rows, "every answer is allowed", [])
