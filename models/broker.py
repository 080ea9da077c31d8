"""The reference broker: queues, leases, acks, dead-letter, dispatch policies, restart.

Exactly the deterministic rules of ``CONFORMANCE.md`` over a finite state:

* tasks are published in index order, so task ``t`` is the ``t``-th publish
  (task names are interchangeable, so this loses nothing) and the publish
  order of a task *is* its index;
* time is kept *relative*: a lease stores the time it has left (0 = expired),
  a worker the time since it was last seen, saturating at the timeout. Every
  comparison the semantics make is against those constants, so the
  abstraction is exact and the state space is finite without a time bound.

Every action runs :func:`prelude` first (mark the caller seen, expire leases in
publish order, reassign orphaned ready tasks by the round-robin cursor),
exactly as an implementation must at the start of every broker operation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from taskward.models.core import (
    CONCRETE,
    Action,
    Field,
    Layout,
    Model,
    Ops,
    State,
    SymState,
    V,
    Writer,
    clamp,
    clamp_add,
    count,
    shared,
)

UNPUB, READY, LEASED, ACKED, DEAD = range(5)
STATUS_NAMES = ("UNPUBLISHED", "READY", "LEASED", "ACKED", "DEAD")
NONE = -1
POLICIES = ("shared", "round_robin", "work_stealing")


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """The bound of one exploration: sizes, time constants (in ticks) and policy."""

    workers: int = 2
    tasks: int = 3
    priorities: int = 2
    policy: str = "shared"
    lease: int = 2
    max_deliveries: int = 2
    worker_timeout: int = 3
    crashes: bool = True
    restart: bool = True

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"unknown policy {self.policy!r}; use one of {POLICIES}")
        if min(self.workers, self.tasks, self.priorities, self.lease, self.max_deliveries) < 1:
            raise ValueError("workers, tasks, priorities, lease and max_deliveries must be >= 1")

    @property
    def per_worker(self) -> bool:
        return self.policy != "shared"

    def bound(self) -> dict[str, int | str | bool]:
        """The bound as printed beside every verdict."""
        return {
            "workers": self.workers, "tasks": self.tasks, "priorities": self.priorities,
            "policy": self.policy, "lease": self.lease, "max_deliveries": self.max_deliveries,
            "worker_timeout": self.worker_timeout,
        }


def layout(c: BrokerConfig) -> Layout:
    """The broker's state: per task, per worker, and a few scalars."""
    T, W, M = c.tasks, c.workers, c.max_deliveries
    seq_hi = T * (M + 2)
    return Layout([
        Field("st", T, UNPUB, DEAD, "status: 0 unpublished, 1 READY, 2 LEASED, 3 ACKED, 4 DEAD"),
        Field("pr", T, 0, c.priorities - 1, "priority (higher is more urgent)"),
        Field("sq", T, 0, seq_hi, "the position the broker orders the task by"),
        Field("own", T, NONE, W - 1, "queue owner when READY, lease holder when LEASED"),
        Field("exp", T, 0, c.lease, "lease time left; 0 means expired"),
        Field("dl", T, 0, M + 1, "deliveries so far"),
        Field("drank", T, 0, T, "1-based position in the dead-letter store; 0 = not dead"),
        Field("ackc", T, 0, 2, "accepted acks", ghost=True),
        Field("age", W, 0, c.worker_timeout, "time since the worker was last seen (saturating)"),
        Field("up", W, 0, 1, "the worker process runs (0 after a crash)"),
        Field("asg", W, 0, 2, "round-robin assignments to the worker, relative to the fewest "
              "among always-live workers, saturating at 2", ghost=True),
        Field("gone", W, 0, 1, "the worker was not live at some moment", ghost=True),
        Field("npub", 1, 0, T, "tasks published so far"),
        Field("nseq", 1, 0, seq_hi, "next sequence number"),
        Field("cursor", 1, 0, W - 1, "round-robin cursor"),
    ])


def initial(c: BrokerConfig, L: Layout) -> State:
    """Nothing published; every worker up and seen at time 0."""
    s = [0] * L.size
    for t in range(c.tasks):
        s[L.offset["own"] + t] = NONE
    for w in range(c.workers):
        s[L.offset["up"] + w] = 1
    return tuple(s)


# ----------------------------------------------------------------- the rules


def live(o: Ops, c: BrokerConfig, w: Writer) -> list[V]:
    """A worker is live while its last call is less than ``worker_timeout`` ago."""
    return [a < c.worker_timeout for a in w.arr("age")]


def kill(o: Ops, w: Writer, t: int, when: V, n_dead: V) -> V:
    """Dead-letter task ``t`` when ``when`` holds; returns the new count of dead tasks."""
    n_dead = n_dead + o.b2i(when)
    w.set("st", o.ite(when, DEAD, w.get("st", t)), t)
    w.set("drank", o.ite(when, n_dead, w.get("drank", t)), t)
    return n_dead


def normalise_assignments(o: Ops, c: BrokerConfig, w: Writer) -> None:
    """Keep only what I6 can observe of the assignment counts: their differences.

    Counts of workers that were ever not live are irrelevant (0); the others are
    shifted so the smallest is 0 and saturate at 2 (a difference of 2 already
    breaks I6). This keeps the ghost finite without changing any verdict."""
    alive = [g == 0 for g in w.arr("gone")]
    low: V = c.tasks * (c.max_deliveries + 1)
    for k in range(c.workers):
        low = o.ite(o.and_(alive[k], w.get("asg", k) < low), w.get("asg", k), low)
    for k in range(c.workers):
        shifted = w.get("asg", k) - low
        # shifted >= 0 already (low is the minimum); clamping below at 0 changes
        # nothing and tells the solver's width analysis, which cannot see that.
        w.set("asg", o.ite(alive[k], clamp(o, shifted, 0, 2), 0), k)


def ready_in(o: Ops, w: Writer, c: BrokerConfig, k: V) -> list[V]:
    """Which tasks are READY in worker ``k``'s queue."""
    return [o.and_(w.get("st", t) == READY, w.get("own", t) == k) for t in range(c.tasks)]


class Broker:
    """The broker's rules and actions, bound to one configuration.

    Each rule is a small method so that a model mutant overrides exactly the
    rule it gets wrong and inherits everything else."""

    def __init__(self, c: BrokerConfig) -> None:
        self.c = c
        self.L = layout(c)

    # round-robin ------------------------------------------------------------------
    def alive(self, o: Ops, w: Writer) -> list[V]:
        """Workers the round-robin cursor may assign to."""
        return live(o, self.c, w)

    def rr_pick(self, o: Ops, w: Writer, alive: list[V]) -> V:
        """The first live worker at or after the cursor (wrapping), or NONE."""
        c = self.c
        cur = w.get("cursor")
        best: V = NONE
        best_d: V = c.workers
        for k in range(c.workers):
            d = o.ite(k >= cur, k - cur, k - cur + c.workers)
            nearer = o.and_(alive[k], d < best_d)
            best = o.ite(nearer, k, best)
            best_d = o.ite(nearer, d, best_d)
        return best

    def cursor_after(self, o: Ops, pick: V) -> V:
        """The cursor moves to just past the worker it assigned to."""
        return o.ite(pick == self.c.workers - 1, 0, pick + 1)

    def rr_assign(self, o: Ops, w: Writer, t: int, when: V, alive: list[V]) -> None:
        """Assign task ``t`` by the cursor when ``when`` holds; no live worker: unassigned."""
        c = self.c
        pick = self.rr_pick(o, w, alive)
        w.set("own", o.ite(when, pick, w.get("own", t)), t)
        moved = o.and_(when, pick != NONE)
        w.set("cursor", o.ite(moved, self.cursor_after(o, pick), w.get("cursor")))
        for k in range(c.workers):
            w.set("asg", w.get("asg", k) + o.b2i(o.and_(moved, pick == k)), k)
        normalise_assignments(o, c, w)

    # the prelude ------------------------------------------------------------------
    def exhausted(self, o: Ops, dl: V) -> V:
        """A task delivered max_deliveries times may not return to READY."""
        return dl >= self.c.max_deliveries

    def expire_leases(self, o: Ops, w: Writer) -> None:
        """Every lease with no time left ends, in publish order: DEAD at the limit, else READY."""
        n_dead = count(o, [x == DEAD for x in w.arr("st")])
        for t in range(self.c.tasks):
            ended = o.and_(w.get("st", t) == LEASED, w.get("exp", t) <= 0)
            dies = o.and_(ended, self.exhausted(o, w.get("dl", t)))
            n_dead = kill(o, w, t, dies, n_dead)
            w.set("st", o.ite(o.and_(ended, o.not_(dies)), READY, w.get("st", t)), t)

    def reassign_orphans(self, o: Ops, w: Writer) -> None:
        """READY tasks unassigned or in a non-live worker's queue go round-robin to live ones."""
        c = self.c
        alive = live(o, c, w)
        for t in range(c.tasks):
            own = w.get("own", t)
            owner_live = o.or_(*[o.and_(own == k, alive[k]) for k in range(c.workers)])
            self.rr_assign(o, w, t, o.and_(w.get("st", t) == READY, o.not_(owner_live)),
                           self.alive(o, w))

    def pre(self, o: Ops, s: SymState, caller: int = NONE) -> tuple[V, ...]:
        """What every broker operation does first, in the contract's order."""
        return shared(o, id(self), s, caller, lambda who: self.prelude(o, s, who))

    def prelude(self, o: Ops, s: SymState, caller: V) -> tuple[V, ...]:
        """:meth:`pre`'s steps: mark the caller seen, expire leases, reassign orphans."""
        w = Writer(self.L, s)
        for k in range(self.c.workers):
            w.set("age", o.ite(caller == k, 0, w.get("age", k)), k)
        self.expire_leases(o, w)
        if self.c.per_worker:
            self.reassign_orphans(o, w)
        return w.state()

    # choosing a task ----------------------------------------------------------------
    def better(self, o: Ops, pa: V, sa: V, pb: V, sb: V) -> V:
        """Task a beats task b: higher priority, then smaller sequence number."""
        return o.or_(pa > pb, o.and_(pa == pb, sa < sb))

    def best_of(self, o: Ops, w: Writer, eligible: list[V]) -> V:
        """The best eligible task index, or NONE."""
        best: V = NONE
        bp: V = -1
        bs: V = 0
        for t in range(self.c.tasks):
            p, q = w.get("pr", t), w.get("sq", t)
            take = o.and_(eligible[t], o.or_(best == NONE, self.better(o, p, q, bp, bs)))
            best, bp, bs = o.ite(take, t, best), o.ite(take, p, bp), o.ite(take, q, bs)
        return best

    def stealable(self, o: Ops, w: Writer, k: V) -> list[V]:
        """What a thief may take from worker ``k``: its READY tasks, never leased ones."""
        return ready_in(o, w, self.c, k)

    def victim(self, o: Ops, w: Writer, thief: int) -> V:
        """The other worker with the most stealable tasks (ties: smallest id), or NONE."""
        best: V = NONE
        most: V = 0
        for k in range(self.c.workers):
            if k == thief:
                continue
            n = count(o, self.stealable(o, w, k))
            take = n > most
            best, most = o.ite(take, k, best), o.ite(take, n, most)
        return best

    def steal(self, o: Ops, w: Writer, thief: int) -> V:
        """The best stealable task of the victim, or NONE."""
        v = self.victim(o, w, thief)
        return self.best_of(o, w, [o.and_(v != NONE, x) for x in self.stealable(o, w, v)])

    def choose(self, o: Ops, w: Writer, worker: int) -> V:
        """The task ``fetch(worker)`` delivers, by the policy; NONE when there is none."""
        c = self.c
        if c.policy == "shared":
            return self.best_of(o, w, [x == READY for x in w.arr("st")])
        own = self.best_of(o, w, ready_in(o, w, c, worker))
        if c.policy == "round_robin":
            return own
        return o.ite(own != NONE, own, self.steal(o, w, worker))

    # publish ------------------------------------------------------------------
    def publish_guard(self, o: Ops, s: SymState, prio: int) -> V:
        return self.L.get(s, "npub") < self.c.tasks

    def publish_pre(self, o: Ops, s: SymState, prio: int) -> tuple[V, ...]:
        return self.pre(o, s)

    def publish(self, o: Ops, s: SymState, prio: int) -> tuple[tuple[V, ...], V]:
        """The next task becomes READY with the next sequence number (and, per worker, an owner)."""
        w = Writer(self.L, self.pre(o, s))
        n, seq = w.get("npub"), w.get("nseq")
        alive = self.alive(o, w)
        for t in range(self.c.tasks):
            hit = n == t
            w.set("st", o.ite(hit, READY, w.get("st", t)), t)
            w.set("pr", o.ite(hit, prio, w.get("pr", t)), t)
            w.set("sq", o.ite(hit, seq, w.get("sq", t)), t)
            if self.c.per_worker:
                self.rr_assign(o, w, t, hit, alive)
        w.set("npub", n + 1)
        w.set("nseq", seq + 1)
        return w.state(), n

    # fetch --------------------------------------------------------------------
    def worker_up(self, o: Ops, s: SymState, worker: int, *rest: int) -> V:
        return self.L.get(s, "up", worker) == 1

    def worker_pre(self, o: Ops, s: SymState, worker: int, *rest: int) -> tuple[V, ...]:
        return self.pre(o, s, worker)

    def fetch(self, o: Ops, s: SymState, worker: int) -> tuple[tuple[V, ...], V]:
        """The best task the policy lets this worker draw goes to it under a fresh lease."""
        w = Writer(self.L, self.pre(o, s, worker))
        got = self.choose(o, w, worker)
        for t in range(self.c.tasks):
            hit = got == t
            w.set("st", o.ite(hit, LEASED, w.get("st", t)), t)
            w.set("own", o.ite(hit, worker, w.get("own", t)), t)
            w.set("exp", o.ite(hit, self.c.lease, w.get("exp", t)), t)
            w.set("dl", w.get("dl", t) + o.b2i(hit), t)
        return w.state(), got

    # ack / nack / extend ------------------------------------------------------
    def holds(self, o: Ops, w: Writer, worker: int, t: int) -> V:
        """The worker holds an unexpired lease on the task (checked after the prelude)."""
        return o.and_(w.get("st", t) == LEASED, w.get("own", t) == worker, w.get("exp", t) > 0)

    def believes_holds(self, o: Ops, s: SymState, worker: int, t: int, *rest: int) -> V:
        """Explorer filter: a worker only answers for tasks the store shows it holding.

        Any other ack/nack/extend is rejected after the prelude, the same effect as
        ``heartbeat(worker)``, so skipping it loses no state of the correct model."""
        return o.and_(self.L.get(s, "st", t) == LEASED, self.L.get(s, "own", t) == worker)

    def ack(self, o: Ops, s: SymState, worker: int, t: int) -> tuple[tuple[V, ...], V]:
        """Only the holder of an unexpired lease may ack; anything else changes nothing."""
        w = Writer(self.L, self.pre(o, s, worker))
        ok = self.holds(o, w, worker, t)
        w.set("st", o.ite(ok, ACKED, w.get("st", t)), t)
        w.set("ackc", w.get("ackc", t) + o.b2i(ok), t)
        return w.state(), o.b2i(ok)

    def nack(self, o: Ops, s: SymState, worker: int, t: int, requeue: int
             ) -> tuple[tuple[V, ...], V]:
        """Back to READY keeping its place, or DEAD when not requeued or out of deliveries."""
        w = Writer(self.L, self.pre(o, s, worker))
        ok = self.holds(o, w, worker, t)
        dies = o.and_(ok, o.or_(requeue == 0, self.exhausted(o, w.get("dl", t))))
        n_dead = count(o, [x == DEAD for x in w.arr("st")])
        kill(o, w, t, dies, n_dead)
        w.set("st", o.ite(o.and_(ok, o.not_(dies)), READY, w.get("st", t)), t)
        return w.state(), o.b2i(ok)

    def extend(self, o: Ops, s: SymState, worker: int, t: int) -> tuple[tuple[V, ...], V]:
        """The holder renews its lease to a full lease from now."""
        w = Writer(self.L, self.pre(o, s, worker))
        ok = self.holds(o, w, worker, t)
        w.set("exp", o.ite(ok, self.c.lease, w.get("exp", t)), t)
        return w.state(), o.b2i(ok)

    def heartbeat(self, o: Ops, s: SymState, worker: int) -> tuple[tuple[V, ...], V]:
        """The worker is seen; nothing else but the prelude."""
        return self.pre(o, s, worker), 1

    # environment --------------------------------------------------------------
    def always(self, o: Ops, s: SymState, *args: int) -> V:
        return True

    def advance(self, o: Ops, s: SymState) -> tuple[tuple[V, ...], V]:
        """One tick passes: leases run down, workers age (both saturate at their limit)."""
        w = Writer(self.L, s)
        for t in range(self.c.tasks):
            w.set("exp", clamp_add(o, w.get("exp", t), -1, 0, self.c.lease), t)
        for k in range(self.c.workers):
            aged = clamp_add(o, w.get("age", k), 1, 0, self.c.worker_timeout)
            w.set("age", aged, k)
            w.set("gone", o.ite(aged >= self.c.worker_timeout, 1, w.get("gone", k)), k)
        if self.c.per_worker:
            normalise_assignments(o, self.c, w)
        return w.state(), 1

    def crash_guard(self, o: Ops, s: SymState, worker: int) -> V:
        return self.L.get(s, "up", worker) == 1

    def crash(self, o: Ops, s: SymState, worker: int) -> tuple[tuple[V, ...], V]:
        """The worker process stops for good; its leases run out on their own."""
        w = Writer(self.L, s)
        w.set("up", 0, worker)
        return w.state(), 1

    def restart(self, o: Ops, s: SymState) -> tuple[tuple[V, ...], V]:
        """A durable broker restarts from its file: every task keeps its state."""
        return tuple(s), 1

    def actions(self) -> tuple[Action, ...]:
        c = self.c
        W = tuple(range(c.workers))
        T = tuple(range(c.tasks))
        acts = [
            Action("publish", (("priority", tuple(range(c.priorities))),), self.publish_guard,
                   self.publish, "op", self.publish.__doc__ or "", self.publish_pre),
            Action("fetch", (("worker", W),), self.worker_up, self.fetch, "op",
                   self.fetch.__doc__ or "", self.worker_pre),
            Action("ack", (("worker", W), ("task", T)), self.worker_up, self.ack, "op",
                   self.ack.__doc__ or "", self.worker_pre, self.believes_holds),
            Action("nack", (("worker", W), ("task", T), ("requeue", (1, 0))), self.worker_up,
                   self.nack, "op", self.nack.__doc__ or "", self.worker_pre,
                   self.believes_holds),
            Action("extend", (("worker", W), ("task", T)), self.worker_up, self.extend, "op",
                   self.extend.__doc__ or "", self.worker_pre, self.believes_holds),
            Action("heartbeat", (("worker", W),), self.worker_up, self.heartbeat, "op",
                   self.heartbeat.__doc__ or "", self.worker_pre),
            Action("advance", (), self.always, self.advance, "time", self.advance.__doc__ or ""),
        ]
        if c.crashes:
            acts.append(Action("crash", (("worker", W),), self.crash_guard, self.crash, "fault",
                               self.crash.__doc__ or ""))
        if c.restart:
            acts.append(Action("restart", (), self.always, self.restart, "fault",
                               self.restart.__doc__ or ""))
        return tuple(acts)


def worker_name(k: int) -> str:
    return f"w{k + 1}"


def task_name(t: int) -> str:
    return f"t{t + 1}"


def describe(name: str, args: tuple[int, ...]) -> str:
    """``ack(w1, t2)`` rather than ``ack(0, 1)``."""
    parts: list[str] = []
    if name in ("fetch", "heartbeat", "crash", "ack", "nack", "extend") and args:
        parts.append(worker_name(args[0]))
    if name in ("ack", "nack", "extend"):
        parts.append(task_name(args[1]))
    if name == "nack":
        parts.append("requeue" if args[2] else "dead-letter")
    if name == "publish":
        parts.append(f"priority={args[0]}")
    return f"{name}({', '.join(parts)})"


def canon_shared(c: BrokerConfig, L: Layout) -> object:
    """Symmetry reduction for the shared policy, where workers are interchangeable.

    Nothing in the shared policy depends on a worker's identity (no rotation, no
    tie-break by id), so relabelling workers maps runs to runs and every
    invariant is invariant under it: sorting workers by what they hold is sound.
    """
    W, T = c.workers, c.tasks
    o_age, o_up, o_asg, o_gone, o_own = (L.offset[k] for k in ("age", "up", "asg", "gone", "own"))

    def canon(s: State) -> State:
        owns = s[o_own : o_own + T]
        keys = [(s[o_up + k], s[o_age + k], s[o_asg + k], s[o_gone + k],
                 tuple(t for t in range(T) if owns[t] == k)) for k in range(W)]
        order = sorted(range(W), key=keys.__getitem__)
        if order == list(range(W)):
            return s
        new_of = {old: new for new, old in enumerate(order)}
        out = list(s)
        for new, old in enumerate(order):
            for name in ("age", "up", "asg", "gone"):
                out[L.offset[name] + new] = s[L.offset[name] + old]
        for t in range(T):
            out[o_own + t] = new_of[owns[t]] if owns[t] != NONE else NONE
        return tuple(out)

    return canon


def build(c: BrokerConfig | None = None, *, symmetry: bool = True,
          rules: type[Broker] | None = None, mutant: str | None = None) -> Model:
    """The broker model for a bound: the correct rules, or a mutant's subclass of them."""
    c = c or BrokerConfig()
    b = (rules or Broker)(c)
    canon = canon_shared(c, b.L) if (symmetry and c.policy == "shared") else None
    return Model(f"broker[{c.policy}]", b.L, initial(c, b.L), b.actions(), c,
                 canon=canon,  # type: ignore[arg-type]
                 describe_args=describe, mutant=mutant, extra={"impl": b})


def with_config(m: Model, **changes: object) -> BrokerConfig:
    """A copy of a model's broker configuration with some fields changed."""
    cfg: BrokerConfig = m.config
    return replace(cfg, **changes)  # type: ignore[arg-type]


def status(m: Model, s: State, t: int) -> int:
    """The status of task ``t`` in a concrete state."""
    return int(m.layout.get(s, "st", t))


__all__ = ["ACKED", "CONCRETE", "DEAD", "LEASED", "NONE", "READY", "UNPUB", "Broker",
           "BrokerConfig", "build"]
