"""Every message of a real JSON-lines session validates against docs/conformance.schema.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mutant_impls.reference import Reference

from taskward.check.adapters import InProcess, Reply
from taskward.check.lockstep import Session
from taskward.check.oracle import CheckConfig

jsonschema = pytest.importorskip("jsonschema")
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" /
                     "conformance.schema.json").read_text())


class Recording(InProcess):
    """The reference in-process, recording each call as the JSON-lines messages it would be."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(Reference(config))
        self.messages: list[dict[str, Any]] = [
            {"id": 0, "op": "init", "args": config},
            {"id": 0, "ok": True, "capabilities": self.capabilities}]

    def call(self, op: str, args: dict[str, Any]) -> Reply:
        reply = super().call(op, args)
        ident = len(self.messages) // 2
        self.messages.append({"id": ident, "op": op, "args": args})
        self.messages.append({"id": ident, "ok": True, "result": reply.value} if reply.ok else
                             {"id": ident, "ok": False, "error": reply.error, "definite": True})
        return reply


def test_a_session_speaks_only_schema_valid_messages() -> None:
    config = CheckConfig(policy="work_stealing")
    impl = Recording(config.to_json())
    s = Session(impl, config, impl.capabilities)
    s.do("publish", {"task_id": "t1", "priority": 2})
    s.do("publish", {"task_id": "t1", "priority": 0})
    got = s.do("fetch", {"worker": "w2"}).value
    s.do("extend", {"worker": "w2", "task_id": got})
    s.do("nack", {"worker": "w2", "task_id": got, "requeue": False})
    s.do("dead_letters", {})
    s.do("tick", {"node": "n1"})
    s.do("is_leader", {"node": "n1"})
    s.do("leader_write", {"node": "n1", "epoch": 1, "value": {"any": "json"}})
    s.do("advance", {"ms": 2})
    s.do("restart", {})
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for message in impl.messages:
        errors = list(validator.iter_errors(json.loads(json.dumps(message))))
        assert not errors, (message, errors[0].message)
    bad = {"id": 1, "op": "publish", "args": {"task_id": 7}}
    assert list(validator.iter_errors(bad))
