"""Reveal from the event page: ``POST /events/{id}/reveal`` (CSRF, like every form).

The page answered is the event with its sensitive context fields shown, once: the reveal is in
the audit log before the page is rendered, and the next load masks them again (see
:mod:`.masking`). Nothing is revealed on GET.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .inputs import EventId
from .web import _event_page, _hub, _post_only, _posted, _session

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.post("/events/{event_id}/reveal")
async def reveal(event_id: EventId, request: Request) -> Response:
    """The event page with masked fields shown, for a reviewer ``reveal_allowed`` names."""
    session = await _session(request)
    await _posted(request, session)
    event = await _hub(request).reveal(session.who, event_id, "web")
    return await _event_page(request, session, event_id, revealed=event)


router.add_api_route("/events/{event_id}/reveal", _post_only, methods=["GET"])
