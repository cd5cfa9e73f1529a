"""Reminders before the deadline or SLA (issue 21): at their offsets with a moved clock, only to
the assignees who have not answered, once across a restart and across two replicas on one store.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from signoff import Client
from signoff.store import open_store
from signoff.testing import free_port, until

from .inprocess import FakeClock, InProcessHub
from .test_reliability import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port()).start()
    yield r
    r.stop()


def _settings(receiver: Receiver) -> dict[str, Any]:
    target = f"json://127.0.0.1:{receiver.port}"
    return {"reminders": [0.5, 0.9],
            "notify": {"alice": [f"{target}/alice"], "bob": [f"{target}/bob"],
                       "group:ops": [f"{target}/ops"]}}


def _reminders(receiver: Receiver) -> list[str]:
    """The bodies of the reminders received so far."""
    found = [json.loads(body) for _, body in receiver.calls]
    return [m["message"] for m in found if "still waits for you" in m["title"]]


def _planned(database: Path, event_id: str) -> tuple[int, float | None] | None:
    """An event's reminder steps done and next due time, once the hub planned them."""
    with sqlite3.connect(database) as conn:
        row = conn.execute("SELECT reminded, next_reminder FROM events WHERE id = ?",
                           (event_id,)).fetchone()
    return None if row is None or (row[0] == 0 and row[1] is None) else (row[0], row[1])


def _sent(database: Path, event_id: str) -> list[int]:
    store = open_store(str(database))
    try:
        return store.reminders_sent(event_id)
    finally:
        store.close()


def test_reminders_at_their_offsets_and_across_a_restart(tmp_path: Path,
                                                         receiver: Receiver) -> None:
    clock = FakeClock()
    database = tmp_path / "remind.db"
    hub = InProcessHub(database, clock, **_settings(receiver)).start()
    try:
        flow = Client(hub.url, hub.token("flow", role="workflow"))
        bob = Client(hub.url, hub.token("bob"))
        hub.token("alice")
        event = flow.create(name="deploy", prompt="Deploy v3?", timeout=1000,
                            assignees=["alice", "bob", "group:ops"], policy={"quorum": 2})
        created = until(lambda: len(receiver.calls) >= 3, what="the creation notices")
        assert created
        bob.respond(event.id, True, "fine")

        planned = hub.settle(lambda: _planned(database, event.id))
        assert planned == (0, event.created_at.timestamp() + 500)  # planned, not sent
        clock.advance(seconds=499)
        assert _reminders(receiver) == [] and _sent(database, event.id) == []

        clock.advance(seconds=2)  # 50 % of the deadline's 1000 s
        until(lambda: len(_reminders(receiver)) == 2, what="the 50 % reminders")
        first = _reminders(receiver)
        # bob answered: alice (with her links) and the ops group are reminded, bob is not
        assert sum("one-click answers for alice" in m for m in first) == 1
        assert not any("for bob" in m for m in first)
        assert _sent(database, event.id) == [0]

        hub.stop()  # down across the 90 % mark: sent once on the way back up
        clock.advance(seconds=450)
        hub.start()
        until(lambda: len(_reminders(receiver)) == 4, what="the 90 % reminders")
        assert _sent(database, event.id) == [0, 1]
        assert _planned(database, event.id) == (2, None)  # no step left
        trail = flow.audit(event.id)
        reminded = [e["data"] for e in trail if e["action"] == "reminded"]
        assert [(r["step"], r["offset"], r["to"]) for r in reminded] == [
            (0, 0.5, ["alice", "group:ops"]), (1, 0.9, ["alice", "group:ops"])]
        hub.stop()
        hub.start()  # another restart sends nothing again: a later event's reminder comes
        canary = flow.create(name="deploy", prompt="Canary?", timeout=10, assignees=["alice"])
        clock.advance(seconds=6)
        until(lambda: any(canary.id in m for m in _reminders(receiver)), what="the canary")
        assert sum(event.id in m for m in _reminders(receiver)) == 4
        assert len(_reminders(receiver)) == 5
    finally:
        hub.stop()


def test_the_priority_sla_when_there_is_no_deadline(tmp_path: Path, receiver: Receiver) -> None:
    clock = FakeClock()
    hub = InProcessHub(tmp_path / "sla.db", clock, sla={"urgent": 600.0},
                       **_settings(receiver)).start()
    try:
        flow = Client(hub.url, hub.token("flow", role="workflow"))
        event = flow.create(name="page", prompt="Restart the cluster?", priority="urgent",
                            assignees=["alice"])
        until(lambda: receiver.calls, what="the creation notice")
        assert hub.settle(lambda: _planned(tmp_path / "sla.db", event.id)) == (
            0, event.created_at.timestamp() + 300)
        clock.advance(seconds=299)
        assert _reminders(receiver) == []
        clock.advance(seconds=2)
        until(lambda: len(_reminders(receiver)) == 1, what="the reminder at 50 % of the SLA")
        assert event.id in _reminders(receiver)[0]
    finally:
        hub.stop()


def test_two_replicas_send_each_reminder_once(tmp_path: Path, receiver: Receiver) -> None:
    clock = FakeClock()
    database = tmp_path / "shared.db"
    one = InProcessHub(database, clock, **_settings(receiver)).start()
    two = InProcessHub(database, clock, **_settings(receiver)).start()
    try:
        flow = Client(one.url, one.token("flow", role="workflow"))
        events = [flow.create(name="deploy", prompt=f"Deploy {i}?", timeout=100,
                              assignees=["alice"]) for i in range(20)]
        until(lambda: len(receiver.calls) >= 20, what="the creation notices")
        clock.advance(seconds=51)
        until(lambda: len(_reminders(receiver)) >= 20, what="the reminders")
        clock.advance(seconds=40)
        until(lambda: len(_reminders(receiver)) >= 40, what="the second reminders")
        canary = flow.create(name="deploy", prompt="Canary?", timeout=10, assignees=["alice"])
        clock.advance(seconds=6)
        until(lambda: any(canary.id in m for m in _reminders(receiver)), what="the canary")
        assert len(_reminders(receiver)) == 41
        assert all(_sent(database, e.id) == [0, 1] for e in events)
    finally:
        one.stop()
        two.stop()
