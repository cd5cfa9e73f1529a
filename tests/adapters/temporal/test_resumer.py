"""The hub's ``temporal`` resumer, called directly against the real dev server, and once end to
end with a payload codec shared by the workers and the hub."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from signoff import Decision, Event
from signoff.adapters.temporal.resumer import TemporalResumer
from signoff.resumers import DeliveryFailed, RetryDelivery, load_resumer
from signoff.testing import free_port

from ..scenarios import find_event
from . import codec
from .harness import LoopThread, address_of, stack_on
from .workflows import AskOnce


def event(params: dict[str, Any], channel: str = "api") -> Event:
    now = datetime.now(timezone.utc)
    return Event(id="ev_test", key="k", name="approve", prompt="?", input={"kind": "approval"},
                 context={}, assignees=[], priority="normal", timeout=None,
                 on_timeout="reject", source={"orchestrator": "temporal", "params": params},
                 labels={}, requested_by="w", status="decided", created_at=now, deadline=None,
                 decision=Decision(value=True, outcome="approved", by="alice", channel=channel,
                                   at=now))


def params(**changes: Any) -> dict[str, Any]:
    return {"namespace": "default", "workflow_id": "no-such-workflow",
            "run_id": "01a20142-a16b-7cf6-8d2b-fbfa07e8b60b", "signal": "signoff:approve",
            **changes}


@pytest.fixture
def resumer(loop: LoopThread, dev_server: WorkflowEnvironment) -> Iterator[TemporalResumer]:
    made = TemporalResumer({"address": address_of(dev_server.client)})
    yield made
    loop.run(made.aclose())


def deliver(loop: LoopThread, resumer: TemporalResumer, item: Event) -> None:
    loop.run(resumer.deliver(item))


def test_found_through_the_entry_point() -> None:
    assert load_resumer("temporal") is TemporalResumer


@pytest.mark.parametrize(("change", "message"), [
    ({"run_id": None}, "source.params.run_id: expected a non-empty string, got None"),
    ({"workflow_id": ""}, "source.params.workflow_id: expected a non-empty string, got ''"),
    ({"signal": "approve"}, "source.params.signal: expected a name starting with 'signoff:'"),
    ({"namespace": "payments"}, "source.params.namespace: expected one of ['default']"),
], ids=["run_id", "workflow_id", "signal", "namespace"])
def test_bad_source_params_fail_the_delivery(loop: LoopThread, resumer: TemporalResumer,
                                             change: dict[str, Any], message: str) -> None:
    with pytest.raises(DeliveryFailed, match=message.replace("[", r"\[").replace("]", r"\]")):
        deliver(loop, resumer, event(params(**change)))


def test_unknown_run_fails_the_delivery(loop: LoopThread, resumer: TemporalResumer) -> None:
    with pytest.raises(DeliveryFailed, match="NOT_FOUND"):
        deliver(loop, resumer, event(params()))


def test_closed_run_fails_the_delivery(loop: LoopThread, dev_server: WorkflowEnvironment,
                                       resumer: TemporalResumer) -> None:
    handle = loop.run(dev_server.client.start_workflow(
        AskOnce.run, {"prompt": "never run", "input": {"kind": "approval"}},
        id="closed-run", task_queue="no-worker-here"))
    loop.run(handle.terminate("test"))
    with pytest.raises(DeliveryFailed, match="already completed"):
        deliver(loop, resumer, event(params(workflow_id=handle.id,
                                            run_id=handle.result_run_id)))


def test_unreachable_server_is_retried() -> None:
    loop = asyncio.new_event_loop()
    try:
        resumer = TemporalResumer({"address": f"127.0.0.1:{free_port()}", "rpc_timeout": 1})
        with pytest.raises(RetryDelivery, match="127.0.0.1"):
            loop.run_until_complete(resumer.deliver(event(params())))
    finally:
        loop.close()


def test_decisions_the_workflow_made_are_not_signalled() -> None:
    """Channel ``temporal`` (its timer, its cancel): returns without calling anyone."""
    loop = asyncio.new_event_loop()
    try:
        resumer = TemporalResumer({"address": f"127.0.0.1:{free_port()}"})
        loop.run_until_complete(resumer.deliver(event(params(run_id=None), channel="temporal")))
    finally:
        loop.close()


def test_a_listed_namespace_is_signalled(loop: LoopThread, dev_server: WorkflowEnvironment) -> None:
    resumer = TemporalResumer({"address": address_of(dev_server.client),
                               "namespaces": "default, payments"})
    assert resumer.namespaces == ["default", "payments"]
    with pytest.raises(DeliveryFailed, match="Namespace payments is not found"):
        deliver(loop, resumer, event(params(namespace="payments")))


@pytest.mark.parametrize(("settings", "message"), [
    ({"adress": "x:1"}, r"unknown settings \['adress'\]"),
    ({"tls": "maybe"}, "tls: expected true or false, got 'maybe'"),
    ({"namespaces": 3}, "namespaces: expected a list of names, got 3"),
    ({"rpc_timeout": "soon"}, "rpc_timeout: expected seconds, got 'soon'"),
    ({"data_converter": "nomodule"}, "data_converter: expected 'module:attribute'"),
], ids=["unknown", "tls", "namespaces", "rpc_timeout", "converter-path"])
def test_bad_settings_are_refused_naming_the_key(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TemporalResumer(settings)


@pytest.mark.parametrize(("path", "message"), [
    ("json:dumps", "data_converter: json:dumps is not a DataConverter"),
    ("no_such_module_here:converter", "No module named 'no_such_module_here'"),
])
def test_a_converter_that_does_not_load_keeps_the_delivery(path: str, message: str) -> None:
    """Found when the SDK loads (first delivery): retried, so fixing the hub's configuration
    and restarting it delivers what waited."""
    loop = asyncio.new_event_loop()
    try:
        resumer = TemporalResumer({"address": f"127.0.0.1:{free_port()}", "data_converter": path})
        with pytest.raises(RetryDelivery, match=message):
            loop.run_until_complete(resumer.deliver(event(params())))
    finally:
        loop.close()


def test_a_payload_codec_shared_with_the_hub(loop: LoopThread, dev_server: WorkflowEnvironment,
                                             tmp_path: Path) -> None:
    """Workers that encode payloads (encryption) need the hub to encode its signal the same
    way: ``data_converter = "module:attribute"``."""
    client = loop.run(Client.connect(address_of(dev_server.client),
                                     data_converter=codec.converter))
    with stack_on(loop, dev_server, tmp_path / "hub.db", client=client,
                  extra_env={"SIGNOFF_RESUMERS__TEMPORAL__DATA_CONVERTER":
                             "tests.adapters.temporal.codec:converter"}) as stack:
        handle = stack.start(AskOnce.run, {"prompt": "Encoded?", "input": {"kind": "text"}})
        found = find_event(stack.hub, stack.key_prefix(handle))
        answered = stack.api("POST", f"/events/{found['id']}/responses",
                             json={"value": "yes, encoded"})
        assert answered.status_code == 200, answered.text
        assert stack.result(handle)["value"] == "yes, encoded"

        async def signal_encoding() -> bytes:
            history = await dev_server.client.get_workflow_handle(handle.id).fetch_history()
            signalled = [e.workflow_execution_signaled_event_attributes for e in history.events
                         if e.HasField("workflow_execution_signaled_event_attributes")]
            return bytes(signalled[0].input.payloads[0].metadata["encoding"])

        assert loop.run(signal_encoding()) == codec.ENCODING
