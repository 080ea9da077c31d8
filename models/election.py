"""The reference election: membership heartbeats, a store lease with epochs, fencing, beliefs.

Nodes are compared by index (the harness names them so that string order is
index order). Time is relative, as in the broker: the store's lease keeps the
time it has left, a member the time since its last tick (saturating), and a
node's *belief* the time it has left on the node's own clock.

Epochs are relative too: each node keeps how many grants behind the store's
current epoch its own epoch is (``stale``, saturating), and the store keeps how
many grants ago the epoch of its last accepted write was issued. Fencing only
ever compares a write's epoch with the current one and with the last accepted
one, so this is exact for those comparisons and keeps the state finite with no
bound on the number of elections. Absolute epochs are recovered by counting
grants (the ``tick`` result is 1 on a grant).

Faults: ``crash(n)`` (the node stops and forgets its belief), ``isolate(n)`` /
``heal(n)`` (it cannot reach the store while its clock runs on), ``pause(n)``
and ``drift(n)``: the node's clock falls one tick behind real time while it
believes it leads, so its belief lasts one tick longer than the store's lease
on its behalf; each is bounded per grant by ``max_pause`` / ``max_drift``.
A node believes it leads for ``lease - margin`` ticks of its own clock, so
beliefs never overlap while ``max_pause + max_drift <= margin`` (I3b).
"""

from __future__ import annotations

from dataclasses import dataclass

from taskward.models.core import (
    Action,
    Effect,
    Field,
    Guard,
    Layout,
    Model,
    Ops,
    State,
    SymState,
    V,
    Writer,
    clamp_add,
)

NONE = -1


@dataclass(frozen=True, slots=True)
class ElectionConfig:
    """The bound of one exploration of the election."""

    nodes: int = 3
    lease: int = 3
    member_timeout: int = 3
    margin: int = 1
    max_pause: int = 1
    max_drift: int = 0
    stale_cap: int = 3
    """Epochs more than this many grants old are all alike (all rejected by fencing)."""
    crashes: bool = True
    isolation: bool = True

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.lease < 1 or self.member_timeout < 1:
            raise ValueError("nodes, lease and member_timeout must be >= 1")
        if not 0 <= self.margin < self.lease:
            raise ValueError("margin must be >= 0 and below the lease")

    def bound(self) -> dict[str, int | str | bool]:
        return {"nodes": self.nodes, "lease": self.lease, "member_timeout": self.member_timeout,
                "margin": self.margin, "max_pause": self.max_pause, "max_drift": self.max_drift}


def layout(c: ElectionConfig) -> Layout:
    N, C = c.nodes, c.stale_cap
    return Layout([
        Field("up", N, 0, 1, "the node process runs"),
        Field("iso", N, 0, 1, "the node cannot reach the store"),
        Field("mem", N, 0, 1, "the node has ticked at least once (is a member)"),
        Field("mage", N, 0, c.member_timeout, "time since the node's last heartbeat in the store"),
        Field("bel", N, 0, c.lease + c.max_pause + c.max_drift,
              "time left on the node's belief that it leads, on its own clock; 0 = does not"),
        Field("stale", N, 0, C, "grants since the node's own epoch was issued; 0 = current"),
        Field("paused", N, 0, c.max_pause, "pause ticks since the node's last grant or renewal"),
        Field("drift", N, 0, c.max_drift, "drift ticks since the node's last grant or renewal"),
        Field("holder", 1, NONE, N - 1, "the node holding the store's lease"),
        Field("lrem", 1, 0, c.lease, "time left on the store's lease; 0 = expired"),
        Field("wage", 1, 0, C + 1, "grants since the epoch of the last accepted write "
              f"({C + 1} = no write yet)", ghost=True),
        Field("wnode", 1, NONE, N - 1, "the node of the last accepted write", ghost=True),
    ])


def initial(c: ElectionConfig, L: Layout) -> State:
    w = Writer(L, [0] * L.size)
    for n in range(c.nodes):
        w.set("up", 1, n)
        w.set("stale", c.stale_cap, n)
    w.set("holder", NONE)
    w.set("wage", c.stale_cap + 1)
    w.set("wnode", NONE)
    return tuple(w.state())


class Election:
    """The election's actions, bound to one configuration."""

    def __init__(self, c: ElectionConfig) -> None:
        self.c = c
        self.L = layout(c)

    def live_members(self, o: Ops, w: Writer) -> list[V]:
        """Members whose heartbeat in the store is fresh."""
        return [o.and_(w.get("mem", n) == 1, w.get("mage", n) < self.c.member_timeout)
                for n in range(self.c.nodes)]

    def smaller_live(self, o: Ops, w: Writer, node: int) -> V:
        """Some live member has a smaller id than ``node``."""
        alive = self.live_members(o, w)
        return o.or_(*alive[:node]) if node else False

    def reachable(self, o: Ops, s: SymState, node: int, *rest: int) -> V:
        return o.and_(self.L.get(s, "up", node) == 1, self.L.get(s, "iso", node) == 0)

    def tick_pre(self, o: Ops, s: SymState, node: int) -> tuple[V, ...]:
        """The heartbeat part of tick: the node is seen now."""
        w = Writer(self.L, s)
        w.set("mem", 1, node)
        w.set("mage", 0, node)
        return w.state()

    def grant(self, o: Ops, w: Writer, node: int, when: V) -> None:
        """A new term: the epoch moves on (every other epoch is one grant staler)."""
        C = self.c.stale_cap
        for n in range(self.c.nodes):
            bumped = clamp_add(o, w.get("stale", n), 1, 0, C)
            w.set("stale", o.ite(when, 0 if n == node else bumped, w.get("stale", n)), n)
        w.set("wage", o.ite(when, clamp_add(o, w.get("wage"), 1, 0, C + 1), w.get("wage")))
        w.set("holder", o.ite(when, node, w.get("holder")))

    def believe(self, o: Ops, w: Writer, node: int, when: V) -> None:
        """Grant or renewal: a full lease in the store, ``lease - margin`` of belief locally."""
        w.set("lrem", o.ite(when, self.c.lease, w.get("lrem")))
        w.set("bel", o.ite(when, self.c.lease - self.c.margin, w.get("bel", node)), node)
        w.set("paused", o.ite(when, 0, w.get("paused", node)), node)
        w.set("drift", o.ite(when, 0, w.get("drift", node)), node)

    def tick(self, o: Ops, s: SymState, node: int) -> tuple[tuple[V, ...], V]:
        """Heartbeat; then renew (no smaller live member), resign (one exists), or campaign."""
        w = Writer(self.L, self.tick_pre(o, s, node))
        smaller = self.smaller_live(o, w, node)
        holds = o.and_(w.get("holder") == node, w.get("lrem") > 0)
        free = o.or_(w.get("holder") == NONE, w.get("lrem") <= 0)
        granted = o.and_(o.not_(holds), free, o.not_(smaller))
        resign = o.and_(holds, smaller)
        self.grant(o, w, node, granted)
        self.believe(o, w, node, o.or_(granted, o.and_(holds, o.not_(smaller))))
        w.set("holder", o.ite(resign, NONE, w.get("holder")))
        w.set("lrem", o.ite(resign, 0, w.get("lrem")))
        w.set("bel", o.ite(resign, 0, w.get("bel", node)), node)
        return w.state(), o.b2i(granted)

    def believes(self, o: Ops, s: SymState, node: int) -> V:
        """Only a node that believes it leads issues leader writes."""
        return o.and_(self.reachable(o, s, node), self.L.get(s, "bel", node) > 0)

    def accepts(self, o: Ops, s: SymState, node: int) -> V:
        """Fencing: the store takes a write only with the current epoch from the live holder."""
        L = self.L
        return o.and_(L.get(s, "stale", node) == 0, L.get(s, "holder") == node,
                      L.get(s, "lrem") > 0)

    def leader_write(self, o: Ops, s: SymState, node: int) -> tuple[tuple[V, ...], V]:
        """The node writes with its epoch; the store records it only if fencing accepts it."""
        w = Writer(self.L, s)
        ok = self.accepts(o, s, node)
        w.set("wage", o.ite(ok, w.get("stale", node), w.get("wage")))
        w.set("wnode", o.ite(ok, node, w.get("wnode")))
        return w.state(), o.b2i(ok)

    def advance(self, o: Ops, s: SymState) -> tuple[tuple[V, ...], V]:
        """One tick of real time: the store's lease, memberships and beliefs all run down."""
        c = self.c
        w = Writer(self.L, s)
        w.set("lrem", clamp_add(o, w.get("lrem"), -1, 0, c.lease))
        hi = c.lease + c.max_pause + c.max_drift
        for n in range(c.nodes):
            w.set("mage", clamp_add(o, w.get("mage", n), 1, 0, c.member_timeout), n)
            w.set("bel", clamp_add(o, w.get("bel", n), -1, 0, hi), n)
        return w.state(), 1

    def can_lag(self, field: str, limit: int) -> Guard:
        def guard(o: Ops, s: SymState, node: int) -> V:
            return o.and_(self.L.get(s, "up", node) == 1, self.L.get(s, "bel", node) > 0,
                          self.L.get(s, field, node) < limit)
        return guard

    def lag(self, field: str) -> Effect:
        def effect(o: Ops, s: SymState, node: int) -> tuple[tuple[V, ...], V]:
            w = Writer(self.L, s)
            w.set("bel", w.get("bel", node) + 1, node)
            w.set(field, w.get(field, node) + 1, node)
            return w.state(), 1
        return effect

    def up(self, o: Ops, s: SymState, node: int) -> V:
        return self.L.get(s, "up", node) == 1

    def crash(self, o: Ops, s: SymState, node: int) -> tuple[tuple[V, ...], V]:
        """The node stops for good; a stopped process believes nothing."""
        w = Writer(self.L, s)
        w.set("up", 0, node)
        w.set("bel", 0, node)
        return w.state(), 1

    def isolated_guard(self, want: int) -> Guard:
        def guard(o: Ops, s: SymState, node: int) -> V:
            return o.and_(self.L.get(s, "up", node) == 1, self.L.get(s, "iso", node) == 1 - want)
        return guard

    def set_iso(self, value: int) -> Effect:
        def effect(o: Ops, s: SymState, node: int) -> tuple[tuple[V, ...], V]:
            w = Writer(self.L, s)
            w.set("iso", value, node)
            return w.state(), 1
        return effect

    def always(self, o: Ops, s: SymState, *args: int) -> V:
        return True

    def actions(self) -> tuple[Action, ...]:
        c = self.c
        N = (("node", tuple(range(c.nodes))),)
        acts = [
            Action("tick", N, self.reachable, self.tick, "op", self.tick.__doc__ or "",
                   self.tick_pre),
            Action("leader_write", N, self.believes, self.leader_write, "op",
                   self.leader_write.__doc__ or ""),
            Action("advance", (), self.always, self.advance, "time", self.advance.__doc__ or ""),
        ]
        if c.max_pause:
            acts.append(Action("pause", N, self.can_lag("paused", c.max_pause),
                               self.lag("paused"), "fault",
                               "A stop-the-world pause: the node acts on a staler belief."))
        if c.max_drift:
            acts.append(Action("drift", N, self.can_lag("drift", c.max_drift),
                               self.lag("drift"), "fault",
                               "Clock drift: the node's clock runs one tick slow."))
        if c.crashes:
            acts.append(Action("crash", N, self.up, self.crash, "fault", self.crash.__doc__ or ""))
        if c.isolation:
            acts.append(Action("isolate", N, self.isolated_guard(1),
                               self.set_iso(1), "fault",
                               "The node loses the store while its clock runs on."))
            acts.append(Action("heal", N, self.isolated_guard(0),
                               self.set_iso(0), "fault",
                               "The node reaches the store again."))
        return tuple(acts)


def node_name(n: int) -> str:
    return f"n{n + 1}"


def describe(name: str, args: tuple[int, ...]) -> str:
    return f"{name}({', '.join(node_name(a) for a in args)})"


def build(c: ElectionConfig | None = None, *, rules: type[Election] | None = None,
          mutant: str | None = None) -> Model:
    """The election model for a bound: the correct rules, or a mutant's subclass of them."""
    c = c or ElectionConfig()
    e = (rules or Election)(c)
    return Model("election", e.L, initial(c, e.L), e.actions(), c, describe_args=describe,
                 mutant=mutant, extra={"impl": e})
