"""I1-I9: the seed's words, the precise claim, the proof sketch, and the predicate checked.

Safety invariants are *state* predicates ``(o, model, s) -> bool`` and/or
*transition* predicates ``(o, model, pre, mid, post, args, result) -> bool``
over the steps of named actions (``mid`` is the state after the action's own
prelude: what the operation saw). Both are written in the ``Ops`` vocabulary
of ``taskward.models.core``, so the explorer, the Hypothesis machines and the
Z3 encodings evaluate the very same predicate. Liveness invariants (I5, I8)
name the progress measure and the weak-fairness assumptions the explorer's
fair-cycle search and the bounded drain checks use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from taskward.models import broker as B
from taskward.models import election as E
from taskward.models.core import Model, Ops, SymState, V, count

StatePred = Callable[[Ops, Model, SymState], V]
StepPred = Callable[[Ops, Model, SymState, SymState, SymState, tuple[int, ...], V], V]


@dataclass(frozen=True, slots=True)
class Invariant:
    """One named guarantee, with everything the docs and the checkers need."""

    id: str
    name: str
    seed: str
    claim: str
    sketch: str
    kind: str
    """``safety`` or ``liveness``."""
    system: str
    """``broker`` or ``election``."""
    state: StatePred | None = None
    steps: tuple[tuple[frozenset[str], StepPred], ...] = ()
    policies: tuple[str, ...] = B.POLICIES
    """Broker policies the claim speaks about (others: not applicable, never a pass)."""
    strengthening: str = ""
    """The inductive strengthening used by the solver proofs (rendered in the docs)."""

    def applies(self, m: Model) -> bool:
        """Does this invariant speak about this model at all?"""
        if self.system == "election":
            return m.name.startswith("election")
        return m.name.startswith("broker") and m.config.policy in self.policies

    def step_preds(self, action: str) -> list[StepPred]:
        return [p for names, p in self.steps if action in names]


def _bl(m: Model) -> B.BrokerConfig:
    cfg: B.BrokerConfig = m.config
    return cfg


# ------------------------------------------------------------------------ I1


def i1_state(o: Ops, m: Model, s: SymState) -> V:
    """Each published task is in exactly one of READY, LEASED, ACKED, DEAD; no other is."""
    L, c = m.layout, _bl(m)
    npub = L.get(s, "npub")
    return o.and_(*[
        o.ite(t < npub, o.and_(L.get(s, "st", t) >= B.READY, L.get(s, "st", t) <= B.DEAD),
              L.get(s, "st", t) == B.UNPUB)
        for t in range(c.tasks)])


def i1_step(o: Ops, m: Model, pre: SymState, mid: SymState, post: SymState,
            args: tuple[int, ...], result: V, *, acker: int | None, restart: bool) -> V:
    """Tasks reach ACKED only by an accepted ack of the lease holder; restart changes nothing."""
    L, c = m.layout, _bl(m)
    conds = []
    for t in range(c.tasks):
        became_acked = o.and_(L.get(pre, "st", t) != B.ACKED, L.get(post, "st", t) == B.ACKED)
        if acker is None or args[1] != t:
            conds.append(o.not_(became_acked))
        else:
            held = o.and_(L.get(mid, "st", t) == B.LEASED, L.get(mid, "own", t) == acker,
                          L.get(mid, "exp", t) > 0)
            conds.append(o.or_(o.not_(became_acked), held))
        became_dead = o.and_(L.get(pre, "st", t) != B.DEAD, L.get(post, "st", t) == B.DEAD)
        conds.append(o.or_(o.not_(became_dead), L.get(post, "drank", t) > 0))
        if restart:
            conds += [L.get(post, f, t) == L.get(pre, f, t) for f in ("st", "own", "exp", "dl")]
    return o.and_(*conds)


def _i1_ack(o: Ops, m: Model, pre: SymState, mid: SymState, post: SymState,
            args: tuple[int, ...], result: V) -> V:
    return i1_step(o, m, pre, mid, post, args, result, acker=args[0], restart=False)


def _i1_other(o: Ops, m: Model, pre: SymState, mid: SymState, post: SymState,
              args: tuple[int, ...], result: V) -> V:
    return i1_step(o, m, pre, mid, post, args, result, acker=None, restart=False)


def _i1_restart(o: Ops, m: Model, pre: SymState, mid: SymState, post: SymState,
                args: tuple[int, ...], result: V) -> V:
    return i1_step(o, m, pre, mid, post, args, result, acker=None, restart=True)


# ------------------------------------------------------------------------ I2


def i2_fetch(o: Ops, m: Model, pre: SymState, mid: SymState, post: SymState,
             args: tuple[int, ...], result: V) -> V:
    """A delivery is the best READY task of the queue it draws from (priority, then publish order).

    Publish order is the task index (the model publishes in index order), so
    this judges against the order tasks were *published*, whatever position
    the broker itself keeps."""
    L, c = m.layout, _bl(m)
    worker = args[0]
    conds = []
    for r in range(c.tasks):
        got = result == r
        q = L.get(mid, "own", r)
        same_queue: Callable[[int], V]
        if c.policy == "shared":
            def same_queue(u: int) -> V:
                return True
        else:
            def same_queue(u: int, q: V = q) -> V:
                return L.get(mid, "own", u) == q
        beaten = []
        for u in range(c.tasks):
            if u == r:
                continue
            pu, pr = L.get(mid, "pr", u), L.get(mid, "pr", r)
            better = o.or_(pu > pr, o.and_(pu == pr, u < r)) if u < r else pu > pr
            beaten.append(o.and_(L.get(mid, "st", u) == B.READY, same_queue(u), better))
        ok = [L.get(mid, "st", r) == B.READY, o.not_(o.or_(*beaten))]
        if c.policy == "round_robin":
            ok.append(q == worker)
        if c.policy == "work_stealing":
            own_ready = [o.and_(L.get(mid, "st", u) == B.READY, L.get(mid, "own", u) == worker)
                         for u in range(c.tasks)]
            ok.append(o.or_(q == worker, o.not_(o.or_(*own_ready))))
        conds.append(o.or_(o.not_(got), o.and_(*ok)))
    return o.and_(*conds)


# ------------------------------------------------------------------------ I3


def i3a_write(o: Ops, m: Model, pre: SymState, mid: SymState, post: SymState,
              args: tuple[int, ...], result: V) -> V:
    """An accepted write carries the current epoch from the live holder, and never goes back."""
    L = m.layout
    n = args[0]
    stale, wage = L.get(pre, "stale", n), L.get(pre, "wage")
    current = o.and_(stale == 0, L.get(pre, "holder") == n, L.get(pre, "lrem") > 0)
    forward = o.and_(stale <= wage,
                     o.or_(stale != wage, L.get(pre, "wnode") == n, L.get(pre, "wnode") == E.NONE))
    return o.or_(result == 0, o.and_(current, forward))


def i3a_grant(o: Ops, m: Model, pre: SymState, mid: SymState, post: SymState,
              args: tuple[int, ...], result: V) -> V:
    """A grant issues a new epoch: only the grantee holds it, every earlier one is now older."""
    L = m.layout
    cfg: E.ElectionConfig = m.config
    n = args[0]
    others_older = [L.get(post, "stale", k) >= 1 for k in range(cfg.nodes) if k != n]
    fresh = o.and_(L.get(post, "stale", n) == 0, L.get(post, "holder") == n,
                   L.get(post, "wage") >= 1, *others_older)
    return o.or_(result == 0, fresh)


def i3b_state(o: Ops, m: Model, s: SymState) -> V:
    """At most one node believes it leads."""
    cfg: E.ElectionConfig = m.config
    return count(o, [m.layout.get(s, "bel", n) > 0 for n in range(cfg.nodes)]) <= 1


# ------------------------------------------------------------------------ I4


def i4_grant(o: Ops, m: Model, pre: SymState, mid: SymState, post: SymState,
             args: tuple[int, ...], result: V) -> V:
    """A grant goes to a node with no live member of smaller id (after its own heartbeat)."""
    L = m.layout
    n = args[0]
    smaller = [o.and_(L.get(mid, "mem", k) == 1, L.get(mid, "mage", k) < m.config.member_timeout)
               for k in range(n)]
    return o.or_(result == 0, o.not_(o.or_(*smaller)) if smaller else True)


# ------------------------------------------------------------------------ I6, I7, I9


def i6_state(o: Ops, m: Model, s: SymState) -> V:
    """Round-robin assignment counts of workers live throughout differ by at most one."""
    L, c = m.layout, _bl(m)
    conds = []
    for i in range(c.workers):
        for j in range(c.workers):
            if i == j:
                continue
            both = o.and_(L.get(s, "gone", i) == 0, L.get(s, "gone", j) == 0)
            conds.append(o.or_(o.not_(both), L.get(s, "asg", i) - L.get(s, "asg", j) <= 1))
    return o.and_(*conds)


def i7_fetch(o: Ops, m: Model, pre: SymState, mid: SymState, post: SymState,
             args: tuple[int, ...], result: V) -> V:
    """With stealing, fetch finds nothing only when nothing is READY; never takes a leased task."""
    L, c = m.layout, _bl(m)
    any_ready = o.or_(*[L.get(mid, "st", t) == B.READY for t in range(c.tasks)])
    took_ready = o.and_(*[o.or_(result != t, L.get(mid, "st", t) == B.READY)
                          for t in range(c.tasks)])
    return o.and_(o.or_(result != B.NONE, o.not_(any_ready)), took_ready)


def i9_state(o: Ops, m: Model, s: SymState) -> V:
    """No task is delivered more than max_deliveries times or acked more than once."""
    L, c = m.layout, _bl(m)
    return o.and_(*[o.and_(L.get(s, "dl", t) <= c.max_deliveries, L.get(s, "ackc", t) <= 1)
                    for t in range(c.tasks)])


# ------------------------------------------------------------------------ the registry

BROKER_FACTS = ("Unpublished tasks have st UNPUB, dl 0, ackc 0; nseq == npub; READY => "
                "dl < max_deliveries; ackc[t] == 1 iff ACKED.")
ELECTION_FACTS = "bel[n] + margin <= lease + paused[n] + drift[n]."
"""Lemmas every proof of that system uses (proven with the claim, never assumed;
the solver's versions are in ``taskward.specs.z3enc``)."""

BROKER_OPS = frozenset({"publish", "fetch", "nack", "extend", "heartbeat", "advance", "crash"})

INVARIANTS: tuple[Invariant, ...] = (
    Invariant(
        "I1", "NoLostTasks", "every enqueued task is processed or persisted",
        "At every moment each published task is in exactly one of READY, LEASED, ACKED, "
        "DEAD; it leaves READY/LEASED only by an accepted ack (the holder of an unexpired "
        "lease) or by dead-lettering with a reason; a restart of a durable broker changes "
        "no task's state.",
        "Publish puts the task in READY. Every action moves a task only along READY->LEASED "
        "(fetch), LEASED->READY (expiry, nack), LEASED->ACKED (ack, guarded by the lease), "
        "READY/LEASED->DEAD (nack without requeue, expiry or nack at max_deliveries, which "
        "records a dead-letter position). No action removes a task, and restart is the "
        "identity on the durable state, so the status function stays total and single-valued.",
        "safety", "broker", i1_state,
        ((frozenset({"ack"}), _i1_ack), (BROKER_OPS, _i1_other),
         (frozenset({"restart"}), _i1_restart)),
        strengthening=BROKER_FACTS),
    Invariant(
        "I2", "OrderedDelivery", "brokers emit tasks in the order they were published",
        "Every delivery takes, from the queue it draws from, the READY task of highest "
        "priority and, among those, the smallest publish sequence. Corollary (the seed's "
        "FIFO): one queue, one priority, no redelivery => deliveries follow publish order.",
        "The broker orders by (priority desc, seq asc) and a task keeps its seq for life: "
        "publish assigns seq in publish order and neither nack nor expiry changes it, so the "
        "broker's order is the publish order. The seed's 'dequeues mirror enqueues' is false "
        "once tasks are redelivered at the tail (a counterexample is shown) or priorities "
        "differ.",
        "safety", "broker", None, ((frozenset({"fetch"}), i2_fetch),),
        strengthening=BROKER_FACTS + " sq[t] == t for every published task t (seq is the "
                      "publish order)."),
    Invariant(
        "I3a", "SingleLeader (fenced)", "at most one coordinator acts as leader at any time",
        "Each epoch is granted to at most one node, epochs strictly increase, and the store "
        "accepts a leader write only with the current epoch from the live holder, so accepted "
        "writes never interleave between two leaders.",
        "The store increments the epoch at every grant, in the same atomic step that names "
        "the holder; a write carries the writer's epoch and is compared with the current one "
        "in the store, so a deposed leader (paused, partitioned, slow clock) is refused no "
        "matter what it believes.",
        "safety", "election", None,
        ((frozenset({"leader_write"}), i3a_write), (frozenset({"tick"}), i3a_grant)),
        strengthening=ELECTION_FACTS + " At most one node has stale == 0; wage == 0 => wnode "
                      "is a node with stale == 0."),
    Invariant(
        "I3b", "SingleLeader (belief)", "at most one coordinator acts as leader at any time",
        "At most one node believes it leads at any instant. Holds only while pauses plus "
        "clock drift stay within the safety margin (max_pause + max_drift <= margin); a "
        "counterexample is shown when they do not.",
        "A node believes for lease - margin ticks of its own clock after a grant or renewal; "
        "pauses and drift stretch that by at most max_pause + max_drift <= margin, so its "
        "belief ends no later than the store's lease. The store grants again only after its "
        "lease expired or was resigned (and resigning ends the belief at once).",
        "safety", "election", i3b_state,
        strengthening=ELECTION_FACTS + " bel[n] > 0 => holder == n and bel[n] + margin <= "
                      "lrem + paused[n] + drift[n]."),
    Invariant(
        "I4", "MinIdLeader", "election chooses the minimum identifier",
        "Every grant goes to the smallest id among the members whose heartbeat is fresh in "
        "the store at that instant.",
        "A grant happens inside the candidate's own tick, after its heartbeat, and only when "
        "no live member has a smaller id; the check and the grant are one atomic store step.",
        "safety", "election", None, ((frozenset({"tick"}), i4_grant),),
        strengthening=ELECTION_FACTS),
    Invariant(
        "I5", "Progress", "active workers eventually drain their assigned queues",
        "Under weak fairness (every live worker that could be handed a task eventually "
        "fetches; time passes), if publishing stops and at least one worker stays up, every "
        "task eventually becomes ACKED or DEAD.",
        "Ranking: the sum over unfinished tasks of (max_deliveries - deliveries) plus the "
        "lease time left. Leases expire with time, expired tasks return to a live worker's "
        "queue (orphans are reassigned round-robin), a fair worker fetches them, and each "
        "delivery spends one of max_deliveries, after which the task is dead-lettered. The "
        "seed's 'tasks persist until acknowledged' without expiry loses this: a task leased "
        "to a crashed worker is never delivered again.",
        "liveness", "broker",
        strengthening="Ranking function: sum over READY/LEASED tasks of (max_deliveries - dl) "
                      "* (lease + 2), plus exp + 1 while LEASED; proven never to rise except by "
                      "publish or extend and to fall on every delivery, settle and running-lease "
                      "tick (the bound on fair steps is not yet proven)."),
    Invariant(
        "I6", "RoundRobinBalance", "assigns each incoming task to the next worker in turn",
        "Among workers live throughout, round-robin assignment counts differ by at most one.",
        "The cursor moves just past every worker it assigns to, so between two assignments "
        "to the same always-live worker the cursor passes every other always-live worker, "
        "which is assigned first.",
        "safety", "broker", i6_state, policies=("round_robin", "work_stealing"),
        strengthening=BROKER_FACTS + " gone[k] == 0 => age[k] < worker_timeout; for "
                      "always-live workers i before j reading cyclically from the cursor: "
                      "asg[i] <= asg[j] <= asg[i] + 1."),
    Invariant(
        "I7", "WorkConserving", "idle workers pull tasks from peers",
        "With stealing on, fetch returns nothing only when no queue it may draw from holds a "
        "READY task; a steal never takes a leased task.",
        "After the prelude every READY task sits in a live worker's queue; a fetch first "
        "looks at its own queue, then at the peer with the most READY tasks, and only READY "
        "tasks are eligible.",
        "safety", "broker", None, ((frozenset({"fetch"}), i7_fetch),),
        policies=("work_stealing",), strengthening=BROKER_FACTS),
    Invariant(
        "I8", "Convergence", "random shuffles confirm convergence",
        "With stable membership and no faults, under weak fairness of every up node's tick "
        "and of time, the lease is eventually held by the minimum up, reachable node.",
        "A holder with a smaller live member resigns at its next tick; the smallest node "
        "campaigns when the lease is free or expired and is then the only eligible grantee; "
        "nothing larger can take it while it heartbeats.",
        "liveness", "election"),
    Invariant(
        "I9", "BoundedRedelivery", "(none)",
        "A task is delivered at most max_deliveries times and acked at most once.",
        "Deliveries only increase at fetch, and a task whose count reached max_deliveries is "
        "dead-lettered instead of returning to READY; an ack needs a LEASED task, and ACKED "
        "is final.",
        "safety", "broker", i9_state, strengthening=BROKER_FACTS),
)

BY_ID = {i.id: i for i in INVARIANTS}


def applicable(m: Model) -> list[Invariant]:
    """The invariants that speak about this model (for a composite: about each part)."""
    parts = m.extra.get("parts")
    if parts is None:
        return [i for i in INVARIANTS if i.applies(m)]
    return [projected(i, prefix, part, lo, hi)
            for prefix, part, lo, hi in parts for i in INVARIANTS
            if i.applies(part) and i.kind == "safety"]


def projected(inv: Invariant, prefix: str, part: Model, lo: int, hi: int) -> Invariant:
    """A part's safety invariant, evaluated on that part's slice of a composite state.

    The part's own actions are named ``prefix.action`` in the composite; the
    shared ``advance`` keeps its name. Liveness stays with the parts' own checks."""
    def state(o: Ops, m: Model, s: SymState) -> V:
        assert inv.state is not None
        return inv.state(o, part, s[lo:hi])

    def lift(pred: StepPred) -> StepPred:
        def step(o: Ops, m: Model, pre: SymState, mid: SymState, post: SymState,
                 args: tuple[int, ...], result: V) -> V:
            return pred(o, part, pre[lo:hi], mid[lo:hi], post[lo:hi], args, result)
        return step

    def rename(names: frozenset[str]) -> frozenset[str]:
        return frozenset(n if n == "advance" else f"{prefix}.{n}" for n in names)

    return Invariant(inv.id, inv.name, inv.seed, inv.claim, inv.sketch, inv.kind, "composed",
                     state if inv.state is not None else None,
                     tuple((rename(names), lift(p)) for names, p in inv.steps),
                     inv.policies, inv.strengthening)
