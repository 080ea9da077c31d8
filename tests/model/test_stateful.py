"""Hypothesis stateful walks of the correct models at bounds beyond the explorer's."""

from __future__ import annotations

import pytest
from taskward.models import broker as B
from taskward.models import election as E
from taskward.models.compiled import compile_model

from taskward.check.stateful import walk


@pytest.mark.parametrize("policy", B.POLICIES)
def test_long_random_walks_of_the_broker_break_nothing(policy: str) -> None:
    m = B.build(B.BrokerConfig(policy=policy, workers=3, tasks=5, priorities=3, lease=2,
                               max_deliveries=3, worker_timeout=3))
    res = walk(compile_model(m), examples=40, steps=40)
    assert res.violated is None, res.message
    assert res.steps > 40 * 20


def test_long_random_walks_of_the_election_break_nothing() -> None:
    m = E.build(E.ElectionConfig(nodes=4, lease=3, member_timeout=3, margin=1, max_pause=1))
    res = walk(compile_model(m), examples=40, steps=40)
    assert res.violated is None, res.message
