"""NUL characters (U+0000) on both stores, in one run: PostgreSQL's text cannot hold one and
SQLite's can, so the hub decides at the request, never the database. A NUL in text the hub
keeps in a column or matches in a query is a 422 naming the field, with nothing written; an id
in a path that could not be an id is a 404 like an unknown one; NULs inside the event's JSON
documents (prompt, context, labels) are kept, and shown again escaped.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from signoff.testing import HubProcess

from ..conftest import hub_process
from .test_input_hardening import call, create, everything
from .test_web import Browser, Page, sign_in

NUL_FREE = "text without NUL characters"
BAD_ID = "ev_%00x"  # as it travels in a URL: the hub sees "ev_\x00x"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def either(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """One hub on each store, whatever ``SIGNOFF_TEST_DB`` says."""
    where = tmp_path_factory.mktemp(request.param)
    with hub_process(request, where, store=request.param) as process:
        yield process


@pytest.fixture(scope="module")
def who(either: HubProcess) -> dict[str, str]:
    return {"flow": either.token("flow", role="workflow"),
            "rita": either.token("rita", groups=("ops",)),
            "admin": either.admin_token or ""}


def refused(answer: httpx.Response, field: str) -> dict[str, Any]:
    """A 422 naming ``field``, expecting text without NULs, and showing what came."""
    assert answer.status_code == 422, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert (error["code"], error["field"], error["expected"]) == (
        "invalid_input", field, NUL_FREE), error
    assert "\x00" in error["got"], error
    return error


def test_an_idempotency_key_with_a_nul_is_refused_naming_key(either: HubProcess,
                                                             who: dict[str, str]) -> None:
    before = everything(either)
    refused(call(either, who["flow"], "POST", "/events",
                 json={"name": "nul", "prompt": "Go?", "key": "k\x00ey"}), "key")
    assert everything(either) == before


def test_a_batch_item_with_a_nul_key_is_refused_alone(either: HubProcess,
                                                      who: dict[str, str]) -> None:
    answer = call(either, who["flow"], "POST", "/events:batch", json={"events": [
        {"name": "nul", "prompt": "one"}, {"name": "nul", "prompt": "two", "key": "a\x00"}]})
    assert answer.status_code == 200, answer.text
    first, second = answer.json()["results"]
    assert first["status"] == 201
    assert second["status"] == 422
    assert (second["error"]["field"], second["error"]["expected"]) == ("events.1.key", NUL_FREE)


def test_a_comment_a_relay_name_or_a_reason_with_a_nul_is_refused(either: HubProcess,
                                                                  who: dict[str, str]) -> None:
    event = create(either, who["flow"])
    path = f"/events/{event['id']}"
    refused(call(either, who["rita"], "POST", path + "/responses",
                 json={"value": True, "comment": "fine\x00"}), "comment")
    refused(call(either, who["rita"], "POST", path + "/responses",
                 json={"value": True, "relayed_by": "a\x00b"}), "relayed_by")
    refused(call(either, who["admin"], "POST", path + "/cancel", json={"comment": "\x00"}),
            "comment")
    refused(call(either, who["flow"], "POST", path + "/refusals", json={"reason": "bad\x00"}),
            "reason")
    stored = call(either, who["admin"], "GET", path).json()
    assert stored["status"] == "pending" and stored["responses"] == []
    actions = [e["action"] for e in call(either, who["admin"], "GET", path + "/audit"
                                         ).json()["entries"]]
    assert "decision_refused" not in actions


@pytest.mark.parametrize("field", ["reason", "delegate", "until"])
def test_a_delegation_with_a_nul_is_refused_naming_the_field(either: HubProcess,
                                                             who: dict[str, str],
                                                             field: str) -> None:
    body = {"delegate": "ben", "until": "2d", "reason": "away"}
    body[field] += "\x00"
    refused(call(either, who["rita"], "POST", "/delegations", json=body), field)
    listed = call(either, who["admin"], "GET", "/delegations", params={"all": "true"})
    assert listed.json()["delegations"] == []


def test_list_filters_and_cursors_with_a_nul_are_refused(either: HubProcess,
                                                         who: dict[str, str]) -> None:
    refused(call(either, who["admin"], "GET", "/events", params={"assignee": "a\x00b"}),
            "assignee")
    cursor = base64.urlsafe_b64encode(json.dumps([0, 1.0, "ev_\x00x"]).encode()).decode()
    answer = call(either, who["admin"], "GET", "/events", params={"cursor": cursor})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == "cursor"


@pytest.mark.parametrize(("method", "path", "role"), [
    ("GET", f"/events/{BAD_ID}", "admin"),
    ("GET", f"/events/{BAD_ID}/decision", "admin"),
    ("GET", f"/events/{BAD_ID}/audit", "admin"),
    ("POST", f"/events/{BAD_ID}/cancel", "admin"),
    ("POST", f"/events/{BAD_ID}/responses", "rita"),
    ("POST", f"/events/{BAD_ID}/refusals", "flow"),
    ("POST", f"/events/{BAD_ID}/reveal", "admin"),
    ("POST", "/deliveries/dl_%00x/retry", "admin"),
    ("POST", "/tokens/tk_%00x/revoke", "admin"),
    ("POST", "/tokens/tk_%20x/revoke", "admin"),
    ("POST", f"/tokens/tk_{'0' * 65}/revoke", "admin"),  # longer than any id
    ("POST", "/tokens/xx_0123456789abcdef/revoke", "admin"),
    ("POST", "/delegations/dl_%00x/end", "rita"),
    ("POST", "/delegations/dl_%C3%A9/end", "rita"),
    ("POST", "/delegations/ev_0123/end", "rita"),
    ("GET", "/events/xx_0123", "admin"),  # another prefix: could not be an event
    ("GET", "/events/ev_%C3%A9", "admin"),
])
def test_an_id_that_could_not_be_one_is_not_found(either: HubProcess, who: dict[str, str],
                                                  method: str, path: str, role: str) -> None:
    body = {"responses": {"value": True}, "refusals": {"reason": "r"}}.get(path.rsplit("/")[-1])
    answer = httpx.request(method, f"{either.url}/api/v1{path}", json=body,
                           headers=either.headers(who[role]), timeout=30)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/tokens/tk_%00x/revoke", "/tokens/tk_0000000000000000/revoke"])
def test_a_token_id_is_checked_before_the_callers_rights(either: HubProcess, who: dict[str, str],
                                                        path: str) -> None:
    """A reviewer revoking: 404 for an id that could not be one (as for events, the id is
    checked first), 403 for one that could, known or not (nothing about tokens is told)."""
    answer = httpx.post(f"{either.url}/api/v1{path}", headers=either.headers(who["rita"]),
                        timeout=30)
    assert answer.status_code == (404 if "%00" in path else 403), answer.text


@pytest.mark.parametrize("path", ["/tokens/tk_0000000000000000/revoke", "/tokens/tk_nope/revoke",
                                  f"/delegations/dl_{'0' * 32}/end"])
def test_an_unknown_token_or_delegation_is_not_found(either: HubProcess, who: dict[str, str],
                                                     path: str) -> None:
    answer = httpx.post(f"{either.url}/api/v1{path}", headers=either.headers(who["admin"]),
                        timeout=30)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == "not_found"


@pytest.fixture(scope="module")
def browser(either: HubProcess, who: dict[str, str]) -> Iterator[Browser]:
    signed = sign_in(either, who["rita"], "rita")
    yield signed
    signed.client.close()


def test_the_web_pages_refuse_a_nul_and_do_not_find_a_bad_id(either: HubProcess,
                                                             who: dict[str, str],
                                                             browser: Browser) -> None:
    assert browser.client.get(f"/events/{BAD_ID}").status_code == 404
    assert browser.post(f"/events/{BAD_ID}/respond", {"choice": "approve"}).status_code == 404
    assert browser.post("/batch", {"event": "ev_\x00x", "choice": "approve"}).status_code == 404
    assert browser.client.get("/", params={"done": "ev_\x00x"}).status_code == 200
    event = create(either, who["flow"])
    answer = browser.answer(event["id"], {"choice": "approve", "comment": "ok\x00"})
    assert answer.status_code == 422, answer.text
    assert NUL_FREE in answer.text
    page = browser.post("/batch", {"event": event["id"], "choice": "approve",
                                   "comment": "ok\x00"})
    assert page.status_code == 422 and NUL_FREE in page.text
    stored = call(either, who["admin"], "GET", f"/events/{event['id']}").json()
    assert stored["status"] == "pending" and stored["responses"] == []


def test_nuls_inside_the_json_documents_are_kept_and_shown_escaped(
        either: HubProcess, who: dict[str, str], browser: Browser) -> None:
    """The prompt, context and labels are stored as JSON: a NUL there is the escape
    ``\\u0000``, which both stores hold, and comes back as it went in."""
    event = create(either, who["flow"], prompt="Go\x00?", context={"k\x00": "v\x00"},
                   labels={"team": "a\x00b"}, assignees=["rita"])
    got = call(either, who["admin"], "GET", f"/events/{event['id']}").json()
    assert (got["prompt"], got["context"], got["labels"]) == (
        "Go\x00?", {"k\x00": "v\x00"}, {"team": "a\x00b"})
    page = browser.page(event["id"])
    assert page.status_code == 200, page.text
    Page(page.text)  # parses as HTML
    answered = call(either, who["rita"], "POST", f"/events/{event['id']}/responses",
                    json={"value": True})
    assert answered.status_code == 200, answered.text
