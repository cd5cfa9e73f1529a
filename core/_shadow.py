"""Policy shadow mode (issue 21): a routing rule tried in production without acting.

A :class:`~signoff.Rule` with ``mode="shadow"`` (in a workflow's policy, or added by the hub's
policy file) is skipped by :func:`~signoff._policy.route`. At creation the hub routes the event
by its shadow rules alone, the first matching one wins, and keeps the result on the event
(:class:`Shadow`: the rule, what it would have done, the value it would have given) and in the
audit log (``shadow``). Once the event is decided, :func:`agreed` says whether what was decided
agrees with it; ``signoff export`` shows the three columns and ``/metrics`` counts
``signoff_shadow_total{rule, agreed}``.

Agreement, by what the rule would have done:

- ``approve``: the decision approved (or, for an input other than approve/reject, answered
  with the same value the rule would have given);
- ``block``: the decision rejected;
- ``review``: a person (or a decider) decided, not a policy.

A timeout, an expiry or a cancel is no judgement to compare with: :func:`agreed` is ``None``.

Pure functions without I/O.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from ._policy import Policy, Rule, route

__all__ = ["Shadow", "agreed", "shadow_of"]


class Shadow(BaseModel):
    """What an event's shadow rules would have decided at its creation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: str = Field(description="The shadow rule that matched: 'route[i]: when -> then'.")
    outcome: Literal["approve", "block", "review"] = Field(
        description="What it would have done.")
    value: JsonValue = Field(default=None,
                             description="The value it would have approved with, if any.")


def shadow_of(event: Any) -> Shadow | None:
    """Route ``event`` by its shadow rules alone; ``None`` when it has none or none matches."""
    policy: Policy | None = event.policy
    if policy is None or not any(r.mode == "shadow" for r in policy.route):
        return None
    for index, rule in enumerate(policy.route):
        if rule.mode != "shadow":
            continue
        tried = Policy(route=[Rule(when=rule.when, then=rule.then)])
        routed = route(event.model_copy(update={"policy": tried}))
        if routed.rule is None:  # its condition does not hold
            continue
        # route's label for a rule at [0], and what it adds (" (no recommendation ...)")
        said = f"{rule.when} -> {rule.then}"
        label = f"route[{index}]: {said}{routed.rule[len('route[0]: ') + len(said):]}"
        return Shadow(rule=label, outcome=routed.action, value=routed.value)
    return None


def agreed(event: Any) -> bool | None:
    """Whether the event's decision agrees with its shadow verdict (see the module docstring);
    ``None`` when it has no verdict, is not decided, or ended without a judgement.
    """
    shadow: Shadow | None = event.shadow
    decision = event.decision
    if shadow is None or decision is None:
        return None
    outcome = decision.outcome.value
    if outcome in ("cancelled", "expired", "timed_out"):
        return None
    if shadow.outcome == "approve":
        if event.input.kind == "approval":
            return bool(outcome == "approved")
        return bool(outcome == "answered" and decision.value == shadow.value)
    if shadow.outcome == "block":
        return bool(outcome == "rejected")
    return bool(decision.by != "policy")
