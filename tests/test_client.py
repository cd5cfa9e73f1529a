"""signoff.Client and AsyncClient against a real hub: typed errors, retries, waits."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from signoff import (
    AlreadyDecided,
    AsyncClient,
    Client,
    Forbidden,
    HubUnavailable,
    InvalidInput,
    NotFound,
    Rejected,
    Unauthenticated,
    WaitTimeout,
    result_of,
)
from signoff.testing import HubProcess, free_port


class Launch(BaseModel):
    region: str
    replicas: int


def test_hub_errors_become_typed_exceptions(shared_hub: HubProcess) -> None:
    flow = Client(shared_hub.url, shared_hub.token("c-flow", role="workflow"))
    sam = Client(shared_hub.url, shared_hub.token("c-sam", role="reviewer"))
    admin = Client(shared_hub.url, shared_hub.admin_token)
    event = flow.create(name="typed", prompt="How many?", input=int, assignees=["ann"])
    with pytest.raises(Forbidden):
        sam.respond(event.id, 3)
    with pytest.raises(InvalidInput) as caught:
        admin.respond(event.id, "three")
    assert (caught.value.field, caught.value.got) == ("value", "three")
    with pytest.raises(NotFound):
        admin.get("ev_missing")
    with pytest.raises(Unauthenticated):
        Client(shared_hub.url, "so_wrong").get(event.id)
    admin.respond(event.id, 3)
    with pytest.raises(AlreadyDecided):
        admin.respond(event.id, 4)


def test_pydantic_model_input_and_result(shared_hub: HubProcess) -> None:
    flow = Client(shared_hub.url, shared_hub.token("c-flow2", role="workflow"))
    event = flow.create(name="launch", prompt="Where?", input=Launch)
    assert event.input.kind == "form"
    Client(shared_hub.url, shared_hub.admin_token).respond(event.id, {"region": "eu",
                                                                      "replicas": 2})
    decision = flow.wait(event.id, timeout=5)
    assert Launch.model_validate(result_of(decision)) == Launch(region="eu", replicas=2)


def test_rejection_raises_for_input_and_is_false_for_approval(shared_hub: HubProcess) -> None:
    flow = Client(shared_hub.url, shared_hub.token("c-flow3", role="workflow"))
    event = flow.create(name="gate", prompt="Go?")
    Client(shared_hub.url, shared_hub.admin_token).respond(event.id, False, "no way")
    decision = flow.wait(event.id, timeout=5)
    assert result_of(decision, approval=True) is False
    with pytest.raises(Rejected, match="rejected by admin: no way"):
        result_of(decision)


def test_wait_times_out(shared_hub: HubProcess) -> None:
    flow = Client(shared_hub.url, shared_hub.token("c-flow4", role="workflow"))
    event = flow.create(name="slow", prompt="Go?")
    started = time.monotonic()
    with pytest.raises(WaitTimeout):
        flow.wait(event.id, timeout=1)
    assert 0.9 < time.monotonic() - started < 5


def test_unreachable_hub_raises_after_the_retry_window() -> None:
    client = Client(f"http://127.0.0.1:{free_port()}", "x", retry_for=1)
    started = time.monotonic()
    with pytest.raises(HubUnavailable, match="ConnectError"):
        client.get("ev_x")
    assert 0.9 < time.monotonic() - started < 5


def test_create_is_retried_until_the_hub_is_up(tmp_path: Path) -> None:
    hub = HubProcess(tmp_path / "late.db").start()
    token = hub.token("late-flow", role="workflow")
    hub.stop()
    created = {}

    def create() -> None:
        created["event"] = Client(hub.url, token, retry_for=30).create(name="x", prompt="p")

    thread = threading.Thread(target=create)
    thread.start()
    time.sleep(1.0)
    assert thread.is_alive()
    hub.start()
    try:
        thread.join(30)
        assert created["event"].status == "pending"
        admin = Client(hub.url, hub.admin_token)
        assert [e.id for e in admin.list().events] == [created["event"].id]
    finally:
        hub.stop()


def test_async_client_does_the_same(shared_hub: HubProcess) -> None:
    flow_token = shared_hub.token("c-async", role="workflow")

    async def scenario() -> None:
        async with AsyncClient(shared_hub.url, flow_token) as flow, \
                AsyncClient(shared_hub.url, shared_hub.admin_token) as admin:
            event = await flow.create(name="async", prompt="Pick",
                                      input={"kind": "choice", "options": ["x", "y"]})
            waiting = asyncio.create_task(flow.wait(event.id, timeout=10))
            await asyncio.sleep(0.2)
            with pytest.raises(InvalidInput):
                await admin.respond(event.id, "z")
            await admin.respond(event.id, "y")
            decision = await waiting
            assert decision.value == "y" and decision.by == "admin"
            assert [e.id async for e in admin.iter_events(status="decided", page_size=1)
                    if e.id == event.id] == [event.id]
            trail = await flow.audit(event.id)
            assert [e["action"] for e in trail] == ["created", "responded", "answered"]

    asyncio.run(scenario())
