"""Input that cannot poison, against a real `signoff serve`: what Python's json lets through is
refused with a 422 naming the field, bounds hold, garbled cursors and oversized (chunked) bodies
are refused cleanly, patterns match in linear time, and the nastiest values that *are* accepted
still list and render.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff._limits import (
    MAX_ASSIGNEES,
    MAX_DURATION,
    MAX_JSON_DEPTH,
    MAX_LABEL_KEY,
    MAX_LABEL_VALUE,
    MAX_LABELS,
    MAX_OPTION_LENGTH,
    MAX_OPTIONS,
)
from signoff.testing import HubProcess

from ..test_limits import nested
from .inprocess import FakeClock, InProcessHub
from .test_web import Browser, Page, sign_in

CATASTROPHIC = "(a+)+$"
EVIL = "a" * 50 + "!"  # 2**50 steps for a backtracking engine
NASTY = ("<script>alert(1)</script> \u202eevil\u202c a\u200bb \U0001f600 𝔘 \x00 "
         "\"'&amp; \\ud800 \ufeff \u0301")
TEXT = NASTY.replace("\x00", "")
"""NASTY as a comment may hold it: a comment is text of its own, where a NUL is refused (see
tests/hub/test_nul.py); inside JSON (prompt, context, labels, answers) it is kept."""


@pytest.fixture(scope="module")
def who(shared_hub: HubProcess) -> dict[str, str]:
    return {"flow": shared_hub.token("flow", role="workflow"),
            "rita": shared_hub.token("rita", groups=("ops",)),
            "admin": shared_hub.admin_token or ""}


@pytest.fixture(scope="module")
def admin_browser(shared_hub: HubProcess) -> Iterator[Browser]:
    assert shared_hub.admin_token is not None
    browser = sign_in(shared_hub, shared_hub.admin_token, "admin")
    yield browser
    browser.client.close()


def call(hub: HubProcess, token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    return httpx.request(method, f"{hub.url}/api/v1{path}", headers=headers, timeout=30,
                         **kwargs)


def raw(hub: HubProcess, token: str, path: str, body: bytes) -> httpx.Response:
    return call(hub, token, "POST", path, content=body,
                headers={"Content-Type": "application/json"})


def create(hub: HubProcess, token: str, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "hardening")
    body.setdefault("prompt", "Go?")
    made = call(hub, token, "POST", "/events", json=body)
    assert made.status_code == 201, made.text
    event: dict[str, Any] = made.json()
    return event


def everything(hub: HubProcess) -> list[dict[str, Any]]:
    """Every event the admin sees, through every page."""
    events: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = call(hub, hub.admin_token or "", "GET", "/events", params=params)
        assert page.status_code == 200, page.text
        events += page.json()["events"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return events


def refused(answer: httpx.Response, field: str) -> dict[str, Any]:
    assert answer.status_code == 422, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["field"] == field or error["field"].startswith(field + "."), error
    return error


# --- what Python's json accepts but could not be shown again -------------------------------
@pytest.mark.parametrize(("body", "field"), [
    (b'{"name": "a", "prompt": "p", "context": {"x": NaN}}', "context.x"),
    (b'{"name": "a", "prompt": "p", "context": {"x": [Infinity]}}', "context.x.0"),
    (b'{"name": "a", "prompt": "p", "confidence": -Infinity}', "confidence"),
    (b'{"name": "a", "prompt": "p", "timeout": 1e999}', "timeout"),
    (b'{"name": "a", "prompt": "\\ud800"}', "prompt"),
    (b'{"name": "a", "prompt": "p", "labels": {"team": "\\udfff"}}', "labels.team"),
    (b'{"name": "a", "prompt": "p", "context": {"\\ud800x": 1}}', "context.\\ud800x"),
    (b'{"name": "a", "prompt": "\xed\xa0\x80"}', "body"),
    (b'{"name": "a", "prompt": "\xff\xfe"}', "body"),
    (b'{"name": "a", "prompt": "p", "context": ' + b"[" * 5000 + b"]" * 5000 + b"}", "body"),
])
def test_create_refuses_what_could_not_be_shown_again(shared_hub: HubProcess,
                                                       who: dict[str, str], body: bytes,
                                                       field: str) -> None:
    before = everything(shared_hub)
    refused(raw(shared_hub, who["flow"], "/events", body), field)
    assert everything(shared_hub) == before


@pytest.mark.parametrize(("body", "field"), [
    (b'{"value": NaN}', "value"),
    (b'{"value": 1e999}', "value"),
    (b'{"value": "\\ud800"}', "value"),
    (b'{"value": "ok", "comment": "\\udc00"}', "comment"),
])
def test_responses_and_cancels_refuse_them_too(shared_hub: HubProcess, who: dict[str, str],
                                               body: bytes, field: str) -> None:
    event = create(shared_hub, who["flow"], input={"kind": "float"})
    refused(raw(shared_hub, who["admin"], f"/events/{event['id']}/responses", body), field)
    refused(raw(shared_hub, who["admin"], f"/events/{event['id']}/cancel",
                b'{"comment": "\\ud800"}'), "comment")
    stored = call(shared_hub, who["admin"], "GET", f"/events/{event['id']}").json()
    assert stored["status"] == "pending" and stored["responses"] == []


# --- bounds -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("fields", "field"), [
    ({"timeout": 366 * 86_400}, "timeout"),
    ({"policy": {"escalate": [{"after": 400 * 86_400, "assignees": ["x"]}]}},
     "policy.escalate.0.after"),
    ({"policy": {"route": [{"when": "not " * 300 + "true", "then": "approve"}]}},
     "policy.route.0.when"),
    ({"policy": {"route": [{"when": "not (" * 40 + "true" + ")" * 40, "then": "approve"}]}},
     "policy.route.0.when"),
    ({"policy": {"route": [{"when": "(" * 300 + "true" + ")" * 300, "then": "approve"}]}},
     "policy.route.0.when"),
    ({"context": {"deep": nested(MAX_JSON_DEPTH)}}, "context"),
    ({"labels": {f"k{i}": "v" for i in range(MAX_LABELS + 1)}}, "labels"),
    ({"assignees": [f"u{i}" for i in range(MAX_ASSIGNEES + 1)]}, "assignees"),
    ({"input": {"kind": "choice", "options": [f"o{i}" for i in range(MAX_OPTIONS + 1)]}},
     "input.choice.options"),
    ({"input": {"kind": "text", "pattern": r"(\w+)\s\1"}}, "input.text.pattern"),
    ({"input": {"kind": "text", "pattern": "(?=lookahead)"}}, "input.text.pattern"),
    ({"input": {"kind": "form", "schema": {"type": "object", "properties": {
        "a": {"type": "string", "pattern": r"(?<=x)y"}}}}}, "input.form.schema"),
    ({"input": {"kind": "form", "schema": {"type": "object", "properties": {
        "a": {"$ref": "http://169.254.169.254/latest/meta-data"}}}}}, "input.form.schema"),
])
def test_bounds_are_422_naming_the_field(shared_hub: HubProcess, who: dict[str, str],
                                         fields: dict[str, Any], field: str) -> None:
    before = everything(shared_hub)
    answer = call(shared_hub, who["flow"], "POST", "/events",
                  json={"name": "a", "prompt": "p", **fields})
    refused(answer, field)
    assert everything(shared_hub) == before


def test_query_parameters_are_bounded(shared_hub: HubProcess, who: dict[str, str]) -> None:
    event = create(shared_hub, who["flow"])
    for wait in ("61", "nan", "inf", "-1"):
        answer = call(shared_hub, who["flow"], "GET", f"/events/{event['id']}/decision",
                      params={"wait": wait})
        refused(answer, "wait")
    refused(call(shared_hub, who["flow"], "GET", "/events", params={"limit": "0"}), "limit")
    refused(call(shared_hub, who["flow"], "GET", "/events", params={"limit": "10**9"}), "limit")


GARBLED_CURSORS = [
    "zzz", "%%%", "WzEsMiwzXQ",                      # not base64 JSON of the right shape
    "W05hTiwxLCJ4Il0",                               # [NaN,1,"x"]
    "Wzk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTksMSwieCJd",  # an integer SQLite cannot hold
    "WzEsMSwiXHVkODAwIl0",                           # a lone surrogate in the id
    "W3RydWUsMSwieCJd",                              # [true,1,"x"]
    "7aCA",                                          # raw surrogate bytes
    "é" * 10,
]


@pytest.mark.parametrize("cursor", GARBLED_CURSORS)
def test_a_garbled_cursor_is_422_naming_cursor(shared_hub: HubProcess, who: dict[str, str],
                                               admin_browser: Browser, cursor: str) -> None:
    refused(call(shared_hub, who["admin"], "GET", "/events", params={"cursor": cursor}),
            "cursor")
    page = admin_browser.client.get("/", params={"cursor": cursor})
    assert page.status_code == 422, page.text
    assert "cursor" in page.text


# --- oversized bodies -------------------------------------------------------------------------
def _chunks(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * 65_536
        sent += 65_536


def test_a_chunked_body_over_the_limit_is_413_everywhere(shared_hub: HubProcess,
                                                         who: dict[str, str],
                                                         admin_browser: Browser) -> None:
    event = create(shared_hub, who["flow"])
    for path in ("/events", f"/events/{event['id']}/responses", f"/events/{event['id']}/cancel"):
        answer = call(shared_hub, who["admin"], "POST", path, content=_chunks(2_000_000),
                      headers={"Content-Type": "application/json"})
        assert answer.status_code == 413, (path, answer.text)
        assert "content-length" not in {k.lower() for k in answer.request.headers}
        assert answer.json()["error"]["code"] == "payload_too_large"
    form = admin_browser.client.post(
        f"/events/{event['id']}/respond", content=_chunks(2_000_000),
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 413
    login = httpx.post(f"{shared_hub.url}/login", content=_chunks(2_000_000),
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert login.status_code == 413
    assert call(shared_hub, who["admin"], "GET", f"/events/{event['id']}").json()[
        "status"] == "pending"


def test_a_chunked_body_under_the_limit_still_works(shared_hub: HubProcess,
                                                    who: dict[str, str]) -> None:
    event = create(shared_hub, who["flow"])
    answer = call(shared_hub, who["admin"], "POST", f"/events/{event['id']}/responses",
                  content=iter([b'{"value"', b": true}"]),
                  headers={"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["decision"]["outcome"] == "approved"


# --- regular expressions in linear time -------------------------------------------------------
def test_a_catastrophic_pattern_answers_in_well_under_a_second(
        shared_hub: HubProcess, who: dict[str, str], admin_browser: Browser) -> None:
    text = create(shared_hub, who["flow"], input={"kind": "text", "pattern": CATASTROPHIC})
    form = create(shared_hub, who["flow"], input={"kind": "form", "schema": {
        "type": "object", "properties": {"code": {"type": "string", "pattern": CATASTROPHIC}},
        "patternProperties": {CATASTROPHIC: {"type": "integer"}},
        "additionalProperties": False}})
    started = time.perf_counter()
    refused(call(shared_hub, who["admin"], "POST", f"/events/{text['id']}/responses",
                 json={"value": EVIL}), "value")
    refused(call(shared_hub, who["admin"], "POST", f"/events/{form['id']}/responses",
                 json={"value": {"code": EVIL}}), "value.code")
    refused(call(shared_hub, who["admin"], "POST", f"/events/{form['id']}/responses",
                 json={"value": {EVIL: "x"}}), "value")
    page = admin_browser.answer(text["id"], {"value": EVIL})
    assert page.status_code == 422
    assert time.perf_counter() - started < 1.0
    ok = call(shared_hub, who["admin"], "POST", f"/events/{text['id']}/responses",
              json={"value": "aaa"})
    assert ok.status_code == 200 and ok.json()["decision"]["value"] == "aaa"


# --- the nastiest accepted values still list and render ---------------------------------------
def _deep(depth: int) -> Any:
    value: Any = [NASTY, 1.5e308, -0.0, 2**62, None, True]
    for level in range(depth - 1):
        value = {f"level{level} {NASTY[:40]}": value}
    return value


def test_the_nastiest_accepted_values_list_and_render(shared_hub: HubProcess,
                                                      who: dict[str, str],
                                                      admin_browser: Browser) -> None:
    labels = {("k" * (MAX_LABEL_KEY - 3)) + f"{i:03}": NASTY + "v" * (MAX_LABEL_VALUE - len(NASTY))
              for i in range(MAX_LABELS)}
    options = [(f"{i:03} {NASTY}" + "o" * MAX_OPTION_LENGTH)[:MAX_OPTION_LENGTH]
               for i in range(MAX_OPTIONS)]
    assert len(set(options)) == MAX_OPTIONS
    common: dict[str, Any] = {
        "prompt": NASTY * 50, "labels": labels,
        "assignees": ["group:ops", *(f"user{i}" for i in range(MAX_ASSIGNEES - 1))],
        "context": {"deep": _deep(MAX_JSON_DEPTH - 1), "html": NASTY,
                    "wide": list(range(2000))},
        "recommendation": _deep(MAX_JSON_DEPTH), "timeout": 365 * 86_400,
        "source": {"orchestrator": "api", "params": {"nested": _deep(MAX_JSON_DEPTH - 1)},
                   "link": "https://example.com/" + "x" * 1900},
        "priority": "urgent",
        "policy": {"route": [{"when": "not " * 20 + "true", "then": "review"}] * 50,
                   "escalate": [{"after": 86_400 * (i + 1), "assignees": ["group:ops"]}
                                for i in range(10)]},
    }
    specs: list[dict[str, Any]] = [
        {"kind": "multichoice", "options": options, "max_selected": MAX_OPTIONS},
        {"kind": "choice", "options": options, "default": options[-1]},
        {"kind": "text", "pattern": "[^<]*" + "x?" * 400, "max_length": 100_000,
         "default": NASTY.replace("<", "")},
        {"kind": "form", "schema": {"type": "object", "properties": {
            "deep": {"type": "object"}, "nasty": {"type": "string", "title": NASTY,
                                                  "description": NASTY, "default": NASTY}},
            "patternProperties": {"^x": {"type": "string", "pattern": "[a-z]+"}}}},
        {"kind": "float", "min": -1.7e308, "max": 1.7e308, "default": 1e-308},
    ]
    events = [create(shared_hub, who["flow"], name=f"nasty-{spec['kind']}", input=spec,
                     **common) for spec in specs]
    answers = [options[:3], options[0], NASTY.replace("<", ""),
               {"deep": _deep(MAX_JSON_DEPTH - 1), "nasty": NASTY, "xa": "abc"}, 1.7e308]
    for event, value in zip(events[:-1], answers[:-1], strict=True):
        answer = call(shared_hub, who["rita"], "POST", f"/events/{event['id']}/responses",
                      json={"value": value, "comment": TEXT * 100})
        assert answer.status_code == 200, answer.text
    call(shared_hub, who["admin"], "POST", f"/events/{events[-1]['id']}/cancel",
         json={"comment": TEXT})

    listed = {e["id"]: e for e in everything(shared_hub)}
    assert {e["id"] for e in events} <= set(listed)
    for status in ("pending", "decided", "cancelled"):
        for reader in ("admin", "rita", "flow"):
            page = call(shared_hub, who[reader], "GET", "/events", params={"status": status})
            assert page.status_code == 200, page.text
        inbox = admin_browser.client.get("/", params={"status": status})
        assert inbox.status_code == 200, inbox.text
        assert "<script>alert(1)</script>" not in inbox.text
    rita = sign_in(shared_hub, who["rita"], "rita")
    try:
        for event in events:
            for browser in (admin_browser, rita):
                page = browser.page(event["id"])
                assert page.status_code == 200, page.text
                assert "<script>alert(1)</script>" not in page.text
                Page(page.text)  # parses as HTML
            trail = call(shared_hub, who["admin"], "GET", f"/events/{event['id']}/audit")
            assert trail.status_code == 200
            assert call(shared_hub, who["flow"], "GET",
                        f"/events/{event['id']}/decision").status_code in (200, 204)
    finally:
        rita.client.close()


# --- nothing slow on the store's writer -------------------------------------------------------
def test_answers_are_validated_before_the_write_is_queued(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import signoff.hub.service as service

    threads: list[str] = []
    real = service.validate_value

    def watched(spec: Any, value: Any, field: str = "value") -> Any:
        threads.append(threading.current_thread().name)
        return real(spec, value, field)

    monkeypatch.setattr(service, "validate_value", watched)
    hub = InProcessHub(tmp_path / "hub.db", FakeClock()).start()
    try:
        flow = hub.token("flow", role="workflow")
        headers = {"Authorization": f"Bearer {hub.admin_token}"}
        for spec, value in [({"kind": "text", "pattern": "[a-z]+"}, "abc"),
                            ({"kind": "form", "schema": {"type": "object"}}, {"a": 1}),
                            ({"kind": "int"}, "not a number")]:
            made = httpx.post(f"{hub.url}/api/v1/events", json={
                "name": "w", "prompt": "p", "input": spec},
                headers={"Authorization": f"Bearer {flow}"})
            assert made.status_code == 201, made.text
            httpx.post(f"{hub.url}/api/v1/events/{made.json()['id']}/responses",
                       json={"value": value}, headers=headers)
    finally:
        hub.stop()
    assert len(threads) == 3
    assert not [name for name in threads if "writer" in name], threads


@pytest.mark.parametrize(("typed", "field", "expected"), [
    ('{"a": NaN}', "value.j.a", "a finite number"),
    ('{"a": "\\ud800"}', "value.j.a", "valid Unicode"),
    ("[" * 5000, "value.j", "JSON"),
])
def test_web_form_refusals_name_the_field(shared_hub: HubProcess, who: dict[str, str],
                                          admin_browser: Browser, typed: str, field: str,
                                          expected: str) -> None:
    event = create(shared_hub, who["flow"], input={"kind": "form", "schema": {
        "type": "object", "properties": {"j": {"type": "object"}}}})
    page = admin_browser.answer(event["id"], {"f.j": typed})
    assert page.status_code == 422, page.text
    assert field in page.text and expected in page.text
    stored = call(shared_hub, who["admin"], "GET", f"/events/{event['id']}").json()
    assert stored["status"] == "pending" and stored["responses"] == []


def test_an_event_stored_before_these_checks_still_lists_renders_and_refuses_cleanly(
        shared_hub: HubProcess, who: dict[str, str], admin_browser: Browser) -> None:
    from signoff._limits import STORED
    from signoff._model import Event
    from signoff.store import open_store
    from signoff.store.contract import make_event

    # as a hub before RE2 stored it: a lookahead, a tier two years out, a backreference form
    fields = make_event().model_dump(by_alias=True) | {
        "input": {"kind": "text", "pattern": r"(?=\w)(\w+)\1"},
        "policy": {"escalate": [{"after": 2 * MAX_DURATION}]}}
    old = Event.model_validate(fields, context=STORED)
    form = Event.model_validate(make_event().model_dump(by_alias=True) | {"input": {
        "kind": "form", "schema": {"type": "object", "properties": {
            "a": {"type": "string", "pattern": r"(a)\1"}}}}}, context=STORED)
    key = shared_hub.env.get("SIGNOFF_AUDIT_KEY")  # a PostgreSQL store needs the hub's key given
    store = open_store(shared_hub.database, audit_key=key.encode() if key else None)
    try:
        for event in (old, form):
            store.create_event(event, channel="api")
    finally:
        store.close()
    assert {old.id, form.id} <= {e["id"] for e in everything(shared_hub)}
    for event in (old, form):
        assert admin_browser.page(event.id).status_code == 200
    answer = call(shared_hub, who["admin"], "POST", f"/events/{old.id}/responses",
                  json={"value": "abab"})
    refused(answer, "input.pattern")
    answer = call(shared_hub, who["admin"], "POST", f"/events/{form.id}/responses",
                  json={"value": {"a": "aa"}})
    refused(answer, "input.schema")

