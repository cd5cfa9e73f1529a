"""Workload identity: a workflow authenticates with a JWT its platform already issues.

A Kubernetes projected service-account token with the audience ``signoff``, a GitHub Actions
or GitLab CI OIDC token: the workflow sends it as its bearer token, and the hub checks it
against the configured issuer (``[[workload_issuers]]``) — signature against the issuer's JWKS
(joserfc, with key rotation, :mod:`.jwt_keys`), ``iss``, ``aud``, ``exp`` (and ``nbf``, ``iat``
when present) — then maps its claims to a workflow identity by the first matching rule. A token
no rule maps is refused: an issuer vouches for every workload in its cluster or CI, so the
rules, not the issuer, decide which of them are workflows here. Argo and Flyte pods then need
no signoff secret at all.

Every refusal is a 401 naming the reason and a warning in the log.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwt import JWTClaimsRegistry

from .._errors import Unauthenticated
from .._rules import Identity
from .identity_settings import WorkloadIssuer, WorkloadRule
from .jwt_keys import IssuerKeys, unverified_claims
from .oidc import LEEWAY, claim_at
from .settings import Settings

__all__ = ["WorkloadIdentity", "looks_like_jwt"]

log = logging.getLogger("signoff.hub")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.:/-]{1,200})\}")
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,200}")


def looks_like_jwt(token: str) -> bool:
    """A compact JWS (API tokens start with ``so_`` and have no dots)."""
    return _JWT.fullmatch(token) is not None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def workflow_of(rule: WorkloadRule, claims: dict[str, Any]) -> str | None:
    """The workflow name this rule gives these claims, or ``None`` when it does not match."""
    for path, wanted in rule.match.items():
        value = _text(claim_at(claims, path))
        if value is None or (wanted != "*" and value != wanted):
            return None
    missing = [p for p in rule.placeholders() if _text(claim_at(claims, p)) is None]
    if missing:
        return None
    name = _PLACEHOLDER.sub(lambda m: str(claim_at(claims, m.group(1))), rule.workflow)
    return name if _NAME.fullmatch(name) else None


class WorkloadIdentity:
    """The configured workload issuers of one hub, their keys cached for its life."""

    def __init__(self, settings: Settings) -> None:
        self.issuers: dict[str, tuple[WorkloadIssuer, IssuerKeys]] = {}
        for config in settings.workload_issuers:
            keys = IssuerKeys(config.issuer, allow_private=list(settings.egress_allow_private),
                              timeout=config.timeout, jwks_url=config.jwks_url,
                              max_age=config.jwks_max_age, min_refresh=config.jwks_min_refresh,
                              ca_file=config.ca_file)
            self.issuers[config.issuer] = (config, keys)

    async def aclose(self) -> None:
        """Close every issuer's HTTP client."""
        for _, keys in self.issuers.values():
            await keys.aclose()

    async def identity(self, token: str) -> Identity:
        """The workflow identity a workload JWT proves.

        Raises:
            Unauthenticated: an unknown issuer, a bad signature, a wrong audience, an expired
                token, or a subject no rule maps.
        """
        try:
            return await self._identity(token)
        except Unauthenticated as exc:
            log.warning("workload token refused: %s", exc.message)
            raise

    async def _identity(self, token: str) -> Identity:
        issuer = unverified_claims(token).get("iss")
        entry = self.issuers.get(issuer.rstrip("/")) if isinstance(issuer, str) else None
        if entry is None:
            raise Unauthenticated(f"workload token: its issuer {str(issuer)[:200]!r} is not a "
                                  "configured workload issuer")
        config, keys = entry
        decoded = await keys.decode(token)
        registry = JWTClaimsRegistry(
            leeway=LEEWAY, exp={"essential": True},
            iss={"essential": True, "values": [config.issuer, config.issuer + "/"]},
            aud={"essential": True, "value": config.audience})
        try:
            registry.validate(decoded.claims)
        except JoseError as exc:
            raise Unauthenticated(f"workload token refused: {exc.description or exc.error}") \
                from exc
        for rule in config.rules:
            name = workflow_of(rule, decoded.claims)
            if name is not None:
                return Identity(user=name, role="workflow")
        raise Unauthenticated(f"workload token: no rule of issuer {config.issuer} maps subject "
                              f"{str(decoded.claims.get('sub'))[:200]!r} to a workflow")
