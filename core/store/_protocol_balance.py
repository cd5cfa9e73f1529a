"""The part of the :class:`~signoff.store.Store` protocol load balancing needs (issue 21): give a
group's event to one member, once across replicas, and count each member's queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from .._model import Event

__all__ = ["Assignment", "BalancePlan", "BalanceStore"]


@dataclass(frozen=True)
class Assignment:
    """One giving of a balanced event to a member (``turn`` 0 at creation, then one per
    re-assignment).
    """

    event_id: str
    turn: int
    group: str
    member: str
    strategy: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class BalancePlan:
    """Whom an event may be given to, worked out by the hub before the store write that
    chooses: the group, its members in turn order, the strategy, the members who may not be
    chosen now (the requester, the away, those who answered or were tried) and why (the
    ``assigned`` audit entry's reason).
    """

    group: str
    members: tuple[str, ...]
    strategy: str
    exclude: tuple[str, ...]
    reason: str


class BalanceStore(Protocol):
    """Balanced assignment (see :mod:`signoff.store._sql_balance`)."""

    def assign_member(self, event_id: str, *, group: str, members: Sequence[str],
                      strategy: str, exclude: Sequence[str] = (), previous: str | None = None,
                      reason: str, at: datetime) -> Event | None:
        """Give a pending event to one of ``members`` not in ``exclude``, chosen by
        ``strategy`` (``round_robin``: the group's next turn; ``least_pending``: fewest pending
        events given to them, ties by turn), in one write: the turn claimed, the member made
        an assignee (in place of ``previous`` where balancing added them), the assignment and
        an ``assigned`` audit entry written.

        Returns the event as stored now, or ``None`` when nothing was written: the event is no
        longer pending, its member is no longer ``previous`` (another replica got there), or
        every member is excluded.
        """

    def assignments(self, event_id: str) -> list[Assignment]:
        """An event's assignments, in order."""

    def pending_by_member(self, members: Sequence[str]) -> dict[str, int]:
        """How many pending events are given to each of ``members`` (zeros included)."""
