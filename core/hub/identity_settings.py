"""Settings of the three ways in that need no admin-minted token (issue 23).

- ``[oidc]``: reviewers sign in to the inbox with the company's OpenID Connect provider.
- ``[trusted_proxy]``: a reverse proxy (oauth2-proxy, Pomerium, a cloud IAP) authenticates and
  passes the user and groups in headers, honoured only from the proxy's own addresses.
- ``[[workload_issuers]]``: workflows present a JWT their platform issues (a Kubernetes
  projected service-account token, a CI OIDC token) instead of a signoff secret.

They live beside :mod:`.settings` (which holds one field for each) so that file stays one
screenful per concern; see ``docs/identity.md`` for worked configurations.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = ["OidcSettings", "TrustedProxySettings", "WorkloadIssuer", "WorkloadRule"]

_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
_HEADER = r"^[A-Za-z0-9-]{1,64}$"
_CLAIM = r"^[A-Za-z0-9_.:/-]{1,200}$"
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.:/-]{1,200})\}")


def _issuer_url(value: str) -> str:
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
        raise ValueError(f"expected an http(s) issuer URL without query, got {value!r}")
    return value.rstrip("/")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OidcSettings(_Frozen):
    """OpenID Connect sign-in for the inbox (``[oidc]``)."""

    issuer: str
    """The provider's issuer URL, exactly as its ID tokens name it (``iss``); discovery is read
    from ``{issuer}/.well-known/openid-configuration``. Setting it is the operator's permission
    for the hub to call the issuer and the endpoints its discovery document names (still never a
    private address unless ``egress_allow_private`` covers it)."""

    client_id: str = Field(min_length=1, max_length=500)
    """The hub's client id at the provider; ID tokens must name it in ``aud``."""

    client_secret: SecretStr | None = None
    """The client secret (``SIGNOFF_OIDC__CLIENT_SECRET``); none for a public client (PKCE
    alone)."""

    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"],
                              max_length=20)
    """Scopes asked for; ``openid`` is added when missing. Some providers need ``groups``."""

    username_claim: str = Field(default="preferred_username", pattern=_CLAIM)
    """The ID token claim that becomes the user name (``email``, ``upn``, ``sub``, ...)."""

    groups_claim: str | None = Field(default="groups", pattern=_CLAIM)
    """The claim holding the user's groups; each becomes ``group:NAME`` for assignments. Dots
    walk into objects (Keycloak ``realm_access.roles``). None: no groups."""

    allowed_domains: list[str] = Field(default_factory=list, max_length=100)
    """When set, only users whose verified ``email`` is in one of these domains may sign in."""

    allowed_groups: list[str] = Field(default_factory=list, max_length=100)
    """When set, only members of at least one of these groups may sign in."""

    admin_groups: list[str] = Field(default_factory=list, max_length=100)
    """Members of these groups sign in as admins; everyone else as a reviewer."""

    timeout: float = Field(default=10.0, gt=0, le=120)
    """Longest one call to the provider may take (seconds)."""

    jwks_max_age: float = Field(default=3600.0, ge=0, le=86_400)
    """The provider's keys are read again after this long (seconds)."""

    jwks_min_refresh: float = Field(default=30.0, ge=0, le=3600)
    """A token signed with an unknown key makes the hub read the keys again (the provider
    rotated them), but at most this often (seconds): forged key ids cannot make it hammer."""

    ca_file: Path | None = None
    """A CA bundle for the provider's TLS certificate (a private CA); the system's otherwise."""

    label: str = Field(default="Sign in with single sign-on", max_length=100,
                       pattern=_PRINTABLE)
    """The sign-in page's button text."""

    @field_validator("issuer")
    @classmethod
    def _issuer_form(cls, value: str) -> str:
        return _issuer_url(value)


class TrustedProxySettings(_Frozen):
    """Identity from a reverse proxy's headers (``[trusted_proxy]``)."""

    addresses: list[str] = Field(min_length=1, max_length=100)
    """The proxy's addresses (CIDR, ``10.0.0.0/8``, ``127.0.0.1/32``): the identity headers are
    honoured only on connections from these. The same headers from anywhere else get 403 and a
    warning in the log."""

    user_header: str = Field(default="X-Forwarded-User", pattern=_HEADER)
    """The header naming the user (oauth2-proxy: ``X-Forwarded-User`` or
    ``X-Forwarded-Email``; Pomerium: ``X-Pomerium-Claim-Email``)."""

    groups_header: str | None = Field(default="X-Forwarded-Groups", pattern=_HEADER)
    """The header listing the user's groups, split on ``groups_separator``; None: no groups."""

    groups_separator: str = Field(default=",", min_length=1, max_length=4)
    """What separates groups in ``groups_header``."""

    admin_groups: list[str] = Field(default_factory=list, max_length=100)
    """Members of these groups are admins; everyone else is a reviewer."""

    logout_url: str | None = Field(default=None, max_length=2000)
    """Where the inbox's sign-out button sends the browser (the proxy's own sign-out, e.g.
    ``/oauth2/sign_out``); the sign-in page otherwise."""

    @field_validator("addresses")
    @classmethod
    def _networks(cls, addresses: list[str]) -> list[str]:
        for address in addresses:
            try:
                ipaddress.ip_network(address.strip(), strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxy.addresses: expected a network such as "
                                 f"10.0.0.0/8 or 127.0.0.1/32, got {address!r}") from None
        return addresses


class WorkloadRule(_Frozen):
    """One mapping from a workload token's claims to a workflow identity."""

    match: dict[str, str] = Field(min_length=1, max_length=20)
    """Claims the token must carry with these exact values, e.g. ``{"kubernetes.io.namespace" =
    "ml", "kubernetes.io.serviceaccount.name" = "trainer"}``; ``"*"`` accepts any text. Dots
    walk into objects (a key that itself holds dots, ``kubernetes.io``, is found too)."""

    workflow: str = Field(min_length=1, max_length=200, pattern=_PRINTABLE)
    """The workflow identity's user name; ``{claim}`` placeholders are filled from the token,
    e.g. ``"{kubernetes.io.namespace}/{kubernetes.io.serviceaccount.name}"``."""

    @field_validator("match")
    @classmethod
    def _claims(cls, match: dict[str, str]) -> dict[str, str]:
        for claim in match:
            if not re.fullmatch(_CLAIM, claim):
                raise ValueError(f"match: {claim!r} is not a claim path")
        return match

    def placeholders(self) -> list[str]:
        """The claims ``workflow`` is filled from."""
        return _PLACEHOLDER.findall(self.workflow)


class WorkloadIssuer(_Frozen):
    """An issuer whose JWTs workflows may authenticate with (``[[workload_issuers]]``)."""

    issuer: str
    """The tokens' ``iss`` (a cluster's ``--service-account-issuer``,
    ``https://token.actions.githubusercontent.com``, ...). The hub may call it and its
    ``jwks_uri`` (never a private address unless ``egress_allow_private`` covers it)."""

    audience: str = Field(min_length=1, max_length=500)
    """The ``aud`` the tokens must carry (a projected token's ``audience``, e.g. ``signoff``)."""

    jwks_url: str | None = Field(default=None, max_length=2000)
    """Where the keys are, when not from ``{issuer}/.well-known/openid-configuration``."""

    rules: list[WorkloadRule] = Field(min_length=1, max_length=200)
    """Mappings to workflow identities, first match wins; a token no rule maps is refused."""

    timeout: float = Field(default=10.0, gt=0, le=120)
    """Longest one call to the issuer may take (seconds)."""

    jwks_max_age: float = Field(default=3600.0, ge=0, le=86_400)
    """The keys are read again after this long (seconds)."""

    jwks_min_refresh: float = Field(default=30.0, ge=0, le=3600)
    """An unknown key id reads the keys again at most this often (seconds)."""

    ca_file: Path | None = None
    """A CA bundle for the issuer's TLS certificate (a cluster's CA, for instance)."""

    @field_validator("issuer")
    @classmethod
    def _issuer_form(cls, value: str) -> str:
        return _issuer_url(value)
