"""Reminders before an event's SLA or deadline (issue 21), sent once across replicas and restarts.

``reminders = [0.5, 0.9]`` in the settings: at half and at nine tenths of an event's time (from
its creation to its deadline, else to its priority's ``sla``), the assignees who have not
answered yet get a reminder through their own notification targets (``notify`` keyed by them:
a user's, or a group's), with their one-click links where the event is an approval. Anyone else
(``"*"``, named channels) is not reminded.

The schedule lives in the store (``events.reminded``, ``events.next_reminder``; see
:mod:`signoff.store._sql_reviewers`): each look of the sweeper starts one pass as its own task,
which plans the events not planned yet and claims the steps due. A claim is an insert keyed by
(event, step), so of several replicas exactly one sends; a hub that was down sends only the last
step that fell due meanwhile, not every one it missed.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from .balance import balanced_group
from .metrics import sla_deadline

if TYPE_CHECKING:
    from .service import Hub

__all__ = ["remind"]

log = logging.getLogger("signoff.hub")

_PAGE = 200
"""Events one pass looks at, at most (the rest: the next look of the sweeper)."""


async def remind(hub: Hub, now: datetime) -> int:
    """Plan and send the reminders due by ``now``; returns how many were sent."""
    offsets = hub.settings.reminders
    steps = len(offsets)
    if not steps:
        return 0
    sent = 0
    for event, done in await hub._run(hub.store.reminder_candidates, now, steps, _PAGE):
        end = sla_deadline(hub.settings, event)
        if end is None or end <= event.created_at:  # no time to measure against
            await hub._write(hub.store.plan_reminder, event.id, reminded=steps, at=None)
            continue
        window = end - event.created_at
        due = [event.created_at + window * offset for offset in offsets]
        passed = [i for i in range(done, steps) if due[i] <= now]
        if not passed:
            await hub._write(hub.store.plan_reminder, event.id, reminded=done, at=due[done])
            continue
        step = passed[-1]
        answered = {r.by for r in event.responses}
        balanced = balanced_group(hub.settings, event)  # its one member is reminded instead
        to = [who for who in event.assignees if who not in answered and who != balanced]
        claimed = await hub._write(
            hub.store.claim_reminder, event.id, step=step, at=now,
            next_at=due[step + 1] if step + 1 < steps else None,
            data={"offset": offsets[step], "to": to})
        if claimed and to:
            hub.notify(event, "reminder", only=to, step=step)
            sent += 1
    return sent
