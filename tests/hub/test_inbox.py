"""Issue 19, the reviewer's inbox, over HTTP against a real hub: context that reads, the
answer first, landing on the next event, high-impact confirm, the shortcut script.

The browser side (above the fold, keys counted, scripts off) is in test_browser.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx

from signoff.hub.context import label_of, plain_error, readable, render_tree
from signoff.testing import HubProcess

from .test_web import Cast, Page, assert_pending, cast, create, fetch, sign_in  # noqa: F401

CONTEXT: dict[str, Any] = {
    "model": "churn-v3", "rows_scored": 1_250_000, "auc": 0.912,
    "trained_at": "2024-06-01T14:03:00Z", "report": "https://ml.example/reports/4812",
    "bad_link": "javascript:alert(1)",
    "owner": {"team": "ml-platform", "email": "ml@example.com"},
    "features": [{"name": "tenure", "weight": 0.41}, {"name": "plan", "weight": 0.22}],
    "tags": ["weekly", "prod"],
    "notes": "line\n" * 12,
    "threshold": {"before": {"value": 0.5, "owner": "ana"}, "after": {"value": 0.45,
                                                                       "owner": "ana"}},
    "sql": {"diff": "--- a\n+++ b\n@@ -1 +1 @@\n-select 1\n+select 2"},
}


def test_context_nodes() -> None:
    tree = render_tree(CONTEXT)
    rows = {r["key"]: r for r in tree["rows"]}
    assert rows["rows_scored"]["label"] == "Rows scored"
    assert rows["rows_scored"]["node"] == {"t": "number", "text": "1,250,000"}
    assert rows["auc"]["node"]["text"] == "0.912"
    assert rows["trained_at"]["node"]["text"] == "2024-06-01 14:03 UTC"
    assert rows["report"]["node"]["t"] == "link"
    assert rows["bad_link"]["node"] == {"t": "text", "text": "javascript:alert(1)"}
    assert rows["owner"]["node"]["t"] == "object"
    assert rows["features"]["node"]["t"] == "records"
    assert [c["label"] for c in rows["features"]["node"]["columns"]] == ["Name", "Weight"]
    assert rows["tags"]["node"]["t"] == "list"
    assert rows["notes"]["node"]["t"] == "long"
    diff = rows["threshold"]["node"]
    assert diff["t"] == "diff_table"
    assert [(r["label"], r["change"]) for r in diff["rows"]] == [("Value", "changed"),
                                                                  ("Owner", "same")]
    kinds = [line["kind"] for line in rows["sql"]["node"]["lines"]]
    assert kinds == ["file", "file", "hunk", "del", "add"]
    text = render_tree({"before": "a\nb\nc", "after": "a\nB\nc"})
    assert [ln["text"] for ln in text["lines"] if ln["kind"] in ("add", "del")] == ["-b", "+B"]
    assert label_of("previousAuc") == "Previous Auc"


def test_values_and_errors_in_plain_words() -> None:
    assert readable(True, "approval") == "Approved" and readable(False, "approval") == "Rejected"
    assert readable(3) == "3" and readable("text") == "text" and readable(["a", "c"]) == "a, c"
    assert readable({"replicas": 3, "canary": False}) == "Replicas: 3; Canary: No"
    assert plain_error("value", "one of ['a', 'b']", "x", "value: expected one of ['a', 'b'], "
                       "got 'x'") == "Expected one of “a”, “b”, got “x”."
    assert plain_error("value.n", "x", 99, "value.n: 99 is greater than the maximum of 20") == \
        "99 is greater than the maximum of 20."


def test_the_event_page_reads_and_puts_the_answer_first(cast: Cast) -> None:  # noqa: F811
    event = create(cast.hub, cast.flow, prompt="Ship it?", context=CONTEXT,
                   recommendation=True, confidence=0.87, impact="medium",
                   assignees=["group:ops"])
    html = cast.bob.page(event["id"]).text
    page = Page(html)
    # prompt, recommendation and the buttons come before the context
    order = [html.index(s) for s in ('id="prompt"', 'class="recommendation"', 'value="approve"',
                                     'id="context-h"')]
    assert order == sorted(order)
    recommendation = re.search(r'<p class="recommendation">(.*?)</p>', html, re.S)
    assert recommendation is not None
    words = " ".join(re.sub(r"<[^>]+>", " ", recommendation.group(1)).split())
    assert words == "Recommended: Approved confidence 87% impact: medium"
    assert "autofocus" in page.one("button", value="approve")
    # context as tables, links only for safe schemes, the raw JSON one click away
    assert '<th scope="row">Rows scored</th>' in html and "1,250,000" in html
    assert page.one("a", href="https://ml.example/reports/4812")["rel"] == "noopener noreferrer"
    assert not page.find("a", href="javascript:alert(1)") and "javascript:alert(1)" in html
    assert '<th scope="col">Weight</th>' in html
    assert 'class="diff-changed"' in html and '<span class="dl-add">+select 2</span>' in html
    assert '<details class="fold">' in html
    assert re.search(r'<details class="raw"><summary>Raw JSON</summary><pre class="json">',
                     html)
    assert "&#34;rows_scored&#34;: 1250000" in html
    # the skip link and the help
    assert page.one("a", class_="skip")["href"] == "#main"
    assert page.one("main", id="main")
    assert page.one("aside", id="shortcuts-help")


def test_a_high_impact_approval_takes_a_confirm(cast: Cast) -> None:  # noqa: F811
    event = create(cast.hub, cast.flow, prompt="Wire 2M?", impact="high", assignees=["bob"])
    page = Page(cast.bob.page(event["id"]).text)
    assert page.one("input", name="confirm", type="checkbox")
    refused = cast.bob.answer(event["id"], {"choice": "approve"})
    assert refused.status_code == 422
    assert refused.text.count("Expected the box ticked to approve a high-impact event") == 1
    assert Page(refused.text).one("input", name="confirm")["aria-invalid"] == "true"
    assert_pending(cast.hub, event["id"])
    done = cast.bob.answer(event["id"], {"choice": "approve", "confirm": "yes"})
    assert done.status_code == 303
    assert fetch(cast.hub, event["id"])["decision"]["outcome"] == "approved"
    # rejecting needs no confirm
    other = create(cast.hub, cast.flow, prompt="Wire 3M?", impact="critical", assignees=["bob"])
    assert cast.bob.answer(other["id"], {"choice": "reject"}).status_code == 303
    assert fetch(cast.hub, other["id"])["decision"]["outcome"] == "rejected"


def test_after_the_last_event_the_reviewer_lands_on_the_inbox(hub: HubProcess) -> None:
    flow = hub.token("flow", role="workflow")
    dora = sign_in(hub, hub.token("dora"), "dora")
    first = create(hub, flow, prompt="First", priority="urgent")
    second = create(hub, flow, prompt="Second")
    done = dora.answer(first["id"], {"choice": "approve"})
    assert done.headers["location"] == f"/events/{second['id']}?done={first['id']}"
    done = dora.answer(second["id"], {"choice": "reject", "comment": "no"})
    assert done.headers["location"] == f"/?done={second['id']}"
    inbox = dora.client.get(done.headers["location"]).text
    line = re.search(r'id="recorded">(.*?)</div>', inbox, re.S)
    assert line is not None and "Rejected" in line.group(1) and "Second" in line.group(1)
    assert "Nothing waits for you." in inbox
    # ?done= of an event this reviewer may not read shows nothing about it
    secret = create(hub, flow, prompt="Secret", assignees=["erin"])
    assert "Secret" not in dora.client.get(f"/?done={secret['id']}").text


def test_the_shortcut_script_is_served_under_the_csp(cast: Cast) -> None:  # noqa: F811
    inbox = cast.bob.client.get("/")
    src = Page(inbox.text).one("script")["src"]
    assert src is not None and src.startswith("/static/signoff.js?v=")
    js = httpx.get(f"{cast.hub.url}{src}")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "keydown" in js.text
    assert "script-src 'self';" in inbox.headers["content-security-policy"]


def _frames(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    name = ""
    for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield name, json.loads(line.removeprefix("data: "))


def test_the_live_stream_says_what_came_and_went(hub: HubProcess) -> None:
    flow = hub.token("flow", role="workflow")
    ivy = sign_in(hub, hub.token("ivy"), "ivy")
    old = create(hub, flow, prompt="Already there", assignees=["ivy"])
    create(hub, flow, prompt="Not for ivy", assignees=["someone-else"])
    with ivy.client.stream("GET", "/live", timeout=30) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        frames = _frames(stream.iter_lines())
        new = create(hub, flow, prompt="New one", assignees=["ivy"])
        assert next(frames) == ("inbox", {"added": [new["id"]], "removed": [], "pending": 2})
        done = ivy.answer(old["id"], {"choice": "approve"})
        assert done.status_code == 303
        assert next(frames) == ("inbox", {"added": [], "removed": [old["id"]], "pending": 1})
    # signed out: no stream, the browser goes to /login
    anon = httpx.get(f"{hub.url}/live")
    assert anon.status_code == 303 and anon.headers["location"].startswith("/login")


def test_a_batch_records_each_on_its_own_and_says_why_one_was_refused(hub: HubProcess) -> None:
    flow = hub.token("flow", role="workflow")
    own = hub.token("ana", role="workflow")  # ana's own workflow: she may not approve it
    ana = sign_in(hub, hub.token("ana"), "ana")
    run = {"orchestrator": "prefect", "run": "nightly/7"}
    plain = [create(hub, flow, name="deploy", prompt=f"Deploy {i}?", source=run)
             for i in range(2)]
    high = create(hub, flow, name="deploy", prompt="Deploy big?", impact="high", source=run)
    mine = create(hub, own, name="deploy", prompt="Deploy mine?", source=run,
                  policy={"forbid_self_approval": True})
    four_eyes = create(hub, flow, name="deploy", prompt="Deploy twice?", source=run,
                       policy={"quorum": 2})
    inbox = Page(ana.client.get("/").text)
    assert inbox.one("form", action="/batch")
    assert len(inbox.find("input", name="event", type="checkbox")) == 5
    ids = [e["id"] for e in (*plain, high, mine, four_eyes)]
    done = ana.post("/batch", {"event": ids, "choice": "approve", "comment": "batch ok"})
    assert done.status_code == 200, done.text
    assert "Batch: 3 of 5 recorded" in done.text
    rows = {m[0]: (m[1], re.sub(r"\s+", " ", m[2]).strip()) for m in re.findall(
        r'<a href="/events/([^"]+)">.*?</a></td>\s*<td>.*?>(recorded|refused)</span></td>\s*'
        r"<td>(.*?)</td>", done.text, re.S)}
    assert rows[plain[0]["id"]] == ("recorded", "Approved by ana")
    assert rows[high["id"]][0] == "refused" and "high-impact" in rows[high["id"]][1]
    assert rows[mine["id"]][0] == "refused" and "ana" in rows[mine["id"]][1]
    assert rows[four_eyes["id"]] == ("recorded", "your answer was recorded; the event waits "
                                                 "for more answers")
    for event in plain:
        decision = fetch(hub, event["id"])["decision"]
        assert (decision["value"], decision["by"], decision["comment"]) == (True, "ana",
                                                                            "batch ok")
    for event in (high, mine):
        assert_pending(hub, event["id"])
    # events of different names and runs are not one batch: nothing is written
    other = create(hub, flow, name="rotate-keys", prompt="Rotate?")
    mixed = ana.post("/batch", {"event": [high["id"], other["id"]], "choice": "reject"})
    assert mixed.status_code == 422 and "one name or of one source run" in mixed.text
    assert_pending(hub, other["id"])
    assert ana.post("/batch", {"event": [other["id"]], "choice": "approve"}, csrf=None
                    ).status_code == 403
    assert_pending(hub, other["id"])
    assert ana.client.get("/batch").status_code == 405


def test_the_event_page_links_back_to_the_run(cast: Cast) -> None:  # noqa: F811
    link = "https://airflow.example/dags/etl/runs/manual__1?a=1&b=<2>"
    event = create(cast.hub, cast.flow, prompt="Load?", source={
        "orchestrator": "airflow", "run": "etl/manual__1", "step": "ask", "link": link})
    html = cast.bob.page(event["id"]).text
    anchor = Page(html).one("a", class_="run-link")
    assert anchor["href"] == link and anchor["rel"] == "noopener noreferrer"
    assert "Open the run in Airflow" in html
    assert 'href="https://airflow.example/dags/etl/runs/manual__1?a=1&amp;b=&lt;2&gt;"' in html
    # an engine signoff does not know shows under its own name; a link is http(s) or refused
    other = create(cast.hub, cast.flow, prompt="Go?", source={
        "orchestrator": "dagster", "link": "https://dagster.example/runs/7"})
    assert "Open the run in dagster" in cast.bob.page(other["id"]).text
    refused = httpx.post(f"{cast.hub.url}/api/v1/events", headers=cast.hub.headers(cast.flow),
                         json={"name": "x", "prompt": "p",
                               "source": {"link": "javascript:alert(1)"}})
    assert refused.status_code == 422 and "source.link" in refused.text, refused.text


def test_a_stopping_hub_ends_the_live_streams_at_once(tmp_path: Any) -> None:
    """An open live inbox stream does not hold a SIGTERM for ``live_stream_seconds``: the
    stream ends, the hub exits in a moment, and the browser reconnects (``retry: 3000``)."""
    import threading
    import time

    with HubProcess(tmp_path / "hub.db") as hub:
        ivy = sign_in(hub, hub.token("ivy"), "ivy")
        with ivy.client.stream("GET", "/live", timeout=30) as stream:
            lines = stream.iter_lines()
            assert next(lines) == "retry: 3000"
            stopped: list[float] = []

            def stop() -> None:
                began = time.monotonic()
                hub.stop()
                stopped.append(time.monotonic() - began)

            stopper = threading.Thread(target=stop)
            stopper.start()
            rest = list(lines)  # ends when the hub closes the stream
            stopper.join(timeout=20)
        assert ": still here" in rest
        assert stopped and stopped[0] < 5, f"the hub took {stopped} s to stop"
