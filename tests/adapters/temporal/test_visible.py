"""Waiting is visible in Temporal: the worker's activity log shows the inbox URL once per wait,
the event links to the workflow in the Temporal UI, and a worker with no hub fails at start."""

from __future__ import annotations

import logging

import pytest

from signoff import HubNotConfigured
from signoff.adapters.temporal import SignoffPlugin, activities
from signoff.testing import until

from .harness import UI_URL, Stack
from .workflows import AskOnce

WAITING = "signoff: waiting for an answer in the inbox: "


def test_the_worker_log_shows_the_inbox_url_once(dev_shared: Stack,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="temporalio.activity")
    stack = dev_shared
    handle = stack.start(AskOnce.run, {"prompt": "Ship it?", "input": {"kind": "approval"}})
    event = until(lambda: stack.events_of(handle), timeout=60, what="the event")[0]
    inbox = f"{stack.hub.url}/events/{event['id']}"
    assert event["source"]["link"] == (f"{UI_URL}/namespaces/default/workflows/{handle.id}/"
                                       f"{handle.result_run_id}/history")
    until(lambda: any(WAITING + inbox in r.getMessage() for r in caplog.records),
          what="the waiting line in the worker's log")
    answered = stack.api("POST", f"/events/{event['id']}/responses", json={"value": True})
    assert answered.status_code == 200, answered.text
    assert stack.result(handle)["value"] is True
    lines = [r.getMessage() for r in caplog.records if WAITING in r.getMessage()
             and event["id"] in r.getMessage()]
    assert len(lines) == 1, lines


def test_a_worker_with_no_hub_fails_at_start_naming_the_setting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGNOFF_URL", raising=False)
    with pytest.raises(HubNotConfigured, match=r"set SIGNOFF_URL \(or SignoffPlugin\(url=\)"):
        SignoffPlugin()
    with pytest.raises(HubNotConfigured, match="activities"):
        activities()
