"""``POST /api/v1/events:batch`` and ``Client.create_events`` against a real `signoff serve`:
each item validated, keyed and rate-limited on its own, one result per item in order, and
nothing written for a refused item or a refused request.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff import (
    AsyncClient,
    Client,
    Event,
    EventCreate,
    Forbidden,
    Identity,
    InvalidInput,
    RateLimited,
    StoreUnavailable,
)
from signoff.hub import load_settings
from signoff.hub.batch import create_batch
from signoff.hub.service import Hub
from signoff.store import open_store
from signoff.testing import HubProcess

BATCH = "/api/v1/events:batch"


def _post(hub: HubProcess, token: str, body: Any) -> httpx.Response:
    return httpx.post(f"{hub.url}{BATCH}", json=body, headers=hub.headers(token), timeout=60)


def _ids_of(hub: HubProcess, token: str) -> set[str]:
    answer = httpx.get(f"{hub.url}/api/v1/events", params={"limit": 500},
                       headers=hub.headers(token), timeout=30)
    return {e["id"] for e in answer.json()["events"]}


def _audit(hub: HubProcess, event_id: str) -> list[str]:
    answer = httpx.get(f"{hub.url}/api/v1/events/{event_id}/audit", headers=hub.headers(),
                       timeout=30)
    return [line["action"] for line in answer.json()["entries"]]


def test_each_item_gets_its_own_result_in_order(shared_hub: HubProcess) -> None:
    flow = shared_hub.token("batch-flow", role="workflow")
    before = _ids_of(shared_hub, flow)
    items = [
        {"name": "a", "prompt": "First?", "key": "batch-k1"},
        {"name": "b"},  # no prompt
        {"name": "a", "prompt": "First?", "key": "batch-k1"},  # same key and payload
        {"name": "c", "prompt": "Timed?", "timeout": -1},
        {"name": "d", "prompt": "Auto?", "confidence": 0.99, "impact": "low",
         "recommendation": True,
         "policy": {"route": [{"when": "confidence >= 0.9", "then": "approve"}]}},
        "not an object",
    ]
    answer = _post(shared_hub, flow, {"events": items[:5]})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["status"] for r in results] == [201, 422, 200, 422, 201]
    first = results[0]["event"]
    assert first["requested_by"] == "batch-flow" and first["prompt"] == "First?"
    assert results[2]["event"]["id"] == first["id"]  # the key names the first one, unchanged
    assert results[2]["event"]["prompt"] == "First?"
    assert results[1]["error"]["field"] == "events.1.prompt"
    assert results[3]["error"]["field"] == "events.3.timeout"
    assert results[3]["error"]["code"] == "invalid_input" and "event" not in results[3]
    decided = results[4]["event"]
    assert decided["status"] == "decided" and decided["decision"]["by"] == "policy"
    # only the valid items were written, each with its own audit trail
    assert _ids_of(shared_hub, flow) - before == {first["id"], decided["id"]}
    assert _audit(shared_hub, first["id"]) == ["created"]
    # the same key with another payload never gets the first event: that item is a 409
    again = _post(shared_hub, flow, {"events": [{"name": "a", "prompt": "Again?",
                                                 "key": "batch-k1"}]}).json()["results"]
    assert again[0]["status"] == 409 and again[0]["error"]["code"] == "key_reused"
    assert again[0]["error"]["changed"] == ["prompt"] and "event" not in again[0]
    assert _audit(shared_hub, decided["id"]) == ["created", "approved"]
    # an item that is not an object: the request's own shape is wrong, 422 naming it
    refused = _post(shared_hub, flow, {"events": items})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "events.5"
    assert _ids_of(shared_hub, flow) - before == {first["id"], decided["id"]}


@pytest.mark.parametrize(("body", "field"), [
    ({"events": []}, "events"),
    ({"events": [{"name": "x", "prompt": "?"}] * 501}, "events"),
    ({}, "events"),
    ([{"name": "x", "prompt": "?"}], "body"),
])
def test_a_batch_of_the_wrong_shape_is_422_and_writes_nothing(
        shared_hub: HubProcess, body: Any, field: str) -> None:
    flow = shared_hub.token("batch-shape", role="workflow")
    answer = _post(shared_hub, flow, body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == field
    assert _ids_of(shared_hub, flow) == set()


def test_reviewers_cannot_create_in_a_batch(shared_hub: HubProcess) -> None:
    rita = shared_hub.token("batch-rita", role="reviewer")
    answer = _post(shared_hub, rita, {"events": [{"name": "x", "prompt": "?"}]})
    assert answer.status_code == 403
    assert _ids_of(shared_hub, shared_hub.admin_token or "") >= set()  # the hub still answers
    with Client(shared_hub.url, token=rita, retry_for=0) as client, pytest.raises(Forbidden):
        client.create_events([{"name": "x", "prompt": "?"}])


def test_a_key_is_scoped_to_the_token_in_a_batch(shared_hub: HubProcess) -> None:
    one = shared_hub.token("batch-one", role="workflow")
    two = shared_hub.token("batch-two", role="workflow")
    item = {"name": "k", "prompt": "Keyed?", "key": "batch-shared-key"}
    mine = _post(shared_hub, one, {"events": [item]}).json()["results"][0]
    theirs = _post(shared_hub, two, {"events": [item]}).json()["results"][0]
    assert mine["status"] == theirs["status"] == 201
    assert mine["event"]["id"] != theirs["event"]["id"]


def test_each_item_counts_against_the_rate_limit(tmp_path: Path) -> None:
    env = {"SIGNOFF_CREATE_RATE": "0.05", "SIGNOFF_CREATE_BURST": "3",
           "SIGNOFF_PENDING_PER_TOKEN": "0"}
    with HubProcess(tmp_path / "hub.db", env=env) as hub:
        flow = hub.token("flow", role="workflow")
        items = [{"name": "r", "prompt": f"Rate {i}?"} for i in range(5)]
        results = _post(hub, flow, {"events": items}).json()["results"]
        assert [r["status"] for r in results] == [201, 201, 201, 429, 429]
        assert results[3]["error"]["limit"] == "create_rate"
        assert len(_ids_of(hub, flow)) == 3
        # the single create shares the bucket: it is empty
        single = httpx.post(f"{hub.url}/api/v1/events", json=items[0],
                            headers=hub.headers(flow), timeout=30)
        assert single.status_code == 429


def test_the_client_returns_events_and_errors_in_order(shared_hub: HubProcess) -> None:
    flow = shared_hub.token("batch-client", role="workflow")
    with Client(shared_hub.url, token=flow) as client:
        results = client.create_events([
            EventCreate(name="typed", prompt="Typed?"),
            {"name": "raw", "prompt": "Raw?", "key": "client-batch-raw"},
            {"name": "bad", "prompt": "Bad?", "timeout": 0},
        ])
        assert isinstance(results[0], Event) and results[0].prompt == "Typed?"
        assert isinstance(results[1], Event) and results[1].key == "client-batch-raw"
        assert isinstance(results[2], InvalidInput) and results[2].field == "events.2.timeout"
        again = client.create_events([{"name": "raw", "prompt": "Raw?",
                                       "key": "client-batch-raw"}])
        assert isinstance(again[0], Event) and again[0].id == results[1].id
        with pytest.raises(ValueError):
            client.create_events([])

    async def run() -> list[Event | Exception]:
        async with AsyncClient(shared_hub.url, token=flow) as client:
            found: list[Event | Exception] = list(await client.create_events(
                [EventCreate(name=f"async-{i}", prompt="Async?") for i in range(3)]))
            return found

    made = asyncio.run(run())
    assert all(isinstance(e, Event) for e in made)
    assert len({e.id for e in made if isinstance(e, Event)}) == 3


def test_rate_limited_items_come_back_as_rate_limited(tmp_path: Path) -> None:
    env = {"SIGNOFF_CREATE_RATE": "0.05", "SIGNOFF_CREATE_BURST": "1",
           "SIGNOFF_PENDING_PER_TOKEN": "0"}
    with HubProcess(tmp_path / "hub.db", env=env) as hub:
        flow = hub.token("flow", role="workflow")
        with Client(hub.url, token=flow) as client:
            first, second = client.create_events([EventCreate(name="x", prompt="1?"),
                                                  EventCreate(name="x", prompt="2?")])
        assert isinstance(first, Event)
        assert isinstance(second, RateLimited) and second.limit == "create_rate"


def test_the_store_unreachable_midway_never_calls_a_written_item_refused(
        tmp_path: Path) -> None:
    """The database gone before anything is written: the whole batch is a 503. Gone midway
    (PostgreSQL commits each item on its own): the written items keep their 201, the rest are
    503 and are not tried; what the answer says was written is exactly what is stored."""
    async def go() -> None:
        store = open_store(str(tmp_path / "hub.db"))
        hub = Hub(load_settings(database=str(tmp_path / "hub.db")), store)
        who = Identity(user="flow", role="workflow")
        create, tried, down = store.create_event, [], set()

        def flaky(event: Event, **fields: Any) -> tuple[Event, bool]:
            tried.append(event.key)
            if event.key in down:
                raise StoreUnavailable("the database cannot be reached just now (test)")
            return create(event, **fields)

        store.create_event = flaky  # type: ignore[method-assign]

        def items(*keys: str) -> list[dict[str, Any]]:
            return [{"name": "gate", "prompt": f"Ship {k}?", "key": k} for k in keys]

        try:
            down.add("a1")
            with pytest.raises(StoreUnavailable):
                await create_batch(hub, who, items("a1", "a2"), None)
            assert tried == ["a1"] and store.count_events() == 0
            tried.clear()
            down.add("b3")
            results = await create_batch(hub, who, items("b1", "b2", "b3", "b4"), None)
            assert [status for status, _, _ in results] == [201, 201, 503, 503]
            assert results[2][2] is not None
            assert results[2][2]["error"]["code"] == "store_unavailable"
            assert tried == ["b1", "b2", "b3"]  # b4 never tried
            stored = {e.key for e in store.list_events(limit=10).events}
            assert stored == {"b1", "b2"}
        finally:
            store.close()

    asyncio.run(go())
