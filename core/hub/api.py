"""The JSON API, ``/api/v1``: every path here is a contract that scripts depend on."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from .._limits import MAX_WAIT, Text
from .._model import Decision, Event, EventCreate, EventPage, ResponseCreate
from .._rules import Identity
from .batch import MAX_BATCH, create_batch
from .inputs import EventId, StrictJsonRoute
from .service import Hub, check_channel
from .workload import looks_like_jwt

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["events"], route_class=StrictJsonRoute)


class ErrorDetail(BaseModel):
    """What went wrong; a refused input also names the field, what was expected and what came."""

    code: str
    message: str
    field: str | None = None
    expected: str | None = None
    got: Any = None
    errors: list[dict[str, Any]] | None = None
    limit: str | None = Field(default=None, description="429: the setting that refused")
    value: float | None = Field(default=None, description="429: that setting's value")
    retry_after: int | None = Field(default=None, description="429: seconds to wait")
    changed: list[str] | None = Field(
        default=None, description="409 digest_changed / key_reused: the shown fields that differ")


class ErrorBody(BaseModel):
    """Every error the API answers with."""

    error: ErrorDetail


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


# Declared on every operation: what any call can meet (429 comes from the rate limits).
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("The request could not be read"),
    401: _error("No token or an unknown token"),
    403: _error("The token may not do this"),
    404: _error("No such event"),
    413: _error("The request body is larger than the hub accepts"),
    422: _error("A field is not what was expected (named in the answer); nothing was stored"),
    429: _error("Too many requests for this token; retry after `Retry-After` seconds"),
}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: _error("Already decided or already answered, or (`digest_changed`) answered against "
                "a digest the event does not show now; nothing changed")}
_TARGET_TAKEN: dict[int | str, dict[str, Any]] = {
    409: _error("`target_taken`: the run `source.params` names is named by events of another "
                "identity; nothing was stored")}


def hub_of(request: Request) -> Hub:
    """The hub behind this app."""
    hub: Hub = request.app.state.hub
    return hub


async def caller(request: Request,
                 authorization: Annotated[str | None, Header()] = None) -> Identity:
    """The identity of the bearer token (an API token, or a workload JWT when workload issuers
    are configured), else of a trusted proxy's headers; never anything from the body.
    """
    token = None
    if authorization and authorization[:7].lower() == "bearer ":
        token = authorization[7:].strip()
    workload = getattr(request.app.state, "workload", None)
    if token and workload is not None and looks_like_jwt(token):
        who: Identity = await workload.identity(token)
        return who
    proxied: Identity | None = getattr(request.state, "proxy_identity", None)
    if not token and proxied is not None:
        return proxied
    return await hub_of(request).authenticate(token)


Caller = Annotated[Identity, Depends(caller)]
Channel = Annotated[str | None, Header(alias="X-Signoff-Channel")]


def _json(model: BaseModel, status: int = 200) -> Response:
    return Response(model.model_dump_json(by_alias=True), status_code=status,
                    media_type="application/json")


class CancelBody(BaseModel):
    """Why the event is cancelled."""

    comment: Text | None = Field(default=None, max_length=10_000)


class AuditLine(BaseModel):
    """One line of an event's audit trail."""

    seq: int
    at: str
    actor: str
    action: str
    channel: str
    data: dict[str, Any]
    hash: str


class AuditTrail(BaseModel):
    """An event's audit trail, oldest first."""

    entries: list[AuditLine]


class Me(BaseModel):
    """Who the token belongs to."""

    user: str
    groups: list[str]
    role: Literal["workflow", "reviewer", "admin"]


def _links() -> dict[str, Any]:
    """OpenAPI links from a created event to the calls that take its id."""
    base = "#/paths/~1api~1v1~1events~1{event_id}"
    targets = {"GetEvent": "/get", "RespondToEvent": "~1responses/post",
               "WaitForDecision": "~1decision/get", "CancelEvent": "~1cancel/post",
               "EventAudit": "~1audit/get"}
    return {name: {"operationRef": base + tail, "parameters": {"event_id": "$response.body#/id"}}
            for name, tail in targets.items()}


@router.post("/events", status_code=201, response_model=Event,
             responses={201: {"description": "The event, created", "links": _links()},
                        200: {"model": Event, "description": "An event with this key exists",
                              "links": _links()},
                        **_ERRORS, **_TARGET_TAKEN})
async def create_event(body: EventCreate, request: Request, who: Caller,
                       channel: Channel = None) -> Response:
    """Create an event; with a known ``key``, answer 200 with the stored event, unchanged."""
    hub = hub_of(request)
    event, created = await hub.create(who, body, check_channel(channel, "api"))
    return _json(hub.shown(event), 201 if created else 200)


class EventBatch(BaseModel):
    """Events to create in one request."""

    events: list[dict[str, Any]] = Field(
        min_length=1, max_length=MAX_BATCH,
        description="Each item is an EventCreate (see `POST /api/v1/events`), validated, "
                    "rate-limited and keyed on its own: an item that is not valid gets its own "
                    "422 in the results, and the other items are still created.")


class BatchItem(BaseModel):
    """The result of one item of a batch, at the item's place."""

    status: int = Field(description="201 created, 200 an event with this key exists, or the "
                                    "status the single create would have answered (4xx)")
    event: Event | None = None
    error: ErrorDetail | None = None


class BatchResults(BaseModel):
    """One result per item, in the order of the request."""

    results: list[BatchItem]


@router.post("/events:batch", response_model=BatchResults, responses=_ERRORS)
async def create_events(body: EventBatch, request: Request, who: Caller,
                        channel: Channel = None) -> Response:
    """Create up to 500 events at once; the answer holds one result per item, in order.

    The request as a whole is refused only when it cannot be read, has no items or too many,
    or the token may not create events; every item otherwise gets its own result.
    """
    results = await create_batch(hub_of(request), who, body.events,
                                 check_channel(channel, "api"))
    parts = []
    for status, event, error in results:
        if event is not None:
            shown = hub_of(request).shown(event).model_dump_json(by_alias=True)
            parts.append(f'{{"status":{status},"event":{shown}}}')
        else:
            parts.append(json.dumps({"status": status, **(error or {})}, default=str))
    return Response('{"results":[' + ",".join(parts) + "]}", media_type="application/json")


@router.get("/events", response_model=EventPage, responses=_ERRORS)
async def list_events(
    request: Request,
    who: Caller,
    status: Literal["pending", "decided", "cancelled"] | None = None,
    assignee: Annotated[Text | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[Text | None, Query(max_length=500)] = None,
) -> Response:
    """Events the token may see, highest priority then oldest first."""
    page = await hub_of(request).list(who, status=status, assignee=assignee, limit=limit,
                                      cursor=cursor)
    return _json(page)


@router.get("/events/{event_id}", response_model=Event, responses=_ERRORS)
async def get_event(event_id: EventId, request: Request, who: Caller) -> Response:
    """One event with its decision, responses and deliveries."""
    return _json(await hub_of(request).get(who, event_id))


@router.post("/events/{event_id}/responses", response_model=Event,
             responses={**_ERRORS, **_CONFLICT})
async def respond(event_id: EventId, body: ResponseCreate, request: Request, who: Caller,
                  channel: Channel = None) -> Response:
    """Answer an event as the token's identity.

    The channel is recorded from how the answer came; a token may claim only the channels its
    role allows (403 naming the channel and why). An engine relaying an answer given in its own
    UI claims the engine's channel and may name the person in ``relayed_by``.
    """
    hub = hub_of(request)
    event = await hub.respond(who, event_id, body.value, body.comment,
                              check_channel(channel, "api"), body.relayed_by, body.digest)
    return _json(hub.shown(event))


class Refusal(BaseModel):
    """Why a waiting workflow refused a decision."""

    model_config = ConfigDict(extra="forbid")
    reason: Text = Field(min_length=1, max_length=1000)


@router.post("/events/{event_id}/refusals", status_code=204, responses=_ERRORS)
async def refuse_decision(event_id: EventId, body: Refusal, request: Request,
                          who: Caller) -> Response:
    """Report that the event's decision did not verify where it was to be acted on (the
    client and the adapters call this); the hub logs it and writes ``decision_refused`` to the
    audit trail.
    """
    await hub_of(request).record_refusal(who, event_id, body.reason)
    return Response(status_code=204)


class PublicKey(BaseModel):
    """One public decision-signing key (a JWK: OKP, Ed25519)."""

    kid: str
    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    alg: Literal["EdDSA"]
    use: Literal["sig"]
    x: str = Field(description="The raw public key, base64url without padding.")
    active: bool = Field(description="True for the key that signs new decisions.")


class KeySet(BaseModel):
    """The hub's public signing keys, newest last."""

    keys: list[PublicKey]


@router.get("/keys", tags=["hub"], response_model=KeySet, responses=_ERRORS)
async def signing_keys(request: Request) -> dict[str, Any]:
    """The hub's public decision-signing keys, JWKS-like (``kid``, ``kty`` OKP, ``crv``
    Ed25519, ``x``); ``active`` marks the one that signs now. Public: no token needed.
    """
    keyring = hub_of(request).store.signer
    return keyring.jwks() if keyring is not None else {"keys": []}


@router.get("/events/{event_id}/decision", response_model=Decision,
            responses={**_ERRORS, 204: {"description": "Still pending when the wait ran out"}})
async def wait_decision(event_id: EventId, request: Request, who: Caller,
                        wait: Annotated[float, Query(ge=0, le=MAX_WAIT, allow_inf_nan=False)] = 0) -> Response:
    """The decision, as soon as it exists; waits up to ``wait`` seconds, then 204."""
    decision = await hub_of(request).wait_decision(who, event_id, wait)
    if decision is None:
        return Response(status_code=204)
    return _json(decision)


@router.post("/events/{event_id}/cancel", response_model=Event,
             responses={**_ERRORS, **_CONFLICT})
async def cancel_event(event_id: EventId, request: Request, who: Caller,
                       body: CancelBody | None = None, channel: Channel = None) -> Response:
    """Cancel a pending event (its requester or an admin)."""
    comment = body.comment if body else None
    hub = hub_of(request)
    event = await hub.cancel(who, event_id, comment, check_channel(channel, "api"))
    return _json(hub.shown(event))


@router.post("/events/{event_id}/reveal", response_model=Event, responses=_ERRORS)
async def reveal_event(event_id: EventId, request: Request, who: Caller) -> Response:
    """The event with its sensitive context fields unmasked (``masked`` lists none).

    Only for callers the hub's ``reveal_allowed`` names (else 403); each reveal appends a
    ``revealed`` entry (who, when, the paths) to the event's audit log.
    """
    return _json(await hub_of(request).reveal(who, event_id, "api"))


@router.get("/events/{event_id}/audit", response_model=AuditTrail, responses=_ERRORS)
async def event_audit(event_id: EventId, request: Request, who: Caller) -> AuditTrail:
    """The event's audit trail, oldest first."""
    entries = await hub_of(request).audit(who, event_id)
    return AuditTrail(entries=[
        AuditLine(seq=e.seq, at=e.at.isoformat(), actor=e.actor, action=e.action,
                  channel=e.channel, data=e.data, hash=e.hash) for e in entries])


@router.get("/me", response_model=Me, tags=["hub"], responses=_ERRORS)
async def me(who: Caller) -> Me:
    """Who the token belongs to."""
    return Me(user=who.user, groups=list(who.groups), role=who.role)
