"""Hearing what other hubs on one PostgreSQL database did: ``LISTEN``/``NOTIFY``.

A hub that creates, decides or escalates an event sends ``NOTIFY signoff_events`` with
``<instance>:<event id>`` (and ``:<decision JSON>`` when it fits) inside the same transaction, so PostgreSQL delivers it only once the
change is committed (and never for a write that rolled back). Every other hub on the database
listens on one connection of its own, in a thread, and hands each event id to the hub: a
long-poll parked on that event there is woken with the decision, and the live inboxes
re-read.

A notification sent while a listener's connection is down is lost, so after every reconnect
the listener hands over ``None``: *anything may have changed*, and the hub re-reads every
event it has waiters for (a resync). Its own notifications it skips: it has already woken its
own waiters.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from .._model import Decision

__all__ = ["APPLICATION", "CHANNEL", "Heard", "Listener", "payload"]

CHANNEL = "signoff_events"
APPLICATION = "signoff-listen"
"""The listening connection's ``application_name``: one per live hub, so counting them
counts the hubs (:meth:`PostgresStore.count_hubs`)."""
Heard = Callable[[str | None, str | None], None]
"""What a listener hands over: (event id, the decision as JSON when the notice carried it), or
(None, None) after a reconnect."""
_MAX_PAYLOAD = 7900  # PostgreSQL refuses a notice payload of 8000 bytes or more
log = logging.getLogger("signoff.store")
_POLL = 0.5  # seconds between checks of the stop flag while nothing arrives
_BACKOFF_MAX = 5.0


class Listener:
    """One listening connection, in a daemon thread, until :meth:`close`."""

    def __init__(self, url: str, instance: str, heard: Heard, connect_timeout: float) -> None:
        self._url = url
        self._instance = instance
        self._heard = heard
        self._connect_timeout = connect_timeout
        self._stop = threading.Event()
        self.connected = threading.Event()  # for tests and /readyz-style checks
        self._thread = threading.Thread(target=self._run, daemon=True, name="signoff-listen")
        self._thread.start()

    def _run(self) -> None:
        backoff = 0.2
        first = True
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, application_name=APPLICATION,
                                     connect_timeout=max(1, int(self._connect_timeout))) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    if not first:  # what was notified while we were away is lost: re-read
                        log.info("listening for other hubs' changes again; resyncing")
                        self._heard(None, None)
                    first, backoff = False, 0.2
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=_POLL):
                            self._hand_over(note.payload)
            except psycopg.Error as exc:
                self.connected.clear()
                if self._stop.is_set():
                    return
                first = False
                log.warning("listening for other hubs' changes failed (%s); again in %.1f s",
                            str(exc).strip() or type(exc).__name__, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)

    def _hand_over(self, notice: str) -> None:
        instance, _, rest = notice.partition(":")
        event_id, _, decision = rest.partition(":")
        if instance != self._instance and event_id:
            self._heard(event_id, decision or None)

    def close(self) -> None:
        """Stop listening (within about half a second) and close the connection."""
        self._stop.set()
        self._thread.join(timeout=5)


def payload(instance: str, event_id: str, decision: Decision | None) -> str:
    """``<instance>:<event id>[:<decision JSON>]``: the decision rides along when it fits, so
    a hub with waiters on the event wakes them without reading the database again.
    """
    notice = f"{instance}:{event_id}"
    if decision is not None:
        with_decision = f"{notice}:{decision.model_dump_json()}"
        if len(with_decision.encode()) <= _MAX_PAYLOAD:
            return with_decision
    return notice
