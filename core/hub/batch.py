"""Many events in one request: ``POST /api/v1/events:batch``.

Each item is an :class:`~signoff.EventCreate` validated, rate-limited and keyed on its own,
then created exactly as ``POST /api/v1/events`` would create it. The valid items are written in one
store job (:meth:`~signoff.hub.service.Hub.create_many`), durable before the answer: one
transaction on SQLite, one per item on PostgreSQL. The answer lists one result per item, in
order: ``201`` with the event, ``200`` with the event its key already named, or the error status
with the error body the single call would have answered (also when the store itself refuses the
item, e.g. a value PostgreSQL cannot index). One item refused changes nothing for the others.
The database unreachable fails the whole request (503) while nothing is written; should it go
away midway on PostgreSQL, the items written keep their results and the rest answer 503.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from .._errors import Forbidden, HubError, InvalidInput
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

    bodies: list[EventCreate | HubError] = []
    for index, item in enumerate(items):
        try:
            bodies.append(EventCreate.model_validate(item))
        except ValidationError as exc:
            bodies.append(_Invalid(invalid_body(exc.errors(), ("events", index))))
    results: list[ItemResult] = []
    for made in await hub.create_many(who, bodies, channel):
        if isinstance(made, HubError):
            body = made.body if isinstance(made, _Invalid) else made.to_dict()
            results.append((made.status, None, body))
        else:
            event, created = made
            results.append((201 if created else 200, event, None))
    return results


class _Invalid(InvalidInput):
    """An item that did not validate, with the 422 body that lists every error."""

    def __init__(self, body: dict[str, Any]) -> None:
        error = body["error"]
        super().__init__(error["field"], error["expected"], error["got"], error["message"])
        self.body = body
