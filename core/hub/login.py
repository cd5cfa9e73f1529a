"""One-time login links: ``/login/link/{code}``, printed by ``signoff serve`` on a fresh store
and by ``signoff token create --login-link``.

GET shows "Sign in as USER" and a button, and changes nothing: a mail scanner or a
cross-site GET spends no link and sets no session. The button POSTs with the sign-in CSRF
token (a signed double-submit cookie, SameSite=Strict), so another site cannot sign a victim
into the attacker's session. The POST spends the code (one transaction: used twice, the
second is refused), starts a session in the store and redirects to ``/``: the code leaves the
address bar, and ``Referrer-Policy: no-referrer`` keeps it out of other sites' logs.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response

from .access import LINK_PATH
from .web import (
    _check_login_csrf,
    _hub,
    _login_nonce,
    _page,
    _redirect,
    _replace_session,
    _set_login_nonce,
    _set_session,
)

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

Code = Annotated[str, Path(max_length=100)]
_SPENT = ("This sign-in link is unknown, was already used, or has expired. Ask an admin for a "
          "new one (signoff token create --login-link), or sign in with an API token.")


@router.get(LINK_PATH + "{code}")
async def login_link_page(code: Code, request: Request) -> Response:
    """The confirm page of a login link; nothing is spent or set but the sign-in CSRF nonce."""
    token = await _hub(request).access.link(code)
    if token is None:
        return _page("login_link.html", 401, user=None, csrf="", message=_SPENT)
    nonce, csrf = await _login_nonce(request)
    response = _page("login_link.html", user=token.identity.user, role=token.identity.role,
                     csrf=csrf, message=None)
    _set_login_nonce(request, response, nonce)
    return response


@router.post(LINK_PATH + "{code}")
async def use_login_link(code: Code, request: Request,
                         csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
    """Spend the link for a session; 303 to the inbox."""
    await _check_login_csrf(request, csrf)
    used = await _hub(request).access.use_link(code)
    if used is None:
        return _page("login_link.html", 401, user=None, csrf="", message=_SPENT)
    session_id, _ = used
    await _replace_session(request)
    response = _redirect("/")
    _set_session(request, response, session_id)
    return response
