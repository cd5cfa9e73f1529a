"""The web inbox against a real `signoff serve`: sessions, CSRF, widgets, answers, escaping."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from pydantic import BaseModel, Field

from signoff import input_spec
from signoff.store import open_store
from signoff.store.contract import make_event
from signoff.testing import HubProcess

XSS_TAG = "<script>alert(1)</script>"
XSS_ATTR = '"><img src=x onerror=alert(1)>'


class Release(BaseModel):
    """A form answer, as a workflow author would declare it."""

    replicas: int = Field(ge=1, le=20, description="How many pods")
    region: Literal["eu-west", "us-east"]
    checks: list[Literal["smoke", "load", "security"]] = []
    canary: bool = False
    owner: str = Field(max_length=30)
    note: str | None = None
    extra: dict[str, int] = {}


FORM = input_spec(Release).model_dump(by_alias=True)


# --- helpers ----------------------------------------------------------------------------------
class Page(HTMLParser):
    """The tags of a page with their (unescaped) attributes, and the text of its textareas."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.textareas: dict[str, str] = {}
        self._open: str | None = None
        self.html = html
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "textarea":
            self._open = dict(attrs).get("name") or ""
            self.textareas[self._open] = ""

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self.textareas[self._open] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._open = None

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags
                if t == tag and all(a.get(k.rstrip("_")) == v for k, v in attrs.items())]

    def one(self, tag: str, **attrs: str) -> dict[str, str | None]:
        found = self.find(tag, **attrs)
        assert len(found) == 1, f"expected one <{tag} {attrs}>, found {found}"
        return found[0]


@dataclass
class Browser:
    """A signed-in browser session: an httpx client holding the session cookie."""

    client: httpx.Client
    user: str
    csrf: str

    def page(self, event_id: str) -> httpx.Response:
        return self.client.get(f"/events/{event_id}")

    def post(self, path: str, data: dict[str, Any], csrf: str | None = "mine") -> httpx.Response:
        body = dict(data)
        if csrf == "mine":
            body["csrf"] = self.csrf
        elif csrf is not None:
            body["csrf"] = csrf
        return self.client.post(path, data=body)

    def answer(self, event_id: str, data: dict[str, Any], **kw: Any) -> httpx.Response:
        return self.post(f"/events/{event_id}/respond", data, **kw)


def sign_in(hub: HubProcess, token: str, user: str) -> Browser:
    """Paste the token on /login, as a reviewer would; the cookie then holds a session id."""
    client = httpx.Client(base_url=hub.url, timeout=30)
    form = client.get("/login")
    login_csrf = Page(form.text).one("input", name="csrf")["value"]
    signed = client.post("/login", data={"token": token, "csrf": login_csrf})
    assert signed.status_code == 303, signed.text
    inbox = client.get("/")
    assert inbox.status_code == 200, inbox.text
    # the log-out form, and the batch form when something is pending: the session's one token
    tokens = {a["value"] for a in Page(inbox.text).find("input", name="csrf")}
    assert len(tokens) == 1, tokens
    csrf = tokens.pop()
    assert csrf and re.fullmatch(r"[0-9a-f]{64}", csrf)
    return Browser(client, user, csrf)


def create(hub: HubProcess, token: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("name", "web-test")
    made = httpx.post(f"{hub.url}/api/v1/events", json=fields, headers=hub.headers(token))
    assert made.status_code == 201, made.text
    return made.json()


def fetch(hub: HubProcess, event_id: str) -> dict[str, Any]:
    got = httpx.get(f"{hub.url}/api/v1/events/{event_id}", headers=hub.headers())
    assert got.status_code == 200, got.text
    return got.json()


def assert_pending(hub: HubProcess, event_id: str) -> None:
    event = fetch(hub, event_id)
    assert event["status"] == "pending" and event["decision"] is None
    assert event["responses"] == []


@dataclass
class Cast:
    hub: HubProcess
    flow: str            # a workflow token (creates events)
    bob: Browser         # reviewer in group ops
    carol: Browser       # reviewer, no groups
    admin: Browser


@pytest.fixture(scope="module")
def cast(shared_hub: HubProcess) -> Iterator[Cast]:
    hub = shared_hub
    flow = hub.token("flow", role="workflow")
    bob = sign_in(hub, hub.token("bob", groups=("ops",)), "bob")
    carol = sign_in(hub, hub.token("carol"), "carol")
    assert hub.admin_token is not None
    admin = sign_in(hub, hub.admin_token, "admin")
    yield Cast(hub, flow, bob, carol, admin)
    for who in (bob, carol, admin):
        who.client.close()


# --- sessions ---------------------------------------------------------------------------------
def test_pasted_token_starts_a_session_whose_cookie_is_not_the_token(cast: Cast) -> None:
    hub = cast.hub
    assert hub.admin_token is not None
    with httpx.Client(base_url=hub.url) as client:
        csrf = Page(client.get("/login").text).one("input", name="csrf")["value"]
        signed = client.post("/login", data={"token": hub.admin_token, "csrf": csrf})
        assert signed.status_code == 303
        assert signed.headers["location"] == "/"
        session = client.cookies["signoff_session"]
        assert session and hub.admin_token not in session and session not in hub.admin_token
        cookie = next(c for c in signed.headers.get_list("set-cookie")
                      if c.startswith("signoff_session="))
        flags = {part.strip().lower() for part in cookie.split(";")}
        assert {"httponly", "path=/", "samesite=lax"} <= flags
        assert "secure" not in flags  # secure_cookies is off on plain http
        inbox = client.get("/")
        assert inbox.status_code == 200
        assert "Signed in as <strong>admin</strong>" in inbox.text
        csp = inbox.headers["content-security-policy"]
        for rule in ("default-src 'self'", "script-src 'self';", "form-action 'self'",
                     "frame-ancestors 'none'"):
            assert rule in csp
        assert inbox.headers["referrer-policy"] == "no-referrer"
        # the session id is no API token
        assert httpx.get(f"{hub.url}/api/v1/me", headers=hub.headers(session)).status_code == 401


def test_a_token_in_the_url_signs_nobody_in(cast: Cast) -> None:
    hub = cast.hub
    with httpx.Client(base_url=hub.url) as client:
        sent = client.get("/", params={"token": hub.admin_token})
        assert sent.status_code == 303 and sent.headers["location"] == "/login"
        assert "signoff_session" not in client.cookies
        assert client.get("/").headers["location"] == "/login"


def test_session_cookie_is_secure_when_the_hub_says_so(tmp_path: Path) -> None:
    with HubProcess(tmp_path / "secure.db", env={"SIGNOFF_SECURE_COOKIES": "true"}) as hub:
        assert hub.login_url is not None
        with httpx.Client() as client:
            page = client.get(hub.login_url)
            csrf = Page(page.text).one("input", name="csrf")["value"]
            # httpx keeps no Secure cookie on plain http: send the nonce back by hand
            nonce = page.headers["set-cookie"].split(";")[0].split("=", 1)[1]
            signed = client.post(hub.login_url, data={"csrf": csrf},
                                 headers={"cookie": f"signoff_login={nonce}"})
        assert signed.status_code == 303
        cookie = next(c for c in signed.headers.get_list("set-cookie")
                      if c.startswith("signoff_session="))
        flags = {part.strip().lower() for part in cookie.split(";")}
        assert {"secure", "httponly", "samesite=lax"} <= flags


def test_wrong_token_is_refused_and_login_form_works(cast: Cast) -> None:
    hub = cast.hub
    with httpx.Client(base_url=hub.url) as client:
        form = client.get("/login")
        assert form.status_code == 200
        csrf = Page(form.text).one("input", name="csrf")["value"]
        no_csrf = client.post("/login", data={"token": hub.admin_token})
        assert no_csrf.status_code == 403
        assert "signoff_session" not in client.cookies
        wrong = client.post("/login", data={"token": "so_wrong", "csrf": csrf})
        assert wrong.status_code == 401 and "not known to this hub" in wrong.text
        assert "signoff_session" not in client.cookies

        # `next` may only point into the hub (no open redirect)
        evil = client.post("/login", data={"token": hub.admin_token, "csrf": csrf,
                                           "next": "//evil.example/x"})
        assert evil.status_code == 303 and evil.headers["location"] == "/"
        assert "httponly" in evil.headers["set-cookie"].lower()
        assert client.get("/").status_code == 200

        out = client.post("/logout", data={"csrf": "0" * 64})
        assert out.status_code == 403  # logging out is a POST with CSRF too
        csrf = Page(client.get("/").text).find("input", name="csrf")[0]["value"]
        out = client.post("/logout", data={"csrf": csrf})
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert client.get("/").headers["location"] == "/login"


def test_unauthenticated_requests_go_to_login(cast: Cast) -> None:
    hub = cast.hub
    event = create(hub, cast.flow, prompt="Needs a session")
    with httpx.Client(base_url=hub.url) as client:
        inbox = client.get("/")
        assert inbox.status_code == 303 and inbox.headers["location"] == "/login"
        page = client.get(f"/events/{event['id']}")
        assert page.status_code == 303
        assert page.headers["location"] == f"/login?next=%2Fevents%2F{event['id']}"
        posted = client.post(f"/events/{event['id']}/respond", data={"choice": "approve"})
        assert posted.status_code == 303 and posted.headers["location"] == "/login"
        client.cookies.set("signoff_session", "so_forged")
        forged = client.get("/")
        assert forged.status_code == 303 and forged.headers["location"] == "/login"
        assert 'signoff_session=""' in forged.headers["set-cookie"]  # the bad cookie is cleared
    assert_pending(hub, event["id"])


# --- the inbox --------------------------------------------------------------------------------
def test_inbox_lists_urgent_first_and_only_what_the_reviewer_may_see(hub: HubProcess) -> None:
    flow = hub.token("flow", role="workflow")
    dave = sign_in(hub, hub.token("dave", groups=("ops",)), "dave")
    erin = sign_in(hub, hub.token("erin"), "erin")
    made = {}
    for tag, priority, assignees in [("low-open", "low", []), ("urgent-dave", "urgent", ["dave"]),
                                     ("normal-ops", "normal", ["group:ops"]),
                                     ("high-open", "high", []), ("normal-open", "normal", []),
                                     ("urgent-erin", "urgent", ["erin"]),
                                     ("high-finance", "high", ["group:finance"])]:
        made[tag] = create(hub, flow, prompt=f"Prompt {tag}", priority=priority,
                           assignees=assignees, source={"orchestrator": "api", "run": f"run-{tag}",
                                                        "step": "gate"})

    def shown(browser: Browser, path: str = "/") -> list[str]:
        html = browser.client.get(path).text
        return re.findall(r"Prompt ([a-z-]+)</a>", html)

    assert shown(dave) == ["urgent-dave", "high-open", "normal-ops", "normal-open", "low-open"]
    assert shown(erin) == ["urgent-erin", "high-open", "normal-open", "low-open"]
    inbox = dave.client.get("/").text
    assert "5 events wait for you" in inbox
    assert "run-urgent-dave" in inbox and "gate" in inbox and "group:ops" in inbox
    assert re.search(r"\d+ s ago", inbox)

    decided = httpx.post(f"{hub.url}/api/v1/events/{made['normal-ops']['id']}/responses",
                         json={"value": True}, headers=hub.headers())
    assert decided.status_code == 200
    assert shown(dave) == ["urgent-dave", "high-open", "normal-open", "low-open"]
    assert shown(dave, "/?status=decided") == ["normal-ops"]
    assert shown(erin, "/?status=decided") == []

    # more than a page: a cursor link leads on, and the pages do not overlap
    for n in range(50):
        create(hub, flow, prompt=f"Prompt bulk-{n:02d}", priority="low", assignees=["dave"])
    first = dave.client.get("/").text
    assert "54 events wait for you" in first
    on_first = re.findall(r"Prompt ([a-z0-9-]+)</a>", first)
    assert len(on_first) == 50 and on_first[:4] == ["urgent-dave", "high-open", "normal-open",
                                                    "low-open"]
    link = Page(first).find("a", class_="btn secondary")
    assert link and link[-1]["href"] and "cursor=" in link[-1]["href"]
    rest = re.findall(r"Prompt ([a-z0-9-]+)</a>", dave.client.get(link[-1]["href"]).text)
    assert rest == ["bulk-46", "bulk-47", "bulk-48", "bulk-49"]

    # a large inbox is counted up to 1,000 (a count walks an index), then shown as "1,000+"
    # a second writer on the hub's store, as the CLI would be (with the hub's audit key, which
    # a PostgreSQL store needs given; a SQLite one reads it from beside its file)
    key = hub.env.get("SIGNOFF_AUDIT_KEY")
    store = open_store(hub.database, audit_key=key.encode() if key else None)
    try:
        for _ in range(946):  # 54 + 946: exactly the limit
            store.create_event(make_event(requested_by="flow", assignees=["dave"]),
                               channel="api")
        assert "1,000 events wait for you" in dave.client.get("/").text
        store.create_event(make_event(requested_by="flow", assignees=["dave"]), channel="api")
        crowded = dave.client.get("/").text
        assert "1,000+ events wait for you" in crowded and "Inbox (1,000+)" in crowded
        assert "4 events wait for you" in erin.client.get("/").text
    finally:
        store.close()
    for browser in (dave, erin):
        browser.client.close()


# --- the event page ---------------------------------------------------------------------------
def test_event_page_shows_the_widget_for_each_input_kind(cast: Cast) -> None:
    hub, bob = cast.hub, cast.bob

    def page_for(spec: dict[str, Any], **extra: Any) -> Page:
        event = create(hub, cast.flow, prompt="Widgets", input=spec, **extra)
        got = bob.page(event["id"])
        assert got.status_code == 200, got.text
        return Page(got.text)

    approval = page_for({"kind": "approval"}, context={"model": "v3", "auc": 0.91},
                        labels={"team": "ml"}, recommendation=True, confidence=0.87,
                        source={"orchestrator": "prefect", "run": "r-1",
                                "link": "https://prefect.example/runs/r-1"})
    assert approval.one("button", name="choice", value="approve")["type"] == "submit"
    assert approval.one("button", name="choice", value="reject")["type"] == "submit"
    assert approval.one("textarea", name="comment") is not None
    link = approval.one("a", href="https://prefect.example/runs/r-1")
    assert link["target"] == "_blank" and "noopener" in (link["rel"] or "")
    assert '&#34;auc&#34;: 0.91' in approval.html  # the context, as pretty JSON
    assert "team: ml" in approval.html and "confidence 87%" in approval.html

    number = page_for({"kind": "int", "min": 1, "max": 10, "default": 5}).one("input",
                                                                               name="value")
    assert (number["type"], number["min"], number["max"], number["step"], number["value"]) == \
        ("number", "1", "10", "1", "5")
    decimal = page_for({"kind": "float", "min": 0.5}).one("input", name="value")
    assert (decimal["type"], decimal["min"], decimal["step"]) == ("number", "0.5", "any")
    assert "max" not in decimal

    choice = page_for({"kind": "choice", "options": ["blue", "green"]})
    choice.one("select", name="value")
    assert [o["value"] for o in choice.find("option")] == ["", "blue", "green"]

    multi = page_for({"kind": "multichoice", "options": ["a", "b", "c"], "default": ["b"]})
    boxes = multi.find("input", type="checkbox", name="value")
    assert [b["value"] for b in boxes] == ["a", "b", "c"]
    assert ["checked" in b for b in boxes] == [False, True, False]

    text = page_for({"kind": "text", "max_length": 40, "pattern": "[a-z]+"}).one("input",
                                                                                 name="value")
    assert (text["type"], text["maxlength"], text["pattern"]) == ("text", "40", "[a-z]+")
    long_text = page_for({"kind": "text", "multiline": True})
    assert "value" in long_text.textareas
    yes_no = page_for({"kind": "bool"}).find("input", type="radio", name="value")
    assert [r["value"] for r in yes_no] == ["true", "false"]

    form = page_for(FORM)
    replicas = form.one("input", name="f.replicas")
    assert (replicas["type"], replicas["min"], replicas["max"], replicas["step"]) == \
        ("number", "1", "20", "1")
    assert "required" in replicas
    form.one("select", name="f.region")
    assert [o["value"] for o in form.find("option")] == ["", "eu-west", "us-east"]
    checks = form.find("input", type="checkbox", name="f.checks")
    assert [c["value"] for c in checks] == ["smoke", "load", "security"]
    assert form.one("input", name="f.canary")["type"] == "checkbox"
    owner = form.one("input", name="f.owner")
    assert owner["type"] == "text" and owner["maxlength"] == "30" and "required" in owner
    assert "required" not in form.one("input", name="f.note")
    assert "f.extra" in form.textareas  # a dict field falls back to a JSON box
    assert "comment" in form.textareas

    filled = page_for({**FORM, "default": {"replicas": 2, "region": "us-east", "owner": "ana",
                                           "checks": ["load"], "canary": True,
                                           "extra": {"a": 1}}})
    assert filled.one("input", name="f.replicas")["value"] == "2"
    assert "selected" in filled.one("option", value="us-east")
    assert "checked" in filled.one("input", name="f.checks", value="load")
    assert "checked" in filled.one("input", name="f.canary")
    assert filled.one("input", name="f.owner")["value"] == "ana"
    assert filled.textareas["f.extra"].replace(" ", "").replace("\n", "") == '{"a":1}'


ANSWERS: list[tuple[str, dict[str, Any], dict[str, Any], Any, str]] = [
    ("approve", {"kind": "approval"}, {"choice": "approve"}, True, "approved"),
    ("reject", {"kind": "approval"}, {"choice": "reject"}, False, "rejected"),
    ("bool", {"kind": "bool"}, {"value": "false"}, False, "answered"),
    ("int", {"kind": "int", "min": 1, "max": 10}, {"value": "7"}, 7, "answered"),
    ("float", {"kind": "float"}, {"value": "2.5"}, 2.5, "answered"),
    ("text", {"kind": "text", "multiline": True}, {"value": "two\r\nlines"}, "two\nlines",
     "answered"),
    ("choice", {"kind": "choice", "options": ["blue", "green"]}, {"value": "green"}, "green",
     "answered"),
    ("multichoice", {"kind": "multichoice", "options": ["a", "b", "c"]},
     {"value": ["c", "a"]}, ["a", "c"], "answered"),
    ("form", FORM, {"f.replicas": "3", "f.region": "us-east", "f.checks": ["smoke", "security"],
                    "f.canary": "on", "f.owner": "ana", "f.note": "", "f.extra": '{"a": 1}'},
     {"replicas": 3, "region": "us-east", "checks": ["smoke", "security"], "canary": True,
      "owner": "ana", "note": None, "extra": {"a": 1}}, "answered"),
]


SHOWN = {"approve": "Approved", "reject": "Rejected", "bool": "No", "int": "7", "float": "2.5",
         "text": "two\nlines", "choice": "green", "multichoice": "a, c",
         "form": "Replicas: 3; Region: us-east; Checks: smoke, security; Canary: Yes"}
"""Decided values as people read them: no JSON quotes, approvals as words."""


@pytest.mark.parametrize(("kind", "spec", "posted", "value", "outcome"), ANSWERS,
                         ids=[a[0] for a in ANSWERS])
def test_answering_through_the_form_decides_the_event(cast: Cast, kind: str,
                                                      spec: dict[str, Any],
                                                      posted: dict[str, Any], value: Any,
                                                      outcome: str) -> None:
    event = create(cast.hub, cast.flow, prompt="Answer me", input=spec, assignees=["group:ops"])
    after = create(cast.hub, cast.flow, prompt="Next <one>", assignees=["group:ops"],
                   priority="urgent")  # first in bob's inbox: where he lands afterwards
    done = cast.bob.answer(event["id"], {**posted, "comment": "  checked the dashboards  "})
    assert done.status_code == 303, done.text
    assert done.headers["location"] == f"/events/{after['id']}?done={event['id']}"
    decision = fetch(cast.hub, event["id"])["decision"]
    assert decision["value"] == value and decision["outcome"] == outcome
    assert (decision["by"], decision["channel"], decision["comment"]) == \
        ("bob", "web", "checked the dashboards")
    landed = cast.bob.client.get(done.headers["location"])
    assert landed.status_code == 200 and "Next &lt;one&gt;" in landed.text
    recorded = re.search(r'<div class="notice ok" role="status" id="recorded">(.*?)</div>',
                         landed.text, re.S)
    assert recorded is not None, landed.text
    assert "Recorded:" in recorded.group(1) and "Answer me" in recorded.group(1)
    assert "by bob via web" in recorded.group(1)
    assert outcome.capitalize() in recorded.group(1)
    page = cast.bob.page(event["id"])
    assert f"Decided: {outcome}" in page.text and "checked the dashboards" in page.text
    shown = re.search(r'<dd class="answer-value">(.*?)</dd>', page.text, re.S)
    assert shown is not None
    assert shown.group(1).startswith(SHOWN[kind].replace('"', "&#34;")), shown.group(1)
    assert not Page(page.text).find("form", action=f"/events/{event['id']}/respond")
    cast.admin.post(f"/events/{after['id']}/cancel", {})


def test_posts_without_the_right_csrf_token_are_refused(cast: Cast) -> None:
    event = create(cast.hub, cast.flow, prompt="CSRF", assignees=["bob", "carol"])
    for csrf in (None, "", "0" * 64, cast.carol.csrf):  # missing, empty, wrong, another session's
        refused = cast.bob.answer(event["id"], {"choice": "approve"}, csrf=csrf)
        assert refused.status_code == 403, csrf
        assert "CSRF" in refused.text
        assert cast.admin.post(f"/events/{event['id']}/cancel", {}, csrf=csrf).status_code == 403
    assert_pending(cast.hub, event["id"])
    assert len(httpx.get(f"{cast.hub.url}/api/v1/events/{event['id']}/audit",
                         headers=cast.hub.headers()).json()["entries"]) == 1


def test_a_bad_answer_comes_back_with_the_error_and_the_input_kept(cast: Cast) -> None:
    bob = cast.bob
    number = create(cast.hub, cast.flow, prompt="How many?",
                    input={"kind": "int", "min": 1, "max": 10})
    refused = bob.answer(number["id"], {"value": "99", "comment": "my <b>note</b>"})
    assert refused.status_code == 422
    assert refused.text.count("Expected a whole number from 1 to 10, got 99.") == 1  # once
    page = Page(refused.text)
    kept = page.one("input", name="value")
    assert kept["value"] == "99" and kept["aria-invalid"] == "true"
    assert page.textareas["comment"] == "my <b>note</b>"
    assert "my &lt;b&gt;note&lt;/b&gt;" in refused.text
    assert bob.answer(number["id"], {"value": "seven"}).status_code == 422
    assert_pending(cast.hub, number["id"])

    form = create(cast.hub, cast.flow, prompt="Release?", input=FORM)
    posted = {"f.replicas": "three", "f.region": "eu-west", "f.checks": ["load"],
              "f.owner": "ana", "comment": "first try"}
    refused = bob.answer(form["id"], posted)
    assert refused.status_code == 422
    # in plain words beside its field, once, with no Python repr
    assert refused.text.count("Expected a whole number, got “three”.") == 1
    shown = re.sub(r"<[^>]+>", " ", refused.text)  # the words on the page, not the markup
    assert "&#39;" not in shown and "value.replicas" not in shown
    assert Page(refused.text).one("input", name="f.replicas")["aria-describedby"] == \
        "err-value-replicas"
    page = Page(refused.text)
    assert page.one("input", name="f.replicas")["value"] == "three"
    assert page.one("input", name="f.owner")["value"] == "ana"
    assert "selected" in page.one("option", value="eu-west")
    assert "checked" in page.one("input", name="f.checks", value="load")
    assert page.textareas["comment"] == "first try"

    refused = bob.answer(form["id"], {**posted, "f.replicas": "99"})
    assert refused.status_code == 422
    assert refused.text.count("99 is greater than the maximum of 20") == 1
    assert Page(refused.text).one("input", name="f.replicas")["value"] == "99"
    refused = bob.answer(form["id"], {**posted, "f.replicas": "2", "f.extra": "{oops"})
    assert refused.status_code == 422 and refused.text.count("Expected JSON, got “{oops”.") == 1
    assert_pending(cast.hub, form["id"])

    approval = create(cast.hub, cast.flow, prompt="Approve?")
    refused = bob.answer(approval["id"], {"choice": "maybe"})
    assert refused.status_code == 422
    assert refused.text.count("Expected approve or reject, got “maybe”.") == 1
    assert_pending(cast.hub, approval["id"])


def test_html_in_events_is_escaped_everywhere(cast: Cast) -> None:
    event = create(cast.hub, cast.flow, prompt=f"Deploy? {XSS_TAG}",
                   input={"kind": "text", "pattern": "[a-z]+"},
                   context={"note": XSS_ATTR, XSS_TAG: [XSS_ATTR]},
                   labels={"team": XSS_TAG}, recommendation=XSS_ATTR,
                   source={"orchestrator": "api", "run": XSS_ATTR, "step": XSS_TAG})
    refused = cast.bob.answer(event["id"], {"value": XSS_ATTR, "comment": XSS_TAG})
    assert refused.status_code == 422
    pages = [cast.bob.client.get("/").text, cast.bob.page(event["id"]).text, refused.text]
    for html in pages:
        assert XSS_TAG not in html and XSS_ATTR not in html
        assert "<img" not in html
        # the one script tag is the hub's own file; nothing inline, no handler attributes
        tags = re.findall(r"<script[^>]*>(?:.*?)</script>", html, re.S)
        assert len(tags) == 1 and re.fullmatch(
            r'<script src="/static/signoff\.js\?v=[0-9a-f]{12}" defer></script>', tags[0]), tags
        assert not [a for _, attrs in Page(html).tags for a in attrs if a.startswith("on")]
    assert "Deploy? &lt;script&gt;alert(1)&lt;/script&gt;" in pages[1]
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in pages[1]
    assert Page(refused.text).one("input", name="value")["value"] == XSS_ATTR


def test_get_never_changes_anything(cast: Cast) -> None:
    event = create(cast.hub, cast.flow, prompt="GET is safe")
    for path in (f"/events/{event['id']}/respond", f"/events/{event['id']}/cancel", "/logout"):
        got = cast.admin.client.get(path, params={"choice": "approve", "csrf": cast.admin.csrf})
        assert got.status_code == 405 and got.headers["allow"] == "POST"
    page = cast.admin.client.get(f"/events/{event['id']}",
                                 params={"choice": "approve", "csrf": cast.admin.csrf})
    assert page.status_code == 200
    assert_pending(cast.hub, event["id"])
    assert cast.admin.client.get("/").status_code == 200  # still signed in after GET /logout


def test_a_reviewer_not_assigned_may_not_see_or_answer(cast: Cast) -> None:
    event = create(cast.hub, cast.flow, prompt="For bob only", assignees=["bob"])
    page = cast.carol.page(event["id"])
    assert page.status_code == 403 and "carol may not read" in page.text
    assert "For bob only" not in page.text
    assert cast.carol.answer(event["id"], {"choice": "approve"}).status_code == 403
    assert "For bob only" not in cast.carol.client.get("/").text
    # bob may answer but not cancel: no cancel form, and a forged cancel is refused
    bobs = Page(cast.bob.page(event["id"]).text)
    assert not bobs.find("form", action=f"/events/{event['id']}/cancel")
    assert cast.bob.post(f"/events/{event['id']}/cancel", {}).status_code == 403
    assert_pending(cast.hub, event["id"])


def test_a_decided_event_shows_its_decision_and_no_form(cast: Cast) -> None:
    event = create(cast.hub, cast.flow, prompt="Decided elsewhere", assignees=["bob"])
    before = Page(cast.bob.page(event["id"]).text)
    assert before.find("form", action=f"/events/{event['id']}/respond")
    by_api = httpx.post(f"{cast.hub.url}/api/v1/events/{event['id']}/responses",
                        json={"value": True, "comment": "ok from the API"},
                        headers=cast.hub.headers(cast.hub.admin_token))
    assert by_api.status_code == 200
    page = cast.bob.page(event["id"])
    assert "Decided: approved" in page.text and "ok from the API" in page.text
    assert "admin" in page.text and "via api" in page.text
    assert not Page(page.text).find("form", action=f"/events/{event['id']}/respond")
    late = cast.bob.answer(event["id"], {"choice": "reject", "comment": "too late"})
    assert late.status_code == 409 and "already decided" in late.text
    assert fetch(cast.hub, event["id"])["decision"]["value"] is True


def test_an_admin_cancels_from_the_page(cast: Cast) -> None:
    event = create(cast.hub, cast.flow, prompt="Cancel me")
    page = Page(cast.admin.page(event["id"]).text)
    assert page.find("form", action=f"/events/{event['id']}/cancel")
    done = cast.admin.post(f"/events/{event['id']}/cancel", {"comment": "not needed"})
    assert done.status_code == 303
    stored = fetch(cast.hub, event["id"])
    assert stored["status"] == "cancelled"
    assert (stored["decision"]["by"], stored["decision"]["channel"],
            stored["decision"]["comment"]) == ("admin", "web", "not needed")
    assert "Decided: cancelled" in cast.admin.page(event["id"]).text
    again = cast.admin.post(f"/events/{event['id']}/cancel", {})
    assert again.status_code == 409


def test_stylesheet_and_error_pages(cast: Cast) -> None:
    css = cast.bob.client.get("/static/signoff.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert ".btn.approve" in css.text
    assert cast.bob.client.get("/static/web.py").status_code == 404
    missing = cast.bob.page("ev_nope")
    assert missing.status_code == 404 and "no event ev_nope" in missing.text
    assert "text/html" in missing.headers["content-type"]
    bad = cast.bob.client.get("/", params={"status": XSS_TAG})
    assert bad.status_code == 422 and XSS_TAG not in bad.text
