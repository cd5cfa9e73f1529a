"""The JSON API against a real `signoff serve`: every row of the bad-input table, and more."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from signoff.testing import HubProcess


@pytest.fixture(scope="module")
def tokens(shared_hub: HubProcess) -> dict[str, str]:
    return {
        "flow": shared_hub.token("flow", role="workflow"),
        "other_flow": shared_hub.token("other-flow", role="workflow"),
        "rita": shared_hub.token("rita", role="reviewer", groups=("ops",)),
        "sam": shared_hub.token("sam", role="reviewer"),
        "admin": shared_hub.admin_token or "",
    }


@pytest.fixture
def api(shared_hub: HubProcess, tokens: dict[str, str]) -> Any:
    class Api:
        url = shared_hub.url

        def __call__(self, method: str, path: str, who: str | None = "flow",
                     **kwargs: Any) -> httpx.Response:
            headers = kwargs.pop("headers", {})
            if who is not None:
                headers["Authorization"] = f"Bearer {tokens[who]}"
            return httpx.request(method, f"{shared_hub.url}/api/v1{path}", headers=headers,
                                 timeout=70, **kwargs)

        def create(self, who: str = "flow", **body: Any) -> dict[str, Any]:
            body.setdefault("name", "deploy")
            body.setdefault("prompt", "Deploy?")
            answer = self("POST", "/events", who, json=body)
            assert answer.status_code == 201, answer.text
            created: dict[str, Any] = answer.json()
            return created

    return Api()


def _error(answer: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = answer.json()["error"]
    return error


# create --------------------------------------------------------------------------------------
def test_create_returns_201_with_the_event(api: Any) -> None:
    event = api.create(prompt="Ship v3?", context={"rows": 12}, assignees=["group:ops"],
                       priority="high", timeout=600, labels={"team": "ml"})
    assert event["status"] == "pending" and event["requested_by"] == "flow"
    assert event["deadline"] is not None and event["decision"] is None
    assert api("GET", f"/events/{event['id']}").json() == event


def test_create_with_an_existing_key_returns_200_unchanged(api: Any) -> None:
    first = api("POST", "/events", json={"name": "a", "prompt": "first", "key": "idem-1"})
    again = api("POST", "/events", json={"name": "a", "prompt": "first", "key": "idem-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json() and again.json()["prompt"] == "first"


def test_an_existing_key_with_another_payload_is_409_key_reused_naming_the_field(
        api: Any) -> None:
    first = api("POST", "/events", json={"name": "a", "prompt": "first", "key": "idem-2"})
    again = api("POST", "/events", json={"name": "a", "prompt": "second", "key": "idem-2"})
    assert (first.status_code, again.status_code) == (201, 409)
    error = _error(again)
    assert error["code"] == "key_reused" and error["changed"] == ["prompt"]
    assert error["expected"] == first.json()["digest"] != error["got"]
    assert api("GET", f"/events/{first.json()['id']}").json()["prompt"] == "first"


def test_requested_by_comes_from_the_token_not_the_body(api: Any) -> None:
    answer = api("POST", "/events", json={"name": "a", "prompt": "p", "requested_by": "mallory"})
    assert answer.status_code == 422
    assert _error(answer)["field"] == "requested_by"


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "a"}, "prompt"),
    ({"name": "a", "prompt": "p", "input": {"kind": "int", "min": 3, "max": 1}}, "input.int"),
    ({"name": "a", "prompt": "p", "input": {"kind": "dice"}}, "input"),
    ({"name": "a", "prompt": "p", "timeout": -5}, "timeout"),
    ({"name": "a", "prompt": "p", "on_timeout": "explode"}, "on_timeout"),
    ({"name": "a", "prompt": "p", "priority": "whenever"}, "priority"),
    ({"name": "bad name", "prompt": "p"}, "name"),
])
def test_bad_events_are_refused_with_the_field(api: Any, body: dict[str, Any],
                                               field: str) -> None:
    before = api("GET", "/events", "admin", params={"limit": 500}).json()["events"]
    answer = api("POST", "/events", json=body)
    assert answer.status_code == 422, answer.text
    assert _error(answer)["field"].startswith(field)
    assert api("GET", "/events", "admin", params={"limit": 500}).json()["events"] == before


def test_reviewers_cannot_create(api: Any) -> None:
    answer = api("POST", "/events", "rita", json={"name": "a", "prompt": "p"})
    assert answer.status_code == 403


# auth ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"},
                                     {"Authorization": "Basic Zm9vOmJhcg=="}])
def test_every_api_call_needs_a_known_token(api: Any, headers: dict[str, str]) -> None:
    event = api.create()
    for method, path in [("GET", "/events"), ("GET", f"/events/{event['id']}"),
                         ("POST", f"/events/{event['id']}/responses"),
                         ("GET", f"/events/{event['id']}/decision"), ("GET", "/me")]:
        answer = api(method, path, None, headers=dict(headers), json={"value": True})
        assert answer.status_code == 401, (method, path)
        assert _error(answer)["code"] == "unauthenticated"
    assert api("GET", f"/events/{event['id']}").json()["status"] == "pending"


def test_me(api: Any) -> None:
    assert api("GET", "/me", "rita").json() == {"user": "rita", "groups": ["ops"],
                                                "role": "reviewer"}


# respond -------------------------------------------------------------------------------------
def test_respond_decides_and_names_the_responder_from_the_token(api: Any) -> None:
    event = api.create(input={"kind": "int", "min": 1, "max": 5}, assignees=["group:ops"])
    answer = api("POST", f"/events/{event['id']}/responses", "rita",
                 json={"value": 4, "comment": "four", "by": "mallory"})
    assert answer.status_code == 422 and _error(answer)["field"] == "by"
    answer = api("POST", f"/events/{event['id']}/responses", "rita",
                 json={"value": 4, "comment": "four"})
    assert answer.status_code == 200, answer.text
    decided = answer.json()
    assert decided["status"] == "decided"
    assert decided["decision"]["value"] == 4 and decided["decision"]["outcome"] == "answered"
    assert decided["decision"]["by"] == "rita" and decided["decision"]["comment"] == "four"
    assert [r["by"] for r in decided["responses"]] == ["rita"]


def test_bad_value_is_422_and_stores_nothing(api: Any) -> None:
    event = api.create(input={"kind": "choice", "options": ["a", "b"]})
    answer = api("POST", f"/events/{event['id']}/responses", "admin", json={"value": "c"})
    assert answer.status_code == 422
    error = _error(answer)
    assert (error["field"], error["expected"], error["got"]) == ("value", "one of ['a', 'b']", "c")
    after = api("GET", f"/events/{event['id']}").json()
    assert after == event
    trail = api("GET", f"/events/{event['id']}/audit").json()["entries"]
    assert [e["action"] for e in trail] == ["created"]


def test_second_answer_is_409_and_changes_nothing(api: Any) -> None:
    event = api.create()
    assert api("POST", f"/events/{event['id']}/responses", "rita",
               json={"value": True}).status_code == 200
    decided = api("GET", f"/events/{event['id']}").json()
    late = api("POST", f"/events/{event['id']}/responses", "sam", json={"value": False})
    assert late.status_code == 409 and _error(late)["code"] == "already_decided"
    assert api("GET", f"/events/{event['id']}").json() == decided


def test_unassigned_reviewer_gets_403(api: Any) -> None:
    event = api.create(assignees=["group:ops"])
    answer = api("POST", f"/events/{event['id']}/responses", "sam", json={"value": True})
    assert answer.status_code == 403
    assert api("GET", f"/events/{event['id']}", "sam").status_code == 403
    assert api("GET", f"/events/{event['id']}").json()["status"] == "pending"


def test_workflow_cannot_answer_through_the_api(api: Any) -> None:
    event = api.create()
    assert api("POST", f"/events/{event['id']}/responses", "flow",
               json={"value": True}).status_code == 403


def test_workflow_relays_an_orchestrator_ui_answer_on_its_own_event_only(api: Any) -> None:
    mine = api.create(source={"orchestrator": "prefect"})
    theirs = api.create("other_flow", source={"orchestrator": "prefect"})
    relay = {"X-Signoff-Channel": "prefect"}
    assert api("POST", f"/events/{theirs['id']}/responses", "flow", headers=dict(relay),
               json={"value": True}).status_code == 403
    answer = api("POST", f"/events/{mine['id']}/responses", "flow", headers=dict(relay),
                 json={"value": True})
    assert answer.status_code == 200
    decision = answer.json()["decision"]
    assert (decision["by"], decision["channel"], decision["relayed_from"], decision["verified"]) \
        == ("prefect:unverified", "prefect", "prefect", False)
    bad = api("POST", f"/events/{theirs['id']}/responses", "admin",
              headers={"X-Signoff-Channel": "Web!"}, json={"value": True})
    assert bad.status_code == 422 and _error(bad)["field"] == "X-Signoff-Channel"


def test_unknown_event_is_404(api: Any) -> None:
    for method, path in [("GET", "/events/ev_nope"), ("POST", "/events/ev_nope/responses"),
                         ("GET", "/events/ev_nope/decision"), ("POST", "/events/ev_nope/cancel"),
                         ("GET", "/events/ev_nope/audit")]:
        answer = api(method, path, "admin", json={"value": True})
        assert answer.status_code == 404, (method, path)
        assert _error(answer)["code"] == "not_found"


def test_body_too_large_is_413(api: Any) -> None:
    answer = api("POST", "/events", json={"name": "a", "prompt": "p",
                                          "context": {"blob": "x" * 2_000_000}})
    assert answer.status_code == 413


def test_malformed_json_is_422(api: Any) -> None:
    answer = api("POST", "/events", content=b"{nope", headers={"Content-Type":
                                                               "application/json"})
    assert answer.status_code == 422


# cancel --------------------------------------------------------------------------------------
def test_cancel_own_event_then_409(api: Any) -> None:
    event = api.create()
    assert api("POST", f"/events/{event['id']}/cancel", "other_flow").status_code == 403
    assert api("POST", f"/events/{event['id']}/cancel", "rita").status_code == 403
    answer = api("POST", f"/events/{event['id']}/cancel", json={"comment": "not needed"})
    assert answer.status_code == 200
    assert answer.json()["status"] == "cancelled"
    assert answer.json()["decision"]["outcome"] == "cancelled"
    assert api("POST", f"/events/{event['id']}/cancel").status_code == 409
    assert api("POST", f"/events/{event['id']}/responses", "admin",
               json={"value": True}).status_code == 409


# list ----------------------------------------------------------------------------------------
def test_list_filters_and_pages(api: Any) -> None:
    label = f"t{time.monotonic_ns()}"
    made = [api.create(prompt=f"{label}-{i}", assignees=["group:ops"] if i % 2 else ["sam"],
                       priority="urgent") for i in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"status": "pending", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = api("GET", "/events", "rita", params=params).json()
        seen += [e["id"] for e in page["events"] if e["prompt"].startswith(label)]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [e["id"] for e in made if "group:ops" in e["assignees"]]
    assert all(e["status"] == "pending" for e in
               api("GET", "/events", "admin", params={"status": "pending"}).json()["events"])
    sams = api("GET", "/events", "admin", params={"assignee": "sam", "limit": 500}).json()
    assert {e["id"] for e in sams["events"]} >= {e["id"] for e in made[::2]}
    assert all("sam" in e["assignees"] for e in sams["events"])
    others = api("GET", "/events", "other_flow", params={"limit": 500}).json()["events"]
    assert all(e["requested_by"] == "other-flow" for e in others)
    bad = api("GET", "/events", "admin", params={"limit": 0})
    assert bad.status_code == 422 and _error(bad)["field"] == "limit"
    assert api("GET", "/events", "admin", params={"status": "bogus"}).status_code == 422


# long-poll -----------------------------------------------------------------------------------
def test_decision_long_poll_is_woken_by_the_decision(api: Any, tokens: dict[str, str]) -> None:
    event = api.create()

    async def scenario() -> tuple[httpx.Response, float, float]:
        async with httpx.AsyncClient(base_url=api.url, timeout=70) as client:
            waiter = asyncio.create_task(client.get(
                f"/api/v1/events/{event['id']}/decision", params={"wait": 30},
                headers={"Authorization": f"Bearer {tokens['flow']}"}))
            await asyncio.sleep(0.5)
            assert not waiter.done()
            answered = await client.post(
                f"/api/v1/events/{event['id']}/responses", json={"value": True},
                headers={"Authorization": f"Bearer {tokens['rita']}"})
            at = time.perf_counter()
            assert answered.status_code == 200
            got = await waiter
            return got, at, time.perf_counter()

    got, answered_at, received_at = asyncio.run(scenario())
    assert got.status_code == 200 and got.json()["outcome"] == "approved"
    assert received_at - answered_at < 0.5  # woken by the decision, not by a poll


def test_decision_204_when_still_pending(api: Any) -> None:
    event = api.create()
    started = time.monotonic()
    answer = api("GET", f"/events/{event['id']}/decision", params={"wait": 0.5})
    assert answer.status_code == 204 and time.monotonic() - started >= 0.45
    assert api("GET", f"/events/{event['id']}/decision", params={"wait": 61}).status_code == 422


def test_decision_already_there_answers_at_once(api: Any) -> None:
    event = api.create()
    api("POST", f"/events/{event['id']}/responses", "rita", json={"value": False})
    started = time.monotonic()
    answer = api("GET", f"/events/{event['id']}/decision", params={"wait": 30})
    assert answer.status_code == 200 and answer.json()["outcome"] == "rejected"
    assert time.monotonic() - started < 1


# races ---------------------------------------------------------------------------------------
def test_twenty_racing_answers_make_exactly_one_decision(api: Any,
                                                         tokens: dict[str, str]) -> None:
    event = api.create(input={"kind": "int"})

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
            return await asyncio.gather(*(client.post(
                f"/api/v1/events/{event['id']}/responses", json={"value": n},
                headers={"Authorization": f"Bearer {tokens['admin']}"}) for n in range(20)))

    answers = asyncio.run(race())
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] + [409] * 19
    winner = next(a for a in answers if a.status_code == 200).json()["decision"]["value"]
    final = api("GET", f"/events/{event['id']}").json()
    assert final["decision"]["value"] == winner and len(final["responses"]) == 1


# audit and docs ------------------------------------------------------------------------------
def test_audit_trail_names_who_what_when_and_channel(api: Any) -> None:
    event = api.create()
    api("POST", f"/events/{event['id']}/responses", "rita", json={"value": True, "comment": "ok"},
        headers={"X-Signoff-Channel": "cli"})
    trail = api("GET", f"/events/{event['id']}/audit").json()["entries"]
    assert [(e["action"], e["actor"], e["channel"]) for e in trail] == [
        ("created", "flow", "api"), ("responded", "rita", "cli"), ("approved", "rita", "cli")]
    row = trail[1]["data"].pop("row")  # the response row's seal (see tests/store/test_audit.py)
    assert trail[1]["data"] == {"value": True, "comment": "ok"}
    assert row["table"] == "responses" and len(row["sha256"]) == 64


def test_openapi_and_health(api: Any) -> None:
    schema = httpx.get(f"{api.url}/openapi.json").json()
    paths = set(schema["paths"])
    assert {"/api/v1/events", "/api/v1/events/{event_id}", "/api/v1/events/{event_id}/responses",
            "/api/v1/events/{event_id}/decision", "/api/v1/events/{event_id}/cancel",
            "/healthz"} <= paths
    assert "EventCreate" in schema["components"]["schemas"]
    assert httpx.get(f"{api.url}/healthz").json()["status"] == "ok"
