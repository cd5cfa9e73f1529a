"""Policies: routing by confidence × impact, quorum (four-eyes), escalation tiers, fallbacks.

A workflow passes a :class:`Policy` with its event; the hub's policy file (platform-owned
:class:`PolicyFileRule` entries) may tighten it, never loosen it (:func:`tighten`). The pure
functions here decide; the hub only stores and schedules:

- :func:`route` runs once at creation: auto-approve, block, or leave for review.
- :func:`settle` runs on every response: has the quorum been reached, or a rejection decided?
- escalation tiers are scheduled by the hub's sweeper from ``Tier.after``.
"""

from __future__ import annotations

import fnmatch
import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ._expr import check_condition, evaluate
from ._inputs import validate_value
from ._limits import (
    MAX_ASSIGNEES,
    MAX_CONDITION_LENGTH,
    MAX_DURATION,
    MAX_NOTIFY,
    MAX_RULES,
    MAX_TIERS,
    Flag,
    Integer,
    from_store,
)

__all__ = ["Policy", "PolicyFile", "PolicyFileRule", "RelayPolicy", "Route", "Rule", "Tier",
           "relay_refusal", "route", "settle", "tighten"]

Impact = Literal["low", "medium", "high", "critical"]
Balance = Literal["round_robin", "least_pending"]
"""How a balanced group event picks its one member (:mod:`signoff.hub.balance`)."""

CHANNEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A notification channel's name (``[notify_channels] NAME = [...]`` in the hub's settings)."""


def _channel_name(name: str) -> str:
    if not CHANNEL_NAME.fullmatch(name):
        raise ValueError("expected the name of a notification channel configured in the hub "
                         "(notify_channels: 1-64 letters, digits, _ . -), not a URL")
    return name


ChannelName = Annotated[str, AfterValidator(_channel_name)]
"""A notification channel, by name: events and policies never carry notification URLs."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Rule(_Frozen):
    """Route an event at creation when ``when`` holds (see :mod:`signoff._expr`)."""

    when: str = Field(
        max_length=MAX_CONDITION_LENGTH,
        description="A condition, e.g. \"confidence >= 0.95 and impact == 'low'\".")
    then: Literal["approve", "block", "review"]
    mode: Literal["enforce", "shadow"] = Field(
        default="enforce", description="'shadow': evaluated and recorded beside what was "
                                       "decided, never acted on (see signoff._shadow).")

    @field_validator("when")
    @classmethod
    def _valid(cls, when: str, info: ValidationInfo) -> str:
        return when if from_store(info) else check_condition(when)


class Tier(_Frozen):
    """An escalation step, ``after`` the event's creation."""

    after: timedelta = Field(
        description="Time since creation (seconds or an ISO 8601 duration), at most a year.")
    assignees: list[Annotated[str, StringConstraints(max_length=200)]] = Field(
        default_factory=list, max_length=MAX_ASSIGNEES)
    keep_previous: Flag = Field(default=True, description="Keep the earlier assignees too.")
    fallback: str | None = Field(
        default=None, description="A decider decides at this tier ('auto': the hub's default).")
    notify: list[ChannelName] = Field(
        default_factory=list, max_length=MAX_NOTIFY,
        description="Notification channels (by name) told of the step.")

    @field_validator("after", mode="before")
    @classmethod
    def _not_a_flag(cls, after: Any) -> Any:
        if isinstance(after, bool):  # lax mode would read true as 1 second
            raise ValueError("after must be seconds or an ISO 8601 duration, not true/false")
        return after

    @field_validator("after")
    @classmethod
    def _positive(cls, after: timedelta, info: ValidationInfo) -> timedelta:
        if after.total_seconds() <= 0:
            raise ValueError("after must be positive")
        if after.total_seconds() > MAX_DURATION and not from_store(info):
            raise ValueError(f"after must be at most {MAX_DURATION:.0f} seconds (a year)")
        return after


class Policy(_Frozen):
    """The rules one event is handled by."""

    route: list[Rule] = Field(default_factory=list, max_length=MAX_RULES,
                              description="First matching rule wins.")
    quorum: Integer = Field(default=1, ge=1, le=20, description="Distinct approvals needed.")
    forbid_self_approval: Flag = False
    rejection_rejects: Flag = Field(
        default=True, description="One rejection rejects; if false, it takes `quorum` of them.")
    escalate: list[Tier] = Field(default_factory=list, max_length=MAX_TIERS)
    on_timeout: Literal["default", "reject", "fail"] | None = None
    automation_counts: Flag = Field(
        default=False, description="A decider's approval may count towards a quorum above 1.")
    notify: list[ChannelName] = Field(
        default_factory=list, max_length=MAX_NOTIFY,
        description="Notification channels (by name) for this event.")
    forbid_batch: Flag = Field(
        default=False, description="Never decided in a batch from the inbox: each reviewer "
                                   "decides it on its own page.")
    balance: Balance | None = Field(
        default=None, description="Give the event's group to one member (the hub's "
                                  "group_members): 'round_robin' or 'least_pending'.")

    @model_validator(mode="after")
    def _tiers_in_order(self) -> Policy:
        afters = [t.after for t in self.escalate]
        if afters != sorted(afters) or len(set(afters)) != len(afters):
            raise ValueError("escalate: tiers must come in increasing order of `after`")
        if any(t.fallback for t in self.escalate[:-1]):
            raise ValueError("escalate: only the last tier may hand over to a fallback")
        return self


class Route(_Frozen):
    """What routing decided at creation."""

    action: Literal["approve", "block", "review"]
    rule: str | None = None
    value: Any = None


def facts_of(event: Any) -> dict[str, Any]:
    """The names a condition can read, taken from an event (or an event being created)."""
    return {
        "confidence": event.confidence, "impact": event.impact,
        "recommendation": event.recommendation, "name": event.name,
        "priority": event.priority.value, "kind": event.input.kind,
        "requested_by": getattr(event, "requested_by", None), "labels": dict(event.labels),
        "source": event.source.model_dump(include={"orchestrator", "run", "step"}),
    }


def route(event: Any) -> Route:
    """Apply the first matching rule. An auto-approval needs a value: ``true`` for an approval,
    else the recommendation (checked against the input); without one the event goes to review.
    """
    policy: Policy | None = event.policy
    if policy is None:
        return Route(action="review")
    facts = facts_of(event)
    for index, rule in enumerate(policy.route):
        if rule.mode == "shadow" or not evaluate(rule.when, facts):
            continue  # a shadow rule never acts: signoff._shadow records what it would do
        label = f"route[{index}]: {rule.when} -> {rule.then}"
        if rule.then == "approve":
            if event.input.kind == "approval":
                return Route(action="approve", rule=label, value=True)
            if event.recommendation is None:
                return Route(action="review", rule=f"{label} (no recommendation to approve)")
            try:
                value = validate_value(event.input, event.recommendation, field="recommendation")
            except Exception:
                return Route(action="review", rule=f"{label} (recommendation does not fit)")
            return Route(action="approve", rule=label, value=value)
        return Route(action=rule.then, rule=label)
    return Route(action="review")


class RelayPolicy(_Frozen):
    """What unverified answers relayed from an engine's own UI or CLI may do (hub-wide).

    Signoff cannot tell who pressed "resume" in an engine (or whether it was the workflow
    itself), so by default such an answer decides only what one unknown person may decide.
    """

    counts_toward_quorum: bool = Field(
        default=False, description="An unverified relayed approval counts towards a quorum "
                                   "above one.")
    satisfies_four_eyes: bool = Field(
        default=False, description="An unverified relayed answer is accepted on an event whose "
                                   "policy forbids self-approval.")
    refused_impacts: list[Impact] = Field(
        default_factory=lambda: list[Impact](["high", "critical"]),
        description="Impacts at which an unverified relayed answer is refused.")


def relay_refusal(event: Any, relays: RelayPolicy) -> str | None:
    """Why an unverified relayed answer to ``event`` is refused, or ``None`` to accept it."""
    if event.impact is not None and event.impact in relays.refused_impacts:
        return (f"an unverified answer relayed from {event.source.orchestrator} is refused for "
                f"a {event.impact}-impact event; answer it in the signoff inbox")
    policy: Policy | None = event.policy
    if policy is not None and policy.forbid_self_approval and not relays.satisfies_four_eyes:
        return (f"the policy forbids self-approval, and an unverified answer relayed from "
                f"{event.source.orchestrator} cannot show it comes from someone other than the "
                f"requester; answer it in the signoff inbox")
    return None


def settle(kind: str, policy: Policy | None, responses: list[Any], *,
           requester: str | None = None,
           relays: RelayPolicy | None = None) -> tuple[Any, str | None] | None:
    """Whether the responses so far decide the event: ``(value, rule)`` or ``None``.

    Only approvals have a quorum; any other kind is decided by its first valid answer.
    Whatever the channel, an approval counts towards a quorum above one only when it comes from
    a distinct responder who is not the ``requester`` (when the policy forbids self-approval),
    not from an automated decider (channel ``fallback`` or ``decider:NAME``) unless the policy
    allows it, and not unverified (relayed from an engine) unless ``relays`` allows it.
    """
    if not responses:
        return None
    if kind != "approval" or policy is None or policy.quorum == 1:
        return responses[-1].value, None
    relays = relays or RelayPolicy()

    def counts(r: Any) -> bool:
        if policy.forbid_self_approval and requester is not None and r.by == requester:
            return False
        if not policy.automation_counts and (r.channel == "fallback"
                                             or r.channel.startswith("decider:")):
            return False
        return relays.counts_toward_quorum or getattr(r, "verified", True)

    approvers = {r.by for r in responses if r.value is True and counts(r)}
    rejecters = {r.by for r in responses if r.value is False}
    if rejecters and policy.rejection_rejects:
        return False, "a rejection rejects"
    if len(rejecters) >= policy.quorum:
        return False, f"quorum of {policy.quorum} rejections"
    if len(approvers) >= policy.quorum:
        return True, f"quorum of {policy.quorum} approvals: {', '.join(sorted(approvers))}"
    return None


class PolicyMatch(_Frozen):
    """Which events a policy-file rule applies to (all given parts must match)."""

    labels: dict[str, str] = Field(default_factory=dict)
    orchestrator: str | None = None
    name: str | None = Field(default=None, description="A glob, e.g. 'refund-*'.")


class PolicyFileRule(_Frozen):
    """A platform rule from the hub's policy file. Every field can only tighten."""

    match: PolicyMatch = Field(default_factory=PolicyMatch)
    quorum: Integer | None = Field(default=None, ge=1, le=20)
    forbid_self_approval: Literal[True] | None = None
    forbid_auto_approve: Literal[True] | None = None
    add_assignees: list[str] = Field(default_factory=list)
    notify: list[ChannelName] = Field(default_factory=list)
    forbid_batch_impacts: list[Impact] = Field(
        default_factory=list, description="Matching events of these impact levels are never "
                                          "decided in a batch (policy.forbid_batch).")
    balance: Balance | None = Field(
        default=None, description="Balance matching events whose policy does not say.")
    route: list[Rule] = Field(
        default_factory=list, max_length=MAX_RULES,
        description="Routing rules in shadow mode, appended to the event's: recorded, never "
                    "acted on.")

    @field_validator("forbid_self_approval", "forbid_auto_approve", mode="before")
    @classmethod
    def _only_true(cls, value: Any) -> Any:
        if value is False:
            raise ValueError("a policy file can only tighten: this may only be true")
        return value

    @field_validator("route")
    @classmethod
    def _only_shadow(cls, rules: list[Rule]) -> list[Rule]:
        for index, rule in enumerate(rules):
            if rule.mode != "shadow":
                raise ValueError(f"route.{index}: a policy file can only tighten, so its "
                                 f"routing rules need mode = 'shadow', got {rule.mode!r}")
        return rules

    def matches(self, event: Any) -> bool:
        """Whether this rule applies to ``event``."""
        m = self.match
        if any(event.labels.get(k) != v for k, v in m.labels.items()):
            return False
        if m.orchestrator is not None and event.source.orchestrator != m.orchestrator:
            return False
        return m.name is None or fnmatch.fnmatchcase(event.name, m.name)


class PolicyFile(_Frozen):
    """The hub's policy file: ``[[policies]]`` tables in ``signoff.toml``."""

    policies: list[PolicyFileRule] = Field(default_factory=list)


def tighten(policy: Policy | None, assignees: list[str], rules: list[PolicyFileRule],
            event: Any) -> tuple[Policy | None, list[str], list[str]]:
    """Apply the matching policy-file rules; returns (policy, assignees, notes for the audit).

    The workflow's policy is kept wherever it is already stricter: a lower quorum in the file
    does not lower the workflow's, and nothing here can turn a prohibition off.
    """
    notes: list[str] = []
    matching = [(i, r) for i, r in enumerate(rules) if r.matches(event)]
    if not matching:
        return policy, assignees, notes
    current = policy or Policy()
    update: dict[str, Any] = {}
    new_assignees = list(assignees)
    for index, rule in matching:
        where = f"policy file rule {index}"
        if rule.quorum is not None:
            if rule.quorum > update.get("quorum", current.quorum):
                update["quorum"] = rule.quorum
                notes.append(f"{where}: quorum raised to {rule.quorum}")
            elif rule.quorum < current.quorum:
                notes.append(f"{where}: quorum {rule.quorum} would loosen the workflow's "
                             f"{current.quorum}; kept {current.quorum}")
        if rule.forbid_self_approval and not current.forbid_self_approval:
            update["forbid_self_approval"] = True
            notes.append(f"{where}: self-approval forbidden")
        if rule.forbid_auto_approve:
            kept = [r for r in update.get("route", current.route)
                    if r.then != "approve" or r.mode == "shadow"]  # a shadow never acts
            if len(kept) != len(update.get("route", current.route)):
                notes.append(f"{where}: auto-approval rules removed")
            update["route"] = kept
        for who in rule.add_assignees:
            if who not in new_assignees:
                new_assignees.append(who)
                notes.append(f"{where}: {who} added to the assignees")
        if rule.notify:
            update["notify"] = [*update.get("notify", current.notify), *rule.notify]
        if rule.balance is not None and update.get("balance", current.balance) is None:
            update["balance"] = rule.balance
            notes.append(f"{where}: balanced {rule.balance}")
        if rule.route:
            have = update.get("route", current.route)
            room = rule.route[:max(MAX_RULES - len(have), 0)]
            update["route"] = [*have, *room]
            notes.append(f"{where}: {len(room)} shadow rule(s) added")
        impact = getattr(event, "impact", None)
        if impact is not None and impact in rule.forbid_batch_impacts \
                and not update.get("forbid_batch", current.forbid_batch):
            update["forbid_batch"] = True
            notes.append(f"{where}: batch decisions forbidden for {impact}-impact events")
    tightened = current.model_copy(update=update) if update else policy
    return tightened, new_assignees, notes


def escalation_due(created_at: datetime, policy: Policy | None, level: int) -> datetime | None:
    """When tier ``level`` (0-based) falls due, or ``None`` when no tier is left."""
    if policy is None or level >= len(policy.escalate):
        return None
    return created_at + policy.escalate[level].after
