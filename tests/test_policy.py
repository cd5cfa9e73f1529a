"""Policies without I/O: the condition language, routing, quorum, tightening."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from signoff import EventCreate, Policy, PolicyFileRule, Rule, Tier
from signoff._expr import evaluate
from signoff._policy import route, settle, tighten

FACTS = {"confidence": 0.97, "impact": "low", "recommendation": True, "name": "refund",
         "priority": "normal", "kind": "approval", "requested_by": "flow",
         "labels": {"team": "payments"}, "source": {"orchestrator": "prefect", "run": "r1",
                                                    "step": None}}


@pytest.mark.parametrize(("text", "expected"), [
    ("confidence >= 0.95 and impact == 'low'", True),
    ("impact == 'critical' and confidence < 0.5", False),
    ("impact in ['high', 'critical']", False),
    ("impact not in ['high', 'critical']", True),
    ("0.9 <= confidence < 1", True),
    ("labels.team == 'payments' and source.orchestrator == 'prefect'", True),
    ("labels.missing == null", True),
    ("not (confidence > 0.99) or recommendation == false", True),
    ("recommendation == true", True),
])
def test_conditions(text: str, expected: bool) -> None:
    assert evaluate(text, FACTS) is expected


def test_missing_confidence_never_passes_an_ordering() -> None:
    facts = {**FACTS, "confidence": None}
    assert not evaluate("confidence >= 0.5", facts)
    assert not evaluate("confidence < 0.5", facts)


@pytest.mark.parametrize(("text", "why"), [
    ("__import__('os').system('id')", "Call is not allowed"),
    ("confidence.__class__", "only labels.NAME and source.FIELD"),
    ("secret > 1", "unknown name 'secret'"),
    ("confidence >= ", "not a condition"),
    ("[x for x in labels]", "ListComp is not allowed"),
    ("impact == 'low' if True else 1", "IfExp is not allowed"),
    ("source.params == 1", "source has no field 'params'"),
    ("confidence is None", "operator Is is not allowed"),
    ("lambda: 1", "Lambda is not allowed"),
])
def test_unsafe_or_wrong_conditions_are_refused(text: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        Rule(when=text, then="approve")


GRID = Policy(route=[
    Rule(when="confidence >= 0.95 and impact == 'low'", then="approve"),
    Rule(when="impact == 'critical' and confidence < 0.5", then="block"),
])


def _event(**fields: Any) -> EventCreate:
    fields.setdefault("name", "refund")
    fields.setdefault("prompt", "Refund?")
    fields.setdefault("policy", GRID)
    return EventCreate(**fields)


@pytest.mark.parametrize(("confidence", "impact", "action"), [
    (0.97, "low", "approve"), (0.97, "high", "review"), (0.6, "low", "review"),
    (0.3, "critical", "block"), (0.7, "critical", "review"), (None, "low", "review"),
])
def test_routing_by_confidence_and_impact(confidence: float | None, impact: str,
                                          action: str) -> None:
    routed = route(_event(confidence=confidence, impact=impact))
    assert routed.action == action
    if action != "review":
        assert routed.rule is not None and routed.rule.startswith("route[")


def test_auto_approving_an_input_uses_the_recommendation_if_it_fits() -> None:
    spec = {"kind": "int", "max": 10}
    fits = route(_event(input=spec, recommendation=7, confidence=0.99, impact="low"))
    assert (fits.action, fits.value) == ("approve", 7)
    misfit = route(_event(input=spec, recommendation=70, confidence=0.99, impact="low"))
    assert misfit.action == "review" and "does not fit" in (misfit.rule or "")
    missing = route(_event(input=spec, confidence=0.99, impact="low"))
    assert missing.action == "review" and "no recommendation" in (missing.rule or "")


class R:
    def __init__(self, by: str, value: Any, channel: str = "web") -> None:
        self.by, self.value, self.channel = by, value, channel


def test_quorum_counts_distinct_people_and_a_rejection_rejects() -> None:
    policy = Policy(quorum=2)
    assert settle("approval", policy, [R("ann", True)]) is None
    assert settle("approval", policy, [R("ann", True), R("bob", True)])[0] is True  # type: ignore[index]
    assert settle("approval", policy, [R("ann", True), R("bob", False)])[0] is False  # type: ignore[index]
    lenient = Policy(quorum=2, rejection_rejects=False)
    assert settle("approval", lenient, [R("ann", False)]) is None
    assert settle("approval", lenient, [R("ann", False), R("bob", False)])[0] is False  # type: ignore[index]


def test_automation_counts_only_when_the_policy_says_so() -> None:
    votes = [R("ann", True), R("ai", True, channel="fallback")]
    assert settle("approval", Policy(quorum=2), votes) is None
    both = Policy(quorum=2, automation_counts=True)
    assert settle("approval", both, votes)[0] is True  # type: ignore[index]


def test_policy_checks_its_own_shape() -> None:
    with pytest.raises(ValidationError, match="increasing order"):
        Policy(escalate=[Tier(after=timedelta(hours=2)), Tier(after=timedelta(hours=1))])
    with pytest.raises(ValidationError, match="only the last tier"):
        Policy(escalate=[Tier(after=timedelta(hours=1), fallback="auto"),
                         Tier(after=timedelta(hours=2))])
    with pytest.raises(ValidationError, match="quorum above 1 needs an approval"):
        EventCreate(name="x", prompt="p", input={"kind": "int"}, policy=Policy(quorum=2))
    assert Tier(after=7200).after == timedelta(hours=2)
    assert Tier(after="PT2H").after == timedelta(hours=2)


def test_policy_file_tightens_and_refuses_to_loosen() -> None:
    event = _event(labels={"team": "payments"}, assignees=["ann"],
                   policy=Policy(quorum=3, route=GRID.route))
    rules = [PolicyFileRule(match={"labels": {"team": "payments"}}, quorum=2,
                            forbid_self_approval=True, forbid_auto_approve=True,
                            add_assignees=["group:finance"]),
             PolicyFileRule(match={"name": "other-*"}, quorum=5)]
    policy, assignees, notes = tighten(event.policy, event.assignees, rules, event)
    assert policy is not None
    assert policy.quorum == 3  # the file's 2 would loosen the workflow's 3
    assert policy.forbid_self_approval and [r.then for r in policy.route] == ["block"]
    assert assignees == ["ann", "group:finance"]
    assert any("would loosen" in n for n in notes)
    raised, _, _ = tighten(Policy(quorum=1), [], rules[:1], event)
    assert raised is not None and raised.quorum == 2
    untouched = tighten(None, [], rules[1:], event)
    assert untouched == (None, [], [])
    with pytest.raises(ValidationError, match="can only tighten"):
        PolicyFileRule(forbid_self_approval=False)


def test_escalation_times() -> None:
    from signoff._policy import escalation_due

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    policy = Policy(escalate=[Tier(after=timedelta(hours=2)), Tier(after=timedelta(hours=6))])
    assert escalation_due(t0, policy, 0) == t0 + timedelta(hours=2)
    assert escalation_due(t0, policy, 1) == t0 + timedelta(hours=6)
    assert escalation_due(t0, policy, 2) is None


def test_policy_file_forbids_batches_for_an_impact_level() -> None:
    rules = [PolicyFileRule(match={"name": "purge"}, forbid_batch_impacts=["medium", "high"])]
    medium = _event(name="purge", impact="medium")
    policy, _, notes = tighten(medium.policy, medium.assignees, rules, medium)
    assert policy is not None and policy.forbid_batch
    assert notes == ["policy file rule 0: batch decisions forbidden for medium-impact events"]
    for other in (_event(name="purge", impact="low"), _event(name="purge"),
                  _event(name="other", impact="medium")):
        assert tighten(other.policy, other.assignees, rules, other) == (other.policy, [], [])
    # a workflow's own forbid_batch stays whatever the file says
    kept, _, _ = tighten(Policy(forbid_batch=True), [], rules, _event(name="purge", impact="low"))
    assert kept is not None and kept.forbid_batch
    with pytest.raises(ValidationError, match="forbid_batch_impacts"):
        PolicyFileRule(forbid_batch_impacts=["huge"])
