"""Trusted proxy mode: the user and groups from a reverse proxy's headers (oauth2-proxy,
Pomerium, a cloud identity-aware proxy), honoured only on connections from its addresses.

The peer address is the TCP connection's own (``signoff serve`` runs uvicorn with
``proxy_headers=False``, so no ``X-Forwarded-For`` can change it). A request that carries the
identity header from any other address is answered 403 and logged as a warning: someone tried
to name themselves, or the proxy's addresses are configured wrong — either way it must not pass
quietly as an unauthenticated request. From a trusted address the identity lands in
``request.state.proxy_identity``; the web pages and the API (when no bearer token is given)
use it. Header values are bounded and must be printable, or the request gets 422 naming the
header.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re

from starlette.types import ASGIApp, Receive, Scope, Send

from .._errors import Forbidden, HubError, InvalidInput
from .._rules import Identity, Role
from .identity_settings import TrustedProxySettings

__all__ = ["TrustedProxy", "proxied_identity"]

log = logging.getLogger("signoff.hub")
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,200}")
MAX_GROUPS = 500


def proxied_identity(config: TrustedProxySettings, user: str,
                     groups: str | None) -> Identity:
    """The identity a trusted proxy's header values name.

    Raises:
        InvalidInput: naming the header, when a value is empty, too long or not printable.
    """
    user = user.strip()
    if not _NAME.fullmatch(user):
        raise InvalidInput(config.user_header, "a printable user name of 1 to 200 characters",
                           user[:200])
    names: list[str] = []
    if groups and config.groups_header:
        names = [g.strip() for g in groups.split(config.groups_separator) if g.strip()]
        if len(names) > MAX_GROUPS or not all(_NAME.fullmatch(g) for g in names):
            raise InvalidInput(config.groups_header, f"at most {MAX_GROUPS} printable group "
                               "names of up to 200 characters", groups[:200])
    found = tuple(dict.fromkeys(names))
    role: Role = "admin" if set(found) & set(config.admin_groups) else "reviewer"
    return Identity(user=user, groups=found, role=role)


class TrustedProxy:
    """ASGI middleware: check where identity headers came from, and read them if trusted."""

    def __init__(self, app: ASGIApp, config: TrustedProxySettings) -> None:
        self.app = app
        self.config = config
        self.networks = [ipaddress.ip_network(a.strip(), strict=False)
                         for a in config.addresses]
        self.user_header = config.user_header.lower().encode()
        self.groups_header = (config.groups_header or "").lower().encode()

    def trusted(self, peer: str | None) -> bool:
        """Whether a connection from ``peer`` may name its user in headers."""
        if not peer:
            return False
        try:
            address = ipaddress.ip_address(peer.split("%", 1)[0])
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse identity headers from an untrusted peer; pass a trusted one's identity on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        user = groups = None
        for name, value in scope["headers"]:
            if name == self.user_header:
                user = value.decode("latin-1")
            elif self.groups_header and name == self.groups_header:
                groups = value.decode("latin-1")
        if user is None:
            await self.app(scope, receive, send)
            return
        peer = (scope.get("client") or (None,))[0]
        try:
            if not self.trusted(peer):
                log.warning("trusted_proxy: %s header from untrusted address %s refused "
                            "(%s %s)", self.config.user_header, peer, scope["method"],
                            scope["path"])
                raise Forbidden(f"the {self.config.user_header} header is only accepted from "
                                "the configured proxy addresses")
            who = proxied_identity(self.config, user, groups)
        except HubError as exc:
            await _refuse(exc, send)
            return
        scope.setdefault("state", {})["proxy_identity"] = who
        await self.app(scope, receive, send)


async def _refuse(exc: HubError, send: Send) -> None:
    body = json.dumps(exc.to_dict()).encode()
    await send({"type": "http.response.start", "status": exc.status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
