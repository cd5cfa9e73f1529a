"""Retried tasks and flows get the same event back; concurrent steps take turns pausing."""

from __future__ import annotations

import time
from typing import Any

from prefect import task

from signoff.adapters.prefect import approve, ask
from signoff.testing import HubProcess
from tests.adapters.scenarios import find_event

from .helpers import (
    FlowThread,
    events_with,
    prefect_input,
    respond,
    wait_delivery,
    wait_for_state,
)


def test_retried_task_reuses_the_event(prefect_hub: HubProcess, flow_token: str) -> None:
    attempts: list[bool] = []

    @task(retries=1, retry_delay_seconds=0)
    def gate() -> bool:
        ok = approve("Deploy?", hub_url=prefect_hub.url, hub_token=flow_token)
        attempts.append(ok)
        if len(attempts) == 1:
            raise RuntimeError("the deploy failed after the approval")
        return ok

    run = FlowThread(lambda: gate(), name="retry-task").start()
    event = find_event(prefect_hub, run.key_prefix)
    assert respond(prefect_hub, event["id"], True).status_code == 200
    assert run.result(60).value is True
    assert attempts == [True, True]
    (only,) = events_with(prefect_hub, run.key_prefix)
    step = only["source"]["step"]
    assert step.startswith("gate-") and step.endswith("-1-1"), step
    assert only["source"]["params"]["task_run_id"]
    # the second attempt took the decision from the hub without pausing, and said so
    assert prefect_input(run.flow_run_id, f"signoff-{step}-taken") == {"event_id": event["id"]}
    assert wait_delivery(prefect_hub, event["id"], "delivered")["attempts"] == 1


def test_retried_flow_reuses_the_event(prefect_hub: HubProcess, flow_token: str) -> None:
    answers: list[Any] = []

    def step() -> Any:
        answers.append(ask("Batch size?", input=int, hub_url=prefect_hub.url,
                           hub_token=flow_token))
        if len(answers) == 1:
            raise RuntimeError("the job failed after the answer")
        return answers[-1]

    # Prefect counts the resume of a pause as a run (run_count 1 -> 2), so one retry after a
    # resumed pause needs retries=2 (seen on Prefect 3.8 with its own resume_flow_run too)
    run = FlowThread(step, name="retry-flow", retries=2, retry_delay_seconds=0).start()
    event = find_event(prefect_hub, run.key_prefix)
    assert respond(prefect_hub, event["id"], 64).status_code == 200
    assert run.result(60).value == 64
    assert answers == [64, 64] and run.box["starts"] == 2
    assert [e["id"] for e in events_with(prefect_hub, run.key_prefix)] == [event["id"]]


def test_concurrent_steps_in_tasks_take_turns(prefect_hub: HubProcess, flow_token: str) -> None:
    """Two tasks ask at once: one holds Prefect's pause, the other watches the hub."""
    @task
    def gate(name: str) -> bool:
        return approve(f"Ship {name}?", key=f"ship-{name}", hub_url=prefect_hub.url,
                       hub_token=flow_token)

    def step() -> tuple[bool, bool]:
        first, second = gate.submit("a"), gate.submit("b")
        return first.result(), second.result()

    run = FlowThread(step, name="concurrent").start()
    deadline = time.monotonic() + 60
    while len(events_with(prefect_hub, run.key_prefix)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    events = {e["source"]["step"]: e for e in events_with(prefect_hub, run.key_prefix)}
    paused = wait_for_state(run.flow_run_id, "PAUSED")["state"]["state_details"]["pause_key"]
    waiting = "ship-b" if paused == "ship-a" else "ship-a"
    # the step without the pause is answered first: it must not wait for the other one
    assert respond(prefect_hub, events[waiting]["id"], False).status_code == 200
    assert wait_delivery(prefect_hub, events[waiting]["id"], "delivered")
    assert respond(prefect_hub, events[paused]["id"], True).status_code == 200
    results = run.result(60).value
    assert dict(zip(("ship-a", "ship-b"), results, strict=True)) == {waiting: False, paused: True}
    assert wait_delivery(prefect_hub, events[paused]["id"], "delivered")
