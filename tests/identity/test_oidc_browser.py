"""Issue 23: reviewers sign in with OpenID Connect, in a real Chromium, against the test
provider running as its own process (:mod:`.provider`) and a real ``signoff serve``.

Groups from the ID token's claim decide what the reviewer sees and may answer; a forged, an
expired and a wrong-audience ID token are refused; a provider key rotation is followed; logout
ends the session at the hub and at the provider.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff.testing import HubProcess

from ..conftest import hub_process
from ..hub.test_browser import ARGS
from ..hub.test_browser import chromium as chromium  # the fixture
from .conftest import Provider, oidc_env

pytestmark = pytest.mark.browser


@pytest.fixture
def sso_hub(request: pytest.FixtureRequest, tmp_path: Path,
            provider: Provider) -> Iterator[HubProcess]:
    """A hub whose inbox signs reviewers in with the test provider."""
    provider.control("mode", {"mode": "ok"})
    with hub_process(request, tmp_path, oidc_env(provider)) as process:
        yield process


@pytest.fixture
def browser(chromium: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(chromium), args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _event(hub: HubProcess, prompt: str, assignees: list[str]) -> dict[str, Any]:
    flow = hub.token("release-flow", role="workflow")
    made = httpx.post(f"{hub.url}/api/v1/events", headers=hub.headers(flow), json={
        "name": "release", "prompt": prompt, "assignees": assignees, "timeout": 3600,
        "source": {"orchestrator": "prefect", "run": "release/1", "step": prompt[:20]}})
    assert made.status_code == 201, made.text
    return made.json()


def _sign_in(browser: Any, hub: HubProcess, user: str) -> Any:
    """A fresh browser context that went through the provider's sign-in as ``user``; returns
    the page where the hub left it.
    """
    page = browser.new_context().new_page()
    page.goto(f"{hub.url}/login")
    page.get_by_role("link", name="Sign in with single sign-on").click()
    page.get_by_label("Username").fill(user)
    page.get_by_role("button", name="Sign in at provider").click()
    page.wait_for_load_state()
    return page


def test_groups_from_the_provider_decide_what_a_reviewer_sees_and_answers(
        sso_hub: HubProcess, provider: Provider, browser: Any) -> None:
    from playwright.sync_api import expect

    ops = _event(sso_hub, "Restart the ops database?", ["group:ops"])
    finance = _event(sso_hub, "Pay the finance invoice?", ["group:finance"])

    page = _sign_in(browser, sso_hub, "alice")
    expect(page).to_have_url(f"{sso_hub.url}/")
    expect(page.get_by_text("Signed in as")).to_contain_text("alice")
    expect(page.get_by_role("link", name="Restart the ops database?")).to_be_visible()
    expect(page.get_by_role("link", name="Pay the finance invoice?")).to_have_count(0)

    # what her groups do not cover she can neither open nor answer
    refused = page.goto(f"{sso_hub.url}/events/{finance['id']}")
    assert refused is not None and refused.status in (403, 404)

    page.goto(f"{sso_hub.url}/events/{ops['id']}")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#recorded")).to_contain_text("Recorded: Approved")
    decision = httpx.get(f"{sso_hub.url}/api/v1/events/{ops['id']}",
                         headers=sso_hub.headers()).json()["decision"]
    assert (decision["by"], decision["channel"]) == ("alice", "web")

    # bob (finance) sees the other one
    other = _sign_in(browser, sso_hub, "bob")
    expect(other.get_by_role("link", name="Pay the finance invoice?")).to_be_visible()

    # logout: the hub's session ends, and the browser goes through the provider's end-session
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{sso_hub.url}/login")
    assert "signoff" in provider.control("stats")["logouts"]
    page.goto(f"{sso_hub.url}/")
    expect(page).to_have_url(f"{sso_hub.url}/login")
    tokens = httpx.get(f"{sso_hub.url}/api/v1/tokens", headers=sso_hub.headers()).json()
    alice = [t for t in tokens["tokens"] if t["user"] == "alice"]
    assert [(t["name"], t["groups"], t["state"]) for t in alice] == [
        ("sso:oidc", ["ops"], "revoked")]


@pytest.mark.parametrize(("mode", "reason"), [
    ("forged", "signature does not check out"),
    ("expired", "expired"),
    ("wrong_audience", "not for this hub"),
])
def test_a_bad_id_token_is_refused(sso_hub: HubProcess, provider: Provider, browser: Any,
                                   mode: str, reason: str) -> None:
    from playwright.sync_api import expect

    _event(sso_hub, "Restart the ops database?", ["group:ops"])
    provider.control("mode", {"mode": mode})
    try:
        page = _sign_in(browser, sso_hub, "alice")
    finally:
        provider.control("mode", {"mode": "ok"})
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Sign-in refused")
    expect(alert).to_contain_text(reason)
    page.goto(f"{sso_hub.url}/")  # no session was started
    expect(page).to_have_url(f"{sso_hub.url}/login")
    tokens = httpx.get(f"{sso_hub.url}/api/v1/tokens", headers=sso_hub.headers()).json()
    assert not [t for t in tokens["tokens"] if t["user"] == "alice"]


def test_a_provider_key_rotation_is_followed(sso_hub: HubProcess, provider: Provider,
                                            browser: Any) -> None:
    from playwright.sync_api import expect

    before = provider.control("stats")["jwks_reads"]
    expect(_sign_in(browser, sso_hub, "alice")).to_have_url(f"{sso_hub.url}/")
    assert provider.control("stats")["jwks_reads"] == before + 1
    old = provider.control("stats")["kid"]
    assert provider.control("rotate")["kid"] != old
    # the hub still caches the old key; the new kid makes it read the JWKS once more
    expect(_sign_in(browser, sso_hub, "bob")).to_have_url(f"{sso_hub.url}/")
    assert provider.control("stats")["jwks_reads"] == before + 2
    expect(_sign_in(browser, sso_hub, "alice")).to_have_url(f"{sso_hub.url}/")
    assert provider.control("stats")["jwks_reads"] == before + 2  # cached again
