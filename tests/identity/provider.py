"""A test OpenID Connect provider, run as its own process by the identity tests.

Why not ``oidc-provider-mock``: its 0.4.8 needs Python 3.12 (this project supports 3.10+ and
tests on 3.11), and it has no key rotation and no way to make it issue a bad ID token on
purpose. This provider is small but speaks the real protocol the hub uses: discovery, the
authorization endpoint with a sign-in page (a form a person, or Playwright, fills in), the
token endpoint with client authentication (``client_secret_basic``) and PKCE ``S256`` checked
with Authlib's own ``create_s256_code_challenge``, a JWKS, RS256 ID tokens signed with joserfc,
and an end-session endpoint. It keeps no state on disk.

Test controls under ``/test`` (never part of a real provider):

- ``POST /test/users`` ``{"alice": {"groups": [...], "email": "..."}}``: who may sign in;
- ``POST /test/mode`` ``{"mode": "expired" | "wrong_audience" | "forged" | "ok"}``: how the
  next ID tokens are spoiled;
- ``POST /test/rotate``: a new signing key replaces the old one in the JWKS;
- ``POST /test/sign`` ``{"claims": {...}, "forged": false}``: a JWT signed by this issuer
  (workload tokens);
- ``GET /test/stats``: how often the JWKS was read, and the logouts seen.

Run: ``python -m tests.identity.provider PORT``.
"""

from __future__ import annotations

import base64
import html
import secrets
import sys
import time
from typing import Any
from urllib.parse import urlencode

import uvicorn
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

CLIENT_ID = "signoff"
CLIENT_SECRET = "test-client-secret"


def _key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8), "use": "sig",
                                                  "alg": "RS256"})


def create_provider(issuer: str) -> FastAPI:
    """The provider's app, for ``issuer`` (its own base URL)."""
    app = FastAPI()
    state: dict[str, Any] = {"key": _key(), "mode": "ok", "users": {}, "codes": {},
                             "jwks_reads": 0, "logouts": []}

    def sign(claims: dict[str, Any], forged: bool = False) -> str:
        key: RSAKey = state["key"]
        signer = _key() if forged else key  # forged: right kid, a key nobody published
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, signer)

    @app.get("/.well-known/openid-configuration")
    def discovery() -> dict[str, Any]:
        return {"issuer": issuer, "authorization_endpoint": f"{issuer}/authorize",
                "token_endpoint": f"{issuer}/token", "jwks_uri": f"{issuer}/jwks",
                "end_session_endpoint": f"{issuer}/logout",
                "response_types_supported": ["code"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"]}

    @app.get("/jwks")
    def jwks() -> dict[str, Any]:
        state["jwks_reads"] += 1
        return KeySet([state["key"]]).as_dict(private=False)

    @app.get("/authorize")
    def authorize(request: Request) -> HTMLResponse:
        query = dict(request.query_params)
        if (query.get("client_id") != CLIENT_ID or query.get("response_type") != "code"
                or query.get("code_challenge_method") != "S256"
                or not query.get("code_challenge") or "openid" not in query.get("scope", "")):
            return HTMLResponse("bad authorization request", 400)
        hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" '
                         f'value="{html.escape(v)}">' for k, v in query.items())
        return HTMLResponse(
            f'<!doctype html><title>Test provider</title><h1>Test provider sign-in</h1>'
            f'<form method="post" action="/authorize">{hidden}'
            f'<label for="username">Username</label><input id="username" name="username">'
            f'<button type="submit">Sign in at provider</button></form>')

    @app.post("/authorize")
    async def approve(request: Request) -> Any:
        form = {k: str(v) for k, v in (await request.form()).items()}
        if form.get("username") not in state["users"]:
            return HTMLResponse("unknown user", 403)
        code = secrets.token_urlsafe(16)
        state["codes"][code] = form
        back = {"code": code, "state": form.get("state", "")}
        return RedirectResponse(f"{form['redirect_uri']}?{urlencode(back)}", 302)

    @app.post("/token")
    async def token(request: Request, grant_type: str = Form(), code: str = Form(),
                    redirect_uri: str = Form(), code_verifier: str = Form()) -> JSONResponse:
        auth = request.headers.get("authorization", "")
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if auth != f"Basic {expected}":
            return JSONResponse({"error": "invalid_client"}, 401)
        asked = state["codes"].pop(code, None)
        if (grant_type != "authorization_code" or asked is None
                or asked["redirect_uri"] != redirect_uri
                or create_s256_code_challenge(code_verifier) != asked["code_challenge"]):
            return JSONResponse({"error": "invalid_grant"}, 400)
        user = asked["username"]
        now = int(time.time())
        claims = {"iss": issuer, "sub": f"sub-{user}", "aud": CLIENT_ID, "iat": now,
                  "exp": now + 300, "nonce": asked["nonce"], "preferred_username": user,
                  **state["users"][user]}
        mode = state["mode"]
        if mode == "expired":
            claims.update(iat=now - 7200, exp=now - 3600)
        elif mode == "wrong_audience":
            claims["aud"] = "another-app"
        return JSONResponse({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                             "expires_in": 300,
                             "id_token": sign(claims, forged=mode == "forged")})

    @app.get("/logout")
    def logout(client_id: str = "", post_logout_redirect_uri: str = "") -> Any:
        state["logouts"].append(client_id)
        if post_logout_redirect_uri:
            return RedirectResponse(post_logout_redirect_uri, 302)
        return HTMLResponse("signed out")

    @app.post("/test/users")
    async def users(request: Request) -> dict[str, Any]:
        state["users"].update(await request.json())
        return {"users": sorted(state["users"])}

    @app.post("/test/mode")
    async def mode(request: Request) -> dict[str, Any]:
        state["mode"] = (await request.json())["mode"]
        return {"mode": state["mode"]}

    @app.post("/test/rotate")
    def rotate() -> dict[str, Any]:
        state["key"] = _key()
        return {"kid": state["key"].kid}

    @app.post("/test/sign")
    async def sign_claims(request: Request) -> dict[str, Any]:
        body = await request.json()
        return {"token": sign(body["claims"], forged=bool(body.get("forged")))}

    @app.get("/test/stats")
    def stats() -> dict[str, Any]:
        return {"jwks_reads": state["jwks_reads"], "logouts": state["logouts"],
                "kid": state["key"].kid}

    return app


if __name__ == "__main__":
    port = int(sys.argv[1])
    uvicorn.run(create_provider(f"http://127.0.0.1:{port}"), host="127.0.0.1", port=port,
                log_level="warning")
