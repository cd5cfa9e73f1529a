"""Prometheus metrics of one hub (issue 18): the seeds' HITL table (M1-M15) on ``/metrics``.

Two kinds, documented in ``docs/operations.md``:

- **Counters and histograms of this replica**, updated where the hub changes state (created,
  decided, escalated, delivered, requests). Each replica exports its own; sum them in PromQL.
- **Gauges of shared state** (queue depth by priority and age, oldest pending age, events
  past their SLA, pending deliveries, audit completeness) read from the store at scrape time
  by one bounded query each (:meth:`~signoff.store.Store.pending_summary`,
  :meth:`~signoff.store.Store.audit_completeness`), so every replica reports the same values:
  take ``max`` over replicas, never ``sum``.

Labels are bounded: priority, outcome, who decided (``human``, ``policy_auto_approve``,
``policy_block``, ``timeout``, ``fallback``), the first ``metrics_max_names`` event names
(later ones are ``other``), the first 50 source orchestrators; never an event id, and a user
name only with ``metrics_per_reviewer``.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .._model import Decision, Event, Outcome
from .._shadow import agreed

if TYPE_CHECKING:
    from ..store import Store
    from .settings import Settings

__all__ = ["CONTENT_TYPE", "Metrics", "decided_by", "serve_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PRIORITIES = ("urgent", "high", "normal", "low")
LATENCY_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
                   7200.0, 14400.0, 28800.0, 86400.0, 259200.0)
"""Decision latency buckets: one second to three days (people answer in minutes to days)."""
FAST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Machine latencies: HTTP requests, deliveries."""
_MAX_SOURCES = 50


class _Bounded:
    """The first ``cap`` distinct values pass as they are; later ones become ``other``."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self.seen:
            return value
        if len(self.seen) >= self.cap:
            return "other"
        self.seen.add(value)
        return value


def decided_by(decision: Decision) -> str:
    """Who reached a decision, as a bounded label."""
    if decision.channel == "policy" and decision.by == "policy":
        return "policy_block" if decision.outcome is Outcome.rejected else "policy_auto_approve"
    if decision.by == "timeout" and decision.channel == "sweeper":
        return "timeout"
    if decision.channel == "fallback":
        return "fallback"
    return "human"


def sla_deadline(settings: Settings, event: Event) -> datetime | None:
    """When ``event`` breaches its SLA: its deadline, else its priority's SLA after creation."""
    if event.deadline is not None:
        return event.deadline
    seconds = settings.sla.get(event.priority.value)
    return None if seconds is None else event.created_at + timedelta(seconds=seconds)


class Metrics:
    """The hub's metrics, in a registry of its own (no process-wide singleton)."""

    def __init__(self, settings: Settings, store: Store, waiting: Callable[[], int],
                 clock: Callable[[], datetime]) -> None:
        self.settings = settings
        self.registry = CollectorRegistry(auto_describe=True)
        self.names = _Bounded(settings.metrics_max_names)
        self.sources = _Bounded(_MAX_SOURCES)
        r = self.registry
        self.created_total = Counter(
            "signoff_events_created", "Events created (a retried key counts once).",
            ["priority", "name", "source"], registry=r)
        self.decisions_total = Counter(
            "signoff_decisions", "Decisions, by outcome and by who decided (M4).",
            ["priority", "name", "source", "outcome", "decided_by"], registry=r)
        self.decision_latency = Histogram(
            "signoff_decision_latency_seconds", "Creation to decision (M1, M2).",
            ["priority", "source", "decided_by"], buckets=LATENCY_BUCKETS, registry=r)
        self.assignment_latency = Histogram(
            "signoff_assignment_latency_seconds",
            "Last assignment (creation or escalation tier) to decision, human decisions.",
            ["priority"], buckets=LATENCY_BUCKETS, registry=r)
        self.recommended_total = Counter(
            "signoff_human_decisions_with_recommendation",
            "Human decisions on events that carried a recommendation (the override rate's "
            "denominator).", ["impact", "name"], registry=r)
        self.overrides_total = Counter(
            "signoff_overrides", "Human decisions that differ from the recommendation (M5).",
            ["impact", "name"], registry=r)
        self.sla_breaches_total = Counter(
            "signoff_sla_breaches", "Events decided after their SLA (M10).", ["priority"],
            registry=r)
        self.reviewer_total = Counter(
            "signoff_reviewer_decisions",
            "Human decisions by reviewer (M9; only with metrics_per_reviewer).", ["reviewer"],
            registry=r)
        self.shadow_total = Counter(
            "signoff_shadow", "Decided events a shadow policy rule had a verdict on, by rule "
            "and whether the decision agreed with it (true, false; none: a timeout or cancel).",
            ["rule", "agreed"], registry=r)
        self.shadow_rules = _Bounded(_MAX_SOURCES)
        self.escalations_total = Counter(
            "signoff_escalations", "Escalation tiers passed, by tier.", ["tier"], registry=r)
        self.fallback_total = Counter(
            "signoff_fallback_decisions", "Decisions by a fallback decider.", ["outcome"],
            registry=r)
        self.confidence = Histogram(
            "signoff_event_confidence", "The automation's confidence on created events.",
            ["priority"], buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99),
            registry=r)
        self.audit_failures_total = Counter(
            "signoff_audit_write_failures",
            "Store writes that failed, each taking its audit entry with it (M7).", registry=r)
        self.deliveries_total = Counter(
            "signoff_deliveries", "Delivery attempts by resumer and result (delivered, retry, "
            "failed).", ["resumer", "result"], registry=r)
        self.delivery_latency = Histogram(
            "signoff_delivery_latency_seconds", "Decision to successful delivery.",
            ["resumer"], buckets=FAST_BUCKETS, registry=r)
        self.requests_total = Counter(
            "signoff_http_requests", "HTTP requests by route and status.",
            ["method", "route", "status"], registry=r)
        self.request_duration = Histogram(
            "signoff_http_request_duration_seconds", "HTTP request latency.",
            ["method", "route"], buckets=FAST_BUCKETS, registry=r)
        self.loop_lag = Gauge(
            "signoff_event_loop_lag_seconds", "How late the hub's event loop runs a timer.",
            registry=r)
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        waiters = Gauge("signoff_longpoll_waiters", "Long-poll requests parked on this replica.",
                        registry=r)
        waiters.set_function(lambda: float(waiting()))
        r.register(_StoreCollector(settings, store, clock))
        for priority in PRIORITIES:  # present from the first scrape, so rate() has a start
            self.sla_breaches_total.labels(priority)
        self.audit_failures_total.inc(0)

    # where the hub changes state ---------------------------------------------------------
    def created(self, event: Event) -> None:
        """An event was created (and maybe decided at once by its policy)."""
        self.created_total.labels(event.priority.value, self.names(event.name),
                                  self.sources(event.source.orchestrator)).inc()
        if event.confidence is not None:
            self.confidence.labels(event.priority.value).observe(event.confidence)
        if event.decision is not None:
            self.decided(event)

    def decided(self, event: Event) -> None:
        """An event's decision was written."""
        decision = event.decision
        assert decision is not None
        priority = event.priority.value
        name = self.names(event.name)
        source = self.sources(event.source.orchestrator)
        by = decided_by(decision)
        self.decisions_total.labels(priority, name, source, decision.outcome.value, by).inc()
        took = max((decision.at - event.created_at).total_seconds(), 0.0)
        self.decision_latency.labels(priority, source, by).observe(took)
        due = sla_deadline(self.settings, event)
        if due is not None and decision.at > due and decision.outcome is not Outcome.cancelled:
            self.sla_breaches_total.labels(priority).inc()
        if event.shadow is not None:  # issue 21: what a shadow rule would have done, agreed?
            verdict = agreed(event)
            self.shadow_total.labels(self.shadow_rules(event.shadow.rule[:200]),
                                     "none" if verdict is None else str(verdict).lower()).inc()
        if by == "fallback":  # the tier passed, by its decider
            self.fallback_total.labels(decision.outcome.value).inc()
            self.escalated(event.escalation_level)
        if by != "human" or decision.outcome is Outcome.cancelled:
            return
        assigned = event.created_at
        if event.policy is not None and event.escalation_level > 0:
            tiers = event.policy.escalate[:event.escalation_level]
            assigned = event.created_at + tiers[-1].after
        self.assignment_latency.labels(priority).observe(
            max((decision.at - assigned).total_seconds(), 0.0))
        if self.settings.metrics_per_reviewer:
            self.reviewer_total.labels(decision.by).inc()
        if event.recommendation is not None:
            impact = event.impact or "none"
            self.recommended_total.labels(impact, name).inc()
            if decision.value != event.recommendation:
                self.overrides_total.labels(impact, name).inc()

    def escalated(self, level: int) -> None:
        """An event passed escalation tier ``level``."""
        self.escalations_total.labels(str(level)).inc()

    def delivery(self, resumer: str, result: str, latency: float | None = None) -> None:
        """A delivery attempt ended: ``delivered``, ``retry`` or ``failed``."""
        label = self.sources(resumer)
        self.deliveries_total.labels(label, result).inc()
        if latency is not None:
            self.delivery_latency.labels(label).observe(max(latency, 0.0))

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """An HTTP request was answered."""
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:  # routes and statuses are few: each pair of children is kept
            children = (self.requests_total.labels(method, route, str(status)),
                        self.request_duration.labels(method, route))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        """The text exposition (runs the store queries: call it in a worker thread)."""
        return generate_latest(self.registry)


class _StoreCollector(Collector):
    """The gauges of shared state, read from the store at each scrape."""

    def __init__(self, settings: Settings, store: Store,
                 clock: Callable[[], datetime]) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock

    def describe(self) -> list[Any]:
        return []  # collected only at scrape time: registering must not query the store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.clock()
        ages = self.settings.metrics_age_buckets
        summary = self.store.pending_summary(now, ages, self.settings.sla)
        depth = GaugeMetricFamily(
            "signoff_queue_pending", "Pending events by priority and age bucket (M3; the same "
            "on every replica).", labels=["priority", "age"])
        names = [f"le{a:g}s" for a in ages] + [f"gt{ages[-1]:g}s" if ages else "all"]
        for priority in PRIORITIES:
            for index, bucket in enumerate(names):
                depth.add_metric([priority, bucket],
                                 float(summary.counts.get((priority, index), 0)))
        yield depth
        oldest = GaugeMetricFamily(
            "signoff_queue_oldest_age_seconds", "Age of the oldest pending event (0: none).",
            labels=["priority"])
        late = GaugeMetricFamily(
            "signoff_queue_past_sla", "Pending events past their SLA or deadline (M10).",
            labels=["priority"])
        sla = GaugeMetricFamily("signoff_sla_seconds", "The configured SLA by priority.",
                                labels=["priority"])
        for priority in PRIORITIES:
            first = summary.oldest.get(priority)
            oldest.add_metric([priority], max((now - first).total_seconds(), 0.0)
                              if first is not None else 0.0)
            late.add_metric([priority], float(summary.past_sla.get(priority, 0)))
            if priority in self.settings.sla:
                sla.add_metric([priority], self.settings.sla[priority])
        yield oldest
        yield late
        yield sla
        yield GaugeMetricFamily("signoff_deliveries_pending",
                                "Deliveries waiting for their next attempt.",
                                value=float(summary.deliveries_pending))
        decisions, audited = self.store.audit_completeness(
            now - timedelta(seconds=self.settings.metrics_audit_window))
        yield GaugeMetricFamily(
            "signoff_audit_decisions", "Decisions in the audit window (metrics_audit_window).",
            value=float(decisions))
        yield GaugeMetricFamily(
            "signoff_audit_decisions_audited",
            "Decisions in the audit window with their audit entry (M7).", value=float(audited))


def authorized(settings: Settings, header: str | None) -> bool:
    """Whether a scrape's ``Authorization`` header passes ``metrics_token``."""
    if settings.metrics_token is None:
        return True
    expected = f"Bearer {settings.metrics_token.get_secret_value()}".encode()
    return header is not None and hmac.compare_digest(header.encode(), expected)


async def serve_metrics(settings: Settings, metrics: Metrics) -> asyncio.Server:
    """``GET /metrics`` alone on ``settings.metrics_port`` (a minimal HTTP/1.0 server: one
    request per connection, the token checked as on the hub's port).
    """
    from anyio import to_thread

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = (lines[0].split(" ") + ["", "", ""])[:3]
            auth = next((line.split(":", 1)[1].strip() for line in lines[1:]
                         if line.lower().startswith("authorization:")), None)
            if method not in ("GET", "HEAD") or path.split("?")[0] != "/metrics":
                status, body, kind = "404 Not Found", b"not found\n", "text/plain"
            elif not authorized(settings, auth):
                status, body, kind = "401 Unauthorized", b"unauthorized\n", "text/plain"
            else:
                status, kind = "200 OK", CONTENT_TYPE
                body = await to_thread.run_sync(metrics.render)
            writer.write(f"HTTP/1.0 {status}\r\nContent-Type: {kind}\r\nContent-Length: "
                         f"{len(body)}\r\nConnection: close\r\n\r\n".encode())
            if method != "HEAD":
                writer.write(body)
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, settings.host, settings.metrics_port)
