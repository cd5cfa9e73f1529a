"""The shared scenarios, played with real Prefect flow runs and a real hub."""

from __future__ import annotations

import pytest

from signoff.testing import HubProcess
from tests.adapters.scenarios import SCENARIOS, Scenario, find_event, play

from .conftest import PREFECT_API
from .helpers import AsyncDriver, SyncDriver, hub_event, respond, wait_delivery

ASYNC = [s for s in SCENARIOS if s.name in ("approve", "typed_int", "timeout_default", "cancel")]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario(scenario: Scenario, prefect_hub: HubProcess, flow_token: str) -> None:
    outcome = play(scenario, SyncDriver(flow_token), prefect_hub)
    assert outcome == scenario.expect


@pytest.mark.parametrize("scenario", ASYNC, ids=lambda s: s.name)
def test_scenario_async(scenario: Scenario, prefect_hub: HubProcess, flow_token: str) -> None:
    outcome = play(scenario, AsyncDriver(flow_token), prefect_hub)
    assert outcome == scenario.expect


def test_delivered_through_prefect(prefect_hub: HubProcess, flow_token: str) -> None:
    """A decision reaches the paused run through the Prefect resumer, recorded on the event."""
    run = SyncDriver(flow_token).start(SCENARIOS[0], prefect_hub)
    event = find_event(prefect_hub, run.key_prefix)
    assert respond(prefect_hub, event["id"], True).status_code == 200
    assert run.result(120).value is True
    # the flow may resume itself first (it watches the hub); the resumer then finds it done
    wait_delivery(prefect_hub, event["id"], "delivered")
    stored = hub_event(prefect_hub, event["id"])
    assert [(d["resumer"], d["state"]) for d in stored["deliveries"]] == [("prefect", "delivered")]
    assert stored["key"] == f"prefect:{run.flow_run_id}:signoff-1"
    source = stored["source"]
    assert (source["orchestrator"], source["run"], source["step"]) == (
        "prefect", run.flow_run_id, "signoff-1")
    assert source["link"] == f"{PREFECT_API.removesuffix('/api')}/runs/flow-run/{run.flow_run_id}"
    assert source["params"] == {"flow_run_id": run.flow_run_id, "pause_key": "signoff-1",
                                "mode": "pause", "flow_name": "scenario-approve",
                                "flow_run_name": source["params"]["flow_run_name"]}
    assert stored["name"] == "scenario-approve/signoff-1"
