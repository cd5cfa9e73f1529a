"""Policy replay (issue 21): what a candidate routing policy would have done to recorded events.

A candidate file holds ``[[route]]`` tables: a condition (``when``, the language of
:class:`signoff.Rule`), what it does (``then``: approve, block, review) and optionally which
events it is for (``match``: labels, orchestrator, a name glob). Each recorded event that a
person decided is routed by the first rule that matches it, as the hub would have at its
creation; the report counts, per rule, the events it would have approved or blocked, and of
those, how many the humans decided otherwise: an approval a person rejected (or answered with
another value) is a would-be false approval, a block a person approved a would-be false block.

Pure functions without I/O; ``signoff policy replay`` reads the events through the hub's API.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from ._channels import channel_kind
from ._model import Event, Outcome
from ._policy import Policy, PolicyMatch, Rule, _Frozen, route

__all__ = ["Candidate", "CandidateRule", "ReplayReport", "RuleTally", "replay"]


class CandidateRule(Rule):
    """A routing rule to try, for the events ``match`` selects."""

    match: PolicyMatch = Field(default_factory=PolicyMatch)


class Candidate(_Frozen):
    """A candidate policy file: ``[[route]]`` tables, tried in order."""

    route: list[CandidateRule] = Field(default_factory=list, max_length=100)


@dataclass
class RuleTally:
    """What one rule would have done."""

    rule: str
    matched: int = 0
    approved: int = 0
    blocked: int = 0
    false_approvals: int = 0
    """Would have approved; a person rejected it or gave another value."""
    false_blocks: int = 0
    """Would have blocked; a person approved it."""
    examples: list[str] = field(default_factory=list)
    """Ids of a few events where it would have gone against the person (at most five)."""


@dataclass
class ReplayReport:
    """The replay of a candidate on recorded events."""

    events: int = 0
    """Events a person decided, that the candidate was tried on."""
    skipped: int = 0
    """Decided events not decided by a person (policy, timeout, decider, cancel): not tried."""
    rules: list[RuleTally] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {"events": self.events, "skipped": self.skipped,
                "rules": [t.__dict__ for t in self.rules]}


def _by_a_person(event: Event) -> bool:
    d = event.decision
    return (d is not None and d.outcome not in (Outcome.cancelled, Outcome.timed_out,
                                                Outcome.expired)
            and channel_kind(d.channel) in ("human", "engine"))


def replay(candidate: Candidate, events: list[Event]) -> ReplayReport:
    """Route each person-decided event by the candidate and compare with what was decided."""
    report = ReplayReport(rules=[RuleTally(f"route[{i}]: {r.when} -> {r.then}")
                                 for i, r in enumerate(candidate.route)])
    for event in events:
        if not _by_a_person(event):
            report.skipped += 1
            continue
        report.events += 1
        for index, rule in enumerate(candidate.route):
            m = rule.match
            if any(event.labels.get(k) != v for k, v in m.labels.items()) or (
                    m.orchestrator is not None and event.source.orchestrator != m.orchestrator):
                continue
            if m.name is not None and not fnmatch.fnmatchcase(event.name, m.name):
                continue
            routed = route(event.model_copy(update={"policy": Policy(route=[
                Rule(when=rule.when, then=rule.then)])}))
            if routed.rule is None:  # the condition is false for this event
                continue
            _count(report.rules[index], routed.action, routed.value, event)
            break
    return report


def _count(tally: RuleTally, action: str, value: Any, event: Event) -> None:
    assert event.decision is not None
    tally.matched += 1
    decided = event.decision
    against = False
    if action == "approve":
        tally.approved += 1
        if decided.outcome != Outcome.approved and (event.input.kind == "approval"
                                                    or decided.value != value):
            tally.false_approvals += 1
            against = True
    elif action == "block":
        tally.blocked += 1
        if decided.outcome in (Outcome.approved, Outcome.answered):
            tally.false_blocks += 1
            against = True
    if against and len(tally.examples) < 5:
        tally.examples.append(event.id)
