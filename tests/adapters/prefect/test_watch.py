"""A paused flow watches the hub as well as Prefect, and resumes its own run on a decision."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from signoff.testing import HubProcess
from tests.adapters.scenarios import find_event

from .helpers import (
    FlowThread,
    flow_state,
    hub_event,
    prefect_input,
    respond,
    resume_in_prefect,
    wait_for_state,
)

SLOW_POLL = 30.0  # far longer than the test waits: a resume seen on Prefect's poll fails it


@pytest.fixture(scope="module")
def blind_hub(prefect_api: str, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[HubProcess]:
    """A hub that was not told where Prefect is: its resumer cannot deliver anything."""
    with HubProcess(tmp_path_factory.mktemp("blind") / "hub.db",
                    env={"SIGNOFF_SWEEP_INTERVAL": "0.2"}) as hub:
        yield hub


def _flow(is_async: bool, hub: HubProcess, token: str) -> FlowThread:
    from signoff.adapters.prefect import aapprove, approve

    options: dict[str, Any] = {"hub_url": hub.url, "hub_token": token,
                               "poll_interval": SLOW_POLL}
    if is_async:
        async def astep() -> bool:
            return await aapprove("Ship it?", **options)
        return FlowThread(astep, name="watch-async").start()

    def step() -> bool:
        return approve("Ship it?", **options)
    return FlowThread(step, name="watch-sync").start()


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_decision_resumes_the_run_without_the_resumer(blind_hub: HubProcess,
                                                      is_async: bool) -> None:
    token = blind_hub.token(f"watch-{is_async}", role="workflow")
    run = _flow(is_async, blind_hub, token)
    event = find_event(blind_hub, run.key_prefix)
    paused = wait_for_state(run.flow_run_id, "PAUSED")
    # Prefect's UI shows the pause with its form, as with pause_flow_run
    assert paused["state"]["state_details"]["pause_key"] == "signoff-1"
    schema = prefect_input(run.flow_run_id, "paused-signoff-1-schema")
    assert "value" in schema["properties"], schema
    asked = time.time()
    assert respond(blind_hub, event["id"], True).status_code == 200
    assert run.result(SLOW_POLL / 2).value is True
    took = run.box["done_at"] - asked
    assert took < SLOW_POLL / 3, f"the flow went on {took:.1f} s after the answer"
    # the run was resumed in Prefect with the hub's decision, marked as signoff's
    stored = prefect_input(run.flow_run_id, "paused-signoff-1-response")
    assert stored["value"] is True
    assert stored["signoff"]["event_id"] == event["id"]
    assert flow_state(run.flow_run_id).startswith("COMPLETED")
    # the hub's resumer has no Prefect address: the delivery waits for one, as before
    deliveries = hub_event(blind_hub, event["id"])["deliveries"]
    assert [d["state"] for d in deliveries] != ["delivered"], deliveries


def test_answer_in_prefect_still_resumes(blind_hub: HubProcess) -> None:
    """An answer given in Prefect is seen on the flow's next look at Prefect, and relayed."""
    from signoff.adapters.prefect import approve

    token = blind_hub.token("watch-ui", role="workflow")
    run = FlowThread(lambda: approve("Ship it?", hub_url=blind_hub.url, hub_token=token,
                                     poll_interval=0.5), name="watch-ui").start()
    event = find_event(blind_hub, run.key_prefix)
    wait_for_state(run.flow_run_id, "PAUSED")
    answer = resume_in_prefect(run.flow_run_id, {"value": False, "comment": "not today"})
    assert answer["status"] == "ACCEPT", answer
    assert run.result(60).value is False
    decision = hub_event(blind_hub, event["id"])["decision"]
    assert (decision["value"], decision["relayed_from"]) == (False, "prefect"), decision
