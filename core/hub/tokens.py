"""``/api/v1/tokens``: list, create and revoke API tokens (admins only).

A created token's secret is in the answer to its ``POST`` and nowhere else, ever: the store
keeps its hash, lists show its public id. Creation and revocation are audited with the
admin's name. A revoked token gets 401 on the next request, on every hub replica.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from .._errors import Forbidden
from .._rules import Identity
from ..store import TokenInfo
from ..store import token_id as public_id
from .access import MAX_TOKEN_DAYS, parse_expires
from .api import _ERRORS as API_ERRORS
from .api import Caller, _error, hub_of
from .inputs import StrictJsonRoute, TokenId

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"], route_class=StrictJsonRoute)

_ERRORS: dict[int | str, dict[str, Any]] = {
    **API_ERRORS,
    401: _error("No token, or an unknown, revoked or expired one"),
    403: _error("Only admins manage tokens"),
    404: _error("No token with that id"),
}
_NAME = r"^[^\x00-\x1f\x7f]+$"  # printable: names are shown in tables and pages


async def admin(who: Caller) -> Identity:
    """The caller, if an admin."""
    if who.role != "admin":
        raise Forbidden(f"{who.user} may not manage tokens (admins only)")
    return who


Admin = Annotated[Identity, Depends(admin)]


class TokenOut(BaseModel):
    """An API token as lists show it: never its secret."""

    id: str
    user: str
    groups: list[str]
    role: Literal["workflow", "reviewer", "admin"]
    name: str | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    state: Literal["active", "expired", "revoked"]


class TokenCreated(TokenOut):
    """A new token, with its secret: shown in this answer only."""

    token: str = Field(description="The secret (Authorization: Bearer ...); not shown again")


class TokenList(BaseModel):
    """Every token, oldest first."""

    tokens: list[TokenOut]


class TokenCreate(BaseModel):
    """A token to mint."""

    user: str = Field(min_length=1, max_length=200, pattern=_NAME)
    groups: list[Annotated[str, Field(min_length=1, max_length=200, pattern=_NAME)]] = Field(
        default_factory=list, max_length=100)
    role: Literal["workflow", "reviewer", "admin"] = "reviewer"
    name: str | None = Field(default=None, max_length=200, pattern=_NAME)
    expires: str | None = Field(
        default=None, max_length=40,
        description=f"A span (90m, 12h, 30d, 2w) or a date (2027-01-01), at most "
                    f"{MAX_TOKEN_DAYS} days ahead; none: the token does not expire")


def _out(info: TokenInfo) -> dict[str, Any]:
    who = info.identity
    return {"id": info.id, "user": who.user, "groups": list(who.groups), "role": who.role,
            "name": info.name, "created_at": info.created_at, "expires_at": info.expires_at,
            "last_used_at": info.last_used_at, "revoked_at": info.revoked_at,
            "state": info.state(datetime.now(timezone.utc))}


def _json(model: BaseModel, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


@router.get("", response_model=TokenList, responses=_ERRORS)
async def list_tokens(request: Request, caller: Admin) -> Response:
    """Every API token, oldest first: id, user, role, groups, created, expires, last used,
    state. Never a secret.
    """
    hub = hub_of(request)
    tokens = await hub._run(hub.store.list_tokens)
    return _json(TokenList.model_validate({"tokens": [_out(t) for t in tokens]}))


@router.post("", status_code=201, response_model=TokenCreated,
             responses=_ERRORS)
async def create_token(body: TokenCreate, request: Request, caller: Admin) -> Response:
    """Mint a token; the answer holds its secret, which is never shown again."""
    hub = hub_of(request)
    expires_at = parse_expires(body.expires) if body.expires is not None else None
    identity = Identity(user=body.user, groups=tuple(body.groups), role=body.role)
    secret = await hub._write(hub.store.create_token, identity, name=body.name,
                              expires_at=expires_at, actor=caller.user, channel="api")
    info = await hub._run(hub.store.get_token, public_id(secret))
    assert info is not None
    return _json(TokenCreated.model_validate({**_out(info), "token": secret}), 201)


@router.post("/{token_id}/revoke", response_model=TokenOut,
             responses=_ERRORS)
async def revoke_token(token_id: TokenId, request: Request, caller: Admin) -> Response:
    """Revoke a token now: it gets 401 from the next request on, and its browser sessions
    end. Revoking a revoked token changes nothing.
    """
    hub = hub_of(request)
    info = await hub._write(hub.store.revoke_token, token_id, actor=caller.user, channel="api")
    return _json(TokenOut.model_validate(_out(info)))
