"""Delegation and out of office (issue 21): a reviewer's events also go to a delegate for a while.

A delegation names a delegator (a user), a delegate (a user or ``group:NAME``) and a period.
An event created in that period with the delegator among its assignees gets the delegate as
an assignee too, and its audit trail says so (``delegated``: who, to whom, which delegation).
The delegate then answers in their own name, under every rule an answer meets.

What no delegation can do:

- gain self-approval: a delegate who requested the event is not added (the audit says it was
  refused), and the requester's own answer stays refused where the policy forbids it;
- bypass a quorum: the delegate answers once, as themselves, however many delegations they
  hold for the event (a quorum counts distinct responders); delegations do not chain (a
  delegate's own delegation does not pass the event on), so nobody collects votes by relay;
- delegate to oneself, or to a period already over, or longer than ``MAX_DAYS``.

The delegations in force are read from the store at most every ``_FRESH`` seconds per hub
process (creating an event costs no extra read); a change made on this hub counts at once, one
made on another replica within ``_FRESH`` seconds.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .._errors import Forbidden, InvalidInput, NotFound
from .._ids import new_id
from .._limits import MAX_ASSIGNEES
from .._model import _ASSIGNEE, Event
from .._rules import Identity
from ..store import AuditNote, Delegation

if TYPE_CHECKING:
    from .service import Hub

__all__ = ["MAX_DAYS", "Delegations", "delegated"]

MAX_DAYS = 366
"""The longest a delegation may last."""
MAX_OPEN = 20
"""Delegations one reviewer may have not yet over at once."""
_FRESH = 2.0


def delegated(event: Event, now: datetime,
              delegations: list[Delegation]) -> tuple[list[str], list[AuditNote]]:
    """The event's assignees with the delegates in force added, and the audit entries saying so
    (one ``delegated`` per delegate added, one ``delegation_refused`` per delegate left out).
    """
    assignees = list(event.assignees)
    notes: list[AuditNote] = []
    for d in delegations:
        if not d.active(now) or d.delegator not in event.assignees:  # one hop: no chains
            continue
        data: dict[str, Any] = {"delegation": d.id, "from": d.delegator, "to": d.delegate,
                                "until": d.ends_at.isoformat()}
        if d.delegate == event.requested_by:
            notes.append(("delegation_refused", "hub", {
                **data, "reason": f"{d.delegate} requested this event, and no delegation may "
                                  "give a requester their own event to answer"}))
        elif d.delegate in event.assignees:
            continue  # assigned in its own right
        elif d.delegate in assignees:  # by another delegation: it holds this one too
            notes.append(("delegated", "hub", {**data, "already_delegate": True}))
        elif len(assignees) >= MAX_ASSIGNEES:
            notes.append(("delegation_refused", "hub", {
                **data, "reason": f"the event has the most assignees allowed ({MAX_ASSIGNEES})"}))
        else:
            assignees.append(d.delegate)
            notes.append(("delegated", "hub", data))
    return assignees, notes


class Delegations:
    """The delegations of one hub: made, listed and ended through it, applied to new events."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._current: tuple[float, list[Delegation]] | None = None

    async def current(self, now: datetime) -> list[Delegation]:
        """The delegations not over at ``now`` (cached ``_FRESH`` seconds)."""
        cached = self._current
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        found = await self.hub._run(self.hub.store.delegations, current_at=now)
        self._current = (time.monotonic() + _FRESH, found)
        return found

    async def apply(self, event: Event) -> tuple[Event, list[AuditNote]]:
        """The event with its delegates added (unchanged when none is in force)."""
        if not event.assignees:
            return event, []
        in_force = await self.current(event.created_at)
        if not in_force:
            return event, []
        assignees, notes = delegated(event, event.created_at, in_force)
        if assignees == event.assignees:
            return event, notes
        return event.model_copy(update={"assignees": assignees}), notes

    async def create(self, who: Identity, delegate: str, ends_at: datetime, *,
                     starts_at: datetime | None = None, delegator: str | None = None,
                     reason: str | None = None, channel: str = "api") -> Delegation:
        """Delegate ``delegator``'s events (the caller's own; an admin may name another).

        Raises:
            Forbidden: a workflow, or a reviewer delegating for someone else.
            InvalidInput: naming the field: a delegate that is not a user or group, oneself,
                a period over, reversed or too long, too many open delegations.
        """
        if who.role == "workflow":
            raise Forbidden("workflow tokens create events; delegating needs a reviewer token")
        owner = delegator or who.user
        if owner != who.user and who.role != "admin":
            raise Forbidden(f"{who.user} may delegate only their own events, not {owner}'s")
        if not _ASSIGNEE.fullmatch(owner) or owner.startswith("group:"):
            raise InvalidInput("delegator", "a user name", owner)
        if not _ASSIGNEE.fullmatch(delegate):
            raise InvalidInput("delegate", "a user name or 'group:NAME'", delegate)
        if delegate == owner:
            raise InvalidInput("delegate", "someone other than the delegator", delegate)
        now = self.hub.clock()
        starts = starts_at or now
        if ends_at <= max(starts, now):
            raise InvalidInput("until", "a moment after the start and in the future",
                               ends_at.isoformat())
        if ends_at - starts > timedelta(days=MAX_DAYS):
            raise InvalidInput("until", f"at most {MAX_DAYS} days after the start",
                               ends_at.isoformat())
        if reason is not None and len(reason) > 500:
            raise InvalidInput("reason", "at most 500 characters", f"{len(reason)} characters")
        made = Delegation(id=new_id("dl"), delegator=owner, delegate=delegate, starts_at=starts,
                          ends_at=ends_at, reason=reason, created_by=who.user, created_at=now,
                          ended_at=None)
        stored = await self.hub._write(self.hub.store.create_delegation, made, channel=channel,
                                       max_active=MAX_OPEN)
        self._current = None
        if stored.active(now):  # away from now: their balanced events go to another member
            await self.hub.balancer.member_away(owner)
        return stored

    async def list(self, who: Identity, *, current: bool = True) -> list[Delegation]:
        """The caller's own delegations and those to them (admins: everyone's)."""
        at = self.hub.clock() if current else None
        found = await self.hub._run(self.hub.store.delegations, current_at=at)
        if who.role == "admin":
            return found
        return [d for d in found if d.delegator == who.user or d.delegate in who.principals]

    async def end(self, who: Identity, delegation_id: str, channel: str = "api") -> Delegation:
        """End a delegation now (its delegator, or an admin).

        Raises:
            NotFound: no such delegation (or not the caller's to see).
        """
        if who.role != "admin":
            mine = await self.hub._run(self.hub.store.delegations, delegator=who.user,
                                       limit=10_000)
            if all(d.id != delegation_id for d in mine):
                raise NotFound(f"no delegation {delegation_id} of {who.user}")
        ended = await self.hub._write(self.hub.store.end_delegation, delegation_id,
                                      at=self.hub.clock(), actor=who.user, channel=channel)
        self._current = None
        return ended
