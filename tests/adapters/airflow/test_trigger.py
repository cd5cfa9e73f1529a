"""The trigger on its own: a real hub, the trigger's real ``run()`` in this process's loop."""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from signoff import Client
from signoff.testing import HubProcess


def _trigger(**kwargs: Any) -> Any:
    from signoff.adapters.airflow.triggers import SignoffTrigger

    return SignoffTrigger(**kwargs)


async def _first(trigger: Any) -> dict[str, Any]:
    async for event in trigger.run():
        payload: dict[str, Any] = event.payload
        return payload
    raise AssertionError("the trigger ended without an event")


def _pending(hub: HubProcess, token: str, **fields: Any) -> str:
    with Client(hub.url, token) as client:
        return client.create(name="t", prompt="ok?", **fields).id


@pytest.fixture
def token(hub: HubProcess) -> str:
    return hub.token("airflow", role="workflow")


def test_serialize_round_trips_through_the_classpath() -> None:
    trigger = _trigger(hub_url="http://127.0.0.1:1", event_id="ev_1", token="s3cret",
                       deadline="2030-01-01T00:00:00+00:00")
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert all(isinstance(v, (str, float, bool, type(None))) for v in kwargs.values())
    assert "s3cret" not in repr(trigger) and "token=***" in repr(trigger)


def test_decision_fires_one_event_promptly(hub: HubProcess, token: str) -> None:
    event_id = _pending(hub, token)

    async def scenario() -> tuple[dict[str, Any], float]:
        waiting = asyncio.create_task(_first(_trigger(hub_url=hub.url, event_id=event_id,
                                                      token=token)))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        answered = time.monotonic()
        await asyncio.to_thread(
            lambda: Client(hub.url, hub.admin_token).respond(event_id, True, "fine"))
        payload = await asyncio.wait_for(waiting, 10)
        return payload, time.monotonic() - answered

    payload, latency = asyncio.run(scenario())
    assert payload["status"] == "decided" and payload["event_id"] == event_id
    assert payload["decision"]["outcome"] == "approved"
    assert payload["decision"]["comment"] == "fine"
    assert latency < 2.0  # woken by the long-poll, not by a sleep loop


def test_unknown_event_and_refused_token_end_with_an_error(hub: HubProcess, token: str) -> None:
    missing = asyncio.run(_first(_trigger(hub_url=hub.url, event_id="ev_nope", token=token)))
    assert missing["status"] == "error" and missing["error"] == "NotFound"
    assert "refused to wait for event ev_nope" in missing["message"]
    event_id = _pending(hub, token)
    refused = asyncio.run(_first(_trigger(hub_url=hub.url, event_id=event_id, token="bad")))
    assert refused["status"] == "error" and refused["error"] == "Unauthenticated"


def test_deadline_ends_the_wait_with_a_timeout(hub: HubProcess, token: str) -> None:
    event_id = _pending(hub, token)  # no deadline on the hub: only the trigger's own
    deadline = (datetime.now(timezone.utc) + timedelta(seconds=1.5)).isoformat()
    started = time.monotonic()
    payload = asyncio.run(_first(_trigger(hub_url=hub.url, event_id=event_id, token=token,
                                          deadline=deadline)))
    assert 1.0 < time.monotonic() - started < 5.0
    assert payload["status"] == "timeout" and payload["deadline"] == deadline
    assert payload["message"] == f"no decision for event {event_id} from {hub.url} by {deadline}"


def test_unreachable_hub_is_retried_until_the_deadline() -> None:
    from signoff.testing import free_port

    url = f"http://127.0.0.1:{free_port()}"
    deadline = (datetime.now(timezone.utc) + timedelta(seconds=2)).isoformat()
    payload = asyncio.run(_first(_trigger(hub_url=url, event_id="ev_1", token="t",
                                          deadline=deadline)))
    assert payload["status"] == "timeout"
    assert payload["last_error"].startswith("HubUnavailable")


def test_token_from_the_triggerer_environment(hub: HubProcess, token: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    event_id = _pending(hub, token)
    monkeypatch.delenv("SIGNOFF_TOKEN", raising=False)
    missing = asyncio.run(_first(_trigger(hub_url=hub.url, event_id=event_id,
                                          token_env="SIGNOFF_TOKEN")))
    assert missing["status"] == "error" and missing["error"] == "no_token"
    assert "environment has no SIGNOFF_TOKEN" in missing["message"]
    monkeypatch.setenv("SIGNOFF_TOKEN", token)
    Client(hub.url, hub.admin_token).respond(event_id, False)
    payload = asyncio.run(_first(_trigger(hub_url=hub.url, event_id=event_id,
                                          token_env="SIGNOFF_TOKEN")))
    assert payload["decision"]["outcome"] == "rejected"


def test_token_from_a_connection_read_when_the_trigger_starts(
        hub: HubProcess, token: str, monkeypatch: pytest.MonkeyPatch) -> None:
    event_id = _pending(hub, token)
    monkeypatch.setenv("AIRFLOW_CONN_SIGNOFF_HERE", json.dumps(
        {"conn_type": "signoff", "host": hub.url, "password": token}))
    trigger = _trigger(hub_url=hub.url, event_id=event_id, conn_id="signoff_here")
    assert token not in json.dumps(trigger.serialize()[1])
    Client(hub.url, hub.admin_token).respond(event_id, True)
    assert asyncio.run(_first(trigger))["decision"]["outcome"] == "approved"
    missing = asyncio.run(_first(_trigger(hub_url=hub.url, event_id=event_id,
                                          conn_id="signoff_nowhere")))
    assert missing["status"] == "error" and missing["error"] == "no_token"
    assert missing["message"].startswith(
        "the triggerer could not read the connection 'signoff_nowhere': ")


def test_many_triggers_wait_side_by_side_in_one_loop(hub: HubProcess, token: str) -> None:
    from signoff.adapters.airflow.triggers import _tls

    count = 200
    with Client(hub.url, token) as client:
        ids = [client.create(name="t", prompt=f"n{i}?", input=int).id for i in range(count)]

    async def scenario() -> list[dict[str, Any]]:
        tasks = [asyncio.create_task(_first(_trigger(hub_url=hub.url, event_id=i, token=token)))
                 for i in ids]
        await asyncio.sleep(1.0)
        assert not any(t.done() for t in tasks)
        assert _tls.cache_info().currsize == 1  # one TLS context for all their clients

        def answer_all() -> None:
            with Client(hub.url, hub.admin_token) as admin:
                for n, event_id in enumerate(ids):
                    admin.respond(event_id, n)

        await asyncio.to_thread(answer_all)
        return await asyncio.wait_for(asyncio.gather(*tasks), 60)

    payloads = asyncio.run(scenario())
    assert [p["decision"]["value"] for p in payloads] == list(range(count))


def test_on_kill_cancels_the_pending_event(hub: HubProcess, token: str) -> None:
    event_id = _pending(hub, token)
    asyncio.run(_trigger(hub_url=hub.url, event_id=event_id, token=token).on_kill())
    event = Client(hub.url, hub.admin_token).get(event_id)
    assert event.status == "cancelled" and event.decision is not None
    assert event.decision.comment == "the Airflow task was cleared or marked by hand while waiting"
    # a decided event is left as it is, and so is one the trigger may not cancel
    asyncio.run(_trigger(hub_url=hub.url, event_id=event_id, token=token).on_kill())
    kept = _pending(hub, token)
    asyncio.run(_trigger(hub_url=hub.url, event_id=kept, token=token,
                         cancel_on_kill=False).on_kill())
    assert Client(hub.url, hub.admin_token).get(kept).status == "pending"


def _decided(outcome: str, value: Any) -> dict[str, Any]:
    return {"status": "decided", "event_id": "ev_1", "decision": {
        "outcome": outcome, "value": value, "by": "ana", "comment": "go"}}


def test_an_answer_the_sensor_only_returns_ends_the_task_in_the_triggerer() -> None:
    from airflow.triggers.base import TaskSuccessEvent

    approval = _trigger(hub_url="http://127.0.0.1:1", event_id="ev_1", finish="approved")
    ended = approval._task_end(_decided("approved", True))
    assert isinstance(ended, TaskSuccessEvent)
    assert ended.xcoms == {"return_value": True, "signoff_decision": {
        "event_id": "ev_1", "outcome": "approved", "value": True, "by": "ana", "comment": "go"}}
    # a rejection, or a default of False at the deadline, is the sensor's to handle
    assert approval._task_end(_decided("rejected", False)) is None
    assert approval._task_end(_decided("timed_out", False)) is None
    for status in ("timeout", "error"):
        assert approval._task_end({"status": status, "event_id": "ev_1"}) is None

    typed = _trigger(hub_url="http://127.0.0.1:1", event_id="ev_1", finish="value",
                     push_return=False)
    ended = typed._task_end(_decided("answered", 7))
    assert isinstance(ended, TaskSuccessEvent) and "return_value" not in (ended.xcoms or {})
    assert typed._task_end(_decided("expired", None)) is None
    assert typed._task_end(_decided("cancelled", None)) is None
    # without ``finish`` every decision goes back to the sensor on a worker
    plain = _trigger(hub_url="http://127.0.0.1:1", event_id="ev_1")
    assert plain._task_end(_decided("approved", True)) is None
    with pytest.raises(ValueError, match="finish: expected one of"):
        _trigger(hub_url="http://127.0.0.1:1", event_id="ev_1", finish="always")


def test_which_sensors_let_the_trigger_end_the_task() -> None:
    from signoff.adapters.airflow import ApprovalSensor, BranchSensor, InputSensor

    class Doubled(InputSensor):
        def answered(self, context: Any, decision: Any) -> Any:
            return 2 * decision.value

    assert ApprovalSensor(task_id="a", prompt="ok?").finish_in_trigger() == "approved"
    assert InputSensor(task_id="i", prompt="n?", input=int).finish_in_trigger() == "value"
    assert BranchSensor(task_id="b", prompt="which?",
                        options=["x", "y"]).finish_in_trigger() == ""
    assert Doubled(task_id="d", prompt="n?", input=int).finish_in_trigger() == ""
