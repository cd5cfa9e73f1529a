"""The hub's ASGI application: ``create_app(settings)``.

One FastAPI app carries the JSON API (``/api/v1``), the web inbox (``/``), ``/healthz`` and the
OpenAPI document. Errors render by where they happen: JSON under ``/api``, a page elsewhere.
Every answer carries the security headers and HEAD works wherever GET does
(:mod:`signoff.hub.pages`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._errors import HubError, InvalidInput, PayloadTooLarge
from ..store import Store
from .audit_key import open_hub_store
from .pages import HeadAsGet, SecurityHeaders, allowed_methods, docs_router
from .service import Clock, Hub, _utcnow
from .settings import Settings

__all__ = ["create_app"]


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, whether or not they declare a size.

    A body without a declared size (``Transfer-Encoding: chunked``) is read here, up to the
    limit, before the app sees it: over it, the answer is 413 whatever route it was for (FastAPI's
    own body parsing would turn an error raised while it reads into a 400).
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.limit:
                await _too_large(self.limit, send)
                return
            await self.app(scope, receive, send)  # the server holds the body to its length
            return
        if b"chunked" not in headers.get(b"transfer-encoding", b"").lower():
            await self.app(scope, receive, send)  # no body
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await _too_large(self.limit, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def buffered() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, buffered, send)


class _HubApp(FastAPI):
    """FastAPI with the security headers and HEAD outside everything, the 500 page included
    (``add_middleware`` would put them inside Starlette's error middleware).
    """

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(HeadAsGet(super().build_middleware_stack()))


async def _too_large(limit: int, send: Send) -> None:
    body = JSONResponse(PayloadTooLarge(f"request body over {limit} bytes").to_dict(), 413).body
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def create_app(settings: Settings, store: Store | None = None,
               clock: Clock = _utcnow) -> FastAPI:
    """Build the hub's app. The store is opened from ``settings.database`` unless given."""
    from . import api, batch, live, login, tokens, web

    owned = store is None
    the_store = store if store is not None else open_hub_store(settings)[0]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub = Hub(settings, the_store, clock=clock)
        app.state.hub = hub
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()
            if owned:
                the_store.close()

    app = _HubApp(
        title="signoff hub",
        version="1",
        description="Human approval and input steps for workflows: events, responses, "
                    "decisions. Every call needs `Authorization: Bearer TOKEN`.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc from a CDN: see settings.api_docs
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = the_store

    @app.exception_handler(HubError)
    async def hub_error(request: Request, exc: HubError) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse(exc.to_dict(), status_code=exc.status, headers=exc.headers())
        page = web.error_page(request, exc)
        page.headers.update(exc.headers())
        return page

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0]
        got = first.get("input")
        error = InvalidInput(_field(tuple(first["loc"])), first["msg"].removeprefix("Value error, "),
                             got if not isinstance(got, dict) or len(str(got)) < 200 else "...")
        error.message = f"{error.field}: {first['msg']}"
        if request.url.path.startswith("/api/"):
            body = error.to_dict()
            body["error"]["errors"] = [
                {"field": _field(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
            return JSONResponse(body, status_code=422)
        return web.error_page(request, error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(app.router.routes, request.scope)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": {"code": "http_error", "message": str(exc.detail)}},
                                status_code=exc.status_code, headers=headers)
        page = web.status_page(exc.status_code, str(exc.detail))
        page.headers.update(headers)
        return page

    @app.get("/healthz", tags=["hub"])
    async def healthz() -> dict[str, Any]:
        """Liveness: the hub runs and its store answers."""
        hub: Hub = app.state.hub
        await hub.check_store()
        health: dict[str, Any] = {"status": "ok", "waiting": hub.waiting}
        if settings.instance is not None:
            health["instance"] = settings.instance
        return health

    app.include_router(api.router)
    app.include_router(tokens.router)
    app.include_router(web.router)
    app.include_router(live.router)
    app.include_router(batch.router)
    if settings.api_docs:
        app.include_router(docs_router())
    app.include_router(login.router)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app
