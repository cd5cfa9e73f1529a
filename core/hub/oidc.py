"""OpenID Connect sign-in for the inbox: the client side of the authorization code flow.

Authlib does the protocol (the authorization URL with PKCE ``S256``, the code exchange with
client authentication) and the ID token's claims (``iss``, ``aud``, ``azp``, ``exp``, ``iat``,
``nonce``, via its ``CodeIDToken``); joserfc checks the signature against the provider's JWKS
(:mod:`.jwt_keys`, with key rotation). Nothing about tokens is parsed by hand here: this module
turns checked claims into an :class:`~signoff.Identity` — the user name from
``username_claim``, ``group:`` assignees from ``groups_claim`` — and applies the operator's
``allowed_domains`` and ``allowed_groups``.

The browser side (routes, the flow cookie, sessions) is :mod:`.sso`.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from .._errors import Forbidden, Unauthenticated
from .._rules import Identity, Role
from .identity_settings import OidcSettings
from .jwt_keys import IssuerKeys, ProviderError
from .settings import Settings

__all__ = ["Flow", "OidcLogin", "claim_at", "groups_from"]

log = logging.getLogger("signoff.hub")
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,200}")
MAX_GROUPS = 500
LEEWAY = 60
_CLAIMS = {"aud": "it is not for this hub (its aud does not name the client id)",
           "iss": "it is from another issuer than the configured one",
           "azp": "it was issued to another client (azp)",
           "nonce": "its nonce is not this sign-in's (a replayed token?)",
           "at_hash": "it does not belong with the access token sent (at_hash)"}
"""Seconds of clock difference with the provider tolerated on ``exp`` and ``iat``."""


def claim_at(claims: Any, path: str) -> Any:
    """The value at a dotted claim path; keys that hold dots (``kubernetes.io``) are found
    too, the longest matching key first. ``None`` when absent.
    """
    here = claims
    rest = path
    while rest:
        if not isinstance(here, dict):
            return None
        if rest in here:
            return here[rest]
        keys = sorted((k for k in here if isinstance(k, str) and rest.startswith(k + ".")),
                      key=len, reverse=True)
        if not keys:
            return None
        here, rest = here[keys[0]], rest[len(keys[0]) + 1:]
    return here


def groups_from(claims: dict[str, Any], claim: str | None) -> tuple[str, ...]:
    """The groups in a claim (a list of names, or one name), printable and bounded.

    Raises:
        Unauthenticated: the claim is neither a list of names nor a name, or too long.
    """
    if claim is None:
        return ()
    value = claim_at(claims, claim)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if (not isinstance(value, list) or len(value) > MAX_GROUPS
            or not all(isinstance(g, str) and _NAME.fullmatch(g) for g in value)):
        raise Unauthenticated(f"the ID token's {claim!r} claim: expected at most {MAX_GROUPS} "
                              f"printable group names of up to 200 characters")
    return tuple(dict.fromkeys(value))


@dataclass(frozen=True)
class Flow:
    """What one sign-in attempt must find again at the callback (kept in a signed cookie)."""

    state: str
    nonce: str
    verifier: str
    next: str


class OidcLogin:
    """The hub's OpenID Connect client, one per hub (one HTTP client for its life)."""

    def __init__(self, settings: Settings, config: OidcSettings) -> None:
        self.config = config
        self.redirect_uri = f"{settings.base_url}/login/oidc/callback"
        self.after_logout = f"{settings.base_url}/login"
        self.keys = IssuerKeys(config.issuer, allow_private=list(settings.egress_allow_private),
                               timeout=config.timeout, max_age=config.jwks_max_age,
                               min_refresh=config.jwks_min_refresh, ca_file=config.ca_file)
        self.scope = " ".join(dict.fromkeys(["openid", *config.scopes]))

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.keys.aclose()

    async def start(self, next_: str) -> tuple[str, Flow]:
        """Where to send the browser to sign in, and the flow to keep until it comes back."""
        from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
        from authlib.oauth2.rfc7636 import create_s256_code_challenge

        metadata = await self.keys.metadata()
        endpoint = metadata.get("authorization_endpoint")
        if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
            raise ProviderError("the discovery document has no authorization_endpoint")
        flow = Flow(state=secrets.token_urlsafe(24), nonce=secrets.token_urlsafe(24),
                    verifier=secrets.token_urlsafe(48), next=next_)
        url = prepare_grant_uri(endpoint, client_id=self.config.client_id,
                                response_type="code", redirect_uri=self.redirect_uri,
                                scope=self.scope, state=flow.state, nonce=flow.nonce,
                                code_challenge=create_s256_code_challenge(flow.verifier),
                                code_challenge_method="S256")
        return str(url), flow

    async def finish(self, flow: Flow, code: str) -> Identity:
        """Exchange the code (with the PKCE verifier) and turn the checked ID token into an
        identity.

        Raises:
            Unauthenticated: the exchange failed, or the ID token was refused.
            Forbidden: the user is not in ``allowed_domains`` or ``allowed_groups``.
        """
        from authlib.oauth2.auth import ClientAuth
        from authlib.oauth2.rfc6749.parameters import prepare_token_request

        metadata = await self.keys.metadata()
        endpoint = metadata.get("token_endpoint")
        if not isinstance(endpoint, str):
            raise ProviderError("the discovery document has no token_endpoint")
        secret = self.config.client_secret
        body = prepare_token_request("authorization_code", code=code,
                                     redirect_uri=self.redirect_uri,
                                     code_verifier=flow.verifier,
                                     client_id=None if secret else self.config.client_id)
        auth = ClientAuth(self.config.client_id, secret.get_secret_value() if secret else None,
                          "client_secret_basic" if secret else "none")
        _, headers, body = auth.prepare("POST", endpoint, {
            "Content-Type": "application/x-www-form-urlencoded"}, body)
        token = await self.keys.post_form(endpoint, headers, body)
        if "error" in token:
            raise Unauthenticated(f"the provider refused the code: {str(token['error'])[:100]}")
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise Unauthenticated("the provider sent no ID token")
        claims = await self.check_id_token(id_token, flow.nonce, token.get("access_token"))
        return self.identity(claims)

    async def check_id_token(self, id_token: str, nonce: str,
                             access_token: object = None) -> dict[str, Any]:
        """The ID token's claims, once its signature, issuer, audience, expiry and nonce are
        checked.

        Raises:
            Unauthenticated: naming what did not check out.
        """
        from authlib.oidc.core import CodeIDToken
        from joserfc.errors import InvalidClaimError, JoseError

        decoded = await self.keys.decode(id_token)
        params: dict[str, Any] = {"nonce": nonce, "client_id": self.config.client_id}
        if isinstance(access_token, str):
            params["access_token"] = access_token
        claims = CodeIDToken(decoded.claims, decoded.header,
                             {"iss": {"essential": True, "values": [self.config.issuer]},
                              "aud": {"essential": True, "values": [self.config.client_id]}},
                             params)
        try:
            claims.validate(leeway=LEEWAY)
        except InvalidClaimError as exc:
            why = _CLAIMS.get(exc.claim, f"its {exc.claim!r} claim is not valid")
            raise Unauthenticated(f"the ID token was refused: {why}") from exc
        except JoseError as exc:
            raise Unauthenticated(f"the ID token was refused: {exc.description or exc.error}") \
                from exc
        if claims.get("nonce") != nonce:
            raise Unauthenticated("the ID token was refused: its nonce is not this sign-in's")
        return dict(claims)

    def identity(self, claims: dict[str, Any]) -> Identity:
        """The reviewer (or admin) these checked claims describe, if allowed in."""
        config = self.config
        user = claim_at(claims, config.username_claim)
        if not isinstance(user, str) or not _NAME.fullmatch(user):
            raise Unauthenticated(f"the ID token has no usable {config.username_claim!r} claim "
                                  "(expected printable text of 1 to 200 characters)")
        groups = groups_from(claims, config.groups_claim)
        if config.allowed_domains:
            email = claims.get("email")
            domain = email.rsplit("@", 1)[-1].lower() if isinstance(email, str) else None
            allowed = {d.lower().lstrip("@") for d in config.allowed_domains}
            if (claims.get("email_verified") is False or domain is None
                    or domain not in allowed):
                log.warning("oidc sign-in refused for %r: email domain not allowed", user)
                raise Forbidden(f"{user} may not sign in here: a verified email in "
                                f"{', '.join(sorted(allowed))} is required")
        if config.allowed_groups and not set(groups) & set(config.allowed_groups):
            log.warning("oidc sign-in refused for %r: in none of the allowed groups", user)
            raise Forbidden(f"{user} may not sign in here: membership of one of "
                            f"{', '.join(config.allowed_groups)} is required")
        role: Role = "admin" if set(groups) & set(config.admin_groups) else "reviewer"
        return Identity(user=user, groups=groups, role=role)

    async def logout_url(self) -> str | None:
        """The provider's end-session URL (RP-initiated logout), when discovery names one."""
        try:
            endpoint = (await self.keys.metadata()).get("end_session_endpoint")
        except ProviderError:
            return None
        if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
            return None
        query = urlencode({"client_id": self.config.client_id,
                           "post_logout_redirect_uri": self.after_logout})
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"
