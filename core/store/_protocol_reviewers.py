"""The part of the :class:`~signoff.store.Store` protocol reviewers at work need (issue 21):
one-click answer links spent, and reminders sent once. Kept apart so ``_protocol`` stays short.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from .._model import Event
from .._rules import Identity

__all__ = ["Delegation", "ReviewerStore"]


@dataclass(frozen=True)
class Delegation:
    """A reviewer's events created between ``starts_at`` and ``ends_at`` also go to
    ``delegate`` (a user or ``group:NAME``), unless it was ended early (``ended_at``).
    """

    id: str
    delegator: str
    delegate: str
    starts_at: datetime
    ends_at: datetime
    reason: str | None
    created_by: str
    created_at: datetime
    ended_at: datetime | None

    def active(self, now: datetime) -> bool:
        """Whether it applies to an event created at ``now``."""
        return self.ended_at is None and self.starts_at <= now < self.ends_at


class ReviewerStore(Protocol):
    """Answer links and reminders (see :mod:`signoff.store._sql_reviewers`)."""

    def spend_answer_link(self, link_id: str, *, event_id: str, recipient: str,
                          at: datetime) -> bool:
        """Record the use of a one-click link; ``False`` when it was used before."""

    def answer_link_used(self, link_id: str) -> bool:
        """Whether a one-click link was used already."""

    def user_active(self, user: str) -> bool:
        """Whether ``user`` holds an active reviewer or admin token."""

    def active_identity(self, user: str) -> Identity | None:
        """``user`` as a reviewer with their active tokens' groups; ``None`` without one."""

    def first_sight(self, request_id: str, *, at: datetime, keep: float) -> bool:
        """Record a signed request; ``False`` when it was seen before (a replay)."""

    def reminder_candidates(self, now: datetime, steps: int,
                            limit: int = 100) -> list[tuple[Event, int]]:
        """Pending events whose next reminder is due by ``now`` or not planned yet, each with
        the reminder steps it has had.
        """

    def plan_reminder(self, event_id: str, *, reminded: int, at: datetime | None) -> None:
        """Set an event's reminder steps done and when its next falls due (``None``: none)."""

    def claim_reminder(self, event_id: str, *, step: int, at: datetime,
                       next_at: datetime | None, data: dict[str, Any]) -> bool:
        """Take one reminder step for sending, once across replicas; ``False`` if taken."""

    def reminders_sent(self, event_id: str) -> list[int]:
        """The reminder steps recorded for an event."""

    def create_delegation(self, delegation: Delegation, *, channel: str,
                          max_active: int) -> Delegation:
        """Store a delegation and audit it (``delegation.created``).

        Raises:
            InvalidInput: its delegator has ``max_active`` delegations not yet over.
        """

    def delegations(self, *, delegator: str | None = None, current_at: datetime | None = None,
                    limit: int = 500) -> list[Delegation]:
        """Delegations, newest first: one delegator's, or those not over at ``current_at``."""

    def end_delegation(self, delegation_id: str, *, at: datetime, actor: str,
                       channel: str) -> Delegation:
        """End a delegation now (its ``ended_at``) and audit it; ending it again changes nothing.

        Raises:
            NotFound: no such delegation.
        """
