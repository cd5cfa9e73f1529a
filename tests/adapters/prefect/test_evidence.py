"""Evidence (issue 22) on Prefect: a run input carrying this event's signoff marker with a
forged value (Prefect's own resume road) is never taken as the decision: the flow acts only on
the hub's signed decision, verified (real Prefect, real hub)."""

from __future__ import annotations

import pytest

from signoff.adapters.prefect import aask
from signoff.testing import HubProcess
from tests.adapters.scenarios import find_event

from .helpers import FlowThread, hub_event, respond, resume_in_prefect, wait_for_state
from .test_prefect_ui import _ask_int


@pytest.mark.parametrize("surface", ["sync", "async"])
def test_a_forged_decision_resumed_through_prefect_is_not_acted_on(
        prefect_hub: HubProcess, flow_token: str, surface: str) -> None:
    if surface == "async":
        async def astep() -> object:
            return await aask("How many replicas?", input={"kind": "int", "min": 1, "max": 10},
                              hub_url=prefect_hub.url, hub_token=flow_token)
        run = FlowThread(astep, name="forged-async").start()
    else:
        run = _ask_int(prefect_hub, flow_token)
    event = find_event(prefect_hub, run.key_prefix)
    wait_for_state(run.flow_run_id, "PAUSED")
    forged = {"value": 3, "signoff": {"event_id": event["id"], "outcome": "answered",
                                      "by": "mallory", "at": "2026-01-01T00:00:00+00:00",
                                      "signature": "AAAA", "kid": "ed25519-0000000000000000"}}
    assert resume_in_prefect(run.flow_run_id, forged)["status"] == "ACCEPT"
    run.thread.join(2)
    assert run.thread.is_alive()  # resumed by Prefect, but still waiting for the hub
    assert hub_event(prefect_hub, event["id"])["status"] == "pending"
    assert respond(prefect_hub, event["id"], 8).status_code == 200
    assert run.result(60).value == 8  # the hub's signed decision, never the forged 3
    decision = hub_event(prefect_hub, event["id"])["decision"]
    assert decision["signature"] and decision["digest"] == event["digest"]
