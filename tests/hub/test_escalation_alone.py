"""Escalation read and tested on its own: it needs only the hub's public operations
(:class:`signoff.hub.escalation.EscalatingHub`), so a plain stub stands in for the hub here.
The end-to-end behaviour stays covered by tests/hub/test_policies.py against a real hub.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

from signoff import Event, Policy, Response, Tier
from signoff.hub.escalation import EscalatingHub, escalate
from signoff.hub.settings import Settings
from signoff.store.contract import make_event

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


class StubHub:
    """Records what escalation asks of the hub; has no private parts to reach into."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.calls: list[tuple[str, Any]] = []

    def clock(self) -> datetime:
        return NOW

    async def record_escalation(self, event: Event, level: int, assignees: list[str],
                                data: dict[str, Any]) -> Event:
        self.calls.append(("escalation", (level, assignees, data)))
        return event.model_copy(update={"assignees": assignees, "escalation_level": level + 1})

    def notify(self, event: Event, what: str, extra: list[str] | None = None) -> None:
        self.calls.append(("notify", (what, event.assignees, extra)))

    async def add_system_response(self, event: Event, response: Response, rule: str) -> Event:
        self.calls.append(("response", (response.by, response.value, response.channel, rule)))
        return event


def _event(*tiers: Tier) -> Event:
    return make_event(assignees=["rita"], policy=Policy(escalate=list(tiers)))


def test_a_tier_adds_its_assignees_and_notifies() -> None:
    hub = StubHub()
    stub: EscalatingHub = hub  # the stub satisfies the protocol: nothing private is needed
    tier = Tier(after=timedelta(hours=2), assignees=["group:managers"], notify=["ops"])
    asyncio.run(escalate(stub, _event(tier)))
    assert hub.calls == [
        ("escalation", (0, ["rita", "group:managers"],
                        {"rule": "escalate[0]", "added": ["group:managers"],
                         "kept_previous": True})),
        ("notify", ("escalated", ["rita", "group:managers"], ["ops"])),
    ]


def test_a_fallback_without_a_decider_spends_the_tier_and_says_why() -> None:
    hub = StubHub()
    asyncio.run(escalate(hub, _event(Tier(after=timedelta(hours=1), fallback="auto"))))
    [(what, (level, assignees, data))] = hub.calls
    assert (what, level, assignees) == ("escalation", 0, ["rita"])
    assert data["fallback"] is None and "default_decider" in data["error"]
