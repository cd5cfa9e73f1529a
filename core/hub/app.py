"""The hub's ASGI application: ``create_app(settings)``.

One FastAPI app carries the JSON API (``/api/v1``), the web inbox (``/``), ``/healthz`` and the
OpenAPI document. Errors render by where they happen: JSON under ``/api``, a page elsewhere.
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
from ..store import Store, open_store
from .service import Clock, Hub, _utcnow
from .settings import Settings

__all__ = ["create_app"]


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, whether or not they declare a size."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(self.limit, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise PayloadTooLarge(f"request body over {self.limit} bytes")
            return message

        await self.app(scope, counted, send)


class SafeHeaders:
    """``Cache-Control: no-store`` and ``nosniff`` on every answer (a plain ASGI wrapper: the
    decorator-style middleware costs a task and a copy per request).
    """

    _ADD = ((b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"))

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in self._ADD if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


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
    from . import api, deliveries, web

    owned = store is None
    the_store = store if store is not None else open_store(settings.database)

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

    app = FastAPI(
        title="signoff hub",
        version="1",
        description="Human approval and input steps for workflows: events, responses, "
                    "decisions. Every call needs `Authorization: Bearer TOKEN`.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = the_store

    @app.exception_handler(HubError)
    async def hub_error(request: Request, exc: HubError) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse(exc.to_dict(), status_code=exc.status)
        return web.error_page(request, exc)

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
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": {"code": "http_error", "message": str(exc.detail)}},
                                status_code=exc.status_code, headers=exc.headers)
        return web.status_page(exc.status_code, str(exc.detail))

    @app.get("/healthz", tags=["hub"])
    async def healthz() -> dict[str, Any]:
        """Liveness: the hub runs and its store answers; ``loop_lag`` is how late its event
        loop ran lately and at most (seconds).
        """
        hub: Hub = app.state.hub
        await hub._run(the_store.next_deadline)
        return {"status": "ok", "waiting": hub.waiting, "loop_lag": hub.loop_lag.as_dict()}

    app.include_router(api.router)
    app.include_router(deliveries.router)
    app.include_router(web.router)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(SafeHeaders)
    return app
