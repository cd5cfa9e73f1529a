"""Notifications through apprise (Slack, e-mail, Teams, webhooks, ...).

Every URL comes from the hub's settings, never from an event: the event's policy
(``policy.notify``) and its escalation tiers (``Tier.notify``) name channels defined in
``notify_channels``, and ``notify`` maps an assignee such as ``group:ops`` (or ``*`` for every
event) to apprise URLs. A channel name the settings no longer define is skipped and recorded.
Links point at the event's page on the hub, which asks for a signed-in POST before anything
changes: mail scanners that prefetch links act on nothing. A message to a reviewer's own targets
(``notify`` keyed by a user named in the event's assignees) about a pending approval also
carries that reviewer's signed one-click links (:mod:`.links`), whose confirm page answers only
on its POST. An event a balanced group gave to one member (:mod:`.balance`) goes to that member's
targets, not to the group's. Reminders go to the targets of the assignees named, and nowhere else. A failure is recorded as the
exception's class, never with what the remote answered.

apprise runs in sender processes of its own (:mod:`._senders`), started with the hub when a
notification URL is configured (:meth:`Notifier.load`: each imports apprise and loads its
plugins once): a send is all Python (URL parsing, plugin code, HTTP through requests), and a
thousand of them in the hub's own threads would take the GIL from the event loop and the
store's writer. A send waits for the senders off the loop; at most ``notify_concurrency`` are
in flight, on as many processes (at most :data:`MAX_SENDERS`).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from typing import Any

import anyio
from anyio import to_thread

from .._model import Event
from . import _senders
from .balance import balanced_group
from .links import LinkSigner
from .settings import Settings

__all__ = ["MAX_SENDERS", "Notifier"]

MAX_SENDERS = 4  # sender processes, whatever notify_concurrency says (each holds apprise)

log = logging.getLogger("signoff.hub.notify")

_TITLES = {
    "created": "waits for you",
    "escalated": "escalated to you",
    "decided": "decided",
    "deadline": "deadline passed",
    "reminder": "still waits for you",
}
_WITH_LINKS = ("created", "escalated", "reminder")


class Notifier:
    """Sends one message per notification to every target that applies."""

    def __init__(self, settings: Settings, links: LinkSigner | None = None) -> None:
        self.settings = settings
        self.links = links
        self._apprise: asyncio.Future[ProcessPoolExecutor | None] | None = None
        self._pool: ProcessPoolExecutor | None = None

    def load(self) -> asyncio.Future[ProcessPoolExecutor | None]:
        """Start the sender processes (once; each imports apprise and loads its plugins); the
        future resolves to the pool, or to ``None`` when apprise is not installed.
        """
        if self._apprise is None:
            self._apprise = asyncio.ensure_future(self._start())
        return self._apprise

    async def _start(self) -> ProcessPoolExecutor | None:
        began = time.monotonic()
        count = max(1, min(self.settings.notify_concurrency, MAX_SENDERS))
        # "spawn": the hub has threads, and a forked copy of them is not safe
        self._pool = ProcessPoolExecutor(count, multiprocessing.get_context("spawn"),
                                         initializer=_senders.prepare)
        # the first submit starts the processes (a fork and exec each): a worker thread
        first = await to_thread.run_sync(self._pool.submit, _senders.ready)
        version = await asyncio.wrap_future(first)
        if version is None:
            log.warning("notifications are off: apprise is not installed (pip install "
                        "'signoff[hub]')")
            await self.aclose()
            return None
        log.info("notifications ready: apprise %s in %d sender process%s, started in %.2f s",
                 version, count, "" if count == 1 else "es", time.monotonic() - began)
        return self._pool

    async def aclose(self) -> None:
        """Stop the sender processes (a send in flight is abandoned)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await to_thread.run_sync(lambda: pool.shutdown(wait=True, cancel_futures=True))

    def configured(self) -> bool:
        """Whether the settings name any apprise URL (else apprise is never loaded)."""
        return any(self.settings.notify.values()) or any(self.settings.notify_channels.values())

    def channels(self, event: Event, extra: list[str] | None = None) -> list[str]:
        """The channel names this notification goes to (the policy's, then the tier's)."""
        return list(dict.fromkeys([*(event.policy.notify if event.policy else []),
                                   *(extra or [])]))

    def targets(self, event: Event, extra: list[str] | None = None,
                only: list[str] | None = None) -> list[str]:
        """The apprise URLs for this event, all from the hub's settings (with ``only``: the
        targets of those assignees alone, as for a reminder).
        """
        return [url for _, urls in self.groups(event, extra, only) for url in urls]

    def groups(self, event: Event, extra: list[str] | None = None,
               only: list[str] | None = None) -> list[tuple[str | None, list[str]]]:
        """The targets, by the reviewer whose own they are (``None``: shared ones, such as a
        group's or a named channel's). Each URL appears once, under its reviewer if it has one.
        """
        notify = self.settings.notify
        people = [who for who in (event.assignees if only is None else only)
                  if who in notify and who != "*" and not who.startswith("group:")]
        taken: set[str] = set()
        grouped: list[tuple[str | None, list[str]]] = []
        for who in people:
            own = [u for u in dict.fromkeys(notify[who]) if u not in taken]
            taken.update(own)
            if own:
                grouped.append((who, own))
        shared: list[str] = []
        if only is None:
            for name in self.channels(event, extra):
                shared += self.settings.notify_channels.get(name, [])
            shared += notify.get("*", [])
        balanced = balanced_group(self.settings, event)  # its member is told instead
        shared += [url for who in (event.assignees if only is None else only)
                   if who.startswith("group:") and who != balanced
                   for url in notify.get(who, [])]
        shared = [u for u in dict.fromkeys(shared) if u not in taken]
        if shared:
            grouped.append((None, shared))
        return grouped

    def message(self, event: Event, what: str, recipient: str | None = None,
                now: datetime | None = None) -> tuple[str, str]:
        """Title and body, in plain text; to one reviewer about a pending approval, with their
        signed one-click links.
        """
        title = f"[signoff] {event.name} {_TITLES.get(what, what)}"
        lines = [event.prompt, "", f"priority: {event.priority.value}"]
        if event.deadline is not None:
            lines.append(f"deadline: {event.deadline:%Y-%m-%d %H:%M} UTC")
        if event.decision is not None:
            lines.append(f"decision: {event.decision.outcome.value} by {event.decision.by}")
        lines.append(f"open: {self.settings.base_url}/events/{event.id}")
        if (recipient is not None and self.links is not None and now is not None
                and what in _WITH_LINKS and event.status == "pending"
                and event.input.kind == "approval"):
            lines += ["", f"one-click answers for {recipient} (each opens a page to confirm):",
                      f"approve: {self.links.url(event, recipient, 'approve', now)}",
                      f"reject: {self.links.url(event, recipient, 'reject', now)}"]
        return title, "\n".join(lines)

    async def send(self, event: Event, what: str, extra: list[str] | None = None, *,
                   limiter: anyio.CapacityLimiter,
                   only: list[str] | None = None,
                   now: datetime | None = None) -> dict[str, Any]:
        """Notify; returns what the audit log records (targets count, success).

        The send runs in a sender process, holding a token of ``limiter`` (the notifications'
        own bound) until it is done or abandoned.
        """
        grouped = self.groups(event, extra, only)
        count = sum(len(urls) for _, urls in grouped)
        unknown = ([] if only is not None else
                   [n for n in self.channels(event, extra) if n not in self.settings.notify_channels])
        result: dict[str, Any] = {"what": what, "targets": count, "ok": True}
        if only is not None:
            result["to"] = only
        if unknown:
            result.update(ok=False, error=f"no notification channel {', '.join(unknown)} in "
                                          "the hub's notify_channels")
        if not count:
            return result
        pool = await asyncio.shield(self.load())
        if pool is None:
            return {**result, "ok": False,
                    "error": "apprise is not installed: pip install 'signoff[hub]'"}
        messages = [(urls, *self.message(event, what, who, now)) for who, urls in grouped]
        async with limiter:
            # cancelled (the timeout), a queued send is dropped; a running one is abandoned
            ok, refused = await asyncio.wrap_future(pool.submit(_senders.send_all, messages))
        if refused:
            log.warning("notify: apprise refused %d URL(s) for event %s", refused, event.id)
        if not ok:
            result.update(ok=False, error=result.get("error") or "a target refused or failed")
        return result
