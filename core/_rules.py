"""Who may do what, and how a response, a timeout or a cancel becomes a decision.

Pure functions without I/O: the hub calls them, adapters use :func:`result_of` to turn a
decision into a value or an exception, and tests call them directly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ._channels import channel_kind
from ._errors import Cancelled, Expired, InvalidInput, Rejected
from ._inputs import validate_value
from ._model import Decision, Event, Outcome

__all__ = [
    "Identity",
    "Role",
    "can_answer",
    "can_cancel",
    "can_read",
    "cancel_decision",
    "proposal_of",
    "response_decision",
    "result_of",
    "timeout_decision",
]

Role = Literal["workflow", "reviewer", "admin"]


class Identity(BaseModel):
    """An authenticated caller: a user name, its groups and its role."""

    model_config = ConfigDict(frozen=True)

    user: str
    groups: tuple[str, ...] = Field(default=())
    role: Role = "reviewer"

    @property
    def principals(self) -> set[str]:
        """The names an assignee list can match: the user and ``group:NAME`` for each group."""
        return {self.user, *(f"group:{g}" for g in self.groups)}


def is_assigned(identity: Identity, event: Event) -> bool:
    """True when the event is unassigned or assigned to the user or one of their groups."""
    return not event.assignees or bool(identity.principals.intersection(event.assignees))


def can_read(identity: Identity, event: Event) -> bool:
    """Admins read everything, workflows their own events, reviewers what they may answer."""
    if identity.role == "admin":
        return True
    if identity.role == "workflow":
        return event.requested_by == identity.user
    return is_assigned(identity, event)


def can_answer(identity: Identity, event: Event, channel: str = "api") -> bool:
    """Admins answer everything; reviewers what is assigned to them or unassigned.

    A workflow may record an answer to its own event only when it relays one given in its
    orchestrator's own UI or CLI: on the engine channel its event's ``source.orchestrator``
    names (see :mod:`signoff._channels`). Such an answer is never recorded in the workflow's
    name.
    """
    if identity.role == "admin":
        return True
    if identity.role == "workflow":
        return (event.requested_by == identity.user and channel_kind(channel) == "engine"
                and channel == event.source.orchestrator)
    return identity.role == "reviewer" and is_assigned(identity, event)


def can_cancel(identity: Identity, event: Event) -> bool:
    """Admins cancel everything; a workflow cancels its own events."""
    if identity.role == "admin":
        return True
    return identity.role == "workflow" and event.requested_by == identity.user


def response_decision(
    event: Event, value: Any, by: str, comment: str | None, channel: str, at: datetime, *,
    relayed_from: str | None = None, verified: bool = True,
) -> Decision:
    """The decision one accepted response makes (``value`` already validated)."""
    if event.input.kind == "approval":
        outcome = Outcome.approved if value else Outcome.rejected
    else:
        outcome = Outcome.answered
    proposal = proposal_of(event)
    return Decision(value=value, outcome=outcome, by=by, comment=comment, channel=channel, at=at,
                    relayed_from=relayed_from, verified=verified, proposal=proposal,
                    amended=proposal is not None and value != proposal)


def proposal_of(event: Event) -> Any:
    """The value the workflow proposes for the reviewer to approve as is or amend, or ``None``.

    It is the event's ``recommendation`` when the input asks for a value (text, a number, a
    choice, a form: not approve/reject) and the recommendation is a valid answer to it; the
    reviewer's form starts from it, and the decision keeps it beside the answer.
    """
    if event.input.kind == "approval" or event.recommendation is None:
        return None
    try:
        return validate_value(event.input, event.recommendation, field="recommendation")
    except InvalidInput:
        return None


def timeout_decision(event: Event, at: datetime) -> Decision:
    """The decision the deadline makes, by the event's ``on_timeout``."""
    reason = "deadline passed"
    if event.on_timeout == "default":
        default: Any = event.input.default
        return Decision(
            value=default, outcome=Outcome.timed_out, by="timeout",
            comment=f"{reason}: the default was used", channel="sweeper", at=at,
        )
    if event.on_timeout == "reject":
        value = False if event.input.kind == "approval" else None
        return Decision(
            value=value, outcome=Outcome.rejected, by="timeout",
            comment=f"{reason}: rejected", channel="sweeper", at=at,
        )
    return Decision(
        value=None, outcome=Outcome.expired, by="timeout",
        comment=f"{reason}: the step fails", channel="sweeper", at=at,
    )


def cancel_decision(by: str, comment: str | None, channel: str, at: datetime) -> Decision:
    """The decision a cancel makes."""
    return Decision(
        value=None, outcome=Outcome.cancelled, by=by, comment=comment, channel=channel, at=at
    )


def result_of(decision: Decision, *, approval: bool = False) -> Any:
    """What a workflow step continues with: the value, or the matching exception.

    With ``approval=True`` a rejection (by a person, policy or timeout) is ``False`` rather than
    an exception, so ``if approve(...)`` reads naturally; expiry and cancel still raise.

    Raises:
        Rejected: the event was rejected (only when ``approval`` is false).
        Expired: the deadline passed and ``on_timeout`` is ``fail``.
        Cancelled: the event was cancelled.
    """
    outcome = decision.outcome
    who = f"by {decision.by}" + (f": {decision.comment}" if decision.comment else "")
    if outcome == Outcome.rejected:
        if approval:
            return False
        raise Rejected(f"rejected {who}", decision)
    if outcome == Outcome.expired:
        raise Expired(f"no answer before the deadline ({who})", decision)
    if outcome == Outcome.cancelled:
        raise Cancelled(f"cancelled {who}", decision)
    return decision.value
