"""Notifications through apprise (Slack, e-mail, Teams, webhooks, ...).

Targets come from the event's policy (``policy.notify``), the escalation tier
(``Tier.notify``), and the hub's settings (``notify`` maps an assignee such as ``group:ops``,
or ``*`` for every event, to apprise URLs). Links point at the event's page on the hub, which
asks for a signed-in POST before anything changes: mail scanners that prefetch links act on
nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from .._model import Event
from .settings import Settings

__all__ = ["Notifier"]

log = logging.getLogger("signoff.hub.notify")

_TITLES = {
    "created": "waits for you",
    "escalated": "escalated to you",
    "decided": "decided",
    "deadline": "deadline passed",
}


class Notifier:
    """Sends one message per notification to every target that applies."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def targets(self, event: Event, extra: list[str] | None = None) -> list[str]:
        """The apprise URLs for this event."""
        urls: list[str] = [*(event.policy.notify if event.policy else []), *(extra or [])]
        for who in ("*", *event.assignees):
            urls += self.settings.notify.get(who, [])
        return list(dict.fromkeys(urls))

    def message(self, event: Event, what: str) -> tuple[str, str]:
        """Title and body, in plain text."""
        title = f"[signoff] {event.name} {_TITLES.get(what, what)}"
        lines = [event.prompt, "", f"priority: {event.priority.value}"]
        if event.deadline is not None:
            lines.append(f"deadline: {event.deadline:%Y-%m-%d %H:%M} UTC")
        if event.decision is not None:
            lines.append(f"decision: {event.decision.outcome.value} by {event.decision.by}")
        lines.append(f"open: {self.settings.base_url}/events/{event.id}")
        return title, "\n".join(lines)

    async def send(self, event: Event, what: str, extra: list[str] | None = None) -> dict[str, Any]:
        """Notify; returns what the audit log records (targets count, success)."""
        urls = self.targets(event, extra)
        if not urls:
            return {"what": what, "targets": 0, "ok": True}
        try:
            import apprise
        except ImportError:
            return {"what": what, "targets": len(urls), "ok": False,
                    "error": "apprise is not installed: pip install 'signoff[hub]'"}
        sender = apprise.Apprise()
        for url in urls:
            if not sender.add(url):
                log.warning("notify: apprise refused a URL for event %s", event.id)
        title, body = self.message(event, what)
        ok = bool(await sender.async_notify(title=title, body=body))
        return {"what": what, "targets": len(urls), "ok": ok}
