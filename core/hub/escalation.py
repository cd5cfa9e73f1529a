"""Escalation tiers: at each tier's time the event gains the tier's assignees, or, at the last
tier, is handed to an automated decider. Called by the hub's sweeper.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from .._errors import InvalidInput
from .._inputs import validate_value
from .._model import Event, Response
from ..deciders import DeciderFailed

if TYPE_CHECKING:
    from .service import Hub

__all__ = ["escalate"]


async def escalate(hub: Hub, event: Event) -> None:
    """Apply the event's next escalation tier."""
    assert event.policy is not None
    level = event.escalation_level
    tier = event.policy.escalate[level]
    label = f"escalate[{level}]"
    if tier.fallback is None:
        assignees = list(dict.fromkeys(
            [*(event.assignees if tier.keep_previous else []), *tier.assignees]))
        moved = await hub._write(hub.store.escalate, event.id, level=level,
                                 assignees=assignees,
                                 data={"rule": label, "added": tier.assignees,
                                       "kept_previous": tier.keep_previous})
        hub._notify(moved, "escalated", tier.notify)
        return
    name = hub.settings.default_decider if tier.fallback == "auto" else tier.fallback
    try:
        if name is None:
            raise DeciderFailed("fallback 'auto' needs default_decider in the hub's settings")
        verdict = await hub.ask_decider(name, event)  # bounded, timed out, off the sweep
        value = validate_value(event.input, verdict.value)
    except (DeciderFailed, InvalidInput) as exc:
        # The humans can still answer and the deadline still applies; the tier is spent.
        await hub._write(hub.store.escalate, event.id, level=level, assignees=event.assignees,
                         data={"rule": label, "fallback": name, "error": str(exc)})
        return
    response = Response(id=f"rs_{uuid.uuid4().hex}", event_id=event.id, by=name, value=value,
                        comment=verdict.comment, channel="fallback", at=hub.clock())
    answered = await hub._add_response(event, response, rule=f"{label}: fallback {name}")
    if answered.status == "pending":  # its vote alone could not decide (a human quorum)
        await hub._write(hub.store.escalate, event.id, level=level, assignees=event.assignees,
                         data={"rule": label, "fallback": name,
                               "note": "the decider's approval does not count towards the quorum"})
