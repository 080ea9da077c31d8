"""Straight-line Python compiled from the one model definition, for the concrete checkers.

Run with :data:`~taskward.models.core.CONCRETE`, every action re-executes its
generic code on every state: ``Writer`` objects, per-slot dict lookups, both
branches of every ``o.ite``, loops over configured sizes. All of that is the
same for every state: only the slot values differ. So each *action instance*
(an action with concrete arguments) is run once with a tracing :class:`Ops`
whose values are expression nodes over the input slots ``s[i]``. Everything
concrete folds away (arguments, sizes, constants), equal subexpressions are
shared (hash-consing), and what is left is emitted as one small Python
function per instance: conditional expressions for ``ite`` (only the taken
branch is evaluated), ``and``/``or`` for the connectives, and an output tuple
that copies every slot the action does not change.

Because only the tracing ops ever see the model code, a mutant (a subclass
overriding an effect) compiles exactly like the correct model, and there is
still a single definition of every action.

:func:`compile_model` keeps the :class:`Model`/:class:`Action` interface (the
compiled guard/effect/prune/prelude dispatch on their arguments, and hand any
non-concrete ``Ops`` to the original code). :func:`successors_fn` goes one
step further for the explorer: one function per model that evaluates every
instance's guard, filter and effect inline, sharing work (the prelude of a
worker, say) between instances.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from taskward.models.core import CONCRETE, Action, Model, Ops, State, V

Succ = tuple[str, tuple[int, ...], V, State]
"""One enabled transition: action name, arguments, result, successor (not canonicalised)."""
SuccessorsFn = Callable[[State], list[Succ]]
Const = int | bool
Val = Any
"""A traced value: a :class:`Node` or a Python ``int``/``bool`` constant."""

_MAX_INLINE_DEPTH = 40
"""Deeper inline expressions are bound to a local first (the parser limits nesting)."""


class TraceError(TypeError):
    """The model code did something only concrete values allow (a Python ``if`` on a value)."""


# ---------------------------------------------------------------- expression nodes


class Node:
    """One hash-consed expression over the input slots; ``kind`` is ``b`` (a bool) or ``i``."""

    __slots__ = ("args", "b", "id", "kind", "op")

    def __init__(self, b: Builder, nid: int, op: str, args: tuple[Any, ...], kind: str) -> None:
        self.b, self.id, self.op, self.args, self.kind = b, nid, op, args, kind

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"<node {self.id} {self.op}>"

    def __bool__(self) -> bool:
        raise TraceError("a traced state value was used as a Python truth value "
                         "(if/and/or/not/bool()/min/max/in); use o.ite/o.and_/o.or_/o.not_")

    def __index__(self) -> int:
        raise TraceError("a traced state value was used as an index or int(); "
                         "loop over the domain and compare instead")

    __int__ = __index__

    def __add__(self, x: Val) -> Val:
        return self.b.arith("+", self, x)

    def __radd__(self, x: Val) -> Val:
        return self.b.arith("+", x, self)

    def __sub__(self, x: Val) -> Val:
        return self.b.arith("-", self, x)

    def __rsub__(self, x: Val) -> Val:
        return self.b.arith("-", x, self)

    def __mul__(self, x: Val) -> Val:
        return self.b.arith("*", self, x)

    def __rmul__(self, x: Val) -> Val:
        return self.b.arith("*", x, self)

    def __neg__(self) -> Val:
        return self.b.arith("-", 0, self)

    def __lt__(self, x: Val) -> Val:
        return self.b.compare("<", self, x)

    def __le__(self, x: Val) -> Val:
        return self.b.compare("<=", self, x)

    def __gt__(self, x: Val) -> Val:
        return self.b.compare(">", self, x)

    def __ge__(self, x: Val) -> Val:
        return self.b.compare(">=", self, x)

    def __eq__(self, x: object) -> Val:
        return self.b.compare("==", self, x)

    def __ne__(self, x: object) -> Val:
        return self.b.compare("!=", self, x)


def _is_const(x: Val) -> bool:
    return not isinstance(x, Node)


def _same(x: Val, y: Val) -> bool:
    """Identical values, type included (``True`` and ``1`` differ: they print differently)."""
    if isinstance(x, Node) or isinstance(y, Node):
        return x is y
    return type(x) is type(y) and bool(x == y)


def _kind(x: Val) -> str:
    if isinstance(x, Node):
        return x.kind
    return "b" if isinstance(x, bool) else "i"


_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}
_REFLEXIVE = {"<": False, "<=": True, ">": False, ">=": True, "==": True, "!=": False}


class Builder:
    """The hash-consing table of one trace: equal expressions are one node."""

    def __init__(self) -> None:
        self.table: dict[tuple[Any, ...], Node] = {}
        self.nodes: list[Node] = []

    def make(self, op: str, args: tuple[Any, ...], kind: str) -> Node:
        key = (op, *[a.id if isinstance(a, Node) else _const_key(a) for a in args])
        n = self.table.get(key)
        if n is None:
            n = Node(self, len(self.nodes), op, args, kind)
            self.table[key] = n
            self.nodes.append(n)
        return n

    def slots(self, size: int) -> tuple[Node, ...]:
        """The symbolic input state."""
        return tuple(self.make("slot", (i,), "i") for i in range(size))

    def arith(self, op: str, x: Val, y: Val) -> Val:
        if _is_const(x) and _is_const(y):
            return _ARITH[op](_const(x), _const(y))
        if op in "+-" and _is_const(y) and _const(y) is not True and y == 0 and _kind(x) == "i":
            return x
        if op == "+" and _is_const(x) and _const(x) is not True and x == 0 and _kind(y) == "i":
            return y
        return self.make(op, (x, y), "i")

    def compare(self, op: str, x: Val, y: Val) -> Val:
        if _is_const(x) and _is_const(y):
            return _CMP[op](_const(x), _const(y))
        if x is y:
            return _REFLEXIVE[op]
        return self.make(op, (x, y), "b")


def _const(x: Val) -> Const:
    if isinstance(x, bool | int):
        return x
    raise TraceError(f"unsupported constant {x!r} of type {type(x).__name__}: models use ints")


def _const_key(x: Val) -> tuple[bool, Const]:
    c = _const(x)
    return (isinstance(c, bool), c)


class TracingOps:
    """:class:`Ops` over expression nodes that folds whatever is concrete."""

    def __init__(self, b: Builder) -> None:
        self.b = b

    def ite(self, c: Val, a: Val, x: Val) -> Val:
        if _is_const(c):
            return a if c else x
        if isinstance(c, Node) and c.op == "not" and c.args[0].kind == "b":
            c, a, x = c.args[0], x, a
        if isinstance(a, Node) and a.op == "ite" and a.args[0] is c:
            a = a.args[1]
        if isinstance(x, Node) and x.op == "ite" and x.args[0] is c:
            x = x.args[2]
        if _same(a, x):
            return a
        if c.kind == "b" and a is True and x is False:
            return c
        kind = "b" if _kind(a) == "b" and _kind(x) == "b" else "i"
        return self.b.make("ite", (c, a, x), kind)

    def _junction(self, op: str, xs: Sequence[Val], absorbing: bool) -> Val:
        """``and``/``or`` with constants folded and duplicates dropped; always a bool."""
        keep: list[Node] = []
        for x in xs:
            if _is_const(x):
                if bool(x) == absorbing:
                    return absorbing
                continue
            if not any(x is k for k in keep):
                keep.append(x)
        if not keep:
            return not absorbing
        if len(keep) == 1 and keep[0].kind == "b":
            return keep[0]
        return self.b.make(op, tuple(keep), "b")

    def and_(self, *xs: Val) -> Val:
        return self._junction("and", xs, False)

    def or_(self, *xs: Val) -> Val:
        return self._junction("or", xs, True)

    def not_(self, x: Val) -> Val:
        if _is_const(x):
            return not x
        if x.op == "not" and x.args[0].kind == "b":
            return x.args[0]
        return self.b.make("not", (x,), "b")

    def b2i(self, x: Val) -> Val:
        if _is_const(x):
            return 1 if x else 0
        return self.b.make("b2i", (x,), "i")


# ---------------------------------------------------------------------- emission


def _const_src(c: Const) -> str:
    return repr(c) if c >= 0 or isinstance(c, bool) else f"({c!r})"


def _truth_src(x: Val, src: str) -> str:
    """``src`` as a bool, as ``all``/``any`` would see it."""
    return src if _kind(x) == "b" else f"({src} != 0)"


class _Placement:
    """Where each shared node is bound to a local, in a tree of nested blocks (scopes).

    A node is computed in the innermost scope that encloses all its uses, so a
    value shared by two instances under one guard is computed once, under it.
    Scope 0 is the function body; ``parent[k]`` is the enclosing scope of ``k``.
    """

    def __init__(self, parent: Sequence[int], roots: Sequence[tuple[Val, int]], *,
                 unpack: bool) -> None:
        self.parent = list(parent)
        self.depth = [0] * len(parent)
        for k in range(1, len(parent)):
            self.depth[k] = self.depth[self.parent[k]] + 1
        self.unpack = unpack
        self.refs: dict[int, int] = {}
        self.scope: dict[int, int] = {}
        self.nodes: dict[int, Node] = {}
        self.stmts: list[list[str]] = [[] for _ in parent]
        self.src: dict[int, str] = {}
        self.temps: set[int] = set()
        self._collect(roots)
        self._place()
        self._emit()

    def _lca(self, a: int | None, b: int) -> int:
        if a is None:
            return b
        while self.depth[a] > self.depth[b]:
            a = self.parent[a]
        while self.depth[b] > self.depth[a]:
            b = self.parent[b]
        while a != b:
            a, b = self.parent[a], self.parent[b]
        return a

    def _collect(self, roots: Sequence[tuple[Val, int]]) -> None:
        stack: list[Node] = []
        for v, sc in roots:
            if isinstance(v, Node):
                self.refs[v.id] = self.refs.get(v.id, 0) + 1
                self.scope[v.id] = self._lca(self.scope.get(v.id), sc)
                stack.append(v)
        while stack:
            n = stack.pop()
            if n.id in self.nodes:
                continue
            self.nodes[n.id] = n
            for a in n.args:
                if isinstance(a, Node):
                    self.refs[a.id] = self.refs.get(a.id, 0) + 1
                    stack.append(a)

    def _place(self) -> None:
        for nid in sorted(self.nodes, reverse=True):
            sc = self.scope[nid]
            for a in self.nodes[nid].args:
                if isinstance(a, Node):
                    self.scope[a.id] = self._lca(self.scope.get(a.id), sc)

    def _emit(self) -> None:
        depth: dict[int, int] = {}
        for nid in sorted(self.nodes):
            n = self.nodes[nid]
            src, d = self._node_src(n, depth)
            if n.op == "slot" and self.unpack:
                self.src[nid], depth[nid] = src, 0
            elif self.refs[nid] > 1 or d > _MAX_INLINE_DEPTH:
                self.stmts[self.scope[nid]].append(f"t{nid} = {src}")
                self.temps.add(nid)
                self.src[nid], depth[nid] = f"t{nid}", 0
            else:
                self.src[nid], depth[nid] = src, d

    def _bool_operand(self, x: Val) -> Val:
        """Arithmetic on a bool gives the int that ``b2i`` would: skip an inline ``b2i``."""
        if (isinstance(x, Node) and x.op == "b2i" and _kind(x.args[0]) == "b"
                and x.id not in self.temps):
            return x.args[0]
        return x

    def _arg(self, x: Val, depth: dict[int, int]) -> tuple[str, int]:
        if isinstance(x, Node):
            return self.src[x.id], depth[x.id]
        return _const_src(x), 0

    def _node_src(self, n: Node, depth: dict[int, int]) -> tuple[str, int]:
        if n.op == "slot":
            return (f"s{n.args[0]}" if self.unpack else f"s[{n.args[0]}]"), 0
        args = n.args
        if n.op in _ARITH:
            args = tuple(self._bool_operand(a) for a in args)
        parts = [self._arg(a, depth) for a in args]
        d = 1 + max(p[1] for p in parts)
        srcs = [p[0] for p in parts]
        if n.op == "ite":
            return f"({srcs[1]} if {srcs[0]} else {srcs[2]})", d
        if n.op in ("and", "or"):
            return "(" + f" {n.op} ".join(
                _truth_src(a, s) for a, s in zip(n.args, srcs, strict=True)) + ")", d
        if n.op == "not":
            return f"(not {srcs[0]})", d
        if n.op == "b2i":
            return f"(1 if {srcs[0]} else 0)", d
        return f"({srcs[0]} {n.op} {srcs[1]})", d

    def expr(self, v: Val) -> str:
        """The source of a root value, after the statements of its scope."""
        return self.src[v.id] if isinstance(v, Node) else _const_src(v)


def _tuple_src(items: Sequence[str]) -> str:
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _unpack_src(size: int) -> str:
    if size == 0:
        return ""
    return ", ".join(f"s{i}" for i in range(size)) + ("," if size == 1 else "") + " = s"


def _function_src(name: str, roots: Sequence[Val], size: int,
                  render: Callable[[list[str]], str]) -> str:
    """One straight-line function of ``s`` returning ``render(root sources)``."""
    used = {n.args[0] for n in _reachable(roots) if n.op == "slot"}
    unpack = len(used) > 3
    pl = _Placement([0], [(r, 0) for r in roots], unpack=unpack)
    body = ([_unpack_src(size)] if unpack and size else []) + pl.stmts[0]
    body.append("return " + render([pl.expr(r) for r in roots]))
    return f"def {name}(s):\n" + "".join(f"    {line}\n" for line in body)


def _reachable(roots: Sequence[Val]) -> list[Node]:
    seen: dict[int, Node] = {}
    stack = [r for r in roots if isinstance(r, Node)]
    while stack:
        n = stack.pop()
        if n.id not in seen:
            seen[n.id] = n
            stack.extend(a for a in n.args if isinstance(a, Node))
    return list(seen.values())


def _exec(src: str, name: str, filename: str) -> Callable[..., Any]:
    """Define the generated function; its source is kept for tracebacks and debugging."""
    import linecache

    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    ns: dict[str, Any] = {}
    exec(compile(src, filename, "exec"), ns)
    fn: Callable[..., Any] = ns[name]
    fn.__taskward_source__ = src  # type: ignore[attr-defined]
    return fn


# ------------------------------------------------------------------- tracing


def _trace(m: Model, a: Action, args: tuple[int, ...], part: str, fn: Callable[..., Any],
           o: TracingOps, s: tuple[Node, ...]) -> Any:
    """Run one part of an action on symbolic slots; a model bug names the action."""
    try:
        return fn(o, s, *args)
    except TraceError as e:
        raise TraceError(f"model {m.name}: the {part} of {a.name}{args} cannot be compiled: "
                         f"{e}") from None


def _state(m: Model, a: Action, args: tuple[int, ...], part: str, post: Any) -> list[Val]:
    if not isinstance(post, tuple | list) or len(post) != m.layout.size:
        raise TraceError(f"model {m.name}: the {part} of {a.name}{args} returned "
                         f"{type(post).__name__} of the wrong shape, not a state tuple")
    return list(post)


@dataclasses.dataclass(frozen=True, slots=True)
class Traced:
    """One action instance as expressions over the input slots (shared builder)."""

    action: Action
    args: tuple[int, ...]
    guard: Val
    prune: Val
    """``True`` when the action has no explorer filter."""
    prelude: list[Val] | None
    post: list[Val]
    result: Val


def trace_instance(m: Model, a: Action, args: tuple[int, ...], b: Builder) -> Traced:
    """Every part of one action instance, traced into ``b``."""
    o, s = TracingOps(b), b.slots(m.layout.size)
    guard = _trace(m, a, args, "guard", a.guard, o, s)
    prune = True if a.prune is None else _trace(m, a, args, "prune", a.prune, o, s)
    prelude = None
    if a.prelude is not None:
        prelude = _state(m, a, args, "prelude", _trace(m, a, args, "prelude", a.prelude, o, s))
    out = _trace(m, a, args, "effect", a.effect, o, s)
    if not isinstance(out, tuple) or len(out) != 2:
        raise TraceError(f"model {m.name}: the effect of {a.name}{args} must return "
                         "(state, result)")
    post = _state(m, a, args, "effect", out[0])
    return Traced(a, args, guard, prune, prelude, post, out[1])


# ----------------------------------------------------- compiled action instances


@dataclasses.dataclass(frozen=True, slots=True)
class _Instance:
    guard: Callable[[State], V]
    prune: Callable[[State], V]
    prelude: Callable[[State], tuple[V, ...]] | None
    effect: Callable[[State], tuple[tuple[V, ...], V]]


_CACHE: dict[tuple[Any, ...], _Instance] = {}


def _code_id(f: Callable[..., Any] | None) -> tuple[Any, ...]:
    """Which code an action part runs, as far as it decides what the part computes.

    The code object itself (a mutant's override differs from the original),
    the class of the bound instance (a subclass may override a helper the
    method calls) and the plain values a closure captured (``lag("paused")``
    versus ``lag("drift")``); anything else a closure holds is derived from
    the configuration, which is part of the key too."""
    if f is None:
        return ()
    fn = getattr(f, "__func__", f)
    owner = getattr(f, "__self__", None)
    cells = tuple(_cell_key(c) for c in getattr(fn, "__closure__", None) or ())
    return (getattr(fn, "__code__", None) or id(fn), _qualname(type(owner)), cells)


def _qualname(t: type) -> str:
    return f"{t.__module__}.{t.__qualname__}"


def _cell_key(cell: Any) -> Any:
    try:
        v = cell.cell_contents
    except ValueError:
        return None
    if v is None or isinstance(v, bool | int | str | float):
        return (type(v).__name__, v)
    return _qualname(type(v))


def _cache_key(m: Model, a: Action, args: tuple[int, ...]) -> tuple[Any, ...] | None:
    key = (m.name, m.mutant, m.config, m.layout.size, a.name, args,
           *map(_code_id, (a.guard, a.prune, a.prelude, a.effect)))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _compile_instance(m: Model, a: Action, args: tuple[int, ...]) -> _Instance:
    key = _cache_key(m, a, args)
    if key is not None and key in _CACHE:
        return _CACHE[key]
    t = trace_instance(m, a, args, Builder())
    size, tag = m.layout.size, f"<compiled {m.name}/{m.mutant or ''} {a.name}{args}"

    def make(part: str, roots: list[Val], render: Callable[[list[str]], str]
             ) -> Callable[..., Any]:
        return _exec(_function_src(part, roots, size, render), part, f"{tag} {part}>")

    inst = _Instance(
        guard=make("guard", [t.guard], lambda xs: xs[0]),
        prune=make("prune", [t.prune], lambda xs: xs[0]),
        prelude=None if t.prelude is None else make("prelude", t.prelude, _tuple_src),
        effect=make("effect", [*t.post, t.result],
                    lambda xs: f"({_tuple_src(xs[:-1])}, {xs[-1]})"))
    if key is not None:
        _CACHE[key] = inst
    return inst


def _dispatch(orig: Callable[..., Any], pick: Callable[[tuple[int, ...]], Callable[..., Any]],
              ) -> Callable[..., Any]:
    """``(o, s, *args)`` as the original, running the instance's compiled function.

    Non-concrete ops (the solver's) still get the original code: the compiled
    model stays usable everywhere the original is."""
    table: dict[tuple[int, ...], Callable[..., Any]] = {}

    def call(o: Ops, s: State, *args: int) -> Any:
        if o is not CONCRETE:
            return orig(o, s, *args)
        f = table.get(args)
        if f is None:
            f = table[args] = pick(args)
        return f(s)

    call.__doc__ = orig.__doc__
    call.__wrapped__ = orig  # type: ignore[attr-defined]
    return call


def _compile_action(m: Model, a: Action) -> Action:
    insts = {args: _compile_instance(m, a, args) for args in a.instances()}

    def inst(args: tuple[int, ...]) -> _Instance:
        if args not in insts:
            insts[args] = _compile_instance(m, a, args)
        return insts[args]

    def prelude(args: tuple[int, ...]) -> Callable[..., Any]:
        fn = inst(args).prelude
        assert fn is not None
        return fn

    return dataclasses.replace(
        a,
        guard=_dispatch(a.guard, lambda args: inst(args).guard),
        effect=_dispatch(a.effect, lambda args: inst(args).effect),
        prelude=None if a.prelude is None else _dispatch(a.prelude, prelude),
        prune=None if a.prune is None else _dispatch(a.prune, lambda args: inst(args).prune))


def compile_model(m: Model) -> Model:
    """The same model with every action instance compiled to straight-line Python.

    Equivalent to ``m`` under :data:`CONCRETE` (guards, filters, preludes,
    effects and results agree on every state); any other ``Ops`` runs the
    original code. Raises :class:`TraceError` naming the action if the model
    code branches on a state value with Python ``if``/``and``/``or``."""
    if m.extra.get("compiled_from") is not None:
        return m
    actions = tuple(_compile_action(m, a) for a in m.actions)
    return dataclasses.replace(m, actions=actions, extra={**m.extra, "compiled_from": m})


# ------------------------------------------------- one successor function per model

StepCheck = tuple[Any, Callable[..., Any]]
"""``(key, pred)``: a transition predicate ``pred(o, m, pre, mid, post, args, result)``."""
StateCheck = tuple[Any, Callable[..., Any]]
"""``(key, pred)``: a state predicate ``pred(o, m, s)``."""
FusedSucc = tuple[str, tuple[int, ...], V, State, bool]
"""As :data:`Succ`, plus whether every step check of the action holds on this edge."""


def _trace_check(untraced: list[str], key: Any, what: str, fn: Callable[..., Any],
                 *args: Any) -> Val:
    """A check's traced value; one that cannot be traced counts as failing.

    The caller re-evaluates its own predicates whenever the compiled verdict
    is ``False``, so an untraceable check (Python ``if`` on a value) only costs
    speed, never a wrong verdict; it is listed in the function's ``untraced``."""
    try:
        return fn(*args)
    except TraceError as e:
        untraced.append(f"{getattr(key, 'id', key)} on {what}: {e}")
        return False


def _step_ok(m: Model, t: Traced, s: tuple[Node, ...], o: TracingOps,
             checks: Sequence[StepCheck], untraced: list[str]) -> Val:
    """All step predicates of the instance's action, over its own traced pre/mid/post."""
    mid = tuple(t.prelude) if t.prelude is not None else s
    post = tuple(t.post)
    vals = [_trace_check(untraced, key, f"{t.action.name}{t.args}", pred,
                         o, m, s, mid, post, t.args, t.result)
            for key, pred in checks]
    return o.and_(*vals)


class _Block:
    """Source lines at an indentation level, for the nested guard/filter blocks."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)


def _group_by_guard(traced: list[Traced]) -> list[list[int]]:
    """Instance indices sharing one guard expression (hash-consed, so by identity)."""
    groups: dict[Any, list[int]] = {}
    for k, t in enumerate(traced):
        gkey = t.guard.id if isinstance(t.guard, Node) else ("const", bool(t.guard))
        groups.setdefault(gkey, []).append(k)
    return [g for g in groups.values() if not _is_const(traced[g[0]].guard)
            or bool(traced[g[0]].guard)]


def _successors_src(m: Model, traced: list[Traced], oks: list[Val]) -> str:
    """``def successors(s)``: guards as nested ``if`` blocks, shared values computed once.

    Scopes: 0 is the body, then one per guard group, then one per instance
    (its filter). Results go to ``r<k>`` so the list keeps the instances' order."""
    groups = _group_by_guard(traced)
    parent, roots = [0], []
    inst_scope: dict[int, int] = {}
    for g in groups:
        gs = len(parent)
        parent.append(0)
        roots.append((traced[g[0]].guard, 0))
        for k in g:
            inst_scope[k] = len(parent)
            parent.append(gs)
            t = traced[k]
            roots += [(t.prune, gs), (t.result, inst_scope[k]), (oks[k], inst_scope[k])]
            roots += [(v, inst_scope[k]) for v in t.post]
    pl = _Placement(parent, roots, unpack=True)
    out = _Block()
    out.add(1, _unpack_src(m.layout.size))
    out.lines += ["    " + x for x in pl.stmts[0]]
    live: list[int] = []
    for g in groups:
        _group_src(out, pl, traced, oks, g, inst_scope, live)
    live.sort()
    out.add(1, "return list(filter(None, " + _tuple_src([f"r{k}" for k in live]) + "))"
            if live else "return []")
    return "def successors(s):\n" + "\n".join(out.lines) + "\n"


def _group_src(out: _Block, pl: _Placement, traced: list[Traced], oks: list[Val],
               g: list[int], inst_scope: dict[int, int], live: list[int]) -> None:
    guard = traced[g[0]].guard
    gs = pl.parent[inst_scope[g[0]]]
    ind = 1
    if not _is_const(guard):
        out.add(1, f"if {pl.expr(guard)}:")
        ind = 2
    out.lines += ["    " * ind + x for x in pl.stmts[gs]]
    members = []
    for k in g:
        t = traced[k]
        if _is_const(t.prune) and not t.prune:
            continue
        members.append(k)
        j = ind
        if not _is_const(t.prune):
            out.add(ind, f"if {pl.expr(t.prune)}:")
            j = ind + 1
        out.lines += ["    " * j + x for x in pl.stmts[inst_scope[k]]]
        post = _tuple_src([pl.expr(v) for v in t.post])
        out.add(j, f"r{k} = ({t.action.name!r}, {t.args!r}, {pl.expr(t.result)}, {post}, "
                   f"{pl.expr(oks[k])})")
        if not _is_const(t.prune):
            out.add(ind, "else:")
            out.add(ind + 1, f"r{k} = None")
    if members and not _is_const(guard):
        out.add(1, "else:")
        out.add(2, " = ".join(f"r{k}" for k in members) + " = None")
    live += members


def _checks_id(checks: Sequence[StepCheck] | Sequence[StateCheck]) -> tuple[Any, ...]:
    return tuple((str(getattr(k, "id", k)), _code_id(p)) for k, p in checks)


_SUCC_CACHE: dict[tuple[Any, ...], Callable[..., Any]] = {}


def successors_fn(m: Model, step_checks: dict[str, list[StepCheck]] | None = None
                  ) -> Callable[[State], list[FusedSucc]]:
    """One generated function: every enabled transition of a state, in instance order.

    ``successors(s)`` returns ``(name, args, result, post, ok)`` for every
    instance whose guard (and explorer filter) holds, exactly as the loop
    ``for a, args in m.instances(): if m.enabled(s, a, args, prune=True): ...``
    would, with ``post`` not canonicalised. ``ok`` is whether every predicate
    in ``step_checks[action name]`` holds on that edge (traced inline, so it
    costs almost nothing); on ``False`` the caller re-runs its own checks to
    report the violation. Work shared between instances (a worker's prelude,
    say) is computed once per state, under the guard that needs it.

    The model's actions must trace (else :class:`TraceError` naming the
    action); a check that does not is compiled as always ``False``, which
    leaves its verdict to the caller's own evaluation on every edge."""
    step_checks = step_checks or {}
    key = (*(_cache_key(m, a, ()) or (id(m),) for a in m.actions),
           *((n, _checks_id(c)) for n, c in sorted(step_checks.items())))
    fn = _SUCC_CACHE.get(key)
    if fn is None:
        b = Builder()
        o, s = TracingOps(b), b.slots(m.layout.size)
        traced = [trace_instance(m, a, args, b) for a, args in m.instances()]
        untraced: list[str] = []
        oks = [_step_ok(m, t, s, o, step_checks.get(t.action.name, []), untraced)
               for t in traced]
        src = _successors_src(m, traced, oks)
        fn = _SUCC_CACHE[key] = _exec(src, "successors", f"<compiled {m.name} successors>")
        fn.untraced = tuple(untraced)  # type: ignore[attr-defined]
    return fn


def state_check_fn(m: Model, checks: Sequence[StateCheck]) -> Callable[[State], bool]:
    """One generated function: do all the state predicates hold on ``s``?

    A fast filter: on ``False`` the caller evaluates its predicates one by one
    to report which failed."""
    preds = [(k, p) for k, p in checks if p is not None]
    key = (*(_cache_key(m, a, ()) or (id(m),) for a in m.actions), "state", _checks_id(preds))
    fn = _SUCC_CACHE.get(key)
    if fn is None:
        b = Builder()
        o, s = TracingOps(b), b.slots(m.layout.size)
        untraced: list[str] = []
        ok = o.and_(*[_trace_check(untraced, k, "a state", p, o, m, s) for k, p in preds])
        src = _function_src("state_ok", [ok], m.layout.size, lambda xs: xs[0])
        fn = _SUCC_CACHE[key] = _exec(src, "state_ok", f"<compiled {m.name} state checks>")
        fn.untraced = tuple(untraced)  # type: ignore[attr-defined]
    return fn
