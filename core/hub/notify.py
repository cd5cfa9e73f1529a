"""Notifications through apprise (Slack, e-mail, Teams, webhooks, ...).

Every URL comes from the hub's settings, never from an event: the event's policy
(``policy.notify``) and its escalation tiers (``Tier.notify``) name channels defined in
``notify_channels``, and ``notify`` maps an assignee such as ``group:ops`` (or ``*`` for every
event) to apprise URLs. A channel name the settings no longer define is skipped and recorded.
Links point at the event's page on the hub, which asks for a signed-in POST before anything
changes: mail scanners that prefetch links act on nothing. A failure is recorded as the
exception's class, never with what the remote answered.

apprise is imported, and its plugins loaded, once, in a worker thread started with the hub
(:meth:`Notifier.load`); a send waits for that off the loop, then runs apprise's synchronous
``notify`` (DNS, connect, plugin code) in a worker thread of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import anyio
from anyio import to_thread

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
        self._apprise: asyncio.Future[Any] | None = None

    def load(self) -> asyncio.Future[Any]:
        """Import apprise and load its plugins in a worker thread (once); the future resolves
        to the module, or to ``None`` when apprise is not installed.
        """
        if self._apprise is None:
            self._apprise = asyncio.ensure_future(to_thread.run_sync(_load_apprise))
        return self._apprise

    def configured(self) -> bool:
        """Whether the settings name any apprise URL (else apprise is never loaded)."""
        return any(self.settings.notify.values()) or any(self.settings.notify_channels.values())

    def channels(self, event: Event, extra: list[str] | None = None) -> list[str]:
        """The channel names this notification goes to (the policy's, then the tier's)."""
        return list(dict.fromkeys([*(event.policy.notify if event.policy else []),
                                   *(extra or [])]))

    def targets(self, event: Event, extra: list[str] | None = None) -> list[str]:
        """The apprise URLs for this event, all from the hub's settings."""
        urls: list[str] = []
        for name in self.channels(event, extra):
            urls += self.settings.notify_channels.get(name, [])
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

    async def send(self, event: Event, what: str, extra: list[str] | None = None,
                   limiter: anyio.CapacityLimiter | None = None) -> dict[str, Any]:
        """Notify; returns what the audit log records (targets count, success).

        The send runs in a worker thread taken from ``limiter`` (the notifications' own bound).
        """
        urls = self.targets(event, extra)
        unknown = [n for n in self.channels(event, extra) if n not in self.settings.notify_channels]
        result: dict[str, Any] = {"what": what, "targets": len(urls), "ok": True}
        if unknown:
            result.update(ok=False, error=f"no notification channel {', '.join(unknown)} in "
                                          "the hub's notify_channels")
        if not urls:
            return result
        module = await asyncio.shield(self.load())
        if module is None:
            return {**result, "ok": False,
                    "error": "apprise is not installed: pip install 'signoff[hub]'"}
        title, body = self.message(event, what)
        ok = await to_thread.run_sync(_send, module, urls, title, body, event.id,
                                      limiter=limiter, abandon_on_cancel=True)
        if not ok:
            result.update(ok=False, error=result.get("error") or "a target refused or failed")
        return result


def _load_apprise() -> Any:
    """apprise, imported with its plugins loaded (seconds, the first time): a worker thread."""
    began = time.monotonic()
    try:
        import apprise
    except ImportError:
        log.warning("notifications are off: apprise is not installed (pip install "
                    "'signoff[hub]')")
        return None
    apprise.Apprise().add("json://localhost/")  # loads the plugin table
    log.info("notifications ready: apprise %s loaded in %.2f s", apprise.__version__,
             time.monotonic() - began)
    return apprise


def _send(module: Any, urls: list[str], title: str, body: str, event_id: str) -> bool:
    """One notification to every target, in a worker thread (apprise's calls block)."""
    sender = module.Apprise()
    for url in urls:
        if not sender.add(url):
            log.warning("notify: apprise refused a URL for event %s", event_id)
    return bool(sender.notify(title=title, body=body))
