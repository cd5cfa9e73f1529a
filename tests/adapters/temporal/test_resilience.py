"""Restarts and outages on the real dev server: the hub, the Temporal server, the workflow."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import CancelledError

from signoff.testing import free_port

from ..scenarios import find_event
from .harness import LoopThread, Stack, stack_on, start_dev_server
from .workflows import AskOnce


def respond(stack: Stack, event_id: str, value: object) -> None:
    answered = stack.api("POST", f"/events/{event_id}/responses", json={"value": value})
    assert answered.status_code == 200, answered.text


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_hub_restarted_while_waiting(dev: Stack, kill: bool) -> None:
    handle = dev.start(AskOnce.run, {"prompt": "Across a hub restart?",
                                     "input": {"kind": "approval"}})
    event = find_event(dev.hub, dev.key_prefix(handle))
    dev.hub.restart(kill=kill)
    respond(dev, event["id"], True)
    assert dev.result(handle)["value"] is True
    delivered = dev.wait_delivered(event["id"])
    assert [d["state"] for d in delivered["deliveries"]] == ["delivered"]


def test_worker_restarted_while_waiting_reuses_the_event(dev: Stack) -> None:
    """A fresh worker replays the run from history: the create activity is not run again."""
    handle = dev.start(AskOnce.run, {"prompt": "Reuse?", "input": {"kind": "approval"}})
    event = find_event(dev.hub, dev.key_prefix(handle))
    dev.stop_worker()
    respond(dev, event["id"], True)  # delivered while no worker runs: Temporal keeps it
    assert [d["state"] for d in dev.wait_delivered(event["id"])["deliveries"]] == ["delivered"]
    dev.start_worker()
    assert dev.result(handle)["value"] is True
    assert [e["id"] for e in dev.events_of(handle)] == [event["id"]]


def test_temporal_down_when_decided_is_retried_until_accepted(loop: LoopThread,
                                                               tmp_path: Path) -> None:
    """The Temporal server is down when the answer comes: the hub keeps the delivery, retries
    with backoff (the error visible on the event), and delivers once the server is back."""
    port = free_port()
    database = str(tmp_path / "temporal.db")
    first = loop.run(start_dev_server(port=port, dev_server_database_filename=database))
    # a short rpc_timeout: a signal to a server that is down fails in 2 s, not in 10
    with stack_on(loop, first, tmp_path / "hub.db", address=f"127.0.0.1:{port}",
                  extra_env={"SIGNOFF_RESUMERS__TEMPORAL__RPC_TIMEOUT": "2"}) as stack:
        # one delivery while the server is up: the hub's resumer holds a connection
        warm = stack.start(AskOnce.run, {"prompt": "Warm up", "input": {"kind": "approval"}})
        respond(stack, find_event(stack.hub, stack.key_prefix(warm))["id"], True)
        assert stack.result(warm)["value"] is True
        handle = stack.start(AskOnce.run, {"prompt": "Temporal goes away?",
                                           "input": {"kind": "text"}})
        event = find_event(stack.hub, stack.key_prefix(handle))
        stack.stop_worker()
        loop.run(first.shutdown())
        respond(stack, event["id"], "sent while Temporal was down")
        deadline = time.monotonic() + 30
        while True:
            deliveries = stack.event(event["id"])["deliveries"]
            if deliveries and deliveries[0]["attempts"] >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert deliveries[0]["state"] == "pending", deliveries
        assert deliveries[0]["attempts"] >= 2, deliveries
        assert "UNAVAILABLE" in (deliveries[0]["last_error"] or ""), deliveries
        second = loop.run(start_dev_server(port=port, dev_server_database_filename=database))
        try:
            stack.env = second
            delivered = stack.wait_delivered(event["id"], timeout=60)
            assert delivered["deliveries"][0]["state"] == "delivered", delivered["deliveries"]
            stack.start_worker()
            assert stack.result(handle)["value"] == "sent while Temporal was down"
        finally:
            stack.stop_worker()
            loop.run(second.shutdown())


def test_cancelled_workflow_withdraws_its_event(dev: Stack) -> None:
    handle = dev.start(AskOnce.run, {"prompt": "Cancel me", "input": {"kind": "approval"}})
    event = find_event(dev.hub, dev.key_prefix(handle))
    dev.loop.run(handle.cancel())
    with pytest.raises(WorkflowFailureError) as failed:
        dev.result(handle)
    assert isinstance(failed.value.cause, CancelledError)
    after = dev.event(event["id"])
    assert after["status"] == "cancelled"
    assert after["decision"]["channel"] == "temporal"
    assert after["decision"]["comment"] == "the Temporal workflow was cancelled"
    # the workflow made that decision: nothing is signalled to the closed run
    delivered = dev.wait_delivered(event["id"])
    assert [d["state"] for d in delivered["deliveries"]] in ([], ["delivered"])
    assert [d["last_error"] for d in delivered["deliveries"]] in ([], [None])
