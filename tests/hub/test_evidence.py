"""Evidence (issue 22) through a real hub: digests bound to what a reviewer saw, decisions
signed by the hub, verified by the waiting client; tampering and forgery refused."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from signoff import Client, DecisionUnverified, DigestChanged, Keyring
from signoff._evidence import digest_parts, parts_digest
from signoff.cli import main
from signoff.testing import HubProcess


@pytest.fixture
def sqlite_hub(tmp_path: Path) -> Any:
    """A hub on a SQLite file: these tests edit its database behind its back."""
    with HubProcess(tmp_path / "hub.db") as process:
        yield process


def _sql(hub: HubProcess, statement: str, *params: Any) -> None:
    """Write to the hub's database directly, as an attacker with database access would."""
    with sqlite3.connect(hub.database) as conn:
        conn.execute(statement, params)


def _cli(hub: HubProcess, *args: str) -> Any:
    env = {"SIGNOFF_URL": hub.url, "SIGNOFF_TOKEN": hub.admin_token or ""}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def _audit_actions(hub: HubProcess, event_id: str) -> list[str]:
    answer = httpx.get(f"{hub.url}/api/v1/events/{event_id}/audit", headers=hub.headers())
    return [e["action"] for e in answer.json()["entries"]]


def test_a_decision_is_signed_and_the_client_verifies_it(sqlite_hub: HubProcess) -> None:
    flow = Client(sqlite_hub.url, sqlite_hub.token("flow", role="workflow"))
    admin = Client(sqlite_hub.url, sqlite_hub.admin_token)
    event = flow.create(name="deploy", prompt="Ship v2?", context={"diff": "+3 -1"},
                        recommendation=True, confidence=0.9)
    assert event.digest == parts_digest(digest_parts(event))
    assert set(event.digest_parts) == {"name", "prompt", "input", "context", "recommendation",
                                       "confidence", "impact"}
    admin.respond(event.id, True)
    decision = flow.wait(event.id, timeout=10)
    assert decision.value is True and decision.digest == event.digest
    keys = httpx.get(f"{sqlite_hub.url}/api/v1/keys").json()  # public: no token
    assert [k["kid"] for k in keys["keys"]] == [decision.kid] and keys["keys"][0]["active"]
    printed = json.loads(_cli(sqlite_hub, "keys").output)
    assert printed == keys
    assert Keyring.from_jwks(keys).verifies({"forged": True}, decision.kid or "",
                                            decision.signature or "") is not None
    assert _audit_actions(sqlite_hub, event.id)[-1] == "approved"
    audit = httpx.get(f"{sqlite_hub.url}/api/v1/events/{event.id}/audit",
                      headers=sqlite_hub.headers()).json()["entries"]
    assert audit[-1]["data"]["kid"] == decision.kid


@pytest.mark.parametrize(("statement", "reason"), [
    ("UPDATE decisions SET value = 'true', outcome = 'approved' WHERE event_id = ?",
     "signature"),
    ("UPDATE events SET body = replace(body, 'Drop the table?', 'Add an index?') WHERE id = ?",
     "changed: prompt"),
])
def test_a_decision_tampered_in_the_database_is_refused_and_audited(
        sqlite_hub: HubProcess, statement: str, reason: str) -> None:
    flow = Client(sqlite_hub.url, sqlite_hub.token("flow", role="workflow"))
    event = flow.create(name="drop", prompt="Drop the table?")
    Client(sqlite_hub.url, sqlite_hub.admin_token).respond(event.id, False)
    _sql(sqlite_hub, statement, event.id)
    with pytest.raises(DecisionUnverified, match=reason) as refused:
        flow.wait(event.id, timeout=10)
    assert refused.value.event_id == event.id
    assert "decision_refused" in _audit_actions(sqlite_hub, event.id)


def test_an_answer_against_a_stale_digest_is_409_naming_the_change(
        sqlite_hub: HubProcess) -> None:
    flow = Client(sqlite_hub.url, sqlite_hub.token("flow", role="workflow"))
    event = flow.create(name="pay", prompt="Pay 10 EUR?", context={"amount": 10})
    _sql(sqlite_hub, "UPDATE events SET body = replace(body, '\"amount\": 10', '\"amount\": 9000')"
         " WHERE id = ?", event.id)
    answer = httpx.post(f"{sqlite_hub.url}/api/v1/events/{event.id}/responses",
                        headers=sqlite_hub.headers(),
                        json={"value": True, "digest": event.digest})
    assert answer.status_code == 409
    error = answer.json()["error"]
    assert error["code"] == "digest_changed" and error["changed"] == ["context"]
    assert error["got"] == event.digest and error["expected"] != event.digest
    assert flow.get(event.id).status == "pending"  # nothing was written
    other = flow.create(name="pay2", prompt="Pay 20 EUR?")
    with pytest.raises(DigestChanged) as stale:  # a digest of another payload
        Client(sqlite_hub.url, sqlite_hub.admin_token)._request(
            "POST", f"/api/v1/events/{other.id}/responses",
            json={"value": True, "digest": event.digest})
    assert stale.value.got == event.digest and stale.value.expected == other.digest
    fresh = httpx.post(f"{sqlite_hub.url}/api/v1/events/{other.id}/responses",
                       headers=sqlite_hub.headers(), json={"value": True, "digest": other.digest})
    assert fresh.status_code == 200 and fresh.json()["decision"]["digest"] == other.digest


def test_key_rotation_keeps_old_decisions_verifiable(sqlite_hub: HubProcess) -> None:
    flow_token = sqlite_hub.token("flow", role="workflow")
    admin = Client(sqlite_hub.url, sqlite_hub.admin_token)
    old = Client(sqlite_hub.url, flow_token).create(name="a", prompt="First?")
    admin.respond(old.id, True)
    sqlite_hub.stop()
    rotated = _cli(sqlite_hub, "keys", "rotate", "--db", sqlite_hub.database)
    assert rotated.exit_code == 0, rotated.output
    sqlite_hub.start()
    flow = Client(sqlite_hub.url, flow_token)
    new = flow.create(name="b", prompt="Second?")
    admin.respond(new.id, False)
    first, second = flow.wait(old.id, timeout=10), flow.wait(new.id, timeout=10)
    assert first.kid != second.kid and second.kid in rotated.output
    keys = httpx.get(f"{sqlite_hub.url}/api/v1/keys").json()["keys"]
    assert {k["kid"]: k["active"] for k in keys} == {first.kid: False, second.kid: True}
    assert "private" not in Path(sqlite_hub.database + ".signing-keys").read_text().split(
        "\n")[0]


def test_a_pinned_keyring_without_the_hubs_key_refuses(sqlite_hub: HubProcess) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    token = sqlite_hub.token("flow", role="workflow")
    event = Client(sqlite_hub.url, token).create(name="a", prompt="Go?")
    Client(sqlite_hub.url, sqlite_hub.admin_token).respond(event.id, True)
    stranger = Keyring.of([Ed25519PrivateKey.generate().public_key()]).jwks()
    with pytest.raises(DecisionUnverified, match="not among the hub's public keys"):
        Client(sqlite_hub.url, token, keys=stranger).wait(event.id, timeout=10)


def test_verify_detects_one_changed_byte_in_an_export(sqlite_hub: HubProcess,
                                                      tmp_path: Path) -> None:
    flow = Client(sqlite_hub.url, sqlite_hub.token("flow", role="workflow"))
    admin = Client(sqlite_hub.url, sqlite_hub.admin_token)
    for n, value in enumerate((True, False)):
        event = flow.create(name=f"e{n}", prompt=f"Refund order {n}?", context={"amount": 42})
        admin.respond(event.id, value, "checked")
    exported = tmp_path / "decisions.jsonl"
    exported.write_text(_cli(sqlite_hub, "export").output)
    keys = tmp_path / "keys.json"
    keys.write_text(_cli(sqlite_hub, "keys").output)
    sqlite_hub.stop()  # offline from here
    ok = _cli(sqlite_hub, "verify", str(exported), "--keys", str(keys))
    assert ok.exit_code == 0 and "2 decision(s) verified" in ok.output
    text = exported.read_text()
    for old, new in (('"amount": 42', '"amount": 43'), ("Refund order 1", "Refund order 7"),
                     ('"value": false', '"value": true')):
        assert old in text
        tampered = tmp_path / "tampered.jsonl"
        tampered.write_text(text.replace(old, new, 1))
        result = _cli(sqlite_hub, "verify", str(tampered), "--keys", str(keys))
        assert result.exit_code == 1 and "1 of 2 decision(s) do NOT verify" in result.output


def test_the_inbox_page_shows_the_digest_and_its_form_answers_against_it(
        sqlite_hub: HubProcess) -> None:
    from .test_web import Page, create, fetch, sign_in

    flow = sqlite_hub.token("flow", role="workflow")
    rita = sign_in(sqlite_hub, sqlite_hub.token("rita"), "rita")
    event = create(sqlite_hub, flow, prompt="Rotate the keys?", context={"hosts": 3})
    page = rita.page(event["id"])
    assert event["digest"] in page.text  # shown in the facts
    [hidden] = Page(page.text).find("input", name="digest")
    assert hidden["value"] == event["digest"]
    # the page was loaded; the event changes behind the hub's back; the form's answer is 409
    _sql(sqlite_hub, "UPDATE events SET body = replace(body, '\"hosts\": 3', '\"hosts\": 300')"
         " WHERE id = ?", event["id"])
    refused = rita.answer(event["id"], {"choice": "approve", "digest": hidden["value"]})
    assert refused.status_code == 409 and "changed: context" in refused.text
    assert fetch(sqlite_hub, event["id"])["status"] == "pending"
    bad = rita.answer(event["id"], {"choice": "approve", "digest": "<b>x</b>"})
    assert bad.status_code == 422 and "<b>x</b>" not in bad.text
    other = create(sqlite_hub, flow, prompt="Restart?")
    done = rita.answer(other["id"], {"choice": "approve", "digest": other["digest"]})
    assert done.status_code == 303
    decided = rita.page(other["id"]).text
    assert fetch(sqlite_hub, other["id"])["decision"]["kid"] in decided
    rita.client.close()


def test_a_webhook_receiver_verifies_the_delivered_decision(tmp_path: Path) -> None:
    from signoff import verify_delivery
    from signoff.testing import free_port, until

    from .test_reliability import Receiver

    port = free_port()
    env = {"SIGNOFF_DELIVERY_BACKOFF": "0.2", "SIGNOFF_EGRESS_ALLOW": '["http://127.0.0.1:*"]',
           "SIGNOFF_EGRESS_ALLOW_PRIVATE": '["127.0.0.1/32"]'}
    receiver = Receiver(port).start()
    try:
        with HubProcess(tmp_path / "hub.db", env=env) as hub:
            flow = Client(hub.url, hub.token("flow", role="workflow"))
            event = flow.create(name="hooked", prompt="Merge?", source={
                "orchestrator": "webhook", "params": {"url": f"http://127.0.0.1:{port}/"}})
            Client(hub.url, hub.admin_token).respond(event.id, True)
            until(lambda: receiver.calls, 30, "the delivery")
            keyring = Keyring.from_jwks(httpx.get(f"{hub.url}/api/v1/keys").json())
    finally:
        receiver.stop()
    sent = json.loads(receiver.calls[0][1])
    decision = verify_delivery(sent, keyring, expected_digest=event.digest)
    assert decision.value is True and decision.digest == event.digest
    forged = {**sent, "decision": {**sent["decision"], "value": False, "outcome": "rejected"}}
    with pytest.raises(DecisionUnverified, match="does not match"):
        verify_delivery(forged, keyring)
    with pytest.raises(DecisionUnverified, match="made against"):
        verify_delivery(sent, keyring, expected_digest="sha256:" + "0" * 64)
