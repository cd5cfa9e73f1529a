"""``/api/v1/deliveries``: the outbox of resume deliveries, for operators (admin tokens).

A delivery that failed for good (a 4xx from the receiver, a resumer that could not load, a
receiver down past ``delivery_give_up_after``) can be sent again once its cause is fixed:
``POST /api/v1/deliveries/{id}/retry`` (or ``signoff deliveries retry ID``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi import Query as QueryParam
from pydantic import BaseModel

from ..store import DeliveryRecord
from .api import _ERRORS as API_ERRORS
from .api import Caller, Channel, _error, hub_of
from .inputs import DeliveryId, StrictJsonRoute
from .service import check_channel

__all__ = ["DeliveryOut", "router"]

router = APIRouter(prefix="/api/v1", tags=["deliveries"], route_class=StrictJsonRoute)

_ERRORS: dict[int | str, dict[str, Any]] = {
    **API_ERRORS,
    403: _error("Only admins see and retry deliveries"),
    404: _error("No such delivery"),
}


class DeliveryOut(BaseModel):
    """One delivery of a decision to its workflow's orchestrator."""

    id: str
    event_id: str
    resumer: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: DeliveryRecord) -> DeliveryOut:
        """The API's view of a stored delivery."""
        return cls.model_validate(record, from_attributes=True)


class DeliveryList(BaseModel):
    """Deliveries, most recently changed first."""

    deliveries: list[DeliveryOut]


@router.get("/deliveries", response_model=DeliveryList, responses=_ERRORS)
async def list_deliveries(
    request: Request,
    who: Caller,
    state: Literal["pending", "delivered", "failed"] | None = None,
    limit: Annotated[int, QueryParam(ge=1, le=1000)] = 100,
) -> DeliveryList:
    """Deliveries (admins), most recently changed first; ``state=failed`` for the stuck ones."""
    found = await hub_of(request).list_deliveries(who, state=state, limit=limit)
    return DeliveryList(deliveries=[DeliveryOut.of(d) for d in found])


@router.post("/deliveries/{delivery_id}/retry", response_model=DeliveryOut,
             responses={**_ERRORS,
                        409: _error("The delivery has not failed; nothing changed")})
async def retry_delivery(delivery_id: DeliveryId, request: Request, who: Caller,
                         channel: Channel = None) -> DeliveryOut:
    """Send a failed delivery again now (admins): it becomes pending, due at once."""
    # an operator's action: recorded as the CLI's when it says so, else the API's
    how = "cli" if check_channel(channel, None) == "cli" else "api"
    record = await hub_of(request).retry_delivery(who, delivery_id, how)
    return DeliveryOut.of(record)
