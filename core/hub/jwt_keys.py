"""An issuer's discovery document and signing keys, and JWTs checked against them.

Shared by OIDC sign-in (:mod:`.oidc`) and workload identity (:mod:`.workload`). Signatures are
checked by joserfc (Authlib's JOSE library), never here: this module only fetches the keys,
caches them, and reads them again when a token names a key id the cache does not hold (the
issuer rotated its keys) — at most once per ``min_refresh`` seconds, so tokens with made-up key
ids cannot make the hub hammer the issuer.

Calls out go through the hub's egress guard: the configured issuer URL is the operator's
permission to call that origin, and the endpoints the issuer's own discovery document names
(its ``jwks_uri`` and ``token_endpoint`` may be on another host, as Google's are); addresses
are still checked at connect time, so a private address needs ``egress_allow_private``.
Only asymmetric algorithms are accepted (no ``none``, no HMAC with a public key as secret).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry, extract_compact

from .._egress import EgressGuard, EgressRefused, origin_of
from .._errors import Unauthenticated

__all__ = ["ALGORITHMS", "IssuerKeys", "ProviderError", "unverified_claims"]

log = logging.getLogger("signoff.hub")

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
              "ES512", "EdDSA"]
"""Signature algorithms accepted on ID and workload tokens: asymmetric only."""
MAX_DOCUMENT = 512 * 1024
MAX_TOKEN = 16 * 1024


class ProviderError(Unauthenticated):
    """The issuer could not be read (down, refused by egress, not JSON, wrong issuer); a sign-in
    or workload token cannot be checked, so the caller is not authenticated.
    """


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a compact JWT, unchecked: only to pick the issuer whose keys check it.

    Raises:
        Unauthenticated: not a compact JWT with a JSON object payload.
    """
    if len(token) > MAX_TOKEN:
        raise Unauthenticated(f"the token is over {MAX_TOKEN} characters")
    try:
        claims = json.loads(extract_compact(token.encode()).payload)
    except (JoseError, ValueError, TypeError) as exc:
        raise Unauthenticated("the bearer token is not a well-formed JWT") from exc
    if not isinstance(claims, dict):
        raise Unauthenticated("the bearer token's payload is not a JSON object")
    return claims


class IssuerKeys:
    """One issuer's metadata and JWKS for the hub's life (one HTTP client, closed at stop)."""

    def __init__(self, issuer: str, *, allow_private: list[str], timeout: float,
                 jwks_url: str | None = None, max_age: float = 3600.0,
                 min_refresh: float = 30.0, ca_file: Path | None = None) -> None:
        self.issuer = issuer
        self.jwks_url = jwks_url
        self.max_age = max_age
        self.min_refresh = min_refresh
        self._private = list(allow_private)
        self._origins = {origin_of(issuer)} | ({origin_of(jwks_url)} if jwks_url else set())
        guard = EgressGuard(allow_private=self._private)
        verify: Any = str(ca_file) if ca_file is not None else True
        self._client = guard.client(timeout=timeout, verify=verify,
                                    headers={"Accept": "application/json"})
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._read_at = 0.0
        self._forced_at = -1e9
        self._lock = asyncio.Lock()

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    # reading ---------------------------------------------------------------------------
    async def get_json(self, url: str) -> dict[str, Any]:
        """GET a JSON object from the issuer or an endpoint its discovery named.

        Raises:
            ProviderError: refused by egress, unreachable, not 200, too large or not an object.
        """
        return await self._json("GET", url, {}, None)

    async def post_form(self, url: str, headers: dict[str, str], body: str) -> dict[str, Any]:
        """POST a form (the token request) and read the JSON object answered; an OAuth error
        answer (400 or 401 with ``error``) is returned, not raised.
        """
        return await self._json("POST", url, headers, body)

    async def _json(self, method: str, url: str, headers: dict[str, str],
                    body: str | None) -> dict[str, Any]:
        self.check(url)
        ok = (200, 400, 401) if method == "POST" else (200,)
        try:
            async with self._client.stream(method, url, headers=headers,
                                           content=body) as answer:
                if answer.status_code not in ok:
                    raise ProviderError(f"{origin_of(url)} answered {answer.status_code}")
                read = b""
                async for chunk in answer.aiter_bytes():
                    read += chunk
                    if len(read) > MAX_DOCUMENT:
                        raise ProviderError(f"{origin_of(url)} sent over {MAX_DOCUMENT} bytes")
            document = json.loads(read)
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("identity provider %s: %r", origin_of(url), exc)
            raise ProviderError(f"the identity provider at {origin_of(url)} could not be read "
                                f"({type(exc).__name__})") from exc
        if not isinstance(document, dict):
            raise ProviderError(f"{origin_of(url)} did not send a JSON object")
        return document

    def check(self, url: str) -> None:
        """Refuse a URL outside the issuer's origin and the endpoints its discovery named.

        Raises:
            ProviderError: with the egress guard's reason.
        """
        try:
            EgressGuard(sorted(self._origins), self._private).check_url(url)
        except EgressRefused as exc:
            raise ProviderError(f"the identity provider may not be called: {exc}") from exc

    def allow(self, url: object) -> None:
        """Let the hub call this endpoint's origin too (one the issuer's discovery named)."""
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            self._origins.add(origin_of(url))

    async def metadata(self) -> dict[str, Any]:
        """The discovery document, read once; its ``issuer`` must be the configured one."""
        if self._metadata is None:
            found = await self.get_json(f"{self.issuer}/.well-known/openid-configuration")
            if str(found.get("issuer", "")).rstrip("/") != self.issuer:
                raise ProviderError(f"the discovery document names issuer "
                                    f"{str(found.get('issuer'))[:200]!r}, not {self.issuer!r}")
            for endpoint in ("jwks_uri", "token_endpoint"):
                self.allow(found.get(endpoint))
            self._metadata = found
        return self._metadata

    async def keys(self, *, force: bool = False) -> KeySet:
        """The issuer's signing keys: cached for ``max_age``, read again when ``force``d."""
        async with self._lock:  # one read at a time; the others take its result
            now = time.monotonic()
            stale = self._keys is None or now - self._read_at > self.max_age
            if force and now - self._forced_at >= self.min_refresh:
                self._forced_at = now
                stale = True
            if stale:
                url = self.jwks_url or (await self.metadata()).get("jwks_uri")
                if not isinstance(url, str):
                    raise ProviderError("the discovery document has no jwks_uri")
                try:
                    self._keys = KeySet.import_key_set(await self.get_json(url))  # type: ignore[arg-type]
                except (JoseError, ValueError, TypeError, KeyError) as exc:
                    raise ProviderError(f"the keys at {origin_of(url)} could not be read") from exc
                self._read_at = now
            assert self._keys is not None
            return self._keys

    async def decode(self, token: str) -> jwt.Token:
        """The token, its signature checked against the issuer's keys (read again once when it
        names an unknown key). Claims are not checked here; the caller checks them.

        Raises:
            Unauthenticated: a bad signature, an unknown key, a refused algorithm, malformed.
        """
        if len(token) > MAX_TOKEN:
            raise Unauthenticated(f"the token is over {MAX_TOKEN} characters")
        registry = JWSRegistry(algorithms=ALGORITHMS)
        try:
            try:
                return jwt.decode(token, await self.keys(), registry=registry)
            except InvalidKeyIdError:
                return jwt.decode(token, await self.keys(force=True), registry=registry)
        except ProviderError:
            raise
        except InvalidKeyIdError as exc:
            raise Unauthenticated("the token is signed with a key the issuer does not publish") \
                from exc
        except (JoseError, ValueError, TypeError) as exc:
            raise Unauthenticated(f"the token's signature does not check out "
                                  f"({type(exc).__name__})") from exc
