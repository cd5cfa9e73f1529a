"""Issue 18: ``/metrics`` of a real hub through a scenario (auto-approved, approved against the
recommendation, timed out, escalated, decided by a fallback, delivered, failed delivery), its
token and own port, and the request id and log lines."""

from __future__ import annotations

import io
import json
import logging
import sqlite3
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from signoff import Client, Policy, Rule, Tier
from signoff.testing import HubProcess, free_port, until

from .test_policies import Decider
from .test_reliability import Receiver

Scrape = dict[tuple[str, frozenset[tuple[str, str]]], float]
LOOPBACK = {"SIGNOFF_EGRESS_ALLOW": '["http://127.0.0.1:*"]',
            "SIGNOFF_EGRESS_ALLOW_PRIVATE": '["127.0.0.1/32"]'}


def scrape(url: str, **headers: str) -> Scrape:
    """Every sample of ``url``/metrics, by name and labels."""
    answer = httpx.get(f"{url}/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def value(samples: Scrape, metric: str, /, **labels: str) -> float:
    """The sum of ``metric``'s samples whose labels include ``labels`` (0 when none)."""
    want = set(labels.items())
    return sum(v for (n, got), v in samples.items() if n == metric and want <= got)



def _waited(check: Any, what: str, timeout: float = 20.0) -> Any:
    return until(check, timeout, what)


@pytest.fixture
def decider() -> Iterator[Decider]:
    d = Decider(free_port(), {"value": True, "comment": "ai: fine"}).start()
    yield d
    d.stop()


def test_a_scenario_in_exact_metrics(tmp_path: Path, decider: Decider) -> None:
    delivered_to = Receiver(free_port()).start()
    refusing = Receiver(free_port(), status=404).start()  # a 4xx is final: failed at once
    env = {**LOOPBACK, "SIGNOFF_SWEEP_INTERVAL": "0.2", "SIGNOFF_METRICS_MAX_NAMES": "5",
           "SIGNOFF_DECIDERS__AI__URL": f"http://127.0.0.1:{decider.port}/decide"}
    try:
        with HubProcess(tmp_path / "hub.db", env=env) as hub:
            flow = Client(hub.url, hub.token("flow", role="workflow"))
            ann = Client(hub.url, hub.token("ann", groups=("leads",)))
            grid = Policy(route=[Rule(when="confidence >= 0.95 and impact == 'low'",
                                      then="approve")])
            auto = flow.create(name="refund", prompt="Refund?", confidence=0.97, impact="low",
                               recommendation=True, policy=grid)
            assert auto.decision is not None and auto.decision.by == "policy"
            against = flow.create(name="refund", prompt="Refund big?", confidence=0.5,
                                  impact="high", recommendation=False, policy=grid)
            ann.respond(against.id, True, "the model is wrong here")
            timed = flow.create(name="deploy", prompt="Deploy?", timeout=0.3,
                                on_timeout="reject", priority="urgent")
            climbing = flow.create(name="budget", prompt="Budget?", priority="high",
                                   policy=Policy(escalate=[Tier(after=timedelta(seconds=0.3),
                                                                assignees=["group:leads"])]))
            falling = flow.create(name="contract", prompt="Sign?", policy=Policy(
                escalate=[Tier(after=timedelta(seconds=0.3), fallback="ai")]))
            hooked = flow.create(name="hooked", prompt="Go?", source={
                "orchestrator": "webhook",
                "params": {"url": f"http://127.0.0.1:{delivered_to.port}/"}})
            refused = flow.create(name="hooked", prompt="Go too?", source={
                "orchestrator": "webhook",
                "params": {"url": f"http://127.0.0.1:{refusing.port}/"}})
            ann.respond(hooked.id, True, "ok")
            ann.respond(refused.id, True, "ok")
            for name in ("n1", "n2", "n3"):  # past metrics_max_names: counted as "other"
                flow.create(name=name, prompt="?")

            _waited(lambda: flow.get(timed.id).status == "decided", "the timeout")
            _waited(lambda: flow.get(climbing.id).escalation_level == 1, "the escalation")
            _waited(lambda: flow.get(falling.id).status == "decided", "the fallback")
            _waited(lambda: flow.get(hooked.id).deliveries[0].state == "delivered", "delivery")
            _waited(lambda: flow.get(refused.id).deliveries[0].state == "failed", "failure")
            m = scrape(hub.url)

            decisions = "signoff_decisions_total"
            assert value(m, decisions) == 6
            assert value(m, decisions, decided_by="policy_auto_approve", outcome="approved",
                         name="refund") == 1
            assert value(m, decisions, decided_by="human") == 3
            assert value(m, decisions, decided_by="human", outcome="approved",
                         source="webhook") == 2
            assert value(m, decisions, decided_by="timeout", outcome="rejected",
                         priority="urgent") == 1
            assert value(m, decisions, decided_by="fallback", outcome="approved",
                         name="contract") == 1
            assert value(m, "signoff_fallback_decisions_total", outcome="approved") == 1
            assert value(m, "signoff_decision_latency_seconds_count") == 6
            assert value(m, "signoff_decision_latency_seconds_count",
                         decided_by="policy_auto_approve") == 1
            assert value(m, "signoff_assignment_latency_seconds_count") == 3
            assert value(m, "signoff_human_decisions_with_recommendation_total",
                         impact="high") == 1
            assert value(m, "signoff_overrides_total", impact="high", name="refund") == 1
            assert value(m, "signoff_overrides_total") == 1
            assert value(m, "signoff_sla_breaches_total", priority="urgent") == 1
            assert value(m, "signoff_sla_breaches_total") == 1
            assert value(m, "signoff_escalations_total", tier="0") == 2  # budget and contract
            assert value(m, "signoff_deliveries_total", resumer="webhook",
                         result="delivered") == 1
            assert value(m, "signoff_deliveries_total", resumer="webhook", result="failed") == 1
            assert value(m, "signoff_deliveries_total", result="retry") == 0
            assert value(m, "signoff_delivery_latency_seconds_count", resumer="webhook") == 1
            assert value(m, "signoff_deliveries_pending") == 0
            assert value(m, "signoff_events_created_total") == 10
            assert value(m, "signoff_events_created_total", name="other") == 3
            assert value(m, "signoff_event_confidence_count") == 2
            # shared state, read from the store: the escalated event and the three n*
            assert value(m, "signoff_queue_pending", priority="high", age="le60s") == 1
            assert value(m, "signoff_queue_pending", priority="normal", age="le60s") == 3
            assert value(m, "signoff_queue_pending") == 4
            assert value(m, "signoff_queue_past_sla") == 0
            assert 0 < value(m, "signoff_queue_oldest_age_seconds", priority="high") < 60
            assert value(m, "signoff_queue_oldest_age_seconds", priority="urgent") == 0
            assert value(m, "signoff_audit_decisions") == 6
            assert value(m, "signoff_audit_decisions_audited") == 6
            assert value(m, "signoff_audit_write_failures_total") == 0
            assert value(m, "signoff_http_requests_total", method="POST",
                         route="/api/v1/events", status="201") == 10
            assert value(m, "signoff_reviewer_decisions_total") == 0  # not enabled
            assert not any("ev_" in v for (_, labels), _v in m.items() for _, v in labels)
            assert not any(v == "ann" for (_, labels), _v in m.items() for _, v in labels)
    finally:
        delivered_to.stop()
        refusing.stop()


def test_per_reviewer_metrics_only_when_enabled(tmp_path: Path) -> None:
    env = {"SIGNOFF_METRICS_PER_REVIEWER": "true"}
    with HubProcess(tmp_path / "hub.db", env=env) as hub:
        flow = Client(hub.url, hub.token("flow", role="workflow"))
        ann = Client(hub.url, hub.token("ann"))
        for _ in range(2):
            ann.respond(flow.create(name="x", prompt="?").id, False, None)
        assert value(scrape(hub.url), "signoff_reviewer_decisions_total", reviewer="ann") == 2


def test_metrics_token_own_port_and_off(tmp_path: Path) -> None:
    with HubProcess(tmp_path / "a.db", env={"SIGNOFF_METRICS_TOKEN": "s3cret"}) as hub:
        assert httpx.get(f"{hub.url}/metrics").status_code == 401
        assert httpx.get(f"{hub.url}/metrics",
                         headers={"Authorization": "Bearer nope"}).status_code == 401
        assert value(scrape(hub.url, Authorization="Bearer s3cret"), "signoff_queue_pending",
                     priority="urgent", age="le60s") == 0
    port = free_port()
    env = {"SIGNOFF_METRICS_PORT": str(port), "SIGNOFF_METRICS_TOKEN": "s3cret"}
    with HubProcess(tmp_path / "b.db", env=env) as hub:
        assert httpx.get(f"{hub.url}/metrics").status_code == 404
        own = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{own}/metrics").status_code == 401
        assert value(scrape(own, Authorization="Bearer s3cret"), "signoff_queue_pending") == 0
        assert httpx.get(f"{own}/other").status_code == 404
    with HubProcess(tmp_path / "c.db", env={"SIGNOFF_METRICS": "false"}) as hub:
        off = httpx.get(f"{hub.url}/metrics")
        assert off.status_code == 404 and off.headers["x-request-id"]


def test_request_ids_and_log_lines(tmp_path: Path) -> None:
    with HubProcess(tmp_path / "hub.db", env={"SIGNOFF_LOG_FORMAT": "json"}) as hub:
        flow = Client(hub.url, hub.token("flow", role="workflow"))
        made = httpx.post(f"{hub.url}/api/v1/events", json={"name": "n", "prompt": "?"},
                          headers={"Authorization": f"Bearer {flow.token}",
                                   "X-Request-Id": "trace-42"})
        assert made.status_code == 201 and made.headers["x-request-id"] == "trace-42"
        event_id = made.json()["id"]
        odd = httpx.get(f"{hub.url}/healthz", headers={"X-Request-Id": "bad id <script>"})
        assert len(odd.headers["x-request-id"]) == 32 and "bad" not in odd.headers[
            "x-request-id"]
        Client(hub.url, hub.admin_token).respond(event_id, True, "go")

        def lines() -> list[dict[str, Any]]:
            return [json.loads(line) for line in hub.log_path.read_text().splitlines()
                    if line.startswith("{")]

        def logged() -> list[dict[str, Any]]:
            found = lines()
            return found if any(x.get("msg") == "decided" for x in found) else []

        found = _waited(logged, "the decided line")
        created = [x for x in found if x["msg"] == "created"]
        assert created == [{**created[0], "event_id": event_id, "request_id": "trace-42",
                            "source": "api", "outcome": None}]
        [request] = [x for x in found if x.get("request_id") == "trace-42"
                     and x["msg"] == "request"]
        assert (request["route"], request["status"]) == ("/api/v1/events", 201)
        [decided] = [x for x in found if x["msg"] == "decided"]
        assert (decided["event_id"], decided["outcome"], decided["decided_by"]) == (
            event_id, "approved", "admin")
        assert any(x["msg"] == "answered" and x["event_id"] == event_id for x in found)


def test_a_failed_store_write_counts_as_an_audit_write_failure(tmp_path: Path) -> None:
    with HubProcess(tmp_path / "hub.db") as hub:
        flow = Client(hub.url, hub.token("flow", role="workflow"))
        event = flow.create(name="x", prompt="?")
        with sqlite3.connect(hub.database) as db:  # the decision's transaction now fails
            db.execute("CREATE TRIGGER no_decisions BEFORE INSERT ON decisions"
                       " BEGIN SELECT RAISE(ABORT, 'the disk says no'); END")
        answer = httpx.post(f"{hub.url}/api/v1/events/{event.id}/responses",
                            json={"value": True},
                            headers={"Authorization": f"Bearer {hub.admin_token}"})
        assert answer.status_code == 500
        m = scrape(hub.url)
        assert value(m, "signoff_audit_write_failures_total") == 1
        assert value(m, "signoff_decisions_total") == 0
        assert value(m, "signoff_audit_decisions") == value(m, "signoff_audit_decisions_audited")
        assert value(m, "signoff_queue_pending") == 1


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("setting", "tty", "expect_json"), [
    ("auto", True, False), ("auto", False, True), ("json", True, True), ("text", False, False)])
def test_log_format_follows_the_terminal_unless_forced(monkeypatch: pytest.MonkeyPatch,
                                                      setting: str, tty: bool,
                                                      expect_json: bool) -> None:
    from signoff.hub.logs import configure, requests_log
    from signoff.hub.settings import Settings

    err = _Terminal() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    root = logging.getLogger("signoff")
    saved = (root.handlers[:], root.level, root.propagate)
    try:
        stop = configure(Settings(log_format=setting))  # type: ignore[arg-type]
        requests_log.info("request", extra={"fields": {"request_id": "r1", "status": 200}})
        stop()  # the writer thread writes every queued line before it stops
    finally:
        root.handlers[:], root.level, root.propagate = saved
    line = err.getvalue().strip()
    if expect_json:
        assert json.loads(line)["request_id"] == "r1"
    else:
        assert line.endswith("request request_id=r1 status=200") and not line.startswith("{")
