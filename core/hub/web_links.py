"""The confirm page of a signed one-click answer link: ``/answer/{code}`` (see :mod:`.links`).

GET shows the event and the answer the link gives, and records nothing: mail scanners and
link previews fetch links. The page's POST records the answer, in the name of the link's
recipient, through channel ``link``, with the rules of the inbox's form (rights, self-approval,
the confirm box of a high-impact approval, the answer rate). There is no session: the link is
the credential, and the form carries a CSRF token bound to a SameSite=Strict cookie of this
browser (a signed double-submit, as the sign-in page does), so another site cannot post it.

A link is refused, on GET and POST alike, when forged or altered (403), expired or used (410),
once its event is decided (409), and when its recipient holds no active token any more (403).
"""

from __future__ import annotations

import re
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, Response

from .._errors import AlreadyAnswered, AlreadyDecided, Forbidden, InvalidInput
from .._limits import Text
from .._model import Event
from .._rules import Identity, can_answer
from .links import ANSWER_PATH, MAX_CODE, AnswerLink
from .service import Hub
from .web import _confirm_needed, _csrf_key, _hub, _page, _same, _sign

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

Code = Annotated[str, Path(max_length=MAX_CODE)]
COOKIE = "signoff_answer"
_FORGED = "This link is not one this hub signed, or it was altered. Nothing was recorded."


class _Refused(Exception):
    """Why a link answers nothing now: a status and a sentence for the page."""

    def __init__(self, status: int, message: str, event: Event | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.event = event


async def _open(hub: Hub, code: str) -> tuple[AnswerLink, Event, Identity]:
    """The link, its event and the identity it answers as, if it may answer now.

    Raises:
        _Refused: forged, expired, used, decided, or its recipient may no longer answer.
    """
    try:
        link = hub.links.read(code)
    except InvalidInput:
        raise _Refused(403, _FORGED) from None
    event = await hub._read_one(hub.store.get_event, link.event_id)
    if event is None:
        raise _Refused(404, "The event this link answers no longer exists.")
    if event.status != "pending":
        raise _Refused(409, f"This event is already {event.status}; the link answers nothing "
                            "any more.", event)
    if link.expires_at <= hub.clock():
        raise _Refused(410, f"This link expired at {link.expires_at:%Y-%m-%d %H:%M} UTC. "
                            "Answer from the inbox instead.", event)
    if await hub._run(hub.store.answer_link_used, link.id):
        raise _Refused(410, "This link was used already; a link answers once.", event)
    who = Identity(user=link.recipient, role="reviewer")
    # from here on the recipient may no longer read the event: the page does not show it
    if not await hub._run(hub.store.user_active, link.recipient):
        raise _Refused(403, f"{link.recipient} holds no active token on this hub any more, "
                            "so their links answer nothing.")
    if not can_answer(who, event, "link"):
        raise _Refused(403, f"{link.recipient} is no longer assigned to this event.")
    policy = event.policy
    if policy is not None and policy.forbid_self_approval and who.user == event.requested_by:
        raise _Refused(403, f"{who.user} requested this event; the policy forbids "
                            "self-approval.", event)
    return link, event, who


async def _nonce(request: Request) -> tuple[str, str]:
    """The CSRF nonce of this browser (kept, or new) and the form token signed over it."""
    nonce = request.cookies.get(COOKIE, "")
    if not re.fullmatch(r"[0-9a-f]{32}", nonce):
        nonce = secrets.token_hex(16)
    return nonce, _sign(await _csrf_key(request), b"answer:" + nonce.encode())


async def _check_csrf(request: Request, csrf: str) -> None:
    nonce = request.cookies.get(COOKIE, "")
    expected = _sign(await _csrf_key(request), b"answer:" + nonce.encode())
    if (request.headers.get("sec-fetch-site") == "cross-site" or not nonce
            or not _same(csrf, expected)):
        raise _Refused(403, "The form's CSRF token is missing or wrong, so nothing was "
                            "recorded; open the link again and confirm from its page.")


def _refused_page(hub: Hub, refused: _Refused) -> HTMLResponse:
    return _page("answer_link.html", refused.status, event=refused.event, message=refused.message,
                 recorded=False, csrf="", now=hub.clock())


async def _confirm_page(request: Request, hub: Hub, link: AnswerLink, event: Event, *,
                        status: int = 200, message: str | None = None,
                        comment: str = "") -> Response:
    nonce, csrf = await _nonce(request)
    response = _page("answer_link.html", status, event=event, link=link, csrf=csrf,
                     message=message, recorded=False, comment=comment, now=hub.clock(),
                     confirm_needed=link.value and _confirm_needed(event))
    response.set_cookie(COOKIE, nonce, path=ANSWER_PATH.rstrip("/"), httponly=True,
                        samesite="strict", secure=request.app.state.settings.secure_cookies)
    return response


@router.get(ANSWER_PATH + "{code}")
async def answer_link_page(code: Code, request: Request) -> Response:
    """The confirm page: the event and the link's answer; nothing is recorded or spent."""
    hub = _hub(request)
    try:
        link, event, _ = await _open(hub, code)
    except _Refused as refused:
        return _refused_page(hub, refused)
    return await _confirm_page(request, hub, link, event)


@router.post(ANSWER_PATH + "{code}")
async def use_answer_link(code: Code, request: Request,
                          csrf: Annotated[str, Form(max_length=200)] = "",
                          comment: Annotated[Text, Form(max_length=10_000)] = "",
                          confirm: Annotated[str, Form(max_length=10)] = "") -> Response:
    """Record the link's answer once, in its recipient's name, through channel ``link``."""
    hub = _hub(request)
    text = comment.replace("\r\n", "\n").strip()
    try:
        await _check_csrf(request, csrf)
        link, event, who = await _open(hub, code)
        if link.value and _confirm_needed(event) and confirm != "yes":
            return await _confirm_page(
                request, hub, link, event, status=422, comment=text,
                message=f"Tick the box to approve a {event.impact}-impact event; nothing was "
                        "recorded.")
        if not await hub._write(hub.store.spend_answer_link, link.id, event_id=event.id,
                                recipient=link.recipient, at=hub.clock()):
            raise _Refused(410, "This link was used already; a link answers once.", event)
        try:
            decided = await hub.respond(who, event.id, link.value, text or None, channel="link")
        except (AlreadyDecided, AlreadyAnswered) as exc:
            raise _Refused(409, f"Not recorded: {exc.message}.", event) from None
        except (Forbidden, InvalidInput) as exc:
            raise _Refused(exc.status, f"Not recorded: {exc.message}.", event) from None
    except _Refused as refused:
        return _refused_page(hub, refused)
    answered = "approved" if link.value else "rejected"
    state: dict[str, Any] = {"event": decided, "recorded": True, "csrf": "", "now": hub.clock()}
    return _page("answer_link.html", 200, **state,
                 message=f"Recorded: {link.recipient} {answered} “{decided.prompt}”.")
