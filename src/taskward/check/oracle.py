"""The reference model behind the CONFORMANCE operations, answering with the allowed sets.

An implementation speaks in names (task ids, worker and node names, milliseconds
of logical time); the models speak in indices and ticks. The oracle translates:

* task ids map to model indices in publish order (the model publishes tasks in
  index order, so the ``n``-th accepted publish *is* task ``n``);
* workers map to indices in rotation order, i.e. the order of ``workers`` in the
  configuration. The model breaks work-stealing ties by index while CONFORMANCE
  breaks them by string order, so the checker only uses worker names whose
  string order equals their rotation order (``w1 < w2 < w3``);
* nodes map to indices in string order;
* ``advance(ms)`` is ``ms`` model ticks, so configurations use small values;
* absolute epochs are recovered by counting grants (the model's ``tick`` result).

For every operation :meth:`Oracle.expect` returns the *set* of allowed outcomes,
each with the model state it leads to, so the checker can accept any member and
then follow the implementation's choice (:meth:`Oracle.follow`). The invariants
of the model are checked on every step the oracle takes.

Calls the contract leaves to the oracle's discretion, decided here once:

* a name not in the configuration (worker or node) is malformed input: it must
  be rejected and changes nothing (there is no such worker to mark seen, so the
  broker prelude is not run either);
* an unknown task id on ``ack``/``nack``/``extend`` is rejected after the
  prelude ran for the calling worker: the model's ``heartbeat`` effect;
* a reused ``task_id`` is rejected after the prelude ran with no caller;
* a refused ``leader_write`` may answer ``false`` or be rejected: both say the
  store did not take it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from taskward.check.stateful import Violation, check_step
from taskward.models import broker as B
from taskward.models import election as E
from taskward.models.core import CONCRETE, Model, State
from taskward.specs.invariants import BY_ID, Invariant, applicable

REJECT = "reject"
OK = "ok"

BROKER_OPS = ("publish", "fetch", "ack", "nack", "extend", "heartbeat", "dead_letters")
ELECTION_OPS = ("tick", "is_leader", "leader_write")


@dataclass(frozen=True)
class CheckConfig:
    """The configuration handed to an implementation, with the model bounds behind it."""

    workers: tuple[str, ...] = ("w1", "w2", "w3")
    nodes: tuple[str, ...] = ("n1", "n2", "n3")
    policy: str = "shared"
    lease_ms: int = 3
    max_deliveries: int = 2
    worker_timeout_ms: int = 6
    election_lease_ms: int = 3
    member_timeout_ms: int = 6
    max_tasks: int = 5
    priorities: int = 3

    def __post_init__(self) -> None:
        if list(self.workers) != sorted(self.workers):
            raise ValueError("worker names must sort in rotation order (the model breaks "
                             "stealing ties by index): use e.g. w1, w2, w3")
        if len(set(self.workers)) != len(self.workers) or len(set(self.nodes)) != len(self.nodes):
            raise ValueError("worker and node names must be distinct")

    def to_json(self) -> dict[str, Any]:
        """What ``init`` carries: exactly the keys of CONFORMANCE's configuration."""
        return {"workers": list(self.workers), "policy": self.policy,
                "lease_ms": self.lease_ms, "max_deliveries": self.max_deliveries,
                "worker_timeout_ms": self.worker_timeout_ms, "nodes": list(self.nodes),
                "election_lease_ms": self.election_lease_ms,
                "member_timeout_ms": self.member_timeout_ms}


@dataclass(frozen=True)
class Outcome:
    """One allowed answer: ``ok`` with a value, or ``reject``; and where the models go."""

    kind: str
    value: Any
    broker: State
    election: State
    grants: int
    steps: tuple[tuple[str, str, State, tuple[int, ...], State, int], ...] = ()
    """Model steps taken, as (system, action, pre, args, post, result), for invariant checks."""

    def describe(self) -> str:
        return "rejected" if self.kind == REJECT else _show(self.value)


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


@dataclass
class Oracle:
    """Both reference models, driven by names, answering with the set of allowed outcomes."""

    config: CheckConfig
    lease_expiry: bool = True
    """False for implementations without the ``leases`` capability: leases then last
    longer than any run, so they end only by ack or nack."""
    broker_model: Model = field(init=False)
    election_model: Model = field(init=False)
    b: State = field(init=False)
    e: State = field(init=False)
    grants: int = field(init=False, default=0)
    task_ids: list[str] = field(init=False, default_factory=list)
    binv: list[Invariant] = field(init=False)
    einv: list[Invariant] = field(init=False)

    def __post_init__(self) -> None:
        c = self.config
        lease = c.lease_ms if self.lease_expiry else 10_000
        self.broker_model = B.build(B.BrokerConfig(
            workers=len(c.workers), tasks=c.max_tasks, priorities=c.priorities,
            policy=c.policy, lease=lease, max_deliveries=c.max_deliveries,
            worker_timeout=c.worker_timeout_ms, crashes=False, restart=True), symmetry=False)
        self.election_model = E.build(E.ElectionConfig(
            nodes=len(c.nodes), lease=c.election_lease_ms, member_timeout=c.member_timeout_ms,
            margin=0, max_pause=0, max_drift=0, stale_cap=1_000_000, crashes=False,
            isolation=False))
        self.b = self.broker_model.init
        self.e = self.election_model.init
        self.binv = [i for i in applicable(self.broker_model) if i.kind == "safety"]
        self.einv = [i for i in applicable(self.election_model) if i.kind == "safety"]
        self.nodes_sorted = sorted(c.nodes)

    # ------------------------------------------------------------ names

    def worker(self, name: Any) -> int | None:
        return self.config.workers.index(name) if name in self.config.workers else None

    def node(self, name: Any) -> int | None:
        return self.nodes_sorted.index(name) if name in self.nodes_sorted else None

    def task(self, task_id: Any) -> int | None:
        return self.task_ids.index(task_id) if task_id in self.task_ids else None

    def task_name(self, index: int) -> str | None:
        return None if index == B.NONE else self.task_ids[index]

    @property
    def published(self) -> int:
        return len(self.task_ids)

    def can_publish(self) -> bool:
        """The broker model has room for one more task."""
        return self.published < self.config.max_tasks

    # ------------------------------------------------------------ outcomes

    def _same(self, kind: str, value: Any = None) -> Outcome:
        return Outcome(kind, value, self.b, self.e, self.grants)

    def _bstep(self, kind: str, value: Any, action: str, args: tuple[int, ...]) -> Outcome:
        st = self.broker_model.apply(self.b, action, args)
        return Outcome(kind, value, st.post, self.e, self.grants,
                       (("broker", action, self.b, args, st.post, st.result),))

    def _prelude_only(self, kind: str, value: Any = None) -> Outcome:
        impl: B.Broker = self.broker_model.extra["impl"]
        post = tuple(int(v) for v in impl.pre(CONCRETE, self.b))
        return Outcome(kind, value, post, self.e, self.grants)

    def expect(self, op: str, args: dict[str, Any]) -> list[Outcome]:
        """Every outcome the contract allows for this call in the current state."""
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            raise KeyError(f"no such operation {op!r}")
        out: list[Outcome] = handler(**args)
        return out

    def follow(self, outcome: Outcome) -> None:
        """Take the outcome the implementation chose, checking every invariant on the way."""
        for system, action, pre, margs, post, result in outcome.steps:
            m, invs = ((self.broker_model, self.binv) if system == "broker"
                       else (self.election_model, self.einv))
            check_step(m, invs, pre, action, margs, post, result)
        self.b, self.e, self.grants = outcome.broker, outcome.election, outcome.grants

    def remember_publish(self, task_id: str, outcome: Outcome) -> None:
        """An accepted publish binds the id to the next model index."""
        if outcome.kind == OK and self.task(task_id) is None:
            self.task_ids.append(task_id)

    # ------------------------------------------------------------ broker ops

    def _op_publish(self, task_id: str, priority: int = 0) -> list[Outcome]:
        if self.task(task_id) is not None:
            return [self._prelude_only(REJECT)]
        if not self.can_publish() or not 0 <= priority < self.config.priorities:
            raise ValueError("the checker publishes within the model's bound only")
        return [self._bstep(OK, None, "publish", (priority,))]

    def _op_fetch(self, worker: str) -> list[Outcome]:
        w = self.worker(worker)
        if w is None:
            return [self._same(REJECT)]
        st = self.broker_model.apply(self.b, "fetch", (w,))
        return [self._bstep(OK, self.task_name(st.result), "fetch", (w,))]

    def _settle(self, action: str, worker: str, task_id: str, *extra: int) -> list[Outcome]:
        w = self.worker(worker)
        if w is None:
            return [self._same(REJECT)]
        t = self.task(task_id)
        if t is None:
            return [self._bstep(REJECT, None, "heartbeat", (w,))]
        st = self.broker_model.apply(self.b, action, (w, t, *extra))
        return [self._bstep(OK if st.result else REJECT, None, action, (w, t, *extra))]

    def _op_ack(self, worker: str, task_id: str) -> list[Outcome]:
        return self._settle("ack", worker, task_id)

    def _op_nack(self, worker: str, task_id: str, requeue: bool = True) -> list[Outcome]:
        return self._settle("nack", worker, task_id, int(bool(requeue)))

    def _op_extend(self, worker: str, task_id: str) -> list[Outcome]:
        return self._settle("extend", worker, task_id)

    def _op_heartbeat(self, worker: str) -> list[Outcome]:
        w = self.worker(worker)
        if w is None:
            return [self._same(REJECT)]
        return [self._bstep(OK, None, "heartbeat", (w,))]

    def _op_dead_letters(self) -> list[Outcome]:
        out = self._prelude_only(OK)
        L = self.broker_model.layout
        ranks = [(L.get(out.broker, "drank", t), t) for t in range(self.published)]
        names = [self.task_ids[t] for r, t in sorted(ranks) if r > 0]
        return [Outcome(OK, names, out.broker, out.election, out.grants)]

    def _op_advance(self, ms: int) -> list[Outcome]:
        b, e = self.b, self.e
        steps = []
        for _ in range(ms):
            sb = self.broker_model.apply(b, "advance", ())
            se = self.election_model.apply(e, "advance", ())
            steps += [("broker", "advance", b, (), sb.post, sb.result),
                      ("election", "advance", e, (), se.post, se.result)]
            b, e = sb.post, se.post
        return [Outcome(OK, None, b, e, self.grants, tuple(steps))]

    def _op_restart(self) -> list[Outcome]:
        return [self._bstep(OK, None, "restart", ())]

    # ------------------------------------------------------------ election ops

    def _op_tick(self, node: str) -> list[Outcome]:
        n = self.node(node)
        if n is None:
            return [self._same(REJECT)]
        st = self.election_model.apply(self.e, "tick", (n,))
        return [Outcome(OK, None, self.b, st.post, self.grants + st.result,
                        (("election", "tick", self.e, (n,), st.post, st.result),))]

    def epoch_of(self, n: int) -> int:
        """The node's absolute epoch: the current one minus how many grants behind it is."""
        return self.grants - int(self.election_model.layout.get(self.e, "stale", n))

    def _op_is_leader(self, node: str) -> list[Outcome]:
        n = self.node(node)
        if n is None:
            return [self._same(REJECT)]
        if self.election_model.layout.get(self.e, "bel", n) > 0:
            return [self._same(OK, [True, self.epoch_of(n)])]
        return [self._same(OK, [False, None])]

    def write_accepted(self, n: int, epoch: int) -> bool:
        """Fencing with an explicit epoch: current epoch, node holds an unexpired lease."""
        em = self.election_model
        impl: E.Election = em.extra["impl"]
        return bool(epoch == self.grants and impl.accepts(CONCRETE, self.e, n))

    def _op_leader_write(self, node: str, epoch: int, value: Any = None) -> list[Outcome]:
        n = self.node(node)
        if n is None:
            return [self._same(REJECT)]
        if not self.write_accepted(n, epoch):
            return [self._same(OK, False), self._same(REJECT)]
        st = self.election_model.apply(self.e, "leader_write", (n,))
        return [Outcome(OK, True, self.b, st.post, self.grants,
                        (("election", "leader_write", self.e, (n,), st.post, st.result),))]

    # ------------------------------------------------------------ views for the driver

    def held_by(self, worker: str) -> list[str]:
        """Task ids the model shows leased to ``worker`` (the ones a worker would settle)."""
        w = self.worker(worker)
        L = self.broker_model.layout
        return [self.task_ids[t] for t in range(self.published)
                if L.get(self.b, "st", t) == B.LEASED and L.get(self.b, "own", t) == w]

    def believed_epoch(self, node: str) -> int:
        """The epoch the node last got from a grant (what a real node would write with)."""
        n = self.node(node)
        assert n is not None
        return max(self.epoch_of(n), 0)

    def describe_broker(self) -> dict[str, str]:
        """Each published task's status, for the trace table."""
        L = self.broker_model.layout
        out = {}
        for t, tid in enumerate(self.task_ids):
            st = int(L.get(self.b, "st", t))
            own = int(L.get(self.b, "own", t))
            who = f"@{self.config.workers[own]}" if own != B.NONE and st in (
                B.READY, B.LEASED) and (st == B.LEASED or self.config.policy != "shared") else ""
            out[tid] = f"{B.STATUS_NAMES[st]}{who}"
        return out


def attribute(oracle: Oracle, op: str, args: dict[str, Any], allowed: list[Outcome],
              kind: str, value: Any) -> list[str]:
    """Which invariants an answer outside the allowed set breaks (empty: the contract only).

    The model is forced to follow the implementation's answer for one step and
    the invariants' step and state predicates are evaluated on that forced step,
    so the attribution comes from the same predicates the other checkers use.
    """
    forced = _forced_step(oracle, op, args, kind, value)
    found: list[str] = []
    if forced is not None:
        m, invs, pre, action, margs, post, result = forced
        for inv in invs:
            try:
                check_step(m, [inv], pre, action, margs, post, result)
            except Violation:
                found.append(inv.id)
    return found or _fallback(oracle, op, args, kind, value)


Forced = tuple[Model, list[Invariant], State, str, tuple[int, ...], State, int]


def _forced_step(o: Oracle, op: str, args: dict[str, Any], kind: str, value: Any
                 ) -> Forced | None:
    """The model step the implementation's answer implies, where one can be built."""
    m, L = o.broker_model, o.broker_model.layout
    w = o.worker(args.get("worker"))
    if op == "fetch" and w is not None and kind == OK:
        t = B.NONE if value is None else o.task(value)
        if t is None:
            return None
        mid = m.mid(o.b, "fetch", (w,))
        post = list(mid)
        if t != B.NONE:
            for name, v in (("st", B.LEASED), ("own", w), ("exp", m.config.lease),
                            ("dl", L.get(mid, "dl", t) + 1)):
                post[L.offset[name] + t] = v
        return m, o.binv, o.b, "fetch", (w,), tuple(post), t
    if op == "ack" and w is not None and kind == OK:
        t = o.task(args.get("task_id"))
        if t is None:
            return None
        acked = list(m.mid(o.b, "ack", (w, t)))
        acked[L.offset["st"] + t] = B.ACKED
        acked[L.offset["ackc"] + t] = min(int(L.get(acked, "ackc", t)) + 1, 2)
        return m, o.binv, o.b, "ack", (w, t), tuple(acked), 1
    n = o.node(args.get("node"))
    if op == "leader_write" and n is not None and kind == OK and value is True:
        em = o.election_model
        post = list(o.e)
        post[em.layout.offset["wage"]] = em.layout.get(o.e, "stale", n)
        post[em.layout.offset["wnode"]] = n
        return em, o.einv, o.e, "leader_write", (n,), tuple(post), 1
    return None


def _fallback(o: Oracle, op: str, args: dict[str, Any], kind: str, value: Any) -> list[str]:
    """Attribution by the kind of wrong answer, where no forced step shows it."""
    if op == "is_leader" and kind == OK and isinstance(value, list | tuple) and value:
        return _leader_attr(o, o.node(args.get("node")), value)
    if op == "dead_letters":
        return ["I1"]
    if op == "publish" and kind == OK:
        return ["I1"]
    if op == "leader_write":
        return ["I3a"]
    if op == "fetch" and kind == OK and value is not None and o.task(value) is None:
        return ["I1"]
    if op == "fetch" and kind == OK and value is None:
        return ["I5"]  # a task the contract delivers now stays undelivered
    return []


def _leader_attr(o: Oracle, n: int | None, value: Any) -> list[str]:
    """A wrong belief: two believers (I3b), a wrong epoch (I3a), a lost leader (I8)."""
    L = o.election_model.layout
    if n is None:
        return []
    mine = L.get(o.e, "bel", n) > 0
    if value[0] is True and mine:
        return ["I3a"]
    if value[0] is True:
        others = any(L.get(o.e, "bel", k) > 0 for k in range(len(o.config.nodes)) if k != n)
        timeout = o.config.member_timeout_ms
        smaller = any(L.get(o.e, "mem", k) == 1 and L.get(o.e, "mage", k) < timeout
                      for k in range(n))
        return ["I3b"] + (["I4"] if smaller else []) if others or smaller else ["I3b"]
    return ["I8"]


def invariant_names() -> dict[str, str]:
    """Invariant id -> name, for report rows."""
    return {k: v.name for k, v in BY_ID.items()}
