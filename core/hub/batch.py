"""Many events in one request: ``POST /api/v1/events:batch``.

Each item is an :class:`~signoff.EventCreate` validated, rate-limited and keyed on its own,
then created exactly as ``POST /api/v1/events`` would create it. The items' writes are queued
together, so a store that batches (SQLite) commits them in a few group commits, each fsync'd
before any answer it holds. The answer lists one result per item, in order: ``201`` with the
event, ``200`` with the event its key already named, or the error status with the error body
the single call would have answered. One item refused changes nothing for the others.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import ValidationError

from .._errors import Forbidden, HubError
from .._model import Event, EventCreate
from .._rules import Identity
from .inputs import invalid_body
from .service import Hub

__all__ = ["MAX_BATCH", "ItemResult", "create_batch"]

MAX_BATCH = 500
"""The most items one batch request may hold."""

ItemResult = tuple[int, Event | None, dict[str, Any] | None]
"""One item's result: its status, the event (201/200) or the error body (4xx)."""


async def create_batch(hub: Hub, who: Identity, items: list[dict[str, Any]],
                       channel: str | None) -> list[ItemResult]:
    """Create every item that is valid; one result per item, in order.

    Raises:
        Forbidden: a reviewer token (it may create nothing, so no item is tried).
    """
    if who.role == "reviewer":
        raise Forbidden("reviewer tokens answer events; creating them needs a workflow token")

    async def one(index: int, item: dict[str, Any]) -> ItemResult:
        try:
            body = EventCreate.model_validate(item)
        except ValidationError as exc:
            return 422, None, invalid_body(exc.errors(), ("events", index))
        try:
            event, created = await hub.create(who, body, channel)
        except HubError as exc:
            return exc.status, None, exc.to_dict()
        return (201 if created else 200), event, None

    # every item's write is queued before the first is awaited: they share group commits
    return list(await asyncio.gather(*(one(i, item) for i, item in enumerate(items))))
