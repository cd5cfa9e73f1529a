"""Steps in one run, signals sent by hand, and bad arguments (dev server, real hub)."""

from __future__ import annotations

import subprocess
import time
import uuid
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from ..scenarios import find_event
from .harness import UI_URL, RunningWorker, Stack, address_of, binary
from .workflows import AskOnce, Parallel, TwoSteps


@pytest.fixture
def stack(dev_shared: Stack) -> Stack:
    return dev_shared


def respond(stack: Stack, event_id: str, value: object) -> dict[str, Any]:
    answered = stack.api("POST", f"/events/{event_id}/responses", json={"value": value})
    assert answered.status_code == 200, answered.text
    result: dict[str, Any] = answered.json()
    return result


def next_event(stack: Stack, handle: Any, seen: set[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = [e for e in stack.events_of(handle) if e["id"] not in seen]
        if fresh:
            seen.add(fresh[0]["id"])
            return fresh[0]
        time.sleep(0.05)
    raise AssertionError(f"no new event for {handle.id} in {timeout} s")


def signals_in_history(stack: Stack, handle: Any) -> list[str]:
    async def fetch() -> list[str]:
        history = await handle.fetch_history()
        return [e.workflow_execution_signaled_event_attributes.signal_name
                for e in history.events
                if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED]

    return stack.loop.run(fetch())


def test_steps_get_their_own_names_keys_and_signals(stack: Stack) -> None:
    handle = stack.start(TwoSteps.run, "Q3 report")
    seen: set[str] = set()
    first = next_event(stack, handle, seen)
    assert first["name"] == "approve"
    assert first["key"] == f"temporal:default:{handle.id}:{handle.result_run_id}:approve"
    assert first["source"]["orchestrator"] == "temporal"
    assert first["source"]["params"] == {
        "namespace": "default", "workflow_id": handle.id, "run_id": handle.result_run_id,
        "signal": "signoff:approve", "workflow_type": "TwoSteps",
        "task_queue": stack.task_queue}
    assert first["source"]["link"] == (f"{UI_URL}/namespaces/default/workflows/{handle.id}/"
                                       f"{handle.result_run_id}/history")
    respond(stack, first["id"], True)
    second = next_event(stack, handle, seen)
    assert second["name"] == "approve-2"
    assert second["source"]["params"]["signal"] == "signoff:approve-2"
    respond(stack, second["id"], False)
    third = next_event(stack, handle, seen)
    assert third["input"]["kind"] == "form"
    refused = stack.api("POST", f"/events/{third['id']}/responses",
                      json={"value": {"carrier": "ups", "days": "soon"}})
    assert refused.status_code == 422, refused.text
    respond(stack, third["id"], {"carrier": "ups", "days": 2})
    assert stack.result(handle) == {"first": True, "second": False,
                                  "shipping": {"carrier": "ups", "days": 2}}


def test_parallel_steps_in_one_run(stack: Stack) -> None:
    handle = stack.start(Parallel.run)
    seen: set[str] = set()
    events = {e["name"]: e for e in (next_event(stack, handle, seen), next_event(stack, handle, seen))}
    assert set(events) == {"side", "side-2"}
    respond(stack, events["side-2"]["id"], False)  # the second one first
    respond(stack, events["side"]["id"], True)
    assert stack.result(handle) == [True, False]


def test_duplicate_and_stale_signals_are_ignored(stack: Stack) -> None:
    handle = stack.start(TwoSteps.run, "annual report")
    seen: set[str] = set()
    first = next_event(stack, handle, seen)
    decided = respond(stack, first["id"], True)
    second = next_event(stack, handle, seen)  # so the first decision was taken
    duplicate = {"event_id": first["id"], "key": first["key"], "decision": decided["decision"]}
    stale = {**duplicate, "event_id": "ev_not_this_one"}
    stack.loop.run(handle.signal("signoff:approve", duplicate))       # a redelivery
    stack.loop.run(handle.signal("signoff:approve-2", stale))         # another event's decision
    stack.loop.run(handle.signal("signoff:approve-2", "not an object"))
    stack.loop.run(handle.signal("signoff:approve-2", {"neither": 1}))
    time.sleep(0.5)
    assert stack.event(second["id"])["status"] == "pending"
    respond(stack, second["id"], True)
    third = next_event(stack, handle, seen)
    respond(stack, third["id"], {"carrier": "dhl", "days": 1})
    result = stack.result(handle)
    assert result["first"] is True and result["second"] is True
    assert signals_in_history(stack, handle).count("signoff:approve-2") == 4  # 3 junk + the real


def test_answer_signalled_to_the_workflow_is_relayed_to_the_hub(stack: Stack) -> None:
    """Someone answers in Temporal's UI or CLI (a signal with a value): the workflow records
    it in the hub (channel temporal), where a bad value is refused like any other."""
    handle = stack.start(AskOnce.run, {"prompt": "How many?",
                                     "input": {"kind": "int", "min": 1, "max": 10}})
    event = find_event(stack.hub, stack.key_prefix(handle))
    stack.loop.run(handle.signal("signoff:ask", {"value": 99}))
    time.sleep(1.0)
    assert stack.event(event["id"])["status"] == "pending"
    signalled = subprocess.run(  # as a person would, with Temporal's own CLI
        [binary("temporal"), "workflow", "signal", "--address", address_of(stack.client),
         "--workflow-id", handle.id, "--name", "signoff:ask",
         "--input", '{"value": 7, "comment": "typed in the UI"}'],
        capture_output=True, text=True, timeout=60)
    assert signalled.returncode == 0, signalled.stderr
    assert stack.result(handle)["value"] == 7
    decided = stack.event(event["id"])
    assert decided["decision"]["channel"] == "temporal"
    # a signal names nobody: unverified from Temporal, never the worker token's name
    assert decided["decision"]["by"] == "temporal:unverified"
    assert decided["decision"]["verified"] is False
    assert decided["decision"]["comment"] == "typed in the UI"
    assert [r["value"] for r in decided["responses"]] == [7]


def test_a_signalled_self_approval_under_four_eyes_is_refused_and_audited(stack: Stack) -> None:
    """A signal names nobody: under four-eyes the hub refuses the relayed approval, audits it,
    and the workflow waits for a person to answer in the hub."""
    handle = stack.start(AskOnce.run, {"prompt": "Ship?", "input": {"kind": "approval"},
                                     "options": {"policy": {"forbid_self_approval": True}}})
    event = find_event(stack.hub, stack.key_prefix(handle))
    stack.loop.run(handle.signal("signoff:approve", {"value": True}))
    deadline = time.monotonic() + 30
    refused: list[dict[str, Any]] = []
    while not refused and time.monotonic() < deadline:
        trail = stack.api("GET", f"/events/{event['id']}/audit").json()["entries"]
        refused = [e for e in trail if e["action"] == "relay_refused"]
        time.sleep(0.2)
    assert [(e["actor"], e["channel"]) for e in refused] == [("temporal:unverified", "temporal")]
    assert "forbids self-approval" in refused[0]["data"]["reason"]
    assert stack.event(event["id"])["status"] == "pending"
    respond(stack, event["id"], True)
    assert stack.result(handle)["value"] is True
    assert stack.event(event["id"])["decision"]["verified"] is True


def test_signalled_answers_can_be_turned_off(stack: Stack) -> None:
    handle = stack.start(AskOnce.run, {"prompt": "Hub only", "input": {"kind": "approval"},
                                     "options": {"signal_answers": False}})
    event = find_event(stack.hub, stack.key_prefix(handle))
    stack.loop.run(handle.signal("signoff:approve", {"value": True}))
    time.sleep(1.0)
    assert stack.event(event["id"])["status"] == "pending"
    respond(stack, event["id"], False)
    assert stack.result(handle)["value"] is False


@pytest.mark.parametrize(("options", "field"), [
    ({"assignees": ["not a name!"]}, "assignees"),
    ({"timeout": -5.0}, "timeout"),
    ({"on_timeout": "default"}, "on_timeout 'default' needs input.default"),
    ({"priority": "whenever"}, "priority"),
    ({"context": ["not", "a", "mapping"]}, "context"),
], ids=["assignees", "timeout", "default-missing", "priority", "context"])
def test_bad_arguments_fail_the_workflow_naming_the_field(stack: Stack, options: dict[str, Any],
                                                          field: str) -> None:
    handle = stack.start(AskOnce.run, {"prompt": "Bad?", "input": {"kind": "approval"},
                                     "options": options})
    with pytest.raises(WorkflowFailureError) as failed:
        stack.result(handle)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "signoff.InvalidInput"
    assert cause.non_retryable
    assert field in cause.message
    assert stack.events_of(handle) == []


def test_decided_before_the_workflow_waits(stack: Stack) -> None:
    """The create answers with a decision (a policy decided, or the key's event was decided
    already): the workflow continues at once, without a signal."""
    queue = f"later-{uuid.uuid4().hex[:8]}"
    handle = stack.loop.run(stack.client.start_workflow(
        AskOnce.run, {"prompt": "Decided already?", "input": {"kind": "approval"}},
        id=f"decided-{uuid.uuid4().hex[:8]}", task_queue=queue))
    created = stack.api("POST", "/events", headers={"Authorization": f"Bearer {stack.token}"},
                        json={"name": "approve", "prompt": "Decided already?",
                              "key": stack.key_prefix(handle) + "approve"})
    assert created.status_code == 201, created.text
    respond(stack, created.json()["id"], True)
    worker = RunningWorker(stack.loop, stack.client, stack.hub, stack.token, queue)
    try:
        assert stack.result(handle)["value"] is True
    finally:
        worker.stop()
    assert signals_in_history(stack, handle) == []
    assert [e["id"] for e in stack.events_of(handle)] == [created.json()["id"]]
