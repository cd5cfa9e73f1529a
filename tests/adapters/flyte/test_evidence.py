"""Evidence (issue 22) on Flyte: the node after a gate acts only on the hub's decision,
verified; a value set on the gate's signal by anyone else (Flyte's own SetSignal road) is
never taken, and a decision tampered in the hub's database fails the node (real hub)."""

from __future__ import annotations

import os
import sqlite3

import pytest

from signoff import Client, DecisionUnverified
from signoff.adapters.flyte._tasks import _settle
from signoff.testing import HubProcess


def _decided(flow: HubProcess, value: int) -> str:
    with Client(flow.url, os.environ["SIGNOFF_TOKEN"]) as client:
        event = client.create(name="replicas", prompt="How many replicas?",
                              input={"kind": "int", "min": 1, "max": 10},
                              source={"orchestrator": "flyte"})
    with Client(flow.url, flow.admin_token) as admin:
        admin.respond(event.id, value)
    return event.id


def test_a_forged_signal_value_is_not_what_the_node_after_the_gate_gets(
        flow: HubProcess) -> None:
    event_id = _decided(flow, 3)
    assert _settle(event_id, 9) == 3  # the gate was set to 9 through SetSignal: ignored


def test_a_decision_tampered_in_the_database_fails_the_node(flow: HubProcess) -> None:
    event_id = _decided(flow, 3)
    with sqlite3.connect(flow.database) as conn:
        conn.execute("UPDATE decisions SET value = '9' WHERE event_id = ?", (event_id,))
    with pytest.raises(DecisionUnverified, match="does not match"):
        _settle(event_id, 9)
    with Client(flow.url, flow.admin_token) as admin:
        assert "decision_refused" in [e["action"] for e in admin.audit(event_id)]
