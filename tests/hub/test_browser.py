"""The inbox in a real Chromium (Debian's package, driven by Playwright; no browser download)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from signoff.testing import HubProcess

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SHOTS = Path(os.environ.get("SIGNOFF_SCREENSHOTS", "/tmp"))

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


def test_reviewer_answers_an_event_in_chromium(hub: HubProcess, chromium: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    flow = hub.token("nightly-flow", role="workflow")
    made = httpx.post(f"{hub.url}/api/v1/events", headers=hub.headers(flow), json={
        "name": "deploy-model", "prompt": "Deploy churn model v3 to production?",
        "priority": "high", "context": {"model": "churn-v3", "auc": 0.912, "previous_auc": 0.897,
                                        "rows_scored": 1_250_000},
        "labels": {"team": "ml-platform"}, "recommendation": True, "confidence": 0.87,
        "timeout": 3600, "on_timeout": "reject",
        "source": {"orchestrator": "prefect", "run": "nightly-retrain/4812", "step": "approve",
                   "link": "https://prefect.example/runs/4812"}})
    assert made.status_code == 201, made.text
    event = made.json()
    other = httpx.post(f"{hub.url}/api/v1/events", headers=hub.headers(flow), json={
        "name": "pick-threshold", "prompt": "Which alert threshold should the fraud job use?",
        "input": {"kind": "int", "min": 1, "max": 100, "default": 40}, "priority": "low",
        "source": {"orchestrator": "airflow", "run": "fraud_daily/2024-06-01", "step": "tune"}})
    assert other.status_code == 201, other.text
    assert hub.login_url is not None

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(hub.login_url)  # the one-time link: a confirm page, nothing spent yet
            expect(page.get_by_text("signs this browser in as")).to_contain_text("admin")
            page.get_by_role("button", name="Sign in as admin").click()
            expect(page).to_have_url(f"{hub.url}/")  # the code left the address bar
            page.go_back()  # what the history kept is spent
            expect(page.get_by_text("already used")).to_be_visible()
            page.goto(f"{hub.url}/")
            expect(page.get_by_text("Signed in as")).to_contain_text("admin")
            row = page.get_by_role("link", name="Deploy churn model v3 to production?")
            expect(row).to_be_visible()
            page.screenshot(path=str(SHOTS / "signoff-inbox.png"), full_page=True)

            row.click()
            expect(page).to_have_url(f"{hub.url}/events/{event['id']}")
            expect(page.locator(".ctx")).to_contain_text("1,250,000")
            expect(page.locator("pre.json")).to_contain_text('"auc": 0.912')
            page.get_by_label("Comment").fill("AUC is up 1.5 points; shipping.")
            page.screenshot(path=str(SHOTS / "signoff-event.png"), full_page=True)
            page.get_by_role("button", name="Approve").click()
            # on to the next event of the inbox, with a line saying what was recorded
            expect(page.locator("#recorded")).to_contain_text("Recorded: Approved")
            expect(page).to_have_url(f"{hub.url}/events/{other.json()['id']}?done={event['id']}")
            page.locator("#recorded").get_by_role("link").click()

            expect(page.get_by_role("heading", name="Decided: approved")).to_be_visible()
            expect(page.locator(".decision")).to_contain_text("AUC is up 1.5 points; shipping.")
            expect(page.get_by_role("button", name="Approve")).to_have_count(0)
            page.screenshot(path=str(SHOTS / "signoff-decided.png"), full_page=True)
        finally:
            browser.close()

    decision = httpx.get(f"{hub.url}/api/v1/events/{event['id']}/decision",
                         headers=hub.headers(flow)).json()
    assert decision["outcome"] == "approved" and decision["value"] is True
    assert (decision["by"], decision["channel"]) == ("admin", "web")
    assert decision["comment"] == "AUC is up 1.5 points; shipping."
