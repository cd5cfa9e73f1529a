"""Long deadlines crossed in Temporal's time-skipping test server, with the real hub.

The hub's deadline runs on the wall clock; the workflow's durable timer on Temporal's clock,
which this server skips ahead. Two days pass in the workflow in a second: the timer fires
first, the hub still waits, and the workflow withdraws the event and applies ``on_timeout``
itself. An answer given before the deadline travels as usual: hub, resumer, signal.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType

from ..scenarios import Outcome, find_event
from .harness import Stack
from .workflows import AskOnce, CatchRejected

TWO_DAYS = 2 * 86400.0


def history_timers(stack: Stack, handle: Any) -> list[float]:
    async def fetch() -> list[float]:
        history = await handle.fetch_history()
        return [e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
                .total_seconds() for e in history.events
                if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]

    return stack.loop.run(fetch())


@pytest.mark.parametrize(("spec", "on_timeout", "expect"), [
    ({"kind": "approval"}, "reject", Outcome(value=False)),
    ({"kind": "int", "default": 3}, "default", Outcome(value=3)),
    ({"kind": "approval"}, "fail", Outcome(error="expired")),
], ids=["reject", "default", "fail"])
def test_two_day_deadline_in_workflow_time(skipping: Stack, spec: dict[str, Any],
                                           on_timeout: str, expect: Outcome) -> None:
    handle = skipping.start(AskOnce.run, {"prompt": "Two days?", "input": spec,
                                          "options": {"timeout": TWO_DAYS,
                                                      "on_timeout": on_timeout}})
    event = find_event(skipping.hub, skipping.key_prefix(handle))
    assert event["timeout"] == TWO_DAYS
    assert skipping.outcome(handle) == expect
    # the durable timer: the deadline plus the default grace of one minute
    assert history_timers(skipping, handle) == [TWO_DAYS + 60]
    after = skipping.event(event["id"])
    assert after["status"] == "cancelled"
    assert after["decision"]["channel"] == "temporal"
    assert "durable timer" in after["decision"]["comment"]
    assert "on_timeout" in after["decision"]["comment"]
    # nothing to deliver: the workflow made that decision itself
    delivered = skipping.wait_delivered(event["id"])
    assert [d["state"] for d in delivered["deliveries"]] in ([], ["delivered"])


def test_answer_after_one_day(skipping: Stack) -> None:
    handle = skipping.start(AskOnce.run, {"prompt": "Within two days?",
                                          "input": {"kind": "approval"},
                                          "options": {"timeout": TWO_DAYS}})
    event = find_event(skipping.hub, skipping.key_prefix(handle))
    started = skipping.loop.run(skipping.env.get_current_time())
    skipping.loop.run(skipping.env.sleep(timedelta(days=1)))
    answered = skipping.api("POST", f"/events/{event['id']}/responses", json={"value": True})
    assert answered.status_code == 200, answered.text
    result = skipping.result(handle)
    assert result["value"] is True
    waited = result["continued_at"] - started.timestamp()
    assert 86400 <= waited < TWO_DAYS, waited
    after = skipping.event(event["id"])
    assert after["decision"]["outcome"] == "approved"
    assert [d["state"] for d in after["deliveries"]] == ["delivered"]


def test_rejected_is_catchable_in_workflow_code(skipping: Stack) -> None:
    handle = skipping.start(CatchRejected.run, TWO_DAYS)
    find_event(skipping.hub, skipping.key_prefix(handle))
    assert skipping.result(handle) == "caught: timeout"
