"""The deadline sweeper: escalation tiers and ``on_timeout`` decisions, each when it falls due.

:class:`Sweeper` reads its schedule from the store, so a restarted hub catches up. Each due
tier is taken with a lease (:meth:`~signoff.store.Store.claim_escalations`), so no later look,
here or on another replica, starts it again while it is in hand (and a hub that stops gives
back the tiers it had not applied); each tier and timeout runs as its own task (a decider
taking seconds delays no other event), at most ``_SWEEP_WRITES`` writes in flight.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from .._errors import AlreadyDecided
from .._model import Event
from .._rules import timeout_decision
from ..store import TakenTier
from .escalation import escalate
from .reminders import remind
from .tasks import Leases, on_schedule

if TYPE_CHECKING:
    from .service import Hub

__all__ = ["Sweeper"]

_SWEEP_PAGE = 500
"""Due events one look of the sweeper takes at most (a burst beyond it: the next look)."""

_SWEEP_WRITES = 128
"""Tier and timeout writes of the sweeper in flight at most: a burst of due events queues here,
not in the store's writer, where it would hold up everyone's answers."""
log = logging.getLogger("signoff.hub")


class Sweeper:
    """The hub's deadline loop (see the module docstring)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.wake = asyncio.Event()
        self.more = False  # the last look saw a full page: more may be due
        self.taken: Leases[tuple[TakenTier, Event]] = Leases()
        """Tiers this hub took and has not applied: what a stop gives back."""

    async def sweep(self, now: datetime | None = None) -> int:
        """Start the tiers and ``on_timeout`` decisions due by ``now``, each as its own task;
        returns how many were started. Nothing here waits for them: a decider taking seconds
        delays no other event's tier or deadline.
        """
        now = self.hub.clock() if now is None else now
        page = _SWEEP_PAGE
        started = 0
        # each due tier is taken with a lease (a decider's time, twice, and a margin), so no
        # later look, here or on another replica, reads or starts it again while in hand
        lease = 2 * self.hub.settings.decider_timeout + 30
        leased_until = now + timedelta(seconds=lease)

        def claim() -> list[tuple[TakenTier, Event]]:
            return [(TakenTier(event.id, event.escalation_level, leased_until), event)
                    for event in self.hub.store.claim_escalations(now, page, lease)]

        # held by event and tier: taken again after its lease ran out (its first attempt still
        # running here), the newer lease is the one a stop gives back
        escalations = await self.taken.take(
            self.hub._run, claim, key=lambda pair: (pair[0].event_id, pair[0].level))
        for _, event in escalations:
            assert event.policy is not None
            more = len(event.policy.escalate) > event.escalation_level + 1
            started += self.hub.work.start(("escalate", event.id, event.escalation_level),
                                       partial(self._escalate, event),
                                       # its next tier may fall due before the sweeper wakes
                                       done=self.wake.set if more else self._again)
        busy = self.hub.work.count("timeout")
        due = await self.hub._run(self.hub.store.due_events, now, page + busy)
        for event in due:
            started += self.hub.work.start(("timeout", event.id),
                                       partial(self._time_out, event, now),
                                       done=self._again)
        self.more = len(escalations) >= page or len(due) >= page + busy
        if self.hub.settings.reminders:  # issue 21: one pass at a time, in its own task
            self.hub.work.start(("remind",), partial(self._remind, now))
        return started

    async def _remind(self, now: datetime) -> None:
        try:
            await remind(self.hub, now)
        except Exception:
            log.exception("reminder pass failed; the next sweep tries again")

    async def _escalate(self, event: Event) -> None:
        assert event.policy is not None
        # cancelled by a stop: given back
        async with self.taken.working_on((event.id, event.escalation_level)):
            try:
                if event.policy.escalate[event.escalation_level].fallback is not None:
                    await escalate(self.hub, event)  # the decider's own limiter bounds it
                    return
                async with self.hub.work.slot("sweep", _SWEEP_WRITES):
                    await escalate(self.hub, event)
            except AlreadyDecided:
                pass  # answered or escalated meanwhile

    async def give_back(self) -> None:
        """Give back the tiers taken and not applied when the stop cancelled them (or the wait
        for the claim itself), so that a hub (this one restarted, or another replica) applies
        them at once, not when their lease ends.
        """
        await self.taken.give_back(
            lambda taken: self.hub._write(self.hub.store.release_escalations,
                                          [tier for tier, _ in taken], self.hub.clock()),
            "escalation tier(s)")

    async def _time_out(self, event: Event, now: datetime) -> None:
        try:
            async with self.hub.work.slot("sweep", _SWEEP_WRITES):
                await self.hub._decide(event, timeout_decision(event, now), None)
        except AlreadyDecided:
            pass  # a racing answer won: that is fine

    def _again(self) -> None:
        # the last look saw a full page, so more may be due: look again once half of what it
        # started is done (not after each one: a look costs a query and a page of events)
        in_flight = self.hub.work.count("escalate") + self.hub.work.count("timeout")
        if self.more and in_flight <= _SWEEP_PAGE // 2:
            self.wake.set()

    async def loop(self) -> None:
        """Sweep what is due, then sleep until the next deadline or tier, or until woken."""
        await on_schedule("deadline sweep", self._sweep_due, wake=self.wake,
                          clock=self.hub.clock, interval=self.hub.settings.sweep_interval)

    async def _sweep_due(self, now: datetime) -> datetime | None:
        await self.sweep(now)
        # what was due by ``now`` is started or in flight: the next is after it (not after the
        # clock's time now, which may have passed a deadline unswept)
        times = [await self.hub._run(self.hub.store.next_deadline, now),
                 await self.hub._run(self.hub.store.next_escalation, now)]
        return min((t for t in times if t is not None), default=None)
