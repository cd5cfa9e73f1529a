"""Policies in the hub: routing, quorum, self-approval, escalation tiers with a moved clock and
across restarts, fallbacks (webhook and entry point), the policy file, notifications."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff import AlreadyAnswered, Client, Forbidden, Policy, Rule, Tier
from signoff.testing import HubProcess, free_port

from .inprocess import FakeClock, InProcessHub
from .test_reliability import Receiver

GRID = Policy(route=[Rule(when="confidence >= 0.95 and impact == 'low'", then="approve"),
                     Rule(when="impact == 'critical' and confidence < 0.5", then="block")])


def _json(policy: Policy) -> dict[str, Any]:
    return policy.model_dump(mode="json")


@pytest.fixture(scope="module")
def people(shared_hub: HubProcess) -> dict[str, Client]:
    return {
        "flow": Client(shared_hub.url, shared_hub.token("p-flow", role="workflow")),
        "ann": Client(shared_hub.url, shared_hub.token("ann", groups=("leads",))),
        "bob": Client(shared_hub.url, shared_hub.token("bob", groups=("leads",))),
        "admin": Client(shared_hub.url, shared_hub.admin_token),
    }


@pytest.mark.parametrize(("confidence", "impact", "status", "outcome"), [
    (0.97, "low", "decided", "approved"),
    (0.3, "critical", "decided", "rejected"),
    (0.97, "high", "pending", None),
])
def test_routing_at_creation(people: dict[str, Client], confidence: float, impact: str,
                             status: str, outcome: str | None) -> None:
    event = people["flow"].create(name="refund", prompt="Refund $40?", confidence=confidence,
                                  impact=impact, recommendation=True, policy=GRID)
    assert event.status == status
    if outcome is None:
        assert event.decision is None
        return
    assert event.decision is not None
    assert (event.decision.outcome.value, event.decision.by) == (outcome, "policy")
    assert event.decision.rule is not None and event.decision.rule.startswith("route[")
    trail = people["flow"].audit(event.id)
    assert trail[-1]["actor"] == "policy" and trail[-1]["data"]["rule"] == event.decision.rule
    assert event.recommendation is True and event.confidence == confidence


def test_four_eyes_needs_two_distinct_approvers(people: dict[str, Client]) -> None:
    event = people["flow"].create(name="payout", prompt="Pay out?", assignees=["group:leads"],
                                  policy=Policy(quorum=2))
    partial = people["ann"].respond(event.id, True, "looks right")
    assert partial.status == "pending" and [r.by for r in partial.responses] == ["ann"]
    with pytest.raises(AlreadyAnswered):
        people["ann"].respond(event.id, True, "really")
    assert len(people["flow"].get(event.id).responses) == 1
    done = people["bob"].respond(event.id, True)
    assert done.status == "decided" and done.decision is not None
    assert done.decision.outcome.value == "approved"
    assert done.decision.rule == "quorum of 2 approvals: ann, bob"


def test_one_rejection_rejects_a_quorum_event(people: dict[str, Client]) -> None:
    event = people["flow"].create(name="payout", prompt="Pay out?", policy=Policy(quorum=3))
    people["ann"].respond(event.id, True)
    rejected = people["bob"].respond(event.id, False, "wrong account")
    assert rejected.decision is not None and rejected.decision.outcome.value == "rejected"
    assert rejected.decision.by == "bob"


def test_self_approval_is_refused(people: dict[str, Client]) -> None:
    event = people["admin"].create(name="own", prompt="Approve my own change?",
                                   policy=Policy(forbid_self_approval=True))
    with pytest.raises(Forbidden, match="forbids self-approval"):
        people["admin"].respond(event.id, True)
    assert people["ann"].respond(event.id, True).status == "decided"


# escalation with a moved clock ---------------------------------------------------------------
@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port()).start()
    yield r
    r.stop()


class Decider(Receiver):
    """A webhook decider on loopback: answers with `verdict`, records the events it saw."""

    def __init__(self, port: int, verdict: dict[str, Any]) -> None:
        super().__init__(port)
        self.verdict = verdict

    def start(self) -> Decider:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        decider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                decider.calls.append((dict(self.headers), body))
                answer = json.dumps(decider.verdict).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self


DOCUMENT_POLICY = Policy(
    route=[Rule(when="confidence >= 0.9 and impact == 'low'", then="approve")],
    escalate=[Tier(after=timedelta(hours=2), assignees=["group:managers"]),
              Tier(after=timedelta(hours=6), fallback="auto")],
    on_timeout="reject",
)


LOOPBACK_ALLOWED: dict[str, Any] = {"egress_allow": ["http://127.0.0.1:*"],
                                    "egress_allow_private": ["127.0.0.1/32"]}
"""The deciders here listen on loopback, which the hub refuses to call unless allowed."""


def _actions(trail: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["action"], e["actor"]) for e in trail if e["action"] != "notified"]


def test_document_approval_scenario(tmp_path: Path, receiver: Receiver) -> None:
    """The seeds' scenario: AI pre-screen auto-approves low-risk documents; the others wait 2 h
    for the required approver, 4 h more for a manager, then the automated decider decides."""
    decider = Decider(free_port(), {"value": False, "comment": "ai: clause 7 is unusual"}).start()
    clock = FakeClock()
    hub = InProcessHub(
        tmp_path / "docs.db", clock,
        deciders={"ai-reviewer": {"url": f"http://127.0.0.1:{decider.port}/decide"}},
        default_decider="ai-reviewer", **LOOPBACK_ALLOWED,
        notify={"group:managers": [f"json://127.0.0.1:{receiver.port}/notify"]},
    ).start()
    try:
        flow = Client(hub.url, hub.token("doc-flow", role="workflow"))
        dana = Client(hub.url, hub.token("dana"))
        mia = Client(hub.url, hub.token("mia", groups=("managers",)))
        doc = {"name": "approve-document", "policy": DOCUMENT_POLICY, "timeout": 8 * 3600,
               "assignees": ["dana"], "recommendation": True}

        low = flow.create(prompt="Approve NDA-1?", confidence=0.96, impact="low", **doc)
        assert low.decision is not None and low.decision.by == "policy"

        waits = flow.create(prompt="Approve MSA-7?", confidence=0.6, impact="high", **doc)
        later = flow.create(prompt="Approve SOW-3?", confidence=0.7, impact="medium", **doc)
        assert waits.status == later.status == "pending"
        assert [e.id for e in mia.list(status="pending").events] == []

        clock.advance(hours=2, seconds=1)
        hub.settle(lambda: flow.get(later.id).escalation_level == 1)
        escalated = flow.get(waits.id)
        assert escalated.escalation_level == 1
        assert escalated.assignees == ["dana", "group:managers"]
        assert {e.id for e in mia.list(status="pending").events} == {waits.id, later.id}
        approved_by_manager = mia.respond(later.id, True, "fine by me")
        assert approved_by_manager.decision.by == "mia"  # type: ignore[union-attr]

        # the escalation's message is out before the restart (a stop gives sends in flight a
        # few seconds; the sender processes may still be starting on a busy machine)
        hub.settle(lambda: any(b"MSA-7" in body for _, body in receiver.calls), timeout=60)
        hub.stop()  # a restart while the next tier is due: the store remembers it
        clock.advance(hours=4)
        hub.start()
        hub.settle(lambda: flow.get(waits.id).status == "decided")
        fallen_back = flow.get(waits.id)
        assert fallen_back.status == "decided" and fallen_back.decision is not None
        assert (fallen_back.decision.by, fallen_back.decision.channel) == ("ai-reviewer",
                                                                           "fallback")
        assert fallen_back.decision.outcome.value == "rejected"
        assert fallen_back.decision.rule == "escalate[1]: fallback ai-reviewer"
        assert json.loads(decider.calls[0][1])["id"] == waits.id
        assert dana.list(status="pending").events == []

        trail = flow.audit(waits.id)
        assert _actions(trail) == [("created", "doc-flow"), ("escalated", "policy"),
                                   ("responded", "ai-reviewer"), ("rejected", "ai-reviewer")]
        assert trail[1]["data"]["added"] == ["group:managers"]
        notified = [json.loads(body) for _, body in receiver.calls]
        assert any("MSA-7" in n["message"] and "escalated" in n["title"] for n in notified)
        assert all(f"{hub.url}/events/" in n["message"] for n in notified)
    finally:
        hub.stop()
        decider.stop()


def test_fallback_cannot_pass_a_human_quorum(tmp_path: Path) -> None:
    decider = Decider(free_port(), {"value": True, "comment": "ai: fine"}).start()
    clock = FakeClock()
    hub = InProcessHub(tmp_path / "q.db", clock,
                       deciders={"ai": {"url": f"http://127.0.0.1:{decider.port}/"}},
                       **LOOPBACK_ALLOWED).start()
    try:
        flow = Client(hub.url, hub.token("f", role="workflow"))
        policy = Policy(quorum=2, escalate=[Tier(after=60, fallback="ai")])
        event = flow.create(name="two", prompt="Two humans?", policy=policy)
        clock.advance(seconds=61)
        hub.settle(lambda: flow.audit(event.id)[-1]["action"] == "escalated")
        after = flow.get(event.id)
        assert after.status == "pending" and [r.by for r in after.responses] == ["ai"]
        trail = flow.audit(event.id)
        assert "does not count" in trail[-1]["data"]["note"]
        Client(hub.url, hub.token("ann")).respond(event.id, True)
        assert flow.get(event.id).status == "pending"
        done = Client(hub.url, hub.token("bob")).respond(event.id, True)
        assert done.decision is not None and done.decision.outcome.value == "approved"
    finally:
        hub.stop()
        decider.stop()


def test_fallback_through_an_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plugins = tmp_path / "plugins"
    (plugins / "cautious_decider").mkdir(parents=True)
    (plugins / "cautious_decider" / "__init__.py").write_text(textwrap.dedent("""
        from signoff.deciders import Verdict

        class Cautious:
            def __init__(self, settings):
                self.limit = settings.get("limit", 100)

            async def decide(self, event):
                amount = event.context.get("amount", 0)
                return Verdict(value=amount <= self.limit, comment=f"limit {self.limit}")
    """))
    dist = plugins / "cautious_decider-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cautious-decider\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[signoff.deciders]\ncautious = cautious_decider:Cautious\n")
    monkeypatch.syspath_prepend(str(plugins))
    clock = FakeClock()
    hub = InProcessHub(tmp_path / "ep.db", clock, deciders={"cautious": {"limit": 50}}).start()
    try:
        flow = Client(hub.url, hub.token("f", role="workflow"))
        policy = Policy(escalate=[Tier(after=60, fallback="cautious")])
        small = flow.create(name="refund", prompt="Refund?", context={"amount": 20}, policy=policy)
        big = flow.create(name="refund", prompt="Refund?", context={"amount": 90}, policy=policy)
        clock.advance(seconds=61)
        hub.settle(lambda: flow.get(small.id).decision and flow.get(big.id).decision)
        assert flow.get(small.id).decision.outcome.value == "approved"  # type: ignore[union-attr]
        decided = flow.get(big.id).decision
        assert decided is not None and (decided.outcome.value, decided.by) == ("rejected",
                                                                               "cautious")
    finally:
        hub.stop()


def test_missing_decider_leaves_the_event_to_humans(tmp_path: Path) -> None:
    clock = FakeClock()
    hub = InProcessHub(tmp_path / "none.db", clock).start()
    try:
        flow = Client(hub.url, hub.token("f", role="workflow"))
        event = flow.create(name="x", prompt="p", policy=Policy(
            escalate=[Tier(after=60, fallback="auto")]))
        clock.advance(seconds=61)
        hub.settle(lambda: flow.get(event.id).escalation_level == 1)
        assert flow.get(event.id).status == "pending"
        assert "needs default_decider" in flow.audit(event.id)[-1]["data"]["error"]
    finally:
        hub.stop()


def test_policy_file_tightens_through_the_hub(tmp_path: Path) -> None:
    config = tmp_path / "signoff.toml"
    config.write_text(textwrap.dedent("""
        [[policies]]
        match = { labels = { team = "payments" } }
        quorum = 2
        forbid_auto_approve = true
        add_assignees = ["group:finance"]
    """))
    with HubProcess(tmp_path / "pf.db", config=config) as hub:
        flow = Client(hub.url, hub.token("f", role="workflow"))
        event = flow.create(name="refund", prompt="Refund?", labels={"team": "payments"},
                            confidence=0.99, impact="low", assignees=["ann"],
                            policy=Policy(route=GRID.route, quorum=1))
        assert event.status == "pending"  # auto-approval was forbidden by the file
        assert event.policy is not None and event.policy.quorum == 2
        assert event.assignees == ["ann", "group:finance"]
        notes = [e["data"]["note"] for e in flow.audit(event.id) if e["action"] == "policy"]
        assert any("quorum raised to 2" in n for n in notes)
        other = flow.create(name="refund", prompt="Refund?", labels={"team": "web"},
                            confidence=0.99, impact="low", policy=GRID)
        assert other.status == "decided"


def test_policy_check_command(tmp_path: Path) -> None:
    import subprocess

    good = tmp_path / "good.toml"
    good.write_text('[[policies]]\nquorum = 2\nmatch = { orchestrator = "prefect" }\n')
    bad = tmp_path / "bad.toml"
    bad.write_text('[[policies]]\nforbid_self_approval = false\nquorum = 0\n')
    run = [sys.executable, "-c", "from signoff.cli import run; run()", "policy", "check"]
    ok = subprocess.run([*run, str(good)], capture_output=True, text=True)
    assert ok.returncode == 0 and "1 policy rule(s), all valid" in ok.stdout
    refused = subprocess.run([*run, str(bad)], capture_output=True, text=True)
    assert refused.returncode == 1
    assert "policies.0.quorum" in refused.stderr
    assert "can only tighten" in refused.stderr


def test_notifications_on_created_and_decided(tmp_path: Path, receiver: Receiver) -> None:
    url = f"json://127.0.0.1:{receiver.port}/hook"
    channels = json.dumps({"deploys": [url]})
    with HubProcess(tmp_path / "n.db", env={"SIGNOFF_NOTIFY_CHANNELS": channels}) as hub:
        flow = Client(hub.url, hub.token("f", role="workflow"))
        event = flow.create(name="deploy", prompt="Deploy <v3>?",
                            policy=Policy(notify=["deploys"]))
        Client(hub.url, hub.admin_token).respond(event.id, True)
        deadline = time.monotonic() + 10
        while len(receiver.calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        titles = sorted(json.loads(body)["title"] for _, body in receiver.calls)
        assert titles == ["[signoff] deploy decided", "[signoff] deploy waits for you"]
        page = f"{hub.url}/events/{event.id}"
        assert all(page in json.loads(body)["message"] for _, body in receiver.calls)
        # the link is a page: fetching it (as a mail scanner would) changes nothing
        assert httpx.get(page).status_code in (200, 303, 401)
        notified = [e for e in flow.audit(event.id) if e["action"] == "notified"]
        assert len(notified) == 2 and all(e["data"]["ok"] for e in notified)
