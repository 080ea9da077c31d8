"""Model mutants: the naive claims of SEMANTICS section 5, and one breakage per invariant.

Each mutant is a subclass of the correct rules that gets exactly one rule
wrong (or a configuration outside a stated assumption). The checkers must
find a counterexample for every one; a mutant that survives means a check is
vacuous, and the test suite fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from taskward.models import broker as B
from taskward.models import election as E
from taskward.models.core import Model, Ops, SymState, V, Writer, unpruned


@dataclass(frozen=True, slots=True)
class Mutant:
    """A broken variant of the model, the claim it refutes, and what must catch it."""

    name: str
    claim: str
    breaks: tuple[str, ...]
    """Invariant ids a checker must find violated."""
    section: str
    """Where SEMANTICS.md section 5 lists it ("5.1" ...), or "extra"."""
    make: Callable[[], Model]

    def build(self) -> Model:
        return self.make()


# small bounds at which every mutant's counterexample is short
BROKER_SMALL = B.BrokerConfig(workers=2, tasks=2, priorities=2, lease=1, max_deliveries=2,
                              worker_timeout=2)
ELECTION_SMALL = E.ElectionConfig(nodes=2, lease=2, member_timeout=2, margin=1, max_pause=1,
                                  stale_cap=2)


def _broker(rules: type[B.Broker], name: str, **cfg: object) -> Callable[[], Model]:
    def make() -> Model:
        return unpruned(B.build(replace(BROKER_SMALL, **cfg),  # type: ignore[arg-type]
                                rules=rules, mutant=name))
    return make


def _election(rules: type[E.Election], name: str, **cfg: object) -> Callable[[], Model]:
    def make() -> Model:
        return unpruned(E.build(replace(ELECTION_SMALL, **cfg),  # type: ignore[arg-type]
                                rules=rules, mutant=name))
    return make


# ------------------------------------------------------------------ broker mutants


class TailRedelivery(B.Broker):
    """A nacked task goes to the back of the queue (a new sequence number)."""

    def nack(self, o: Ops, s: SymState, worker: int, t: int, requeue: int
             ) -> tuple[tuple[V, ...], V]:
        post, ok = super().nack(o, s, worker, t, requeue)
        w = Writer(self.L, post)
        back = o.and_(ok == 1, w.get("st", t) == B.READY)
        w.set("sq", o.ite(back, w.get("nseq"), w.get("sq", t)), t)
        w.set("nseq", o.ite(back, w.get("nseq") + 1, w.get("nseq")))
        return w.state(), ok


class NoLeaseExpiry(B.Broker):
    """Tasks persist until acknowledged, and leases never run out."""

    def expire_leases(self, o: Ops, w: Writer) -> None:
        return None

    def advance(self, o: Ops, s: SymState) -> tuple[tuple[V, ...], V]:
        post, r = super().advance(o, s)
        w = Writer(self.L, post)
        for t in range(self.c.tasks):
            w.set("exp", s[self.L.offset["exp"] + t], t)
        return w.state(), r


class AssignToDeadWorkers(B.Broker):
    """Round-robin keeps assigning to workers that stopped heartbeating, and never moves work."""

    def alive(self, o: Ops, w: Writer) -> list[V]:
        return [True] * self.c.workers

    def reassign_orphans(self, o: Ops, w: Writer) -> None:
        alive = self.alive(o, w)
        for t in range(self.c.tasks):
            orphan = o.and_(w.get("st", t) == B.READY, w.get("own", t) == B.NONE)
            self.rr_assign(o, w, t, orphan, alive)


class Lifo(B.Broker):
    """The newest task is delivered first."""

    def better(self, o: Ops, pa: V, sa: V, pb: V, sb: V) -> V:
        return o.or_(pa > pb, o.and_(pa == pb, sa > sb))


class PriorityInversion(B.Broker):
    """Priority is ignored: plain FIFO."""

    def better(self, o: Ops, pa: V, sa: V, pb: V, sb: V) -> V:
        return sa < sb


class StealLeased(B.Broker):
    """A thief may take a task another worker holds under a lease."""

    def stealable(self, o: Ops, w: Writer, k: V) -> list[V]:
        return [o.and_(o.or_(w.get("st", t) == B.READY, w.get("st", t) == B.LEASED),
                       w.get("own", t) == k) for t in range(self.c.tasks)]


class NoStealing(B.Broker):
    """An idle worker never looks at its peers' queues."""

    def steal(self, o: Ops, w: Writer, thief: int) -> V:
        return B.NONE


class StaleAck(B.Broker):
    """The ack is checked against the lease record before expired leases are processed."""

    def ack(self, o: Ops, s: SymState, worker: int, t: int) -> tuple[tuple[V, ...], V]:
        ok = o.and_(self.L.get(s, "st", t) == B.LEASED, self.L.get(s, "own", t) == worker)
        w = Writer(self.L, self.pre(o, s, worker))
        w.set("st", o.ite(ok, B.ACKED, w.get("st", t)), t)
        w.set("ackc", w.get("ackc", t) + o.b2i(ok), t)
        return w.state(), o.b2i(ok)


class RestartDropsLeases(B.Broker):
    """A restart keeps only READY tasks: whatever was leased is gone."""

    def restart(self, o: Ops, s: SymState) -> tuple[tuple[V, ...], V]:
        w = Writer(self.L, s)
        for t in range(self.c.tasks):
            w.set("st", o.ite(w.get("st", t) == B.LEASED, B.UNPUB, w.get("st", t)), t)
        return w.state(), 1


class NackLosesTask(B.Broker):
    """A requeued nack deletes the task instead of returning it to READY."""

    def nack(self, o: Ops, s: SymState, worker: int, t: int, requeue: int
             ) -> tuple[tuple[V, ...], V]:
        post, ok = super().nack(o, s, worker, t, requeue)
        w = Writer(self.L, post)
        w.set("st", o.ite(w.get("st", t) == B.READY, B.UNPUB, w.get("st", t)), t)
        return w.state(), ok


class StickyCursor(B.Broker):
    """The round-robin cursor stays on the worker it just assigned to."""

    def cursor_after(self, o: Ops, pick: V) -> V:
        return pick


class DeadLetterOffByOne(B.Broker):
    """Dead-lettering waits for one delivery too many."""

    def exhausted(self, o: Ops, dl: V) -> V:
        return dl > self.c.max_deliveries


# ------------------------------------------------------------------ election mutants


class OwnViewElection(E.Election):
    """Each node elects the minimum of its own membership view; no shared lease, no epochs."""

    def reachable(self, o: Ops, s: SymState, node: int, *rest: int) -> V:
        return self.L.get(s, "up", node) == 1

    def tick(self, o: Ops, s: SymState, node: int) -> tuple[tuple[V, ...], V]:
        iso = self.L.get(s, "iso", node) == 1
        w = Writer(self.L, s)
        w.set("mem", o.ite(iso, w.get("mem", node), 1), node)
        w.set("mage", o.ite(iso, w.get("mage", node), 0), node)
        seen = self.live_members(o, w)
        smaller = o.and_(o.not_(iso), o.or_(*seen[:node])) if node else False
        w.set("bel", o.ite(smaller, 0, self.c.lease - self.c.margin), node)
        return w.state(), o.b2i(o.not_(smaller))


class NoFencing(E.Election):
    """The store accepts a write from any node that believes it leads."""

    def accepts(self, o: Ops, s: SymState, node: int) -> V:
        return self.L.get(s, "bel", node) > 0


class NonMinimalGrant(E.Election):
    """The lease goes to whoever asks while it is free, smaller live members or not."""

    def smaller_live(self, o: Ops, w: Writer, node: int) -> V:
        return False


class NeverResign(E.Election):
    """A holder keeps renewing even when a smaller live member exists."""

    def tick(self, o: Ops, s: SymState, node: int) -> tuple[tuple[V, ...], V]:
        w = Writer(self.L, s)
        holds = o.and_(w.get("holder") == node, w.get("lrem") > 0)
        post, granted = super().tick(o, s, node)
        p = Writer(self.L, post)
        p.set("holder", o.ite(holds, node, p.get("holder")))
        p.set("lrem", o.ite(holds, self.c.lease, p.get("lrem")))
        p.set("bel", o.ite(holds, self.c.lease - self.c.margin, p.get("bel", node)), node)
        return p.state(), granted


class EpochReuse(E.Election):
    """A re-grant to the node that held the lease last keeps the old epoch."""

    def grant(self, o: Ops, w: Writer, node: int, when: V) -> None:
        regrant = w.get("holder") == node
        super().grant(o, w, node, o.and_(when, o.not_(regrant)))
        w.set("holder", o.ite(when, node, w.get("holder")))


MUTANTS: dict[str, Mutant] = {m.name: m for m in [
    Mutant("own-view-election", "With unique identifiers a single leader exists: each node "
           "elects the minimum of its own membership view, without a shared store.",
           ("I3b",), "5.1", _election(OwnViewElection, "own-view-election")),
    Mutant("no-fencing", "Lease election without fencing: the store accepts any write from a "
           "node that believes it leads.", ("I3a",), "5.2",
           _election(NoFencing, "no-fencing", max_pause=2)),
    Mutant("tail-redelivery", "Dequeues mirror enqueues, with a redelivered task put at the "
           "back of the queue.", ("I2",), "5.3", _broker(TailRedelivery, "tail-redelivery")),
    Mutant("no-lease-expiry", "Tasks persist until acknowledged, so no task is lost — with no "
           "lease expiry (I1 still holds).", ("I5",), "5.4",
           _broker(NoLeaseExpiry, "no-lease-expiry")),
    Mutant("rr-dead-worker", "Round-robin that keeps assigning to a dead worker.", ("I5",), "5.5",
           _broker(AssignToDeadWorkers, "rr-dead-worker", policy="round_robin")),
    Mutant("lifo", "LIFO delivery.", ("I2",), "5.6", _broker(Lifo, "lifo")),
    Mutant("steal-leased", "A steal that takes a leased task.", ("I7",), "5.6",
           _broker(StealLeased, "steal-leased", policy="work_stealing")),
    Mutant("stale-ack", "An ack accepted from a worker whose lease expired.", ("I1",), "5.6",
           _broker(StaleAck, "stale-ack")),
    Mutant("restart-drops-leases", "A restart that drops leased tasks.", ("I1",), "5.6",
           _broker(RestartDropsLeases, "restart-drops-leases")),
    Mutant("nack-loses-task", "A nack that loses the task.", ("I1",), "extra",
           _broker(NackLosesTask, "nack-loses-task")),
    Mutant("priority-inversion", "Priority is ignored.", ("I2",), "extra",
           _broker(PriorityInversion, "priority-inversion")),
    Mutant("no-stealing", "Idle workers do not pull from peers.", ("I7",), "extra",
           _broker(NoStealing, "no-stealing", policy="work_stealing")),
    Mutant("sticky-cursor", "Round-robin whose cursor does not move past the worker it chose.",
           ("I6",), "extra", _broker(StickyCursor, "sticky-cursor", policy="round_robin")),
    Mutant("dead-letter-off-by-one", "Dead-lettering after max_deliveries + 1 deliveries.",
           ("I9",), "extra", _broker(DeadLetterOffByOne, "dead-letter-off-by-one")),
    Mutant("pause-beyond-margin", "Beliefs stay single when pauses exceed the safety margin.",
           ("I3b",), "extra", _election(E.Election, "pause-beyond-margin", max_pause=2)),
    Mutant("non-minimal-grant", "The lease goes to whoever asks first.", ("I4",), "extra",
           _election(NonMinimalGrant, "non-minimal-grant")),
    Mutant("never-resign", "A leader keeps its lease while a smaller node is live.", ("I8",),
           "extra", _election(NeverResign, "never-resign")),
    Mutant("epoch-reuse", "A re-grant to the same node may keep its epoch.", ("I3a",), "extra",
           _election(EpochReuse, "epoch-reuse")),
]}
