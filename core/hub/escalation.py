"""Escalation tiers: at each tier's time the event gains the tier's assignees, or, at the last
tier, is handed to an automated decider. Called by the hub's sweeper.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from .._errors import InvalidInput
from .._ids import new_id
from .._inputs import validate_value
from .._model import Event, Response
from ..deciders import DeciderFailed, Verdict

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["EscalatingHub", "escalate"]


class EscalatingHub(Protocol):
    """What escalation needs from the hub: its public operations, nothing private."""

    settings: Settings
    clock: Callable[[], datetime]

    async def record_escalation(self, event: Event, level: int, assignees: list[str],
                                data: dict[str, Any]) -> Event:
        """Record that the event passed tier ``level``, now assigned to ``assignees``."""

    def notify(self, event: Event, what: str, extra: list[str] | None = None) -> None:
        """Send the event's notifications in the background."""

    async def add_system_response(self, event: Event, response: Response,
                                  rule: str) -> Event:
        """Add a decider's response; it decides the event when the quorum says so."""

    async def ask_decider(self, name: str, event: Event) -> Verdict:
        """The verdict of decider ``name`` on ``event``: bounded, timed out, off the sweep."""


async def escalate(hub: EscalatingHub, event: Event) -> None:
    """Apply the event's next escalation tier."""
    assert event.policy is not None
    level = event.escalation_level
    tier = event.policy.escalate[level]
    label = f"escalate[{level}]"
    if tier.fallback is None:
        assignees = list(dict.fromkeys(
            [*(event.assignees if tier.keep_previous else []), *tier.assignees]))
        moved = await hub.record_escalation(event, level, assignees,
                                            {"rule": label, "added": tier.assignees,
                                             "kept_previous": tier.keep_previous})
        hub.notify(moved, "escalated", tier.notify)
        return
    name = hub.settings.default_decider if tier.fallback == "auto" else tier.fallback
    try:
        if name is None:
            raise DeciderFailed("fallback 'auto' needs default_decider in the hub's settings")
        verdict = await hub.ask_decider(name, event)  # bounded, timed out, off the sweep
        try:
            value = validate_value(event.input, verdict.value)
        except InvalidInput as exc:  # what it expected, not the answer it got
            raise DeciderFailed(f"decider {name}: its value does not fit the input "
                                f"({exc.field}: expected {exc.expected})") from exc
    except DeciderFailed as exc:
        # The humans can still answer and the deadline still applies; the tier is spent.
        await hub.record_escalation(event, level, event.assignees,
                                    {"rule": label, "fallback": name, "error": str(exc)})
        return
    response = Response(id=new_id("rs"), event_id=event.id, by=name, value=value,
                        comment=verdict.comment, channel="fallback", at=hub.clock())
    answered = await hub.add_system_response(event, response, rule=f"{label}: fallback {name}")
    if answered.status == "pending":  # its vote alone could not decide (a human quorum)
        await hub.record_escalation(
            event, level, event.assignees,
            {"rule": label, "fallback": name,
             "note": "the decider's approval does not count towards the quorum"})
