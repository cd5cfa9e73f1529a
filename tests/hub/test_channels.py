"""Channels are facts, not claims; engine-relayed answers are attributed honestly.

Against a real `signoff serve`: which token may claim which channel, how a relay is recorded,
and what the relay policy lets an unverified answer do.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff import Client, Forbidden
from signoff.testing import HubProcess

from .test_web import sign_in


class Api:
    """Calls of the JSON API as one of the cast."""

    def __init__(self, hub: HubProcess, tokens: dict[str, str]) -> None:
        self.hub = hub
        self.tokens = tokens

    def __call__(self, method: str, path: str, who: str, *, channel: str | None = None,
                 **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        if channel is not None:
            headers["X-Signoff-Channel"] = channel
        return httpx.request(method, f"{self.hub.url}/api/v1{path}", headers=headers,
                             timeout=30, **kwargs)

    def create(self, who: str = "flow", orchestrator: str = "prefect",
               **body: Any) -> dict[str, Any]:
        body.setdefault("name", "deploy")
        body.setdefault("prompt", "Deploy?")
        body.setdefault("source", {"orchestrator": orchestrator})
        made = self("POST", "/events", who, json=body)
        assert made.status_code == 201, made.text
        created: dict[str, Any] = made.json()
        return created

    def answer(self, event_id: str, who: str, value: Any = True, *, channel: str | None = None,
               **body: Any) -> httpx.Response:
        return self("POST", f"/events/{event_id}/responses", who, channel=channel,
                    json={"value": value, **body})

    def event(self, event_id: str) -> dict[str, Any]:
        got: dict[str, Any] = self("GET", f"/events/{event_id}", "admin").json()
        return got

    def audit(self, event_id: str) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self("GET", f"/events/{event_id}/audit",
                                             "admin").json()["entries"]
        return entries


def _cast(hub: HubProcess) -> dict[str, str]:
    return {"flow": hub.token("flow", role="workflow"),
            "other_flow": hub.token("other-flow", role="workflow"),
            "rita": hub.token("rita", role="reviewer"),
            "sam": hub.token("sam", role="reviewer"),
            "risk": hub.token("risk-bot", role="reviewer"),
            "admin": hub.admin_token or ""}


@pytest.fixture(scope="module")
def api(shared_hub: HubProcess) -> Api:
    """The hub with the default settings: unverified relays as restricted as they can be."""
    return Api(shared_hub, _cast(shared_hub))


@pytest.fixture(scope="module")
def bound(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A hub that binds decider:risk to risk-bot and lets relays count and decide anything."""
    folder = tmp_path_factory.mktemp("bound")
    config = folder / "signoff.toml"
    config.write_text('[channel_bindings]\n"decider:risk" = ["risk-bot"]\n\n'
                      "[relays]\ncounts_toward_quorum = true\nsatisfies_four_eyes = true\n"
                      "refused_impacts = []\n")
    with HubProcess(folder / "hub.db", config=config) as hub:
        yield Api(hub, _cast(hub))


def _untouched(api: Api, event_id: str) -> None:
    event = api.event(event_id)
    assert event["status"] == "pending" and event["responses"] == []


# who may claim what ---------------------------------------------------------------------------
@pytest.mark.parametrize("channel", ["api", "cli", "web", "policy", "timeout", "fallback",
                                     "decider:x", "temporal", "airflow"])
def test_a_workflow_claiming_a_channel_other_than_its_engine_is_403(api: Api,
                                                                   channel: str) -> None:
    event = api.create()  # source.orchestrator = prefect
    refused = api.answer(event["id"], "flow", channel=channel)
    assert refused.status_code == 403, refused.text
    assert repr(channel) in refused.json()["error"]["message"]
    _untouched(api, event["id"])


@pytest.mark.parametrize("who", ["rita", "admin"])
@pytest.mark.parametrize("channel", ["prefect", "prefect-ui", "decider:risk"])
def test_a_person_claiming_an_engine_or_decider_channel_is_403(api: Api, who: str,
                                                              channel: str) -> None:
    event = api.create()
    refused = api.answer(event["id"], who, channel=channel)
    assert refused.status_code == 403, refused.text
    message = refused.json()["error"]["message"]
    assert "refused" in message and ("prefect" in message or "decider:risk" in message)
    _untouched(api, event["id"])


def test_a_workflow_relays_only_on_its_own_events(api: Api) -> None:
    theirs = api.create("other_flow")
    refused = api.answer(theirs["id"], "flow", channel="prefect")
    assert refused.status_code == 403 and "own events" in refused.json()["error"]["message"]
    _untouched(api, theirs["id"])


def test_a_workflow_creates_and_cancels_on_its_engine_channel_only(api: Api) -> None:
    made = api("POST", "/events", "flow", channel="temporal",
               json={"name": "x", "prompt": "p", "source": {"orchestrator": "prefect"}})
    assert made.status_code == 403 and "'temporal'" in made.json()["error"]["message"]
    event = api.create(orchestrator="temporal")
    cancelled = api("POST", f"/events/{event['id']}/cancel", "flow", channel="temporal",
                    json={"comment": "the workflow's own timer"})
    assert cancelled.status_code == 200, cancelled.text
    decision = cancelled.json()["decision"]
    assert (decision["by"], decision["channel"], decision["outcome"]) == \
        ("flow", "temporal", "cancelled")
    assert api.audit(event["id"])[0]["channel"] == "api"


def test_the_inbox_records_web_and_the_cli_claim_is_kept(api: Api) -> None:
    first, second = api.create(), api.create()
    assert api.answer(first["id"], "rita", channel="cli").json()["decision"]["channel"] == "cli"
    browser = sign_in(api.hub, api.tokens["sam"], "sam")
    answered = browser.answer(second["id"], {"choice": "approve", "comment": ""})
    assert answered.status_code in (200, 303), answered.text
    decision = api.event(second["id"])["decision"]
    assert (decision["by"], decision["channel"], decision["verified"]) == ("sam", "web", True)


# attribution ----------------------------------------------------------------------------------
def test_a_relay_without_a_named_person_is_unverified_from_the_engine(api: Api) -> None:
    event = api.create()
    relayed = api.answer(event["id"], "flow", channel="prefect", comment="resumed in Prefect")
    assert relayed.status_code == 200, relayed.text
    stored = api.event(event["id"])
    [response] = stored["responses"]
    for record in (response, stored["decision"]):
        assert (record["by"], record["channel"], record["relayed_from"], record["verified"]) \
            == ("prefect:unverified", "prefect", "prefect", False)
        assert record["by"] != "flow"  # never in the workflow token's name
    responded = [e for e in api.audit(event["id"]) if e["action"] == "responded"]
    assert responded[0]["actor"] == "prefect:unverified"
    assert responded[0]["data"]["verified"] is False


def test_a_relay_names_the_person_the_engine_names(api: Api) -> None:
    event = api.create(orchestrator="airflow")
    relayed = api.answer(event["id"], "flow", channel="airflow", relayed_by="alice")
    assert relayed.status_code == 200, relayed.text
    decision = relayed.json()["decision"]
    assert (decision["by"], decision["relayed_from"], decision["verified"]) == \
        ("airflow:alice", "airflow", False)


def test_a_person_cannot_name_someone_else(api: Api) -> None:
    event = api.create()
    refused = api.answer(event["id"], "rita", relayed_by="sam")
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "relayed_by"
    _untouched(api, event["id"])


def test_the_client_relays_and_reports_a_refusal_clearly(api: Api) -> None:
    event = api.create(impact="critical")
    with Client(api.hub.url, api.tokens["flow"]) as flow:
        with pytest.raises(Forbidden, match="critical-impact"):
            flow.relay(event["id"], True, engine="prefect")
        ok = api.create()
        decided = flow.relay(ok["id"], True, "from the UI", engine="prefect", actor="pat")
    assert decided.decision is not None and decided.decision.by == "prefect:pat"
    assert decided.decision.verified is False


# the relay policy -----------------------------------------------------------------------------
def test_a_self_approval_relayed_under_four_eyes_is_refused_audited_and_shown(api: Api) -> None:
    event = api.create(policy={"forbid_self_approval": True})
    refused = api.answer(event["id"], "flow", channel="prefect")
    assert refused.status_code == 403
    assert "forbids self-approval" in refused.json()["error"]["message"]
    _untouched(api, event["id"])
    [entry] = [e for e in api.audit(event["id"]) if e["action"] == "relay_refused"]
    assert (entry["actor"], entry["channel"]) == ("prefect:unverified", "prefect")
    assert "forbids self-approval" in entry["data"]["reason"]
    page = sign_in(api.hub, api.tokens["rita"], "rita").page(event["id"])
    assert page.status_code == 200
    assert "relay_refused" in page.text and "forbids self-approval" in page.text
    # a person can still approve it in the inbox or over the API
    assert api.answer(event["id"], "rita").json()["decision"]["by"] == "rita"


def test_an_unverified_relay_does_not_count_toward_a_quorum_of_two(api: Api) -> None:
    event = api.create(policy={"quorum": 2})
    relayed = api.answer(event["id"], "flow", channel="prefect")
    assert relayed.status_code == 200 and relayed.json()["status"] == "pending"
    assert api.answer(event["id"], "rita").json()["status"] == "pending"
    decided = api.answer(event["id"], "sam").json()
    assert decided["status"] == "decided" and decided["decision"]["value"] is True
    assert decided["decision"]["rule"] == "quorum of 2 approvals: rita, sam"
    notes = [e["data"].get("note", "") for e in api.audit(event["id"]) if e["action"] == "policy"]
    assert any("does not count towards the quorum of 2" in n for n in notes)


def test_a_high_impact_event_refuses_an_unverified_relay(api: Api) -> None:
    event = api.create(impact="high")
    refused = api.answer(event["id"], "flow", channel="prefect", relayed_by="alice")
    assert refused.status_code == 403 and "high-impact" in refused.json()["error"]["message"]
    _untouched(api, event["id"])
    [entry] = [e for e in api.audit(event["id"]) if e["action"] == "relay_refused"]
    assert entry["actor"] == "prefect:alice"


def test_a_relayed_rejection_still_rejects_a_quorum_event(api: Api) -> None:
    event = api.create(policy={"quorum": 2})
    rejected = api.answer(event["id"], "flow", False, channel="prefect").json()
    assert rejected["decision"]["outcome"] == "rejected"
    assert rejected["decision"]["verified"] is False


def test_the_hubs_settings_can_let_relays_count(bound: Api) -> None:
    quorum = bound.create(policy={"quorum": 2, "forbid_self_approval": True}, impact="high")
    assert bound.answer(quorum["id"], "flow", channel="prefect").json()["status"] == "pending"
    decided = bound.answer(quorum["id"], "rita").json()
    assert decided["status"] == "decided"
    assert decided["decision"]["rule"] == "quorum of 2 approvals: prefect:unverified, rita"


# tokens bound to a channel -------------------------------------------------------------------
def test_a_bound_token_answers_only_through_its_channel(bound: Api) -> None:
    first, second = bound.create(), bound.create()
    decided = bound.answer(first["id"], "risk").json()["decision"]
    assert (decided["by"], decided["channel"], decided["verified"]) == \
        ("risk-bot", "decider:risk", True)
    assert bound.answer(second["id"], "risk", channel="api").json()["decision"]["channel"] == \
        "decider:risk"
    third = bound.create()
    refused = bound.answer(third["id"], "risk", channel="cli")
    assert refused.status_code == 403 and "bound to decider:risk" in \
        refused.json()["error"]["message"]
    other = bound.answer(third["id"], "rita", channel="decider:risk")
    assert other.status_code == 403 and "'decider:risk'" in other.json()["error"]["message"]
    _untouched(bound, third["id"])


def test_a_bound_deciders_approval_does_not_make_a_human_quorum(bound: Api) -> None:
    event = bound.create(policy={"quorum": 2})
    assert bound.answer(event["id"], "risk").json()["status"] == "pending"
    assert bound.answer(event["id"], "rita").json()["status"] == "pending"
    assert bound.answer(event["id"], "sam").json()["status"] == "decided"


def test_bindings_of_human_or_hub_channels_are_refused(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from signoff.hub.settings import Settings

    for channel in ("api", "web", "policy", "Bad Name"):
        with pytest.raises(ValidationError, match="channel_bindings"):
            Settings(channel_bindings={channel: ["x"]})
