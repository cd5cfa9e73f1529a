"""Signed one-click answer links (issue 21): a notification to a reviewer carries their own
links; GET opens a confirm page and records nothing; the page's POST records once, in the
recipient's name; forged, expired, used and decided links are refused. Against a real
`signoff serve` and a real Chromium; the expiry with a moved clock on an in-process server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from signoff import Client
from signoff.store import token_id
from signoff.testing import HubProcess, free_port, until

from ..conftest import hub_process
from .inprocess import FakeClock, InProcessHub
from .test_browser import ARGS, chromium  # noqa: F401 - the fixture
from .test_reliability import Receiver

LINK = re.compile(r"^(approve|reject): (http://\S+/answer/\S+)$", re.M)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port()).start()
    yield r
    r.stop()


def _notify(receiver: Receiver) -> dict[str, str]:
    target = f"json://127.0.0.1:{receiver.port}"
    return {"SIGNOFF_NOTIFY": json.dumps({"alice": [f"{target}/alice"],
                                          "group:ops": [f"{target}/ops"]})}


@pytest.fixture
def linked_hub(request: pytest.FixtureRequest, tmp_path: Path,
               receiver: Receiver) -> Iterator[HubProcess]:
    with hub_process(request, tmp_path, _notify(receiver)) as process:
        yield process


def _messages(receiver: Receiver, count: int) -> list[str]:
    until(lambda: len(receiver.calls) >= count, what=f"{count} notifications")
    return [json.loads(body)["message"] for _, body in receiver.calls]


def _links(receiver: Receiver, event_id: str) -> dict[str, str]:
    """The one-click links alice was sent for ``event_id``."""
    def found() -> dict[str, str] | None:
        for _, body in receiver.calls:
            text = json.loads(body)["message"]
            if event_id in text and "one-click" in text:
                return dict(LINK.findall(text))
        return None
    return until(found, what=f"alice's links for {event_id}")


def _create(hub: HubProcess | InProcessHub, flow: str, **fields: object) -> dict[str, object]:
    made = httpx.post(f"{hub.url}/api/v1/events", headers={"Authorization": f"Bearer {flow}"},
                      json={"name": "deploy", "prompt": "Deploy churn v3?",
                            "assignees": ["alice", "group:ops"], **fields})
    assert made.status_code == 201, made.text
    return dict(made.json())


def _trail(hub: HubProcess | InProcessHub, event_id: str) -> list[str]:
    got = httpx.get(f"{hub.url}/api/v1/events/{event_id}/audit",
                    headers={"Authorization": f"Bearer {hub.admin_token}"})
    return [e["action"] for e in got.json()["entries"] if e["action"] != "notified"]


def test_only_the_reviewers_own_message_carries_links(linked_hub: HubProcess,
                                                      receiver: Receiver) -> None:
    flow = linked_hub.token("flow", role="workflow")
    linked_hub.token("alice")
    event = _create(linked_hub, flow)
    texts = _messages(receiver, 2)
    mine = [t for t in texts if "one-click answers for alice" in t]
    assert len(mine) == 1 and len(texts) == 2
    shared = next(t for t in texts if t not in mine)
    assert "/answer/" not in shared  # a group's channel is read by many: no one's links
    assert set(dict(LINK.findall(mine[0]))) == {"approve", "reject"}
    # a text question has no one-click answer
    _create(linked_hub, flow, prompt="Why?", input={"kind": "text"})
    later = _messages(receiver, 4)[2:]
    assert all("/answer/" not in t for t in later), later
    assert event["status"] == "pending"


def test_prefetch_records_nothing_and_the_post_records_once(
        linked_hub: HubProcess, receiver: Receiver) -> None:
    flow = linked_hub.token("flow", role="workflow")
    linked_hub.token("alice")
    event = _create(linked_hub, flow, policy={"quorum": 2})
    links = _links(receiver, str(event["id"]))
    with httpx.Client() as scanner:  # a mail scanner and a link preview: GET, twice
        for _ in range(2):
            page = scanner.get(links["approve"])
            assert page.status_code == 200 and "Deploy churn v3?" in page.text
            assert "Confirm: approve as alice" in page.text
    assert _trail(linked_hub, str(event["id"])) == ["created"]

    with httpx.Client() as browser:
        page = browser.get(links["approve"])
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert csrf is not None
        # another site's form: no SameSite=Strict cookie comes with it
        forged = httpx.post(links["approve"], data={"csrf": csrf.group(1)})
        assert forged.status_code == 403 and "CSRF" in forged.text
        wrong = browser.post(links["approve"], data={"csrf": "0" * 64})
        assert wrong.status_code == 403
        assert _trail(linked_hub, str(event["id"])) == ["created"]

        done = browser.post(links["approve"], data={"csrf": csrf.group(1), "comment": "ok"})
        assert done.status_code == 200, done.text
        assert "Recorded: alice approved" in done.text
        again = browser.post(links["approve"], data={"csrf": csrf.group(1)})
        assert again.status_code == 410 and "used already" in again.text
        assert browser.get(links["approve"]).status_code == 410

    got = httpx.get(f"{linked_hub.url}/api/v1/events/{event['id']}",
                    headers=linked_hub.headers()).json()
    assert got["status"] == "pending"  # a quorum of two: alice's one approval counts once
    assert [(r["by"], r["channel"], r["comment"]) for r in got["responses"]] == [
        ("alice", "link", "ok")]
    assert _trail(linked_hub, str(event["id"])) == ["created", "responded"]


def test_forged_and_decided_links_are_refused(linked_hub: HubProcess,
                                              receiver: Receiver) -> None:
    flow = linked_hub.token("flow", role="workflow")
    linked_hub.token("alice")
    event = _create(linked_hub, flow)
    links = _links(receiver, str(event["id"]))
    payload, signature = links["reject"].rsplit("/", 1)[1].split(".")
    # the reject link's facts under its own signature, turned into an approval
    facts = json.loads(_unb64(payload))
    altered = _b64(json.dumps({**facts, "a": "approve"}, separators=(",", ":")).encode())
    for code in (f"{altered}.{signature}", f"{payload}.{signature[:-2]}AA", "x" * 2000):
        page = httpx.get(f"{linked_hub.url}/answer/{code}")
        assert page.status_code in (403, 422), (code, page.status_code)
    Client(linked_hub.url, linked_hub.token("bob", groups=("ops",))).respond(
        str(event["id"]), False, "no")
    for link in links.values():
        page = httpx.get(link)
        assert page.status_code == 409 and "already decided" in page.text
    assert httpx.post(links["approve"], data={"csrf": "x"}).status_code == 403
    decision = httpx.get(f"{linked_hub.url}/api/v1/events/{event['id']}",
                         headers=linked_hub.headers()).json()["decision"]
    assert (decision["by"], decision["outcome"]) == ("bob", "rejected")


def test_link_channel_cannot_be_claimed_over_the_api(linked_hub: HubProcess) -> None:
    flow = linked_hub.token("flow", role="workflow")
    event = _create(linked_hub, flow)
    answer = httpx.post(f"{linked_hub.url}/api/v1/events/{event['id']}/responses",
                        headers={**linked_hub.headers(linked_hub.token("alice")),
                                 "X-Signoff-Channel": "link"}, json={"value": True})
    assert answer.status_code == 403 and "link" in answer.json()["error"]["message"]


def test_expired_and_revoked_links_are_refused(tmp_path: Path, receiver: Receiver) -> None:
    clock = FakeClock()
    hub = InProcessHub(tmp_path / "links.db", clock, answer_link_seconds=3600,
                       notify=json.loads(_notify(receiver)["SIGNOFF_NOTIFY"])).start()
    try:
        flow = hub.token("flow", role="workflow")
        alice = hub.token("alice")
        first = _create(hub, flow)
        old = _links(receiver, str(first["id"]))
        clock.advance(hours=1, seconds=1)
        page = httpx.get(old["approve"])
        assert page.status_code == 410 and "expired" in page.text
        second = _create(hub, flow, prompt="Deploy fraud v9?")
        fresh = _links(receiver, str(second["id"]))
        assert httpx.get(fresh["approve"]).status_code == 200
        revoked = httpx.post(f"{hub.url}/api/v1/tokens/{token_id(alice)}/revoke",
                             headers={"Authorization": f"Bearer {hub.admin_token}"})
        assert revoked.status_code == 200, revoked.text
        page = httpx.get(fresh["approve"])
        assert page.status_code == 403 and "no active token" in page.text
        assert "Deploy fraud v9?" not in page.text  # who may not answer it does not read it
        assert _trail(hub, str(first["id"])) == _trail(hub, str(second["id"])) == ["created"]
    finally:
        hub.stop()


@pytest.mark.browser
def test_answer_by_link_in_chromium(linked_hub: HubProcess, receiver: Receiver,
                                    chromium: Path) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    flow = linked_hub.token("flow", role="workflow")
    linked_hub.token("alice")
    event = _create(linked_hub, flow, impact="high", context={"model": "churn-v3", "auc": 0.91})
    links = _links(receiver, str(event["id"]))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=ARGS)
        try:
            page = browser.new_page()
            page.goto(links["approve"])
            expect(page.locator("#prompt")).to_have_text("Deploy churn v3?")
            expect(page.locator("#link-answer")).to_have_text("Approve")
            expect(page.locator(".ctx")).to_contain_text("churn-v3")
            confirm = page.get_by_role("button", name="Confirm: approve as alice")
            confirm.click()  # a high-impact approval wants its box ticked
            expect(page.locator("#link-message")).to_contain_text("Tick the box")
            assert _trail(linked_hub, str(event["id"])) == ["created"]
            page.get_by_label("Comment").fill("checked the AUC")
            page.get_by_label("I have checked this high-impact change").check()
            page.get_by_role("button", name="Confirm: approve as alice").click()
            expect(page.locator("#link-message")).to_contain_text(
                "Recorded: alice approved “Deploy churn v3?”")
            page.goto(links["approve"])  # the link again: it answers nothing any more
            expect(page.locator("#link-message")).to_contain_text("already decided")
        finally:
            browser.close()
    decision = httpx.get(f"{linked_hub.url}/api/v1/events/{event['id']}",
                         headers=linked_hub.headers()).json()["decision"]
    assert (decision["by"], decision["channel"], decision["comment"]) == (
        "alice", "link", "checked the AUC")


def _b64(data: bytes) -> str:
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    import base64
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
