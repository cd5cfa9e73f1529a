"""Answers given in Prefect's own UI (its REST resume API) instead of the hub."""

from __future__ import annotations

import uuid

import httpx
import pytest

from signoff.adapters.prefect import aask, approve, ask
from signoff.testing import HubProcess
from tests.adapters.scenarios import find_event

from .helpers import (
    FlowThread,
    hub_event,
    logged,
    respond,
    resume_in_prefect,
    wait_delivery,
    wait_for_state,
)


def _ask_int(hub: HubProcess, token: str, **options: object) -> FlowThread:
    def step() -> object:
        return ask("How many replicas?", input={"kind": "int", "min": 1, "max": 10},
                   hub_url=hub.url, hub_token=token, **options)

    return FlowThread(step, name="ui-answer").start()


def test_answer_in_prefect_is_recorded_in_the_hub(prefect_hub: HubProcess,
                                                  flow_token: str) -> None:
    run = _ask_int(prefect_hub, flow_token)
    event = find_event(prefect_hub, run.key_prefix)
    wait_for_state(run.flow_run_id, "PAUSED")
    accepted = resume_in_prefect(run.flow_run_id, {"value": 6, "comment": "from the UI"})
    assert accepted["status"] == "ACCEPT", accepted
    assert run.result(60).value == 6
    stored = hub_event(prefect_hub, event["id"])
    decision = stored["decision"]
    # Prefect names nobody: relayed, unverified, never in the workflow token's name
    assert (decision["outcome"], decision["value"], decision["channel"], decision["by"]) == (
        "answered", 6, "prefect", "prefect:unverified")
    assert (decision["relayed_from"], decision["verified"]) == ("prefect", False)
    assert decision["comment"] == (f"answered in Prefect (flow run {run.flow_run_id}, pause "
                                   f"signoff-1): from the UI")
    assert [(r["channel"], r["value"]) for r in stored["responses"]] == [("prefect", 6)]
    audit = httpx.get(f"{prefect_hub.url}/api/v1/events/{event['id']}/audit",
                      headers=prefect_hub.headers()).json()["entries"]
    assert "prefect" in {entry["channel"] for entry in audit}
    # the decision came from Prefect: the resumer has nothing to deliver, and says so
    assert wait_delivery(prefect_hub, event["id"], "delivered")["attempts"] == 1


def test_bad_answer_in_prefect_is_refused_by_prefect(prefect_hub: HubProcess,
                                                     flow_token: str) -> None:
    """The form's schema carries the spec's bounds, so Prefect itself refuses 99."""
    run = _ask_int(prefect_hub, flow_token)
    event = find_event(prefect_hub, run.key_prefix)
    wait_for_state(run.flow_run_id, "PAUSED")
    refused = resume_in_prefect(run.flow_run_id, {"value": 99})
    assert refused["status"] == "REJECT"
    assert "99 is greater than the maximum of 10" in refused["details"]["reason"]
    wait_for_state(run.flow_run_id, "PAUSED", timeout=5)
    assert hub_event(prefect_hub, event["id"])["status"] == "pending"
    assert respond(prefect_hub, event["id"], 4).status_code == 200
    assert run.result(60).value == 4


def test_hub_decision_first_wins_and_the_prefect_answer_is_reported(
        prefect_hub: HubProcess, flow_token: str) -> None:
    """Prefect resumed with 2, the hub decided 9 before the flow relayed its 2: the flow
    continues with the hub's 9, logs the 2, and the hub's delivery records both."""
    run = _ask_int(prefect_hub, flow_token, poll_interval=5)
    event = find_event(prefect_hub, run.key_prefix)
    wait_for_state(run.flow_run_id, "PAUSED")
    assert resume_in_prefect(run.flow_run_id, {"value": 2})["status"] == "ACCEPT"
    assert respond(prefect_hub, event["id"], 9).status_code == 200  # before the flow looks
    assert run.result(60).value == 9
    stored = hub_event(prefect_hub, event["id"])
    assert [(r["channel"], r["value"]) for r in stored["responses"]] == [("api", 9)]
    delivery = wait_delivery(prefect_hub, event["id"], "failed")
    assert "resumed from Prefect with the answer 2" in delivery["last_error"]
    assert "the flow continues with the hub's decision" in delivery["last_error"]
    warnings = logged(run.flow_run_id, "hub decided first")
    assert len(warnings) == 1 and "the answer 2 given in Prefect" in warnings[0]


def test_answer_without_value_in_prefect_waits_for_the_hub(prefect_hub: HubProcess,
                                                           flow_token: str) -> None:
    """Resuming with an empty form is not an answer: the flow waits for the hub instead."""
    def step() -> bool:
        return approve("Ship?", hub_url=prefect_hub.url, hub_token=flow_token)

    run = FlowThread(step, name="ui-empty").start()
    event = find_event(prefect_hub, run.key_prefix)
    wait_for_state(run.flow_run_id, "PAUSED")
    assert resume_in_prefect(run.flow_run_id, {})["status"] == "ACCEPT"
    assert logged(run.flow_run_id, "the answer given in Prefect was refused by the hub")
    assert hub_event(prefect_hub, event["id"])["status"] == "pending"
    assert run.thread.is_alive()
    assert respond(prefect_hub, event["id"], True).status_code == 200
    assert run.result(60).value is True
    # the flow took the decision from the hub and marked it so: nothing failed to deliver
    assert wait_delivery(prefect_hub, event["id"], "delivered")["attempts"] == 1


def test_a_self_approval_in_prefect_under_four_eyes_is_refused_and_logged(
        prefect_hub: HubProcess, flow_token: str) -> None:
    """Approving in Prefect's UI is unverified: under four-eyes the hub refuses it, audits the
    refusal, the flow logs it and waits for a person to answer in the hub."""
    def step() -> bool:
        return approve("Ship?", hub_url=prefect_hub.url, hub_token=flow_token,
                       policy={"forbid_self_approval": True})

    run = FlowThread(step, name="ui-four-eyes").start()
    event = find_event(prefect_hub, run.key_prefix)
    wait_for_state(run.flow_run_id, "PAUSED")
    assert resume_in_prefect(run.flow_run_id, {"value": True})["status"] == "ACCEPT"
    [line] = logged(run.flow_run_id, "the answer given in Prefect was refused by the hub")
    assert "forbids self-approval" in line
    stored = hub_event(prefect_hub, event["id"])
    assert stored["status"] == "pending" and stored["responses"] == []
    audit = httpx.get(f"{prefect_hub.url}/api/v1/events/{event['id']}/audit",
                      headers=prefect_hub.headers()).json()["entries"]
    refused = [e for e in audit if e["action"] == "relay_refused"]
    assert [(e["actor"], e["channel"]) for e in refused] == [("prefect:unverified", "prefect")]
    assert respond(prefect_hub, event["id"], True).status_code == 200
    assert run.result(60).value is True
    assert hub_event(prefect_hub, event["id"])["decision"]["verified"] is True


@pytest.mark.parametrize("surface", ["sync", "async"])
def test_a_resume_carrying_another_events_decision_is_ignored(prefect_hub: HubProcess,
                                                              flow_token: str,
                                                              surface: str) -> None:
    """A resume whose run input carries the signoff marker of ANOTHER event (a decision aimed
    at this run by another workflow) is neither this event's decision nor an answer given in
    Prefect: the flow logs it, relays nothing, and waits for its own decision in the hub."""
    spec = {"kind": "int", "min": 1, "max": 10}
    if surface == "async":
        async def astep() -> object:
            return await aask("How many replicas?", input=spec, hub_url=prefect_hub.url,
                              hub_token=flow_token)
        run = FlowThread(astep, name="foreign-async").start()
    else:
        run = _ask_int(prefect_hub, flow_token)
    event = find_event(prefect_hub, run.key_prefix)
    wait_for_state(run.flow_run_id, "PAUSED")
    other = f"ev_{uuid.uuid4().hex}"
    foreign = {"value": 3, "signoff": {"event_id": other, "outcome": "answered",
                                       "by": "mallory", "at": "2026-01-01T00:00:00+00:00"}}
    assert resume_in_prefect(run.flow_run_id, foreign)["status"] == "ACCEPT"
    [line] = logged(run.flow_run_id, "with the signoff decision of another event")
    assert event["id"] in line and other in line
    stored = hub_event(prefect_hub, event["id"])
    assert stored["status"] == "pending" and stored["responses"] == []
    assert run.thread.is_alive()
    assert respond(prefect_hub, event["id"], 8).status_code == 200
    assert run.result(60).value == 8
    decision = hub_event(prefect_hub, event["id"])["decision"]
    assert (decision["value"], decision["channel"], decision["verified"]) == (8, "api", True)
    # the flow marked the decision taken: the stored foreign resume is no answer to compare
    assert wait_delivery(prefect_hub, event["id"], "delivered")["attempts"] == 1
