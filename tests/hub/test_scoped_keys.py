"""Idempotency keys belong to the identity that created the event, through a real hub.

Every adapter builds its key from run ids another workflow can guess; a second workflow token
sending the same key gets an event of its own (201), never the first one's, and cannot read,
wait on, answer or cancel the first one's by its id either.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from signoff.testing import HubProcess

# the keys each adapter builds (see the adapters' event_key functions), as plain strings
ADAPTER_KEYS = {
    "airflow": "airflow:etl_daily:scheduled__2026-01-01T00:00:00+00:00:approve:-1",
    "argo": "argo:3f2a9c1e-5b7d-4e1a-9c0f-2b6d8e4a7c10:deploy-gate",
    "prefect": "prefect:0b8e2f6c-1d3a-4f5e-8a7b-9c0d1e2f3a4b:approve-1",
    "flyte": "flyte:flytesnacks:development:f8a2b3c4d5e6:approve",
    "temporal": "temporal:default:order-1234:6c1f0e2d-3b4a-5c6d-7e8f-9a0b1c2d3e4f:approve",
}


@pytest.fixture(scope="module")
def flows(shared_hub: HubProcess) -> dict[str, str]:
    return {"a": shared_hub.token("flow-a", role="workflow"),
            "b": shared_hub.token("flow-b", role="workflow"),
            "rita": shared_hub.token("rita-keys", role="reviewer")}


def _call(hub: HubProcess, token: str, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, f"{hub.url}/api/v1{path}", headers=hub.headers(token),
                         timeout=30, **kw)


@pytest.mark.parametrize("adapter", sorted(ADAPTER_KEYS))
def test_a_second_identity_never_gets_the_first_ones_event(shared_hub: HubProcess,
                                                           flows: dict[str, str],
                                                           adapter: str) -> None:
    key = ADAPTER_KEYS[adapter]
    a, b = flows["a"], flows["b"]
    first = _call(shared_hub, a, "POST", "/events",
                  json={"name": "gate", "prompt": "secret prompt of flow-a", "key": key,
                        "context": {"model": "private-a"}})
    assert first.status_code == 201, first.text
    mine = first.json()

    # flow-b guesses the key: a new event of its own, nothing of flow-a's in the answer
    second = _call(shared_hub, b, "POST", "/events",
                   json={"name": "gate", "prompt": "flow-b's prompt", "key": key})
    assert second.status_code == 201, second.text
    theirs = second.json()
    assert theirs["id"] != mine["id"] and theirs["requested_by"] == "flow-b"
    assert theirs["prompt"] == "flow-b's prompt" and "private-a" not in second.text
    assert mine["id"] not in second.text

    # each gets its own event back on a retry (a retry sends the same payload)
    assert _call(shared_hub, a, "POST", "/events",
                 json={"name": "gate", "prompt": "secret prompt of flow-a", "key": key,
                       "context": {"model": "private-a"}}).json()["id"] == mine["id"]
    again = _call(shared_hub, b, "POST", "/events", json={"name": "gate",
                                                           "prompt": "flow-b's prompt",
                                                           "key": key})
    assert (again.status_code, again.json()["id"]) == (200, theirs["id"])
    # flow-b's other payload under the key is its own 409, naming nothing of flow-a's
    reused = _call(shared_hub, b, "POST", "/events", json={"name": "gate", "prompt": "x",
                                                            "key": key})
    assert reused.status_code == 409 and mine["id"] not in reused.text
    assert "private-a" not in reused.text and mine["digest"] not in reused.text

    # flow-b cannot read, wait on, relay an answer to, or cancel flow-a's event, even by id
    for method, path, kw in (
            ("GET", f"/events/{mine['id']}", {}),
            ("GET", f"/events/{mine['id']}/decision", {"params": {"wait": 0}}),
            ("GET", f"/events/{mine['id']}/audit", {}),
            ("POST", f"/events/{mine['id']}/responses",
             {"json": {"value": True}, "headers": {"X-Signoff-Channel": adapter}}),
            ("POST", f"/events/{mine['id']}/cancel", {})):
        headers = {**shared_hub.headers(b), **kw.pop("headers", {})}
        answer = httpx.request(method, f"{shared_hub.url}/api/v1{path}", headers=headers,
                               timeout=30, **kw)
        assert answer.status_code == 403, (method, path, answer.text)
        assert "secret prompt" not in answer.text and key not in answer.text
    listed = _call(shared_hub, b, "GET", "/events", params={"limit": 500}).json()["events"]
    assert mine["id"] not in {e["id"] for e in listed}

    # the first event is untouched: still pending, no response from flow-b, one creation
    # (an answer it gives decides its own event and wakes only its own waiter)
    rita = flows["rita"]
    assert _call(shared_hub, rita, "POST", f"/events/{theirs['id']}/responses",
                 json={"value": True}).status_code == 200
    decided = _call(shared_hub, b, "GET", f"/events/{theirs['id']}/decision",
                    params={"wait": 5})
    assert decided.status_code == 200 and decided.json()["by"] == "rita-keys"
    still = _call(shared_hub, a, "GET", f"/events/{mine['id']}").json()
    assert still["status"] == "pending" and still["responses"] == []
    assert _call(shared_hub, a, "GET", f"/events/{mine['id']}/decision").status_code == 204
    trail = _call(shared_hub, a, "GET", f"/events/{mine['id']}/audit").json()["entries"]
    assert [(e["action"], e["actor"]) for e in trail] == [("created", "flow-a")]
