"""Issue 19 in a real Chromium at 1280×800 and 390×844, continued: an amended decision, a
masked field revealed and the audit entry it leaves, and a batch with a member the policy file
keeps out of batches; axe-core on each page, and screenshots for docs/web.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff.testing import HubProcess

from ..conftest import hub_process
from .test_amend_mask import CUSTOMER, MASKING
from .test_browser import chromium as chromium  # the fixture
from .test_inbox_browser import SHOTS, SIZES, _create, _serious, _signed_in
from .test_inbox_browser import pw as pw  # the fixture

pytestmark = pytest.mark.browser

LETTER = "Dear Ada,\nwe will refund $4,200 to your card."
POLICIES = '[{"match": {"name": "purge"}, "forbid_batch_impacts": ["medium"]}]'


@pytest.fixture
def configured_hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HubProcess]:
    """A hub with masking patterns, a reveal group and a policy-file rule against batches."""
    with hub_process(request, tmp_path, {**MASKING, "SIGNOFF_POLICIES": POLICIES}) as process:
        yield process


def _get(hub: HubProcess, event_id: str) -> dict[str, Any]:
    got: dict[str, Any] = httpx.get(f"{hub.url}/api/v1/events/{event_id}",
                                     headers=hub.headers()).json()
    return got


def test_an_amended_decision(hub: HubProcess, pw: Any, chromium: Path) -> None:
    from playwright.sync_api import expect
    flow = hub.token("letters", role="workflow")
    SHOTS.mkdir(parents=True, exist_ok=True)
    for size, viewport in SIZES.items():
        event = _create(hub, flow, name="refund-letter", prompt=f"Send this letter? ({size})",
                        input={"kind": "text", "multiline": True}, recommendation=LETTER,
                        confidence=0.8, impact="low")
        context = _signed_in(pw, chromium, hub, hub.token(f"amy-{size}"), viewport=viewport,
                             bypass_csp=True)
        try:
            page = context.new_page()
            page.goto(f"{hub.url}/events/{event['id']}")
            expect(page.locator(".recommendation")).to_contain_text("Proposed:")
            expect(page.locator("#amend-hint")).to_be_visible()
            expect(page.locator("#answer")).to_have_value(LETTER)  # the form starts from it
            page.locator("#answer").fill(LETTER.replace("$4,200", "$3,900"))
            assert _serious(page) == []
            page.screenshot(path=str(SHOTS / f"amend-{size}.png"))
            page.get_by_role("button", name="Approve").click()
            expect(page.locator("#recorded")).to_contain_text("amended from the proposal")
            page.goto(f"{hub.url}/events/{event['id']}")
            decision = page.locator(".decision")
            expect(decision).to_contain_text("$3,900")
            expect(decision.locator(".badge.amended")).to_have_text("amended")
            expect(decision.locator(".proposal-value")).to_contain_text("$4,200")
            assert _serious(page) == []
            page.screenshot(path=str(SHOTS / f"amended-{size}.png"))
        finally:
            context.browser.close()
        decided = _get(hub, event["id"])["decision"]
        assert decided["value"] == LETTER.replace("$4,200", "$3,900")
        assert (decided["proposal"], decided["amended"], decided["channel"]) == (
            LETTER, True, "web")


def test_a_masked_field_revealed_and_its_audit_entry(configured_hub: HubProcess, pw: Any,
                                                     chromium: Path) -> None:
    from playwright.sync_api import expect
    hub = configured_hub
    flow = hub.token("refunds", role="workflow")
    for size, viewport in SIZES.items():
        event = _create(hub, flow, name="refund", prompt=f"Refund Ada? ({size})",
                        context=CUSTOMER, sensitive=["note"])
        # a reviewer outside the reveal group sees the mask and no Reveal button
        other = _signed_in(pw, chromium, hub, hub.token(f"kim-{size}"), viewport=viewport)
        try:
            page = other.new_page()
            page.goto(f"{hub.url}/events/{event['id']}")
            expect(page.locator("#masked-note")).to_contain_text("4 sensitive fields masked")
            expect(page.get_by_role("button", name="Reveal")).to_have_count(0)
            assert "078-05-1120" not in page.content()
        finally:
            other.browser.close()
        context = _signed_in(pw, chromium, hub, hub.token(f"pia-{size}", groups=("privacy",)),
                             viewport=viewport, bypass_csp=True)
        try:
            page = context.new_page()
            page.goto(f"{hub.url}/events/{event['id']}")
            expect(page.locator(".ctx")).to_contain_text("[masked]")
            assert "078-05-1120" not in page.content()
            assert _serious(page) == []
            page.screenshot(path=str(SHOTS / f"masked-{size}.png"), full_page=True)
            page.get_by_role("button", name="Reveal").click()
            expect(page.locator("#revealed-note")).to_contain_text("customer.ssn")
            expect(page.locator(".ctx")).to_contain_text("078-05-1120")
            expect(page.locator(".ctx")).to_contain_text("called twice about the refund")
            entry = page.locator(".audit li", has_text="revealed")
            expect(entry).to_contain_text(f"by pia-{size}")
            expect(entry).to_contain_text("via web")
            expect(entry).to_contain_text("customer.ssn, customer.email, orders.email, note")
            assert _serious(page) == []
            page.screenshot(path=str(SHOTS / f"revealed-{size}.png"), full_page=True)
            # a reveal is for that one answer: the next visit masks again
            page.goto(f"{hub.url}/events/{event['id']}")
            expect(page.locator("#masked-note")).to_be_visible()
            assert "078-05-1120" not in page.content()
        finally:
            context.browser.close()
        audit = httpx.get(f"{hub.url}/api/v1/events/{event['id']}/audit",
                          headers=hub.headers()).json()["entries"]
        reveals = [e for e in audit if e["action"] == "revealed"]
        assert [(e["actor"], e["channel"]) for e in reveals] == [(f"pia-{size}", "web")]


def test_a_batch_with_a_member_the_policy_file_refuses(configured_hub: HubProcess, pw: Any,
                                                       chromium: Path) -> None:
    from playwright.sync_api import expect
    hub = configured_hub
    flow = hub.token("janitor", role="workflow")
    for size, viewport in SIZES.items():
        ok = _create(hub, flow, name="purge", prompt=f"Purge logs-a? ({size})", impact="low")
        kept = _create(hub, flow, name="purge", prompt=f"Purge logs-b? ({size})",
                       impact="medium")
        assert kept["policy"]["forbid_batch"] is True
        context = _signed_in(pw, chromium, hub, hub.token(f"bo-{size}"), viewport=viewport,
                             bypass_csp=True)
        try:
            page = context.new_page()
            page.goto(f"{hub.url}/")
            for event in (ok, kept):
                page.get_by_label(f"Select “{event['prompt']}” for a batch decision").check()
            page.get_by_role("button", name="Approve ticked").click()
            expect(page.get_by_role("heading", name="Batch: 1 of 2 recorded")).to_be_visible()
            expect(page.locator(".batch-refused")).to_contain_text(
                "its policy forbids batch decisions for medium-impact events")
            expect(page.locator(".batch-ok")).to_contain_text(f"Approved by bo-{size}")
            assert _serious(page) == []
            page.screenshot(path=str(SHOTS / f"batch-{size}.png"), full_page=True)
        finally:
            context.browser.close()
        assert _get(hub, ok["id"])["decision"]["by"] == f"bo-{size}"
        assert _get(hub, kept["id"])["status"] == "pending"
