"""A balanced event is created and given to a member in one store transaction (issue 21), on
both stores: the database lost during the assignment leaves nothing written, so the 503 says
the truth and a retry with the same idempotency key makes the event once, given to a member.

PostgreSQL commits each store call on its own: when the insert and the assignment were two
calls, the event was stored (unassigned, and never assigned after) behind a 503.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from signoff import EventCreate, Identity, StoreUnavailable
from signoff.hub import load_settings
from signoff.hub.batch import create_batch
from signoff.hub.service import Hub
from signoff.store import open_store

from ..conftest import PG_AUDIT_KEY

MEMBERS = ["alice", "bob", "carol"]
FLOW = Identity(user="flow", role="workflow")


def _hub_on(where: str, request: pytest.FixtureRequest, tmp_path: Path) -> Hub:
    """An in-process hub with a balanced group ``ops``, on SQLite or PostgreSQL."""
    database = (request.getfixturevalue("pg_url") if where == "postgresql"
                else str(tmp_path / "hub.db"))
    key = PG_AUDIT_KEY.encode() if where == "postgresql" else None
    return Hub(load_settings(database=database, group_members={"ops": MEMBERS}),
               open_store(database, audit_key=key))


def _item(key: str) -> dict[str, Any]:
    return {"name": "deploy", "prompt": f"Deploy {key}?", "key": key,
            "assignees": ["group:ops"], "policy": {"balance": "round_robin"}}


class _LoseTheDatabase:
    """Makes the store's ``assigned`` audit entry (written inside the assignment's transaction)
    fail as a lost connection does, while ``down`` holds the event's key.
    """

    def __init__(self, hub: Hub) -> None:
        store: Any = hub.store
        self.store, self.append, self.down = store, store._append_audit, set[str]()
        store._append_audit = self._append_audit
        self.keys: dict[str, str | None] = {}  # event id -> key, as created

    def _append_audit(self, conn: Any, action: str, **fields: Any) -> None:
        if action == "created":
            self.keys[fields["event_id"]] = fields["data"]["key"]
        if action == "assigned" and self.keys.get(fields["event_id"]) in self.down:
            raise StoreUnavailable("the database cannot be reached just now (test)")
        self.append(conn, action, **fields)


def _stored(hub: Hub) -> dict[str | None, str | None]:
    """Every stored event's key and the member it is given to."""
    return {e.key: e.assignee for e in hub.store.list_events(limit=50).events}


@pytest.mark.parametrize("where", ["sqlite", "postgresql"])
def test_a_create_that_loses_the_database_while_assigning_wrote_nothing(
        where: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    async def go() -> None:
        hub = _hub_on(where, request, tmp_path)
        fault = _LoseTheDatabase(hub)
        try:
            fault.down.add("k1")
            with pytest.raises(StoreUnavailable):
                await hub.create(FLOW, EventCreate.model_validate(_item("k1")), None)
            assert _stored(hub) == {}  # the 503 is true: no event without its member
            fault.down.clear()
            made, created = await hub.create(FLOW, EventCreate.model_validate(_item("k1")), None)
            assert created and made.assignee in MEMBERS
            again, created = await hub.create(FLOW, EventCreate.model_validate(_item("k1")),
                                              None)
            assert (again.id, again.assignee, created) == (made.id, made.assignee, False)
            assert _stored(hub) == {"k1": made.assignee}
            actions = [e.action for e in hub.store.audit(made.id)]
            assert (actions.count("created"), actions.count("assigned")) == (1, 1), actions
        finally:
            hub.store.close()

    asyncio.run(go())


@pytest.mark.parametrize("where", ["sqlite", "postgresql"])
def test_a_batch_item_that_loses_the_database_while_assigning_is_a_503_alone(
        where: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The items before it keep their 201 and their member; it and the rest are 503 and not
    stored; a retry of the whole batch with the same keys makes each event once."""
    async def go() -> None:
        hub = _hub_on(where, request, tmp_path)
        fault = _LoseTheDatabase(hub)
        items = [_item(k) for k in ("b1", "b2", "b3")]
        try:
            fault.down.add("b2")
            results = await create_batch(hub, FLOW, items, None)
            assert [status for status, _, _ in results] == [201, 503, 503]
            first = results[0][1]
            assert first is not None and first.assignee in MEMBERS
            assert _stored(hub) == {"b1": first.assignee}
            fault.down.clear()
            again = await create_batch(hub, FLOW, items, None)
            assert [status for status, _, _ in again] == [200, 201, 201]
            stored = _stored(hub)
            assert sorted(stored) == ["b1", "b2", "b3"] and stored["b1"] == first.assignee
            assert all(member in MEMBERS for member in stored.values())
        finally:
            hub.store.close()

    asyncio.run(go())
