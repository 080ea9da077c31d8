"""The reference implementation (or one of its mutants) over the JSON-lines protocol.

    taskward check --impl 'python examples/mutant_impls/jsonlines_server.py [--mutant NAME]'

One JSON request per line on stdin, one JSON reply per line on stdout; a
``Rejected`` exception becomes ``{"ok": false, "definite": true}``.
Also takes ``--misbehave crash|garbage|wrong-id|hang|silent-exit`` to show how
the checker reports an implementation that breaks the protocol itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from reference import Reference

ARGS = {"publish": ("task_id", "priority"), "fetch": ("worker",),
        "ack": ("worker", "task_id"), "nack": ("worker", "task_id", "requeue"),
        "extend": ("worker", "task_id"), "heartbeat": ("worker",), "dead_letters": (),
        "advance": ("ms",), "restart": (), "tick": ("node",), "is_leader": ("node",),
        "leader_write": ("node", "epoch", "value"), "close": ()}


def misbehave(kind: str, ident: int) -> bool:
    """Break the protocol on the third request; True if the reply was handled here."""
    if ident < 3:
        return False
    if kind == "crash":
        sys.exit(3)
    if kind == "silent-exit":
        os._exit(0)
    if kind == "garbage":
        print("this is not json", flush=True)
        return True
    if kind == "wrong-id":
        print(json.dumps({"id": ident + 100, "ok": True, "result": None}), flush=True)
        return True
    if kind == "hang":
        time.sleep(3600)
    return False


def answer(impl: Reference, request: dict[str, Any]) -> dict[str, Any]:
    op, args = request["op"], request.get("args", {})
    try:
        result = getattr(impl, op)(*[args[a] for a in ARGS[op] if a in args])
    except Exception as exc:
        return {"id": request["id"], "ok": False, "error": str(exc), "definite": True}
    return {"id": request["id"], "ok": True, "result": result}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mutant")
    parser.add_argument("--misbehave")
    opts = parser.parse_args()
    impl: Reference | None = None
    for line in sys.stdin:
        request = json.loads(line)
        if opts.misbehave and misbehave(opts.misbehave, request["id"]):
            continue
        if request["op"] == "init":
            impl = Reference(request["args"], opts.mutant)
            print(json.dumps({"id": request["id"], "ok": True,
                              "capabilities": impl.capabilities()}), flush=True)
            continue
        assert impl is not None, "init must come first"
        print(json.dumps(answer(impl, request)), flush=True)
        if request["op"] == "close":
            break


if __name__ == "__main__":
    main()
