"""Issue 19, amend and masking, through the JSON API of a real `signoff serve`: a proposal
approved as is or amended (both values kept, the override metric counting the amendment, a bad
amendment refused with nothing written), and sensitive context masked for every reader, in
``signoff export`` too, until an allowed reviewer reveals it with a POST the audit log records.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from signoff.cli import main
from signoff.testing import HubProcess

from ..conftest import hub_process
from .test_metrics import scrape, value

MASKING = {"SIGNOFF_SENSITIVE_FIELDS": '["*.ssn", "*.email"]',
           "SIGNOFF_REVEAL_ALLOWED": '["group:privacy"]'}
CUSTOMER = {"customer": {"name": "Ada Byron", "ssn": "078-05-1120",
                         "email": "ada@example.com"},
            "orders": [{"id": 1, "email": "a@example.com"}, {"id": 2, "email": "b@example.com"}],
            "note": "called twice about the refund", "amount": 4200}


@pytest.fixture(scope="module")
def masked_hub(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    with hub_process(request, tmp_path_factory.mktemp("mask"), MASKING) as process:
        yield process


def _create(hub: HubProcess, token: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("name", "refund-letter")
    answer = httpx.post(f"{hub.url}/api/v1/events", json=fields, headers=hub.headers(token))
    assert answer.status_code == 201, answer.text
    made: dict[str, Any] = answer.json()
    return made


def _answer(hub: HubProcess, token: str, event_id: str, value: Any) -> httpx.Response:
    return httpx.post(f"{hub.url}/api/v1/events/{event_id}/responses",
                      json={"value": value, "comment": "edited"}, headers=hub.headers(token))


def _audit(hub: HubProcess, event_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{hub.url}/api/v1/events/{event_id}/audit", headers=hub.headers())
    entries: list[dict[str, Any]] = answer.json()["entries"]
    return entries


def test_an_amended_proposal_keeps_both_values_and_counts_as_an_override(
        masked_hub: HubProcess) -> None:
    hub = masked_hub
    flow = hub.token("letters", role="workflow")
    kim = hub.token("kim")
    proposed = "Dear Ada, we refund $4,200."
    before = scrape(hub.url, Authorization=f"Bearer {hub.admin_token}")
    amended = _create(hub, flow, prompt="Send this letter?", input={"kind": "text"},
                      recommendation=proposed)
    as_is = _create(hub, flow, prompt="Send this one?", input={"kind": "text"},
                    recommendation=proposed)
    edited = "Dear Ada, we refund $4,200 within 5 days."
    assert _answer(hub, kim, amended["id"], edited).status_code == 200
    assert _answer(hub, kim, as_is["id"], proposed).status_code == 200
    got = httpx.get(f"{hub.url}/api/v1/events/{amended['id']}", headers=hub.headers()).json()
    assert got["decision"]["value"] == edited
    assert got["decision"]["proposal"] == proposed
    assert got["decision"]["amended"] is True
    same = httpx.get(f"{hub.url}/api/v1/events/{as_is['id']}", headers=hub.headers()).json()
    assert (same["decision"]["proposal"], same["decision"]["amended"]) == (proposed, False)
    answered = [e for e in _audit(hub, amended["id"]) if e["action"] == "answered"]
    assert answered[0]["data"]["proposal"] == proposed and answered[0]["data"]["amended"]
    after = scrape(hub.url, Authorization=f"Bearer {hub.admin_token}")
    # the amendment is an override; the proposal approved as is is not
    assert value(after, "signoff_overrides_total", name="refund-letter") - value(
        before, "signoff_overrides_total", name="refund-letter") == 1
    assert value(after, "signoff_human_decisions_with_recommendation_total",
                 name="refund-letter") - value(
        before, "signoff_human_decisions_with_recommendation_total", name="refund-letter") == 2


def test_a_bad_amendment_is_refused_naming_the_field_and_changes_nothing(
        masked_hub: HubProcess) -> None:
    hub = masked_hub
    flow = hub.token("letters", role="workflow")
    event = _create(hub, flow, prompt="Refund how much?", recommendation=4200,
                    input={"kind": "int", "min": 1, "max": 5000})
    refused = _answer(hub, hub.token("kim"), event["id"], 9000)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["field"] == "value" and "5000" in error["expected"] and error["got"] == 9000
    got = httpx.get(f"{hub.url}/api/v1/events/{event['id']}", headers=hub.headers()).json()
    assert (got["status"], got["responses"], got["decision"]) == ("pending", [], None)
    assert [e["action"] for e in _audit(hub, event["id"])] == ["created"]
    # an approval has nothing to amend: no proposal is recorded for it
    approval = _create(hub, flow, prompt="Approve?", recommendation=True)
    assert _answer(hub, hub.token("kim"), approval["id"], False).status_code == 200
    decided = httpx.get(f"{hub.url}/api/v1/events/{approval['id']}",
                        headers=hub.headers()).json()["decision"]
    assert (decided["proposal"], decided["amended"]) == (None, False)


def test_sensitive_fields_are_masked_for_every_reader_and_in_exports(
        masked_hub: HubProcess) -> None:
    hub = masked_hub
    flow = hub.token("refunds", role="workflow")
    made = _create(hub, flow, name="refund", prompt="Refund Ada?", context=CUSTOMER,
                   sensitive=["note"])
    # the creator's own answer is masked too: nobody sees them without a reveal
    assert made["context"]["customer"]["ssn"] == "[masked]"
    expected = {"customer": {"name": "Ada Byron", "ssn": "[masked]", "email": "[masked]"},
                "orders": [{"id": 1, "email": "[masked]"}, {"id": 2, "email": "[masked]"}],
                "note": "[masked]", "amount": 4200}
    paths = ["customer.ssn", "customer.email", "orders.email", "note"]
    for token in (hub.token("kim"), hub.admin_token, flow):
        got = httpx.get(f"{hub.url}/api/v1/events/{made['id']}",
                        headers=hub.headers(token)).json()
        assert (got["context"], got["masked"]) == (expected, paths)
        listed = httpx.get(f"{hub.url}/api/v1/events", headers=hub.headers(token)).json()
        [mine] = [e for e in listed["events"] if e["id"] == made["id"]]
        assert mine["context"] == expected
    assert _answer(hub, hub.token("kim"), made["id"], True).status_code == 200
    exported = CliRunner().invoke(main, ["export"], catch_exceptions=False, env={
        "SIGNOFF_URL": hub.url, "SIGNOFF_TOKEN": hub.admin_token or ""})
    rows = [json.loads(line) for line in exported.output.splitlines()]
    [row] = [r for r in rows if r["id"] == made["id"]]
    assert row["context"] == expected
    assert "078-05-1120" not in exported.output and "ada@example.com" not in exported.output


def test_a_reveal_is_a_post_for_the_allowed_only_and_is_audited(masked_hub: HubProcess) -> None:
    hub = masked_hub
    flow = hub.token("refunds", role="workflow")
    made = _create(hub, flow, name="refund", prompt="Refund Bob?", context=CUSTOMER)
    url = f"{hub.url}/api/v1/events/{made['id']}/reveal"
    for token in (hub.token("kim"), hub.admin_token):  # not named in reveal_allowed
        refused = httpx.post(url, headers=hub.headers(token))
        assert refused.status_code == 403, refused.text
        assert "reveal_allowed" in refused.json()["error"]["message"]
    assert [e["action"] for e in _audit(hub, made["id"])] == ["created"]
    assert httpx.get(url, headers=hub.headers()).status_code == 405
    priv = hub.token("pia", groups=("privacy",))
    shown = httpx.post(url, headers=hub.headers(priv))
    assert shown.status_code == 200, shown.text
    assert shown.json()["context"] == CUSTOMER and shown.json()["masked"] == []
    [entry] = [e for e in _audit(hub, made["id"]) if e["action"] == "revealed"]
    assert (entry["actor"], entry["channel"]) == ("pia", "api")
    assert entry["data"]["paths"] == ["customer.ssn", "customer.email", "orders.email"]
    assert entry["at"]
    again = httpx.get(f"{hub.url}/api/v1/events/{made['id']}", headers=hub.headers(priv))
    assert again.json()["context"]["customer"]["ssn"] == "[masked]"


def test_a_bad_sensitive_mark_is_refused_naming_it(masked_hub: HubProcess) -> None:
    hub = masked_hub
    flow = hub.token("refunds", role="workflow")
    for bad, why in ((["a..b"], "pattern"), ([""], "pattern"), (["x"] * 101, "at most 100")):
        answer = httpx.post(f"{hub.url}/api/v1/events", headers=hub.headers(flow),
                            json={"name": "refund", "prompt": "?", "sensitive": bad})
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["field"].startswith("sensitive"), answer.text
        assert why in answer.text
    listed = httpx.get(f"{hub.url}/api/v1/events", headers=hub.headers(flow)).json()
    assert all(e["prompt"] != "?" for e in listed["events"])


def test_hub_settings_refuse_a_bad_reveal_principal(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from signoff.hub.settings import Settings
    with pytest.raises(ValidationError, match="reveal_allowed"):
        Settings(reveal_allowed=["not a name"])
