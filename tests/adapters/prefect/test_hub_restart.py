"""The hub stops and starts again while a flow waits: nothing is lost."""

from __future__ import annotations

import time

import pytest

from signoff.adapters.prefect import approve, ask
from signoff.testing import HubProcess
from tests.adapters.scenarios import find_event

from .helpers import (
    FlowThread,
    hub_event,
    respond,
    resume_in_prefect,
    wait_delivery,
    wait_for_state,
)


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_hub_restarted_while_the_flow_waits(kill: bool, fresh_hub: HubProcess) -> None:
    token = fresh_hub.token("prefect-flows", role="workflow")

    def step() -> bool:
        return approve("Ship after the restart?", hub_url=fresh_hub.url, hub_token=token)

    run = FlowThread(step, name="hub-restart").start()
    event = find_event(fresh_hub, run.key_prefix)
    wait_for_state(run.flow_run_id, "PAUSED")
    fresh_hub.restart(kill=kill)
    assert respond(fresh_hub, event["id"], True).status_code == 200
    assert run.result(60).value is True
    # the flow resumed its own run; the resumer, after its grace, finds that and is done
    wait_delivery(fresh_hub, event["id"], "delivered")
    assert [d["state"] for d in hub_event(fresh_hub, event["id"])["deliveries"]] == ["delivered"]


def test_answer_in_prefect_while_the_hub_is_down(fresh_hub: HubProcess) -> None:
    """The flow relays an answer given in Prefect once the hub is back (the client retries)."""
    token = fresh_hub.token("prefect-flows", role="workflow")

    def step() -> int:
        return ask("Shards?", input=int, poll_interval=0.5, hub_url=fresh_hub.url,
                   hub_token=token)

    run = FlowThread(step, name="hub-down").start()
    event = find_event(fresh_hub, run.key_prefix)
    wait_for_state(run.flow_run_id, "PAUSED")
    fresh_hub.stop()
    assert resume_in_prefect(run.flow_run_id, {"value": 12})["status"] == "ACCEPT"
    time.sleep(3)  # the flow wakes and finds no hub
    assert run.thread.is_alive()
    fresh_hub.start()
    assert run.result(60).value == 12
    decision = hub_event(fresh_hub, event["id"])["decision"]
    assert (decision["value"], decision["channel"]) == (12, "prefect")
