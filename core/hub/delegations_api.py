"""``/api/v1/delegations``: delegate one's events for a while (out of office), list, end early.

A reviewer delegates their own events; an admin may delegate anyone's (``delegator``). The
rules that keep a delegation from gaining self-approval or bypassing a quorum are in
:mod:`.delegation`. Creation and ending are audited with the caller's name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, get_type_hints

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, create_model

from .._errors import InvalidInput
from .._limits import Text
from ..store import Delegation
from .access import parse_expires
from .api import _ERRORS as API_ERRORS
from .api import Caller, _error, hub_of
from .inputs import DelegationId, StrictJsonRoute

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/delegations", tags=["delegations"],
                   route_class=StrictJsonRoute)

_ERRORS: dict[int | str, dict[str, Any]] = {
    **API_ERRORS,
    403: _error("A workflow token, or a reviewer delegating someone else's events"),
    404: _error("No delegation with that id of the caller's"),
}


class DelegationCreate(BaseModel):
    """A delegation to make."""

    delegate: Text = Field(max_length=140, description="A user name or 'group:NAME'.")
    until: Text = Field(max_length=64, description="When it ends: a span (12h, 10d, 2w) or a "
                                                  "date or time (2027-01-10, UTC unless given).")
    starts: Text | None = Field(default=None, max_length=64,
                               description="When it starts, same forms (default: now).")
    delegator: Text | None = Field(default=None, max_length=140,
                                  description="Whose events (admins only; default: yours).")
    reason: Text | None = Field(default=None, max_length=500)


# the response mirrors the store's record field for field, and adds whether it applies now
_FIELDS: dict[str, Any] = {name: (hint, ...) for name, hint in
                           {**get_type_hints(Delegation), "active": bool}.items()}
DelegationOut: type[BaseModel] = create_model(
    "DelegationOut", __doc__="A delegation as the hub keeps it, and whether it applies now.",
    **_FIELDS)
DelegationList: type[BaseModel] = create_model(
    "DelegationList", __doc__="Delegations, newest first.",
    delegations=(list[DelegationOut], ...))  # type: ignore[valid-type]


def _moment(text: str, field: str, now: datetime) -> datetime:
    try:
        return parse_expires(text, now)
    except InvalidInput as exc:  # the same forms as a token's expiry, named as this field
        raise InvalidInput(field, exc.expected, text) from None


def _out(d: Delegation, now: datetime) -> dict[str, Any]:
    return {**d.__dict__, "active": d.active(now)}


def _json(model: BaseModel, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


@router.post("", status_code=201, response_model=DelegationOut, responses=_ERRORS)
async def create_delegation(body: DelegationCreate, request: Request,
                            who: Caller) -> Response:
    """Delegate: events created in the period with the delegator among their assignees are
    also assigned to the delegate, and their audit trail says so.
    """
    hub = hub_of(request)
    now = hub.clock()
    starts = _moment(body.starts, "starts", now) if body.starts else now
    made = await hub.delegations.create(who, body.delegate, _moment(body.until, "until", now),
                                        starts_at=starts, delegator=body.delegator,
                                        reason=body.reason, channel="api")
    return _json(DelegationOut.model_validate(_out(made, now)), 201)


@router.get("", response_model=DelegationList, responses=_ERRORS)
async def list_delegations(request: Request, who: Caller,
                           all: Annotated[bool, Query()] = False) -> Response:
    """The caller's delegations and those to them (admins: everyone's), not yet over unless
    ``all``.
    """
    hub = hub_of(request)
    found = await hub.delegations.list(who, current=not all)
    now = hub.clock()
    return _json(DelegationList.model_validate({"delegations": [_out(d, now) for d in found]}))


@router.post("/{delegation_id}/end", response_model=DelegationOut, responses=_ERRORS)
async def end_delegation(delegation_id: DelegationId, request: Request,
                         who: Caller) -> Response:
    """End a delegation now (its delegator or an admin); events already assigned keep it."""
    hub = hub_of(request)
    ended = await hub.delegations.end(who, delegation_id, channel="api")
    return _json(DelegationOut.model_validate(_out(ended, hub.clock())))
