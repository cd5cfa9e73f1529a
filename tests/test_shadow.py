"""Shadow-mode routing rules (issue 21), pure: never routed on, their verdict, agreement, and
the policy file accepting only shadow rules."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from signoff import Decision, Outcome, PolicyFileRule, Rule
from signoff._policy import route, tighten
from signoff._shadow import agreed, shadow_of
from signoff.store.contract import make_event

T = datetime(2026, 1, 1, tzinfo=timezone.utc)
SHADOW = Rule(when="confidence >= 0.9", then="approve", mode="shadow")


def _decided(event: object, outcome: Outcome, value: object, by: str = "ann") -> object:
    return event.model_copy(update={"decision": Decision(  # type: ignore[attr-defined]
        value=value, outcome=outcome, by=by, channel="policy" if by == "policy" else "api",
        at=T)})


def test_a_shadow_rule_is_skipped_by_routing_and_tried_alone() -> None:
    event = make_event(confidence=0.95, policy={"route": [SHADOW]})
    assert route(event).action == "review"
    verdict = shadow_of(event)
    assert verdict is not None and (verdict.outcome, verdict.value) == ("approve", True)
    assert shadow_of(make_event(confidence=0.5, policy={"route": [SHADOW]})) is None
    assert shadow_of(make_event(confidence=0.95)) is None


def test_an_approval_with_nothing_to_give_is_a_review_verdict() -> None:
    event = make_event(confidence=0.95, input={"kind": "text"}, policy={"route": [SHADOW]})
    verdict = shadow_of(event)
    assert verdict is not None and verdict.outcome == "review"
    assert verdict.rule == "route[0]: confidence >= 0.9 -> approve (no recommendation to approve)"


def test_agreement_by_verdict_and_decision() -> None:
    event = make_event(confidence=0.95, policy={"route": [SHADOW]})
    shadowed = event.model_copy(update={"shadow": shadow_of(event)})
    assert agreed(_decided(shadowed, Outcome.approved, True)) is True
    assert agreed(_decided(shadowed, Outcome.rejected, False)) is False
    assert agreed(_decided(shadowed, Outcome.expired, None)) is None  # no judgement
    assert agreed(shadowed) is None  # not decided yet
    block = Rule(when="confidence >= 0.9", then="block", mode="shadow")
    blocked = make_event(confidence=0.95, policy={"route": [block]})
    blocked = blocked.model_copy(update={"shadow": shadow_of(blocked)})
    assert agreed(_decided(blocked, Outcome.rejected, False)) is True
    answer = make_event(confidence=0.95, input={"kind": "text"}, recommendation="eu",
                        policy={"route": [SHADOW]})
    answer = answer.model_copy(update={"shadow": shadow_of(answer)})
    assert agreed(_decided(answer, Outcome.answered, "eu")) is True
    assert agreed(_decided(answer, Outcome.answered, "us")) is False


def test_the_policy_file_takes_only_shadow_rules_and_keeps_them() -> None:
    with pytest.raises(ValidationError, match="mode = 'shadow'"):
        PolicyFileRule.model_validate({"route": [{"when": "confidence > 0.5",
                                                  "then": "approve"}]})
    rule = PolicyFileRule.model_validate({"forbid_auto_approve": True, "route": [
        {"when": "confidence > 0.5", "then": "approve", "mode": "shadow"}]})
    event = make_event(confidence=0.9, policy={"route": [
        SHADOW, Rule(when="confidence > 0.8", then="approve")]})
    policy, _, notes = tighten(event.policy, [], [rule], event)
    assert policy is not None
    assert [(r.when, r.mode) for r in policy.route] == [
        ("confidence >= 0.9", "shadow"), ("confidence > 0.5", "shadow")]
    assert "policy file rule 0: 1 shadow rule(s) added" in notes
