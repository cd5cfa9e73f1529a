"""The web inbox: HTML pages for reviewers, beside the JSON API and on the same code paths.

Pages: ``/`` (the inbox), ``/events/{id}`` (one event: prompt, context, a form with the
right widget for its input, its history) and ``/login``. A browser session lives in the store
(see :mod:`.login` for one-time login links); the HttpOnly cookie holds only the session's
random id, never the API token, and logout deletes the session. ``/?token=...`` no longer
signs in (a token in a URL stays in history and logs): it sends the browser to ``/login``.
Every POST carries the session's CSRF token and nothing changes on GET. Templates escape
everything they show. One small same-origin script (``static/signoff.js``; the CSP allows no
other and nothing inline) adds keyboard shortcuts; every page works with scripts off. After an
answer the reviewer lands on the next event of their inbox with a line saying what was
recorded; the context renders as tables (:mod:`.context`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

import jinja2
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from .._errors import (
    AlreadyDecided,
    DigestChanged,
    Forbidden,
    HubError,
    InvalidInput,
    Unauthenticated,
)
from .._ids import well_formed
from .._limits import Text
from .._model import Event
from .._rules import Identity, can_answer, can_cancel, proposal_of
from .context import label_of, plain_error, readable, render_tree
from .evidence import form_digest
from .forms import answer_from, form_fields, initial_values, text_of
from .inputs import EventId
from .masking import may_reveal
from .service import Hub

__all__ = ["error_page", "router", "status_page"]

router = APIRouter(include_in_schema=False)

SESSION_COOKIE = "signoff_session"
LOGIN_COOKIE = "signoff_login"
PAGE_SIZE = 50
COUNT_LIMIT = 1000
"""The inbox counts pending events up to here, then shows "1,000+": a count walks an index."""
_HERE = Path(__file__).parent
# One small script, same-origin only (the CSP says script-src 'self'): shortcuts and live
# updates; every page works without it.
_STATIC_TYPES = {"signoff.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml",
                 "signoff.js": "text/javascript; charset=utf-8"}
_TITLES = {403: "Not allowed", 404: "Not found", 405: "Method not allowed",
           409: "Already decided", 413: "Too large", 422: "Not accepted",
           429: "Too many requests"}


# --- rendering --------------------------------------------------------------------------------
def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def _ago(moment: datetime, now: datetime) -> str:
    return _span((now - moment).total_seconds())


def _until(moment: datetime, now: datetime) -> str:
    left = (moment - now).total_seconds()
    return f"in {_span(left)}" if left > 0 else f"passed {_span(left)} ago"


@cache
def _static_file(name: str) -> tuple[bytes, str]:
    body = (_HERE / "static" / name).read_bytes()
    return body, hashlib.sha256(body).hexdigest()[:12]


def _static_url(name: str) -> str:
    return f"/static/{name}?v={_static_file(name)[1]}"


_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_HERE / "templates"), autoescape=True,
    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_templates.filters.update(pretty=_pretty, when=_when, ago=_ago, until=_until,
                          compact=lambda v: json.dumps(v, ensure_ascii=False),
                          readable=readable, label=label_of)
_templates.globals.update(static=_static_url, context_tree=render_tree)


def _page(template: str, code: int = 200, /, **context: Any) -> HTMLResponse:
    context.setdefault("session", None)
    html = _templates.get_template(template).render(**context)
    return HTMLResponse(html, status_code=code)


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def error_page(request: Request, exc: HubError) -> Response:
    """The page for a :class:`HubError` on a browser path; 401 sends the browser to /login."""
    if exc.status == 401:
        where = request.url.path if request.method == "GET" else "/"
        response = _redirect("/login" if where == "/" else f"/login?next={quote(where, safe='')}")
        if SESSION_COOKIE in request.cookies:
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    return status_page(exc.status, exc.message)


def status_page(status: int, message: str) -> HTMLResponse:
    """A styled page for any HTTP status (e.g. Starlette's own 404 and 405 on browser paths)."""
    return _page("error.html", status, status=status,
                 title=_TITLES.get(status, "Something went wrong"), message=message)


# --- sessions and CSRF ------------------------------------------------------------------------
@dataclass(frozen=True)
class _Session:
    who: Identity
    id: str
    csrf: str
    token: str | None = None  # the public id of the token the session is bound to
    via: str | None = None  # that token's name (``sso:oidc`` for single sign-on)


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


async def _csrf_key(request: Request) -> bytes:
    key: bytes | None = getattr(request.app.state, "web_csrf_key", None)
    if key is None:
        # one read of the store per process (a write the first time); the key never changes
        fresh: bytes = await _hub(request)._write(request.app.state.store.secret, "csrf")
        request.app.state.web_csrf_key = key = fresh
    return key


def _sign(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _same(sent: object, expected: str) -> bool:
    return isinstance(sent, str) and hmac.compare_digest(sent.encode(), expected.encode())


async def _session(request: Request) -> _Session:
    proxied: Identity | None = getattr(request.state, "proxy_identity", None)
    if proxied is not None:  # a trusted proxy authenticated this request (see .proxy)
        csrf = _sign(await _csrf_key(request), b"proxy:" + proxied.user.encode())
        return _Session(proxied, "", csrf)
    session_id = request.cookies.get(SESSION_COOKIE)
    # Unauthenticated → error_page → /login
    info = await _hub(request).access.session(session_id)
    assert session_id is not None
    return _Session(info.token.identity, session_id, info.csrf, info.token.id, info.token.name)


Session = Annotated[_Session, Depends(_session)]


async def _posted(request: Request, session: _Session) -> FormData:
    """The posted form, once its CSRF token proved it came from one of our pages."""
    form = await request.form()
    if not _same(form.get("csrf"), session.csrf):
        raise Forbidden("the form's CSRF token is missing or wrong, so nothing was changed; "
                        "open the page again and resubmit")
    return form


async def _replace_session(request: Request) -> None:
    """Signing in again ends the session this browser had (no orphan sessions left behind)."""
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await _hub(request).access.sign_out(old)


def _set_session(request: Request, response: Response, session_id: str) -> None:
    """The session cookie: only the session's random id; the session itself is in the store."""
    response.set_cookie(SESSION_COOKIE, session_id,
                        max_age=int(request.app.state.settings.session_seconds), path="/",
                        httponly=True, samesite="lax",
                        secure=request.app.state.settings.secure_cookies)
    response.delete_cookie(LOGIN_COOKIE, path="/login")


async def _login_nonce(request: Request) -> tuple[str, str]:
    """Login CSRF: a signed double-submit cookie (there is no session to bind to yet).

    Returns the nonce for the cookie and the token for the form.
    """
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not re.fullmatch(r"[0-9a-f]{32}", nonce):
        nonce = secrets.token_hex(16)
    key = await _csrf_key(request)
    return nonce, _sign(key, b"login:" + nonce.encode())


def _set_login_nonce(request: Request, response: Response, nonce: str) -> None:
    # SameSite=Strict: a form posted from another site arrives without it, and is refused
    response.set_cookie(LOGIN_COOKIE, nonce, path="/login", httponly=True, samesite="strict",
                        secure=request.app.state.settings.secure_cookies)


async def _check_login_csrf(request: Request, csrf: str) -> None:
    """Refuse a sign-in POST that did not come from our own sign-in page in this browser."""
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    key = await _csrf_key(request)
    if (request.headers.get("sec-fetch-site") == "cross-site" or not nonce
            or not _same(csrf, _sign(key, b"login:" + nonce.encode()))):
        raise Forbidden("the sign-in form's CSRF token is missing or wrong; "
                        "open the sign-in page again and resubmit")


def _safe_next(target: str | None) -> str:
    """Only a path on this hub: never another host (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in target):
        return "/"
    return target


async def _login_page(request: Request, status: int = 200, error: str | None = None,
                      next_: str = "/") -> HTMLResponse:
    nonce, csrf = await _login_nonce(request)
    oidc = request.app.state.settings.oidc
    response = _page("login.html", status, csrf=csrf, next=_safe_next(next_), error=error,
                     sso=None if oidc is None else oidc.label)
    _set_login_nonce(request, response, nonce)
    return response


@router.get("/login")
async def login_form(request: Request, next: str = "/") -> Response:
    """The sign-in form: paste an API token."""
    return await _login_page(request, next_=next)


@router.post("/login")
async def login(request: Request, token: Annotated[str, Form(max_length=500)] = "",
                csrf: Annotated[str, Form(max_length=200)] = "",
                next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
    """Check the pasted token and start a session with it (the session, not the token, goes
    into the cookie).
    """
    await _check_login_csrf(request, csrf)
    try:
        session_id, _ = await _hub(request).access.sign_in(token.strip())
    except Unauthenticated:
        return await _login_page(request, 401, "That token is not known to this hub (or it "
                                               "was revoked or has expired).", next)
    await _replace_session(request)
    response = _redirect(_safe_next(next))
    _set_session(request, response, session_id)
    return response


@router.post("/logout")
async def logout(request: Request, session: Session) -> Response:
    """End the session: its row is deleted, so the cookie is worthless even if kept (the token
    itself stays valid).
    """
    from .sso import SSO_TOKEN, logout_target

    await _posted(request, session)
    hub = _hub(request)
    if session.id:
        await hub.access.sign_out(session.id)
    if session.via == SSO_TOKEN and session.token is not None:  # its token lives no longer
        await hub._write(hub.store.revoke_token, session.token, actor=session.who.user,
                         channel="web")
    target = await logout_target(request, session.via, proxied=not session.id)
    # another origin: a page that moves on by itself, since the CSP's form-action 'self' stops
    # a form's redirect chain from leaving the hub
    response = (_redirect(target) if target.startswith("/")
                else _page("signed_out.html", provider=target))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- pages ------------------------------------------------------------------------------------
@router.get("/static/{name}")
async def static(name: str) -> Response:
    """The stylesheet and icon; versioned URLs, so they may be cached."""
    if name not in _STATIC_TYPES:
        return status_page(404, f"no static file {name}")
    body, _ = _static_file(name)
    return Response(body, media_type=_STATIC_TYPES[name],
                    headers={"Cache-Control": "public, max-age=86400"})


@router.get("/")
async def inbox(request: Request, token: Annotated[str | None, Query(max_length=500)] = None,
                status: Literal["pending", "decided", "cancelled"] = "pending",
                cursor: Annotated[Text | None, Query(max_length=500)] = None,
                done: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    """The inbox: what waits for the signed-in reviewer, most urgent and oldest first."""
    hub = _hub(request)
    if token is not None:
        # A token in a URL is not a way in any more: it would stay in history and logs, and a
        # link could sign a victim into someone else's session. The token is ignored.
        return _redirect("/login")
    session = await _session(request)
    page, pending = await asyncio.gather(  # two readers, side by side
        hub.list(session.who, status=status, limit=PAGE_SIZE, cursor=cursor),
        hub.count_pending(session.who, limit=COUNT_LIMIT + 1))
    shown = f"{COUNT_LIMIT:,}+" if pending > COUNT_LIMIT else f"{pending:,}"
    return _page("inbox.html", session=session, page=page, pending=shown, status=status,
                 cursor=cursor, now=hub.clock(), recorded=await _recorded(request, session, done))


async def _recorded(request: Request, session: _Session, done: str | None) -> Event | None:
    """The event just decided (``?done=ID`` after an answer), for the confirmation line."""
    if not done or not well_formed(done, "ev"):
        return None
    try:
        event = await _hub(request).get(session.who, done)
    except HubError:
        return None
    return event if event.decision is not None else None


@router.get("/events/{event_id}")
async def event_page(event_id: EventId, request: Request, session: Session,
                     done: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    """One event: prompt, recommendation and answer first, then context and history."""
    return await _event_page(request, session, event_id,
                             recorded=await _recorded(request, session, done))


_ANSWER_LABELS = {"value": "Your answer", "choice": "Approve or reject", "comment": "Comment",
                  "confirm": "Confirmation"}


def _error_view(error: InvalidInput, event: Event,
                fields: list[dict[str, Any]]) -> dict[str, Any]:
    """Where a refused answer's message goes (beside its field, or at the top) and its words."""
    shown = {f["path"]: f["label"] for f in fields}
    if event.input.kind != "form":
        shown["value"] = _ANSWER_LABELS["value"]
    shown.update({k: v for k, v in _ANSWER_LABELS.items() if k != "value"})
    at = next((p for p in shown if error.field == p or error.field.startswith(p + ".")), None)
    label = shown.get(at or "", None) or label_of(error.field.rsplit(".", 1)[-1])
    text = plain_error(error.field, error.expected, error.got, error.message)
    if at and error.field != at:  # inside the field (a JSON box): say where
        text = f"At {error.field.removeprefix(at + '.')}: {text[:1].lower()}{text[1:]}"
    return {"at": at, "label": label, "field": error.field, "text": text}


async def _event_page(request: Request, session: _Session, event_id: str, *, status: int = 200,
                      error: InvalidInput | None = None,
                      values: dict[str, list[str]] | None = None, comment: str = "",
                      notice: str | None = None, recorded: Event | None = None,
                      revealed: Event | None = None) -> HTMLResponse:
    hub = _hub(request)
    event = revealed or await hub.get(session.who, event_id)
    audit = await hub.audit(session.who, event_id)
    fields = form_fields(event.input.schema_) if event.input.kind == "form" else []
    pending = event.status == "pending"
    return _page("event.html", status, session=session, event=event, audit=audit, fields=fields,
                 values=initial_values(event, fields) if values is None else values,
                 comment=comment, error=error, notice=notice, now=hub.clock(),
                 problem=None if error is None else _error_view(error, event, fields),
                 recorded=recorded, confirm_needed=_confirm_needed(event),
                 may_answer=pending and can_answer(session.who, event, "web"),
                 may_cancel=pending and can_cancel(session.who, event),
                 proposal=proposal_of(event) if pending else None,
                 may_reveal=may_reveal(session.who, hub.settings.reveal_allowed),
                 revealed=None if revealed is None else hub.shown(revealed).masked)


def _confirm_needed(event: Event) -> bool:
    """An approval of a high-impact event takes one more tick: a confirm box."""
    return event.input.kind == "approval" and event.impact in ("high", "critical")


async def _next_url(request: Request, session: _Session, decided: str) -> str:
    """Where a reviewer lands after deciding: the next event of their inbox, in its order."""
    page = await _hub(request).list(session.who, status="pending", limit=2)
    done = quote(decided, safe="")
    for event in page.events:
        if event.id != decided:
            return f"/events/{quote(event.id, safe='')}?done={done}"
    return f"/?done={done}"


@router.post("/events/{event_id}/respond")
async def respond(event_id: EventId, request: Request, session: Session) -> Response:
    """Answer an event from its form; a refused answer comes back with the input kept.

    An accepted one sends the reviewer on to the next event of their inbox, with a line saying
    what was recorded.
    """
    form = await _posted(request, session)
    hub = _hub(request)
    event = await hub.get(session.who, event_id)
    comment = text_of(form, "comment").replace("\r\n", "\n").strip()
    try:
        if event.status != "pending":  # said before any complaint about the answer itself
            raise AlreadyDecided(f"event {event_id} is already {event.status}")
        if len(comment) > 10_000:
            raise InvalidInput("comment", "at most 10000 characters", f"{len(comment)} characters")
        value = answer_from(event, form)
        if value is True and _confirm_needed(event) and text_of(form, "confirm") != "yes":
            raise InvalidInput("confirm", f"the box ticked to approve a {event.impact}-impact "
                                          "event", None)
        await hub.respond(session.who, event_id, value, comment or None, channel="web",
                          digest=form_digest(form))
    except InvalidInput as exc:
        kept = {k: [str(v) for v in form.getlist(k)] for k in form if k != "csrf"}
        return await _event_page(request, session, event_id, status=422, error=exc,
                                 values=kept, comment=comment)
    except (AlreadyDecided, DigestChanged) as exc:
        return await _event_page(request, session, event_id, status=409,
                                 notice=f"Your answer was not recorded: {exc.message}.")
    return _redirect(await _next_url(request, session, event_id))


@router.post("/events/{event_id}/cancel")
async def cancel(event_id: EventId, request: Request, session: Session) -> Response:
    """Cancel a pending event (admins, and a workflow its own)."""
    form = await _posted(request, session)
    comment = text_of(form, "comment").strip()[:10_000]
    try:
        await _hub(request).cancel(session.who, event_id, comment or None, channel="web")
    except AlreadyDecided as exc:
        return await _event_page(request, session, event_id, status=409,
                                 notice=f"Not cancelled: {exc.message}.")
    return _redirect(f"/events/{quote(event_id, safe='')}")


async def _post_only(request: Request) -> Response:
    response = status_page(405, "this address only takes a form POST; open the event page "
                                "and use its buttons")
    response.headers["Allow"] = "POST"
    return response


for _path in ("/events/{event_id}/respond", "/events/{event_id}/cancel", "/logout"):
    router.add_api_route(_path, _post_only, methods=["GET"])
