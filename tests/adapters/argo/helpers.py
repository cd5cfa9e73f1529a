"""Steps the Argo tests share: answer a gate's event, wait for its delivery, read a node."""

from __future__ import annotations

import time
from typing import Any

import httpx

from signoff.testing import HubProcess
from tests.adapters.scenarios import find_event

from .conftest import ArgoWorld
from .fake_controller import GateRun


def outputs(node: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p.get("value") for p in node["outputs"]["parameters"]}


def answer(world: ArgoWorld, run: GateRun, value: Any, comment: str | None = None,
           token: str | None = None) -> dict[str, Any]:
    event = find_event(world.hub, run.key, timeout=30)
    given = httpx.post(f"{world.hub.url}/api/v1/events/{event['id']}/responses",
                       json={"value": value, "comment": comment},
                       headers=world.hub.headers(token))
    assert given.status_code == 200, given.text
    return event


def delivery(world: ArgoWorld, event_id: str, state: str, timeout: float = 20,
             hub: HubProcess | None = None) -> dict[str, Any]:
    hub = hub or world.hub
    deadline = time.monotonic() + timeout
    while True:
        event = httpx.get(f"{hub.url}/api/v1/events/{event_id}", headers=hub.headers()).json()
        if event["deliveries"] and event["deliveries"][0]["state"] == state:
            return dict(event["deliveries"][0])
        if time.monotonic() > deadline:
            raise AssertionError(f"delivery not {state}: {event['deliveries']}")
        time.sleep(0.1)


def calls_for(world: ArgoWorld, run: GateRun, suffix: str = "") -> list[Any]:
    name = run.workflow["metadata"]["name"]
    return [c for c in world.argo.calls if f"/{name}" in c.path and c.path.endswith(suffix)]
