"""``/login/oidc``: the browser side of OpenID Connect sign-in (the protocol is :mod:`.oidc`).

``GET /login/oidc`` makes a fresh state, nonce and PKCE verifier, keeps them in a short-lived
cookie signed with the hub's CSRF key (HttpOnly, ``SameSite=Lax`` so it comes back on the
provider's redirect, scoped to ``/login/oidc``), and sends the browser to the provider. The
callback accepts only the state this browser's cookie holds (so nobody can sign a victim into
their own account by sending them a callback link), spends the cookie, exchanges the code and
checks the ID token. A session then starts exactly as with a login link: a row in the store
behind an HttpOnly cookie, bound to an internal token for this identity (name ``sso:oidc``,
expiring with the session, secret never shown) so that API tokens, sessions and revocation
keep one model. Logout revokes that token and, when the provider's discovery names an
``end_session_endpoint``, sends the browser there too.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from .._errors import HubError
from .oidc import Flow, OidcLogin
from .web import (
    _csrf_key,
    _hub,
    _login_page,
    _redirect,
    _replace_session,
    _safe_next,
    _same,
    _set_session,
    _sign,
    status_page,
)

__all__ = ["SSO_TOKEN", "logout_target", "router"]

router = APIRouter(include_in_schema=False)
log = logging.getLogger("signoff.hub")

SSO_TOKEN = "sso:oidc"
"""The name of the internal token an OIDC session is bound to (listed with the others)."""
FLOW_COOKIE = "signoff_oidc"
FLOW_SECONDS = 600
Text = Annotated[str, Query(max_length=2000)]


def _oidc(request: Request) -> OidcLogin | None:
    found: OidcLogin | None = getattr(request.app.state, "oidc", None)
    return found


async def _seal(request: Request, flow: Flow) -> str:
    body = json.dumps({"s": flow.state, "n": flow.nonce, "v": flow.verifier, "x": flow.next,
                       "t": int(time.time())}).encode()
    data = base64.urlsafe_b64encode(body).decode().rstrip("=")
    return f"{data}.{_sign(await _csrf_key(request), b'oidc:' + data.encode())}"


async def _unseal(request: Request, sealed: str) -> Flow | None:
    data, _, signature = sealed.partition(".")
    if not _same(signature, _sign(await _csrf_key(request), b"oidc:" + data.encode())):
        return None
    try:
        fields = json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
        if time.time() - float(fields["t"]) > FLOW_SECONDS:
            return None
        return Flow(state=str(fields["s"]), nonce=str(fields["n"]), verifier=str(fields["v"]),
                    next=_safe_next(str(fields["x"])))
    except (ValueError, KeyError, TypeError):
        return None


@router.get("/login/oidc")
async def oidc_start(request: Request, next: Text = "/") -> Response:
    """Send the browser to the provider, with this attempt's state, nonce and PKCE challenge."""
    oidc = _oidc(request)
    if oidc is None:
        return status_page(404, "single sign-on is not configured on this hub")
    try:
        url, flow = await oidc.start(_safe_next(next))
    except HubError as exc:
        return await _login_page(request, 503, f"Single sign-on is unavailable: {exc.message}",
                                 next)
    response = _redirect(url)
    response.set_cookie(FLOW_COOKIE, await _seal(request, flow), max_age=FLOW_SECONDS,
                        path="/login/oidc", httponly=True, samesite="lax",
                        secure=request.app.state.settings.secure_cookies)
    return response


@router.get("/login/oidc/callback")
async def oidc_callback(request: Request, code: Text = "", state: Text = "", error: Text = "",
                        error_description: Text = "") -> Response:
    """Finish the sign-in the provider sent the browser back from; start a session."""
    oidc = _oidc(request)
    if oidc is None:
        return status_page(404, "single sign-on is not configured on this hub")
    flow = await _unseal(request, request.cookies.get(FLOW_COOKIE, "")[:4000])
    if flow is None or not state or not _same(state, flow.state):
        log.warning("oidc callback refused: no sign-in started in this browser matches it")
        return await _refused(request, 401, "This sign-in was not started in this browser, or "
                              "took longer than 10 minutes; start again.")
    if error:
        return await _refused(request, 401, f"The identity provider did not sign you in "
                              f"({error[:100]}: {error_description[:300]}).", flow.next)
    try:
        who = await oidc.finish(flow, code)
    except HubError as exc:
        log.warning("oidc sign-in refused: %s", exc.message)
        return await _refused(request, exc.status, f"Sign-in refused: {exc.message}", flow.next)
    session_id, _ = await _hub(request).access.sign_in_as(who, SSO_TOKEN)
    log.info("oidc sign-in: %s (%s, %d groups)", who.user, who.role, len(who.groups))
    await _replace_session(request)
    response = _redirect(flow.next)
    _set_session(request, response, session_id)
    response.delete_cookie(FLOW_COOKIE, path="/login/oidc")
    return response


async def _refused(request: Request, status: int, message: str, next_: str = "/") -> Response:
    response = await _login_page(request, status, message, next_)
    response.delete_cookie(FLOW_COOKIE, path="/login/oidc")
    return response


async def logout_target(request: Request, token_name: str | None, *, proxied: bool) -> str:
    """Where the browser goes after the hub ended its session: the provider's end-session
    endpoint for an OIDC session (when it has one), the proxy's sign-out behind a trusted
    proxy, else the sign-in page.
    """
    proxy = request.app.state.settings.trusted_proxy
    if proxied and proxy is not None and proxy.logout_url:
        return str(proxy.logout_url)
    oidc = _oidc(request)
    if oidc is not None and token_name == SSO_TOKEN:
        return await oidc.logout_url() or "/login"
    return "/login"
