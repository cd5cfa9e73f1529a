"""Load balancing (issue 21): an event assigned to a group is given to one of its members.

``policy.balance`` (the workflow's, or set by a ``[[policies]]`` rule of the hub's policy file)
names the strategy; the hub's ``group_members`` names who may be chosen, in turn order:

```toml
[group_members]
ops = ["alice", "bob", "carol"]
```

The first ``group:NAME`` among the event's assignees with configured members is balanced:

- ``round_robin``: the group's next turn (a counter in the store, shared by every replica);
- ``least_pending``: the member with the fewest pending events given to them, ties broken by
  the turn.

The chosen member becomes an assignee (``Event.assignee`` names them) and is the one notified
and reminded: the group's own notification target is left out for that event. The group stays
assigned, so every member still sees the event in their inbox and may answer it, as a reviewer
team expects when a colleague is busy; and every rule an answer meets still holds: the
requester is never chosen (nor answers where the policy forbids self-approval), and a quorum
still counts distinct people.

A member who is away (a delegation of theirs in force, :mod:`.delegation`) is not chosen, and
when a delegation in force from the moment it is made is created, the pending events given to
its delegator are given to other members (one that starts later moves nothing: it spares
them the events created from its start). When an
escalation tier passes and the member has not answered, the event is given to the next member
not tried yet (all tried: anyone but the current one). Each giving is an ``assigned`` audit
entry naming the group, the strategy, the member, the one before and why; the choice is made
in the store's write transaction (:mod:`signoff.store._sql_balance`), never in memory. At
creation that is the insert's own transaction: an event is never stored without the member it
was to be given to (the database lost between the two would leave it ungiven for good, as
nothing gives an event a first member later).

``signoff_reviewer_pending{reviewer}`` is each configured member's queue: their pending
events given to them by balancing (bounded: only configured members are labels).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .._model import Event
from ..store import BalancePlan
from .logs import state_change

if TYPE_CHECKING:
    from ..store import Store
    from .service import Hub
    from .settings import Settings

__all__ = ["Balancer", "Plan", "balanced_group"]

log = logging.getLogger("signoff.hub")


Plan = BalancePlan
"""Whom an event may be given to, worked out before the store write that chooses."""


def _group(settings: Settings, event: Event) -> str | None:
    """The group of ``event`` that balancing applies to: its first with configured members."""
    if event.policy is None or event.policy.balance is None:
        return None
    for who in event.assignees:
        if who.startswith("group:") and settings.group_members.get(who[6:]):
            return who[6:]
    return None


def balanced_group(settings: Settings, event: Event) -> str | None:
    """``group:NAME`` when the event is given to one of that group's members: its notification
    target and reminders are left out for this event (the member gets them instead).
    """
    name = _group(settings, event)
    if name is None or event.assignee not in settings.group_members[name]:
        return None
    return f"group:{name}"


class Balancer:
    """Balanced assignment for one hub: plans before creation, re-assigns after a tier or when
    a member goes away.
    """

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.settings = hub.settings
        if hub.metrics is not None and self.settings.group_members:
            hub.metrics.registry.register(ReviewerQueues(self.settings, hub.store))

    async def _away(self) -> set[str]:
        now = self.hub.clock()
        return {d.delegator for d in await self.hub.delegations.current(now) if d.active(now)}

    async def plan(self, event: Event, reason: str = "created",
                   tried: tuple[str, ...] = ()) -> Plan | None:
        """Whom ``event`` may be given to now (``None``: it is not balanced)."""
        group = _group(self.settings, event)
        if group is None or event.status != "pending":
            return None
        assert event.policy is not None and event.policy.balance is not None
        members = tuple(self.settings.group_members[group])
        unable = {event.requested_by, *await self._away(), *(r.by for r in event.responses)}
        exclude = {*unable, *tried}
        if all(m in exclude for m in members):  # every one tried: anyone able but the current
            exclude = {*unable, *([event.assignee] if event.assignee else [])}
        return Plan(group, members, event.policy.balance,
                    tuple(m for m in members if m in exclude), reason)

    def assign(self, event: Event, plan: Plan) -> Event:
        """Give ``event`` to a member in the store (a store job: call it in the writer)."""
        given = self.hub.store.assign_member(
            event.id, group=plan.group, members=plan.members, strategy=plan.strategy,
            exclude=plan.exclude, previous=event.assignee, reason=plan.reason,
            at=self.hub.clock())
        self.logged(event if given is None else given, plan, given is not None)
        return event if given is None else given

    @staticmethod
    def logged(event: Event, plan: Plan, given: bool) -> None:
        """Log a giving: to whom (``event`` as stored after it), or that no member could be
        chosen.
        """
        if not given:
            log.info("event %s of group:%s was not given to a member (%s): every member is "
                     "away, the requester, or answered", event.id, plan.group, plan.reason)
            return
        state_change("assigned", event, member=event.assignee, group=plan.group,
                     strategy=plan.strategy, reason=plan.reason)

    async def reassign(self, event: Event, reason: str) -> Event:
        """Give a pending balanced event to another member than its current one."""
        if event.assignee is None or event.status != "pending":
            return event
        history = await self.hub._run(self.hub.store.assignments, event.id)
        tried = tuple(dict.fromkeys([*(a.member for a in history), event.assignee]))
        plan = await self.plan(event, reason, tried)
        if plan is None or event.assignee in {r.by for r in event.responses}:
            return event  # not balanced any more, or the member did answer
        return await self.hub._write(self.assign, event, plan)

    async def after_tier(self, event: Event, level: int) -> Event:
        """A tier passed unanswered by the member: the event goes to the next one."""
        return await self.reassign(event, f"escalate[{level}] passed unanswered")

    async def member_away(self, member: str) -> int:
        """Give the pending events given to ``member`` to others (a delegation of theirs
        started); returns how many moved.
        """
        moved = 0
        page = await self.hub._run(self.hub.store.list_events, status="pending",
                                   assignee=member, limit=500)
        for event in page.events:
            if event.assignee == member:
                after = await self.reassign(event, f"{member} is away")
                moved += after.assignee != member
        return moved


class ReviewerQueues(Collector):
    """``signoff_reviewer_pending{reviewer}``, read from the store at each scrape."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.members = list(dict.fromkeys(m for ms in settings.group_members.values()
                                          for m in ms))
        self.store = store

    def describe(self) -> list[Any]:
        return []  # collected only at scrape time: registering must not query the store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "signoff_reviewer_pending", "Pending events given to each configured group member "
            "by load balancing (the same on every replica).", labels=["reviewer"])
        for member, count in self.store.pending_by_member(self.members).items():
            gauge.add_metric([member], float(count))
        yield gauge
