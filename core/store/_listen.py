"""Hearing what other hubs on one PostgreSQL database did: ``LISTEN``/``NOTIFY``.

A hub that creates, decides or escalates an event sends ``NOTIFY signoff_events`` with
``<instance>:<event id>`` inside the same transaction, so PostgreSQL delivers it only once the
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

__all__ = ["CHANNEL", "Listener"]

CHANNEL = "signoff_events"
log = logging.getLogger("signoff.store")
_POLL = 0.5  # seconds between checks of the stop flag while nothing arrives
_BACKOFF_MAX = 5.0


class Listener:
    """One listening connection, in a daemon thread, until :meth:`close`."""

    def __init__(self, url: str, instance: str, heard: Callable[[str | None], None],
                 connect_timeout: float) -> None:
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
                with psycopg.connect(self._url, autocommit=True,
                                     connect_timeout=max(1, int(self._connect_timeout))) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    if not first:  # what was notified while we were away is lost: re-read
                        log.info("listening for other hubs' changes again; resyncing")
                        self._heard(None)
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

    def _hand_over(self, payload: str) -> None:
        instance, _, event_id = payload.partition(":")
        if instance != self._instance and event_id:
            self._heard(event_id)

    def close(self) -> None:
        """Stop listening (within about half a second) and close the connection."""
        self._stop.set()
        self._thread.join(timeout=5)
